"""Reading the DragBench benchmark and writing results where its evaluation scripts look for them.

DragBench (DragDiffusion, Shi et al. 2024; the released folder `drag_bench_data`) holds one
folder per sample, DIR/<category>/<sample_name>/, with

    original_image.png   the RGB photo to edit
    meta_data.pkl        a pickle of {'prompt': str, 'points': [[x, y], ...], 'mask': array [H, W]}
    user_drag.png        a picture of the drags (ignored here)

`points` alternate handle, target, handle, target, ... in image pixels (x right, y down);
`mask` marks the editable region (uint8 0/1 as the labeling tool saves it; any nonzero value
counts, as DragDiffusion's own runner reads it). A flat DIR/<sample_name>/ layout works too:
a sample folder is any folder holding original_image.png or a meta file. A JSON variant,
meta_data.json, holds the same keys, with 'mask' a list of rows or the file name of a
grayscale PNG beside it.

The published evaluation scripts read a method's output from RESULT_DIR/<category>/<sample_name>/
dragged_image.png, so `result_path` mirrors the sample's relative path under the output folder.

    samples = read_dragbench('drag_bench_data', limit=10)
    for s in samples:
        write_result('results/photodrag', s, edit(s.image, s.handles, s.targets, s.mask))

The pickles are read with `restricted_load`: a meta file that asks to run code is refused
(`UnsafeCheckpointError`) before anything in it runs.
"""

import json
import math
import numbers
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from photodrag.alignment import as_rgb, read_photo, write_photo
from photodrag.errors import (is_number, InvalidImageError, InvalidMaskError, InvalidPointsError, InvalidSettingsError,
                              PhotodragError, UnreadableImageError, UnsafeCheckpointError)
from photodrag.io import as_mask, atomic_write, load_mask, write_json
from photodrag.restricted import restricted_load

IMAGE_NAME = 'original_image.png'
META_PKL = 'meta_data.pkl'
META_JSON = 'meta_data.json'
RESULT_NAME = 'dragged_image.png'
JSON_MASK_NAME = 'mask.png'
_QUOTE = 80          # at most this many characters of any value taken from a file go into a message

LAYOUT = (f'expected DIR/<category>/<sample_name>/{IMAGE_NAME} (or DIR/<sample_name>/{IMAGE_NAME}) '
          f'with {META_PKL} or {META_JSON} beside it, as in the released drag_bench_data')

Point = Tuple[float, float]


@dataclass(frozen=True, eq=False)
class DragBenchSample:
    """One DragBench sample: the photo, its drags (handle i moves to target i) and editable region."""
    name: str                       # relative path under the benchmark root, '/'-separated: 'animals/JH_...'
    folder: Path                    # the sample's folder
    image: np.ndarray               # uint8 RGB [H, W, 3]
    handles: List[Point]            # (x, y) in image pixels
    targets: List[Point]            # same length as handles
    mask: Optional[np.ndarray]      # float32 [H, W], 1 = may change, 0 = keep; None when the file has none
    prompt: str = ''                # the text prompt diffusion methods use; '' when absent

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) of the image in pixels."""
        return self.image.shape[1], self.image.shape[0]


# ---------------------------------------------------------------- reading

@dataclass
class BadSample:
    """A sample folder that could not be read: its name and why, in one line."""
    name: str
    folder: Path
    error: str


def read_dragbench(root, limit: Optional[int] = None, skip_bad: bool = False) -> List[Any]:
    """All DragBench samples under `root`, sorted by relative path (the first `limit` of them).

    Raises a `PhotodragError` subclass naming the sample folder for the first sample that is
    malformed (with `skip_bad`, that sample is a `BadSample` in the list instead and the
    others are read), and a `PhotodragError` when `root` holds no sample at all."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise InvalidSettingsError(f'limit must be a positive number of samples or None, got {_quote(limit)}')
    root = Path(root)
    folders = find_sample_folders(root)
    if not folders:
        if not root.exists():
            what = 'does not exist'
        elif not root.is_dir():
            what = 'is not a folder'
        else:
            what = 'holds no sample folder' if any(root.iterdir()) else 'is empty'
        raise PhotodragError(f'no DragBench samples were found under {root} (it {what}); {LAYOUT}')
    if limit is not None:
        folders = folders[:int(limit)]
    if not skip_bad:
        return [read_sample(folder, _relative_name(folder, root)) for folder in folders]
    out: List[Any] = []
    for folder in folders:
        name = _relative_name(folder, root)
        try:
            out.append(read_sample(folder, name))
        except PhotodragError as e:
            out.append(BadSample(name=name, folder=folder, error=_cap(' '.join(str(e).split()), 300)))
    return out


