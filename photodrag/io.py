"""Helpers every stage may use: the cache root, file hashing, atomic writes, and the one
validator each for boxes and masks.

This module imports only NumPy and the standard library (Pillow when a mask file is read),
so the photo stage can use it without loading torch.
"""

import contextlib
import hashlib
import json
import math
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from photodrag.errors import InvalidBoxError, InvalidMaskError, PhotodragError, UnreadableImageError

CACHE_ENV = 'PHOTODRAG_CACHE'

Box = Tuple[float, float, float, float]


# ---------------------------------------------------------------- cache and hashing

def cache_dir() -> Path:
    """photodrag's cache root: $PHOTODRAG_CACHE, else $XDG_CACHE_HOME/photodrag, else
    ~/.cache/photodrag (checkpoints/ and inversions/ live below it)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'photodrag'


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """The sha256 of a regular file's bytes, read in chunks (a device, FIFO or folder is refused
    in one line: /dev/zero would never end)."""
    import stat
    from photodrag.errors import PhotodragError
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise PhotodragError(f'{path} is not a regular file')
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_regular_text(path, what: str, max_bytes: int) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes` (a device such as /dev/zero, a
    FIFO or a folder is refused in one line instead of being read for ever)."""
    import stat
    from photodrag.errors import PhotodragError
    path = Path(path)
    try:
        with open(path, 'rb') as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise PhotodragError(f'{path} is not a regular file; {what} is a file')
            if st.st_size > max_bytes:
                raise PhotodragError(f'{path} is {st.st_size:,} bytes; {what} is at most {max_bytes >> 20} MB')
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise PhotodragError(f'{path}: no such file') from None
    except IsADirectoryError:
        raise PhotodragError(f'{path} is a folder; {what} is a file') from None
    if len(data) > max_bytes:
        raise PhotodragError(f'{path} grew past {max_bytes >> 20} MB while it was read')
    return data.decode('utf-8')


# ---------------------------------------------------------------- atomic writes

# Temporary files are named .STEM.HOST-PID.XXXXXXXX.TAG.SUFFIX: a run killed before it could
# rename or remove one (kill -9, power loss) leaves it, and the next run that writes beside it
# removes it once its process is gone (same host) or it is an hour old (another host sharing
# the folder). A live process's files, this one's included, are never touched.
_HOST = re.sub(r'[^A-Za-z0-9]', '', socket.gethostname())[:32] or 'host'
STALE_DEBRIS_S = 3600
_DEBRIS = r'\.(?:(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)\.)?[A-Za-z0-9_]{8}\.(?:tmp|part)(?:\.[A-Za-z0-9]+)?'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:             # another user's process: alive
        return True
    return True


