"""The download cache: where checkpoints live, verified downloads, recorded hashes.

Cache directory: $PHOTODRAG_CACHE, else $XDG_CACHE_HOME/photodrag, else ~/.cache/photodrag;
checkpoints go to its `checkpoints/` folder. A download streams to a temporary file in
that folder, is checked against the registry's sha256 (or the one recorded by an earlier
download), and only then renamed into place, so a cache file is always complete.
"""

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

from photodrag.errors import CheckpointNotFoundError, DownloadError
from photodrag.io import CACHE_ENV, atomic_write, cache_dir, sha256_file, write_text  # noqa: F401 (re-exported)

from .registry import REGISTRY, CheckpointEntry, get_entry

_HASHES = 'sha256.json'

Progress = Callable[[int, Optional[int]], None]   # (bytes so far, total or None)


def checkpoint_dir() -> Path:
    return cache_dir() / 'checkpoints'


def local_path(entry: CheckpointEntry) -> Path:
    """Where the checkpoint lives on this machine: inside the package for bundled ones,
    in the cache for the others."""
    return entry.bundled_path if entry.bundled else checkpoint_dir() / entry.filename


def recorded_hashes() -> Dict[str, str]:
    path = checkpoint_dir() / _HASHES
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_hash(name: str, digest: str) -> None:
    hashes = recorded_hashes()
    hashes[name] = digest
    write_text(checkpoint_dir() / _HASHES, json.dumps(hashes, indent=2, sort_keys=True))


def expected_hash(entry: CheckpointEntry) -> Optional[str]:
    return entry.sha256 or recorded_hashes().get(entry.name)


def manual_instructions(entry: CheckpointEntry) -> str:
    return (f'To install it by hand, download {entry.url} on a machine with internet access and copy it '
            f'to {local_path(entry)} (or pass the file\'s path to --checkpoint), then run '
            f'`photodrag checkpoints verify {entry.name}`.')


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha256: str
    newly_recorded: bool    # True when the registry had no hash and this one was recorded


def download(name: str, *, force: bool = False, progress: Optional[Progress] = None,
             timeout: float = 20.0) -> DownloadResult:
    """Fetch checkpoint `name` into the cache (verified, atomic) and return where it is."""
    entry = get_entry(name)
    dest = local_path(entry)
    if entry.bundled:       # ships with photodrag: nothing to download
        if not dest.is_file():
            raise DownloadError(f'{entry.name} ships with photodrag but {dest} is missing; reinstall photodrag')
        return DownloadResult(dest, sha256_file(dest), False)
    if dest.exists() and not force:
        return DownloadResult(dest, sha256_file(dest), False)
    failures = []
    with atomic_write(dest, tag='part') as tmp:     # removed unless the download is complete and verified
        for url in (entry.url,) + entry.mirrors:
            try:
                digest = _fetch(url, tmp, progress, timeout)
                break
            except (urllib.error.URLError, OSError, ValueError) as e:
                failures.append(f'{url}: {getattr(e, "reason", e)}')
        else:
            raise DownloadError(f'could not download {name}: ' + '; '.join(failures) + '. '
                                + manual_instructions(entry))
        expected = expected_hash(entry)
        if expected and digest != expected:
            raise DownloadError(f'{name}: downloaded file has sha256 {digest}, expected {expected}; it was '
                                'discarded. Try again later, or report it if it persists.')
    newly = expected is None
    if newly:
        record_hash(entry.name, digest)
    return DownloadResult(dest, digest, newly)


def _fetch(url: str, out: Path, progress: Optional[Progress], timeout: float) -> str:
    h = hashlib.sha256()
    request = urllib.request.Request(url, headers={'User-Agent': 'photodrag'})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(out, 'wb') as f:
        total = response.headers.get('Content-Length')
        total = int(total) if total and total.isdigit() else None
        done = 0
        while block := response.read(1 << 20):
            f.write(block)
            h.update(block)
            done += len(block)
            if progress:
                progress(done, total)
        if total is not None and done != total:
            raise OSError(f'connection closed after {done} of {total} bytes')
    return h.hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    name: Optional[str]
    path: Path
    sha256: str
    expected: Optional[str]
    status: str             # 'ok', 'mismatch', or 'recorded' (no hash known before; recorded now)


def verify(name_or_path) -> VerifyResult:
    """Check a cached checkpoint (by name) or any file against the known or recorded hash."""
    path = Path(name_or_path)
    if str(name_or_path) not in REGISTRY and path.is_file():     # names win over files, as everywhere
        digest = sha256_file(path)
        return VerifyResult(None, path, digest, None, 'ok')
    entry = get_entry(str(name_or_path))
    path = local_path(entry)
    if not path.is_file():
        raise CheckpointNotFoundError(f'{entry.name} is not in the cache ({path}); run '
                                      f'`photodrag checkpoints download {entry.name}`. ' + manual_instructions(entry))
    digest = sha256_file(path)
    expected = expected_hash(entry)
    if expected is None:
        record_hash(entry.name, digest)
        return VerifyResult(entry.name, path, digest, None, 'recorded')
    return VerifyResult(entry.name, path, digest, expected, 'ok' if digest == expected else 'mismatch')