def find_sample_folders(root) -> List[Path]:
    """The sample folders under `root` (those holding original_image.png or a meta file), sorted by
    relative path so that runs, limits and reports are the same on every machine."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    seen = set()
    # Symlinked category folders are followed (benchmarks get assembled that way); `seen`
    # keeps a link back up the tree from looping forever.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        files = set(filenames)
        if IMAGE_NAME in files or META_PKL in files or META_JSON in files:
            found.append(Path(dirpath))
            # A sample is a leaf: whatever sits below it (a method's outputs saved beside the
            # input, say) belongs to it and is not another sample.
            dirnames[:] = []
            continue
        # Hidden folders and macOS zip debris hold copies or resource forks, never samples.
        dirnames[:] = [d for d in dirnames if not d.startswith('.') and d != '__MACOSX']
    return sorted(found, key=lambda p: _relative_name(p, root))


def read_sample(folder, name: Optional[str] = None) -> DragBenchSample:
    """One sample folder read and checked; `name` defaults to the folder's own name."""
    folder = Path(folder)
    name = folder.name if name is None else name
    meta, meta_path = _read_meta(folder)
    image_path = folder / IMAGE_NAME
    if not image_path.is_file():
        raise UnreadableImageError(f'DragBench sample {folder}: {IMAGE_NAME} is missing '
                                   f'(a sample folder holds {IMAGE_NAME} and {META_PKL})')
    try:
        image = read_photo(image_path).pixels
    except UnreadableImageError as e:
        raise UnreadableImageError(f'DragBench sample {folder}: {e}') from None
    h, w = image.shape[:2]
    points = _check_points(meta.get('points'), w, h, f'DragBench sample {folder}: {meta_path.name}')
    mask = _read_mask(meta, folder, meta_path, (h, w))
    prompt = meta.get('prompt')
    if prompt is None:
        prompt = ''
    if not isinstance(prompt, str):
        raise PhotodragError(f'DragBench sample {folder}: {meta_path.name} has a prompt of type '
                             f'{type(prompt).__name__} ({_quote(prompt)}); it must be text')
    return DragBenchSample(name=name, folder=folder, image=image, handles=points[0::2], targets=points[1::2],
                           mask=mask, prompt=prompt)


def _read_meta(folder: Path):
    """(the meta dict, its path). meta_data.pkl wins over meta_data.json: it is the published format."""
    pkl, js = folder / META_PKL, folder / META_JSON
    if pkl.is_file():
        path = pkl
        try:
            with open(pkl, 'rb') as f:
                meta = restricted_load(f, source=str(pkl))
        except UnsafeCheckpointError as e:
            # Keep what it asked for; the reader's advice about checkpoints does not fit a meta file.
            asked = _cap(str(e).split(', which a checkpoint')[0], 300)
            hint = ''
            if '_frombuffer' in asked:
                hint = ' (a numpy array pickled with protocol 5: re-save the dict with pickle protocol 4)'
            raise UnsafeCheckpointError(f'DragBench sample {folder}: {META_PKL} was refused and nothing in it ran: '
                                        f'{asked}; a meta file holds only a prompt, points and a mask{hint}') from None
        except PhotodragError as e:
            raise PhotodragError(f'DragBench sample {folder}: cannot read {META_PKL}: {_cap(str(e), 300)}') from None
        except OSError as e:
            raise PhotodragError(f'DragBench sample {folder}: cannot read {META_PKL}: {e.strerror or e}') from None
    elif js.is_file():
        path = js
        try:
            meta = json.loads(js.read_text(encoding='utf-8'))
        except OSError as e:
            raise PhotodragError(f'DragBench sample {folder}: cannot read {META_JSON}: {e.strerror or e}') from None
        except (ValueError, RecursionError) as e:        # JSONDecodeError and bad UTF-8 are ValueErrors
            raise PhotodragError(f'DragBench sample {folder}: {META_JSON} is not valid JSON: {_cap(str(e))}') from None
    else:
        raise PhotodragError(f'DragBench sample {folder}: neither {META_PKL} nor {META_JSON} is there; {LAYOUT}')
    if not isinstance(meta, dict):
        raise PhotodragError(f'DragBench sample {folder}: {path.name} holds a {type(meta).__name__}, not a dict '
                             "with 'prompt', 'points' and 'mask'")
    return meta, path