def remove_debris(folder, stems=None, every: bool = False) -> int:
    """Remove temporary files that killed runs left in `folder` (those of outputs whose name
    has the stem `stems` (one or several), or all): a dead process's, or any an hour old;
    with `every` (the caller holds a lock on the folder) all of them. Returns how many."""
    folder = Path(folder)
    if isinstance(stems, str):
        stems = [stems]
    names = '|'.join(map(re.escape, stems)) if stems is not None else '.+'
    pattern = re.compile(r'\.(?:' + names + ')' + _DEBRIS)
    removed = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    now = time.time()
    for p in entries:
        m = pattern.fullmatch(p.name)
        if not m:
            continue
        try:
            host, pid = m.group('host'), int(m.group('pid') or 0)
            if pid == os.getpid() and host == _HOST:
                continue
            dead = every or (host == _HOST and not _alive(pid)) or now - p.stat().st_mtime > STALE_DEBRIS_S
            if dead and p.is_file():
                p.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def temp_sibling(path, tag: str = 'tmp') -> Path:
    """A new, unique temporary file name in `path`'s folder that keeps its suffix (writers such
    as Pillow and OpenCV pick the format from it); the folder is created if needed, and what
    killed runs left for the same name is removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_debris(path.parent, path.stem)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.stem}.{_HOST}-{os.getpid()}.',
                               suffix=f'.{tag}{path.suffix}')
    try:
        os.fchmod(fd, _MODE)                # mkstemp's 0600 would follow the rename: outputs get the usual mode
    finally:
        os.close(fd)
    return Path(tmp)


LOCK_SUFFIX = '.lock'


@contextlib.contextmanager
def one_at_a_time(path, waiting=None, poll_s: float = 0.1) -> Iterator[None]:
    """Held while one process (or thread) makes the file `path`: another that asks for the same
    path waits until the first is done (then typically finds the file made), calling
    `waiting()` every `poll_s` seconds meanwhile (it may raise to give up). An flock on
    `path` + LOCK_SUFFIX, which the holder removes when done; the OS releases it if the holder
    dies, and `remove_stale_locks` clears what such holders leave. No lock where the OS has
    no flock (the work may then be done twice)."""
    try:
        import fcntl
    except ImportError:                     # not POSIX
        yield
        return
    lock = Path(str(path) + LOCK_SUFFIX)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, _MODE)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if waiting is not None:
                        waiting()
                    time.sleep(poll_s)
            if _same_file(lock, fd):        # not a lock file its last holder had already removed
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()                   # removed while held: a waiter on it takes a new one
        os.close(fd)


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


def remove_stale_locks(folder) -> int:
    """Remove the lock files of `one_at_a_time` in `folder` that no live holder holds (one
    killed while it held it left the file). Returns how many."""
    try:
        import fcntl
        entries = [p for p in Path(folder).iterdir() if p.name.endswith(LOCK_SUFFIX)]
    except (ImportError, OSError):
        return 0
    removed = 0
    for p in entries:
        try:
            fd = os.open(p, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(p, fd):
                p.unlink()
                removed += 1
        except OSError:                     # held: its holder is alive
            pass
        finally:
            os.close(fd)
    return removed


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()
_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_write(path, tag: str = 'tmp') -> Iterator[Path]:
    """Write a file under `path` all at once or not at all.

        with atomic_write('out.png') as tmp:
            image.save(tmp)

    The body writes to a temporary file in the same folder; when it returns, the file is
    renamed over `path` (an atomic step on one file system); when it raises, the temporary
    file is removed and `path` is left as it was. OS errors become a `PhotodragError` that
    names `path`."""
    path = Path(path)
    try:
        tmp = temp_sibling(path, tag)
    except OSError as e:
        raise PhotodragError(f'cannot write {path}: {e.strerror or e}') from None
    try:
        yield tmp
        os.chmod(tmp, _MODE)                # writers that make the file anew (safetensors) leave it 0600
        os.replace(tmp, path)
    except OSError as e:
        raise PhotodragError(f'cannot write {path}: {e.strerror or e}') from None
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_files(paths: Sequence) -> Iterator[List[Path]]:
    """Write several files all or none: the body writes each to the temporary name given for
    it; when the body returns, they are renamed into place together (one folder, one file
    system: only the renames remain, which do not fail for want of space); when it raises,
    every temporary file is removed and no final path is touched.

        with atomic_files([photo_path, record_path]) as (photo_tmp, record_tmp):
            ..."""
    finals = [Path(p) for p in paths]
    temps: List[Path] = []
    try:
        for path in finals:
            try:
                temps.append(temp_sibling(path))
            except OSError as e:
                raise PhotodragError(f'cannot write {path}: {e.strerror or e}') from None
        yield list(temps)
        for tmp, path in zip(temps, finals):
            try:
                os.chmod(tmp, _MODE)
                os.replace(tmp, path)
            except OSError as e:
                raise PhotodragError(f'cannot write {path}: {e.strerror or e}') from None
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path, data: Any) -> Path:
    """Write `data` as indented JSON to `path` atomically (non-JSON values as their str)."""
    return write_text(path, json.dumps(data, indent=2, default=str) + '\n')


# ---------------------------------------------------------------- boxes

def check_box(box, what: str = 'a box') -> Box:
    """(x0, y0, x1, y1) as four finite floats with x1 > x0 and y1 > y0, or `InvalidBoxError`."""
    try:
        b = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        b = ()
    if len(b) != 4 or not all(math.isfinite(v) for v in b) or b[2] <= b[0] or b[3] <= b[1]:
        raise InvalidBoxError(f'{what} is (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box!r}')
    return b


# ---------------------------------------------------------------- masks

EDITABLE_FROM = 0.01       # a mask value below this is frozen: a point there cannot move


def check_points_editable(mask, points, names: Sequence[str]) -> None:
    """Each point (x, y) of `points` (named by `names`, e.g. 'handle 1') lies where `mask`
    (numpy or torch, [H, W] in [0, 1]; None: everywhere) lets the image change: the one rule
    for the drag stage, the edit chain and the web editor."""
    if mask is None:
        return
    for (x, y), name in zip(points, names):
        if float(mask[int(round(y)), int(round(x))]) < EDITABLE_FROM:
            raise InvalidMaskError(f'{name} at ({x:g}, {y:g}) lies in the masked (frozen) area; paint it as '
                                   'editable or move the point, otherwise the drag cannot move it')


def as_mask(mask, shape: Sequence[int], what: str = 'mask') -> np.ndarray:
    """A mask array (bool, uint8 0..255, or numbers in [0, 1]; 1 = may change) as a C-contiguous
    float32 [H, W] array in [0, 1]. `shape` is (H, W); leading axes of size 1 are dropped.
    Anything else is an `InvalidMaskError` that says what was wrong."""
    a = np.asarray(mask)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    h, w = (int(v) for v in shape)
    if a.dtype == np.bool_:
        m = a.astype(np.float32)
    elif a.dtype == np.uint8:
        m = a.astype(np.float32) / 255.0
    elif np.issubdtype(a.dtype, np.number) and not np.issubdtype(a.dtype, np.complexfloating):
        m = a.astype(np.float32)
    else:
        raise InvalidMaskError(f'{what} must be numeric (bool, uint8 or float in [0, 1]), got {a.dtype}')
    if m.shape != (h, w):
        size = f'{w}x{h}' if w != h else f'{w}x{w}'
        raise InvalidMaskError(f'{what} has shape {tuple(np.shape(mask))}; it must be {size} '
                               f'(height {h}, width {w}: one value per pixel)')
    if not np.isfinite(m).all():
        raise InvalidMaskError(f'{what} contains NaN or infinite values')
    lo, hi = float(m.min()), float(m.max())
    if lo < 0 or hi > 1:
        raise InvalidMaskError(f'{what} values must lie in [0, 1] (1 = may change); found {lo:g}..{hi:g}. '
                               'An 8-bit mask image should be divided by 255.')
    return np.ascontiguousarray(m)


def load_mask(source, shape: Sequence[int], what: str = 'mask', size_name: Optional[str] = None) -> np.ndarray:
    """A mask from an image file (grayscale, white = may change, EXIF orientation applied) or
    an array, as `as_mask` gives it. `size_name` says in the size error what the mask must match
    ("the photo's size")."""
    if not isinstance(source, (str, os.PathLike)):
        return as_mask(source, shape, what)
    from PIL import Image, ImageOps, UnidentifiedImageError
    path = Path(source)
    try:
        with Image.open(path) as im:
            im.load()
            gray = ImageOps.exif_transpose(im).convert('L')
    except FileNotFoundError:
        raise UnreadableImageError(f'{path}: no such mask file') from None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImageError(f'cannot read mask {path}: {e}') from None
    h, w = (int(v) for v in shape)
    if gray.size != (w, h):
        where = f'{size_name} {w}x{h}' if size_name else f'{w}x{h}'
        raise InvalidMaskError(f'{what} {path} is {gray.size[0]}x{gray.size[1]}; it must be {where} '
                               '(white = may change, black = keep)')
    return np.ascontiguousarray(np.asarray(gray, np.float32) / 255.0)


def mask_sha256(mask: np.ndarray) -> str:
    """The sha256 of a float32 mask's shape and values (what edit records keep of a mask)."""
    m = np.ascontiguousarray(mask, np.float32)
    return hashlib.sha256(f'{m.shape};'.encode() + m.tobytes()).hexdigest()


__all__ = ['cache_dir', 'sha256_file', 'temp_sibling', 'atomic_write', 'write_text', 'write_json', 'check_box',
           'as_mask', 'load_mask', 'mask_sha256', 'CACHE_ENV']