def _check_points(raw, w: int, h: int, where: str) -> List[Point]:
    """The flat handle, target, handle, target, ... list as (x, y) floats, each inside the w x h image."""
    if raw is None:
        raise InvalidPointsError(f"{where} has no 'points' (a list of [x, y]: handle, target, handle, target, ...)")
    if isinstance(raw, np.ndarray):
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)):
        raise InvalidPointsError(f"{where}: 'points' must be a list of [x, y] pairs, got {type(raw).__name__} "
                                 f'{_quote(raw)}')
    points = []
    for i, p in enumerate(raw):
        if isinstance(p, np.ndarray):
            p = p.tolist()
        try:
            if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(is_number(v, finite=False) for v in p)):
                raise TypeError  # nan and inf get their own message below
            points.append((float(p[0]), float(p[1])))
        except (TypeError, OverflowError):         # OverflowError: an int too large for a float
            raise InvalidPointsError(f'{where}: point {i} must be [x, y] (two numbers), got {_quote(p)}') from None
    if len(points) < 2 or len(points) % 2:
        raise InvalidPointsError(f'{where} has {len(points)} point(s); points alternate handle, target, so there '
                                 'must be an even number, at least 2')
    for i, (x, y) in enumerate(points):
        role = f"{'handle' if i % 2 == 0 else 'target'} {i // 2}"
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InvalidPointsError(f'{where}: point {i} ({role}) is ({x}, {y}); coordinates must be finite')
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            raise InvalidPointsError(f'{where}: point {i} ({role}) at (x, y) = ({x:g}, {y:g}) is outside the {w}x{h} '
                                     f'image (x must lie in 0..{w - 1}, y in 0..{h - 1})')
    return points


def _read_mask(meta: dict, folder: Path, meta_path: Path, shape) -> Optional[np.ndarray]:
    raw = meta.get('mask')
    if raw is None:
        return None
    where = f'DragBench sample {folder}: the mask in {meta_path.name}'
    if isinstance(raw, str):
        if meta_path.name != META_JSON:
            raise InvalidMaskError(f'{where} is the text {_quote(raw)}, not an array')
        mask_path = _beside(folder, raw, where)
        try:
            m = load_mask(mask_path, shape, what=f'{where} ({raw})', size_name="the image's size")
        except UnreadableImageError as e:
            raise UnreadableImageError(f'DragBench sample {folder}: {e}') from None
    else:
        m = _binary_source(raw, where)
        m = as_mask(m, shape, what=where)
    # DragBench masks are binary: any nonzero value marks the editable region, as DragDiffusion's
    # runner reads them. This also keeps a uint8 0/1 mask (the published encoding) from becoming
    # 1/255 under as_mask's 8-bit scaling.
    m = (m > 0).astype(np.float32)
    if not m.any():     # the labelling tool saves an all-zero mask when none was drawn: no region was given
        return None
    return np.ascontiguousarray(m)


def _binary_source(raw, where: str) -> np.ndarray:
    """An array as_mask can check: integer masks (uint8 0/1 in the benchmark) as bool (nonzero = editable)."""
    if not isinstance(raw, np.ndarray) and hasattr(raw, 'detach'):
        raw = raw.detach().cpu().numpy()       # a torch tensor (the restricted reader can build them)
    try:
        a = np.asarray(raw)
    except (ValueError, TypeError) as e:       # ragged lists of rows
        raise InvalidMaskError(f'{where} is not a rectangular array: {_cap(str(e))}') from None
    if np.issubdtype(a.dtype, np.integer):
        if a.size and a.min() < 0:
            raise InvalidMaskError(f'{where} has negative values (down to {a.min()}); use 1 = may change, 0 = keep')
        a = a != 0
    return a


def _beside(folder: Path, name: str, where: str) -> Path:
    """`name` as a file in `folder`; a path that leaves the sample folder is refused."""
    if not name or Path(name).name != name or name in ('.', '..') or '\\' in name:
        raise InvalidMaskError(f'{where} names {_quote(name)}; it must be the name of a PNG file beside '
                               f'{META_JSON}, without folders')
    return folder / name


# ---------------------------------------------------------------- results

def result_path(out_dir, sample: DragBenchSample) -> Path:
    """Where the evaluation scripts look for `sample`'s result: out_dir/<sample name>/dragged_image.png."""
    return Path(out_dir) / sample.name / RESULT_NAME


def write_result(out_dir, sample: DragBenchSample, pixels) -> Path:
    """Write the edited uint8 RGB `pixels` for `sample` at `result_path` (atomically, folders created).

    Refuses to write inside the sample's own folder: results and inputs must never mix, and a
    benchmark must stay as it was released."""
    path = result_path(out_dir, sample)
    if _inside(path, Path(sample.folder)):
        raise PhotodragError(f'refusing to write the result for DragBench sample {sample.name} to {path}: it is '
                             f'inside the sample folder {sample.folder}; choose an output folder outside the '
                             'benchmark')
    a = np.asarray(pixels)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or a.size == 0:
        raise InvalidImageError(f'the result for DragBench sample {sample.name} must be uint8 RGB [H, W, 3], '
                                f'got {a.dtype} {a.shape}')
    return write_photo(a, path)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- writing samples

def write_sample(folder, image, handles: Sequence[Sequence[float]], targets: Sequence[Sequence[float]],
                 mask=None, prompt: str = '', fmt: str = 'pkl') -> Path:
    """Write one sample in the published layout (original_image.png + meta_data.pkl, or meta_data.json
    with the mask as mask.png for fmt='json'), for tests and small home-made benchmarks.

    The points are checked as `read_dragbench` checks them, so a written sample always reads back;
    `mask` (None, bool, uint8 or float in [0, 1]) is stored as uint8 0/1, nonzero = may change."""
    if fmt not in ('pkl', 'json'):
        raise InvalidSettingsError(f"fmt must be 'pkl' or 'json', got {_quote(fmt)}")
    if not isinstance(prompt, str):
        raise InvalidSettingsError(f'prompt must be text, got {type(prompt).__name__}')
    folder = Path(folder)
    other = folder / (META_JSON if fmt == 'pkl' else META_PKL)
    if other.exists():
        # The reader prefers meta_data.pkl; two meta files would leave one of them silently stale.
        raise PhotodragError(f'{folder} already holds {other.name}; remove it before writing a {fmt} sample there')
    pixels = as_rgb(image)
    h, w = pixels.shape[:2]
    handles, targets = list(handles), list(targets)
    if len(handles) != len(targets) or not handles:
        raise InvalidPointsError(f'a sample needs one target per handle and at least one of each; got '
                                 f'{len(handles)} handle(s) and {len(targets)} target(s)')
    flat = [p for pair in zip(handles, targets) for p in pair]
    points = [[x, y] for x, y in _check_points(flat, w, h, f'sample {folder}')]
    mask_u8 = None
    if mask is not None:
        mask_u8 = (as_mask(_binary_source(mask, f'the mask for {folder}'), (h, w), what=f'the mask for {folder}')
                   > 0).astype(np.uint8)
        if not mask_u8.any():
            raise InvalidMaskError(f'the mask for {folder} is all zeros: nothing could move; leave it out instead')
    write_photo(pixels, folder / IMAGE_NAME)
    meta = {'prompt': prompt, 'points': points}
    if fmt == 'pkl':
        if mask_u8 is not None:
            meta['mask'] = mask_u8
        with atomic_write(folder / META_PKL) as tmp:
            with open(tmp, 'wb') as f:
                # Protocol 4, as the released benchmark was written: numpy pickles arrays under
                # protocol 5 through a buffer hook the restricted reader does not allow.
                pickle.dump(meta, f, protocol=4)
    else:
        if mask_u8 is not None:
            from PIL import Image
            with atomic_write(folder / JSON_MASK_NAME) as tmp:
                Image.fromarray(mask_u8 * 255, 'L').save(tmp, format='PNG')
            meta['mask'] = JSON_MASK_NAME
        write_json(folder / META_JSON, meta)
    return folder


# ---------------------------------------------------------------- helpers

def _relative_name(folder: Path, root: Path) -> str:
    return Path(os.path.relpath(folder, root)).as_posix()


def _cap(text: str, n: int = _QUOTE) -> str:
    return text if len(text) <= n else text[:n - 3] + '...'


def _quote(value) -> str:
    """`value`'s repr, cut to a length a one-line error message can carry."""
    from photodrag.restricted import bounded_repr
    return _cap(bounded_repr(value))


__all__ = ['BadSample', 'DragBenchSample', 'read_dragbench', 'read_sample', 'find_sample_folders', 'result_path', 'write_result',
           'write_sample', 'IMAGE_NAME', 'META_PKL', 'META_JSON', 'RESULT_NAME']
