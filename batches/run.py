"""Running a batch: one recipe over many photos, resumable, nothing lost and nothing done twice.

    import photodrag
    result = photodrag.batch('retouch.yaml')              # or a dict, or a Recipe
    result = photodrag.batch('retouch.yaml', resume=True) # after a crash, a kill or Ctrl-C
    plan = photodrag.batch('retouch.yaml', dry_run=True)  # photos, faces found, edits; nothing inverted

Each photo is one item: one `pipeline.edit` of its chosen faces, one output photo, one
record. The output folder holds `manifest.jsonl`, one line per item and attempt (status
done / failed / skipped, output, record, faces, timings, the one-line error), appended and
fsynced after the item's files are in place, each written atomically. `resume=True` skips
the items the manifest says are done (and whose files are still there) and never writes
over a file it did not write; a lock (`.photodrag-batch.lock`, flock) keeps two batches
out of one folder.
"""

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from photodrag.errors import InvalidSettingsError, PhotodragError

from .engines import ENGINES, Job, local_items, ray_items
from .items import Item, Progress, plan_item
from .recipe import Recipe, RecipeError, load_recipe, read_points

MANIFEST = 'manifest.jsonl'
MAX_MANIFEST_LINE = 1 << 20
LOCK = '.photodrag-batch.lock'


@dataclass
class BatchResult:
    """A batch's items, in the order of the photos (with the earlier run's on resume), and its manifest."""
    items: List[Item]
    manifest: Optional[Path]
    skipped_done: int = 0               # items a resume found finished already (not redone)

    @property
    def counts(self) -> Dict[str, int]:
        """{status: items}, over every item (an earlier run's included)."""
        return _count(self.items)

    @property
    def counts_this_run(self) -> Dict[str, int]:
        """{status: items} of the photos this run did."""
        return _count([it for it in self.items if not it.earlier])


def _count(items: Sequence[Item]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for it in items:
        out[it.status] = out.get(it.status, 0) + 1
    return out


ItemCallback = Callable[[Item, int, int], None]


def batch(recipe, *, resume: bool = False, dry_run: bool = False, callback: Optional[ItemCallback] = None,
          cache: Union[bool, str, os.PathLike] = True, detector=None, engine: str = 'local',
          address: Optional[str] = None, workers: Optional[int] = None,
          progress: Optional[Progress] = None) -> BatchResult:
    """Run `recipe` (a file, a dict or a `Recipe`) over its photos; see the module docstring.
    callback(item, position, total) after each photo (in the order they finish).
    progress(stage, step, total, info) during each photo's edit, with the local engine: the
    edit's callback (`pipeline.edit`; info['face'] is the face's position among the photo's
    edited faces) with info['photo'] (relative to the recipe) and info['faces'] (how many).
    engine: 'local' (this process, the generator loaded once) or 'ray' (`workers` actors, each
    with the generator loaded once and a GPU if the cluster has them; `address` joins a
    running cluster, else a local Ray starts). Both give the same files. Raises `RecipeError`
    before anything runs when the recipe cannot run, `PhotodragError` when the output folder
    is in use or holds another batch (without resume)."""
    _check_engine(engine, workers)
    recipe = load_recipe(recipe)
    photos = _not_outputs(recipe.photos(), recipe.output.folder)
    if not photos:
        raise RecipeError(f'the inputs ({", ".join(recipe.inputs)}) match no files under {recipe.base}')
    points = read_points(recipe.points) if recipe.points else {}
    names = output_names(recipe, photos)
    config = recipe.edit_config()
    if dry_run:
        return BatchResult([plan_item(recipe, p, points, detector) for p in photos], None)

    folder = recipe.output.folder
    folder.mkdir(parents=True, exist_ok=True)
    with BatchLock(folder):
        manifest = folder / MANIFEST
        done = read_manifest(manifest) if manifest.exists() else {}
        if done and not resume:
            raise PhotodragError(f'{folder} holds the manifest of an earlier batch; resume it (--resume) or choose '
                                 'another output folder')
        _clean_temps(folder, names.values())
        items, todo = _split(recipe, photos, names, done, folder)
        earlier = [it for it in items if it is not None]
        for count, item in enumerate(earlier, 1):
            if callback:
                callback(item, count, len(photos))
        run = local_items(recipe, config, todo, points, cache, detector, progress) if engine == 'local' else \
            ray_items(recipe, todo, points, cache, address, workers)
        _record(manifest, run, items, len(earlier), callback)
    return BatchResult([it for it in items if it is not None], manifest, len(earlier))


def _not_outputs(photos: List[Path], folder: Path) -> List[Path]:
    """The input photos less the files an earlier run of this batch wrote (its manifest lists
    them): a `**` glob over a tree that holds the output folder must not edit the outputs."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return photos
    written = set()
    for entry in read_manifest(manifest).values():
        extras = entry.get('extras') if isinstance(entry.get('extras'), dict) else {}
        for name in [entry.get('output'), entry.get('record'), *extras.values()]:
            if _plain_name(name):
                written.add(os.path.realpath(folder / name))
    return [p for p in photos if os.path.realpath(p) not in written]


def _split(recipe: Recipe, photos: Sequence[Path], names: Dict[Path, str], done: Dict[str, Dict[str, Any]],
           folder: Path) -> Tuple[List[Optional[Item]], List[Job]]:
    """The items an earlier run finished (in the photos' places; None where not) and the jobs left."""
    items: List[Optional[Item]] = [None] * len(photos)
    todo: List[Job] = []
    for n, photo in enumerate(photos):
        rel = recipe.relative(photo)
        prev = done.get(rel)
        if prev is not None and _still_done(prev, folder, photo, names[photo]):
            items[n] = _earlier_item(prev)
        else:
            todo.append((n, str(photo), rel, str(folder / names[photo])))
    return items, todo


def _record(manifest: Path, run: Iterator[Tuple[int, Item]], items: List[Optional[Item]], count: int,
            callback: Optional[ItemCallback]) -> None:
    """Each finished item into its place and onto the manifest (fsynced: its files are already
    in place), then to the callback."""
    with open(manifest, 'a', encoding='utf-8') as log:
        for n, item in run:
            log.write(item.to_json() + '\n')
            log.flush()
            os.fsync(log.fileno())
            items[n] = item
            count += 1
            if callback:
                callback(item, count, len(items))


def _check_engine(engine: str, workers: Optional[int]) -> None:
    if engine not in ENGINES:
        raise InvalidSettingsError(f'engine must be one of {", ".join(ENGINES)}, got {engine!r}')
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InvalidSettingsError(f'workers must be a whole number >= 1, got {workers!r}')
    if engine == 'local' and workers not in (None, 1):
        raise InvalidSettingsError('the local engine is one process (torch already uses every core); for more '
                                   'workers use engine="ray" (--engine ray --workers N)')


def output_names(recipe: Recipe, photos: Sequence[Path]) -> Dict[Path, str]:
    """Each photo's output name; two photos on one name, or an output onto an input, are recipe errors."""
    names, taken = {}, {}
    inputs = {os.path.realpath(p) for p in photos}
    for i, p in enumerate(photos):
        name = recipe.output_name(p, i)
        if name in taken:
            raise RecipeError(f'{taken[name].name} and {p.name} would both be written to {name}; put {{index}} or '
                              '{name} in output.name')
        if os.path.realpath(recipe.output.folder / name) in inputs:
            raise RecipeError(f'the output {name} would overwrite the input {p}; change output.folder or output.name')
        taken[name] = p
        names[p] = name
    return names


def _clean_temps(folder: Path, names) -> None:
    """Remove the temporary files a killed run left half-written for this batch's outputs;
    the lock says no one else writes here."""
    from photodrag.io import remove_debris
    stems = [Path(name).stem + variant for name in names for variant in ('', '_before_after', '_drag')]
    if stems:
        remove_debris(folder, stems, every=True)


# ---------------------------------------------------------------- the manifest and resume

def read_manifest(path: Path) -> Dict[str, Dict[str, Any]]:
    """The last line of each photo; a torn last line (a crash while writing it) is ignored."""
    out: Dict[str, Dict[str, Any]] = {}
    if not path.is_file():                      # a device or FIFO in its place is no manifest of ours
        raise PhotodragError(f'{path} is not a regular file; move it away to run the batch')
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            if len(line) > MAX_MANIFEST_LINE:
                continue                        # no item's line is this long: not ours
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(entry, dict) and isinstance(entry.get('photo'), str):
                out[entry['photo']] = entry
    return out


def _still_done(entry: Dict[str, Any], folder: Path, photo: Path, output: str) -> bool:
    """A manifest entry that needs no redoing, checked against the files (a manifest is only a
    text file: a hand-edited or stale one must not make a photo count as done):
    - it is about this photo as it is now (its sha256);
    - failed and skipped items are final;
    - a done one names this batch's output for the photo and plain file names inside the
      output folder (no path, no ..), and its record (when records are written) is an edit or
      fix record of this photo whose output pixels are the output file's."""
    from photodrag.io import sha256_file
    status = entry.get('status')
    if status not in ('done', 'failed', 'skipped'):
        return False
    try:
        if entry.get('input_sha256') != sha256_file(photo):
            return False
    except (OSError, PhotodragError):
        return False
    if status in ('failed', 'skipped'):
        return True
    extras = entry.get('extras') or {}
    files = [entry.get('output'), entry.get('record')] + (list(extras.values()) if isinstance(extras, dict) else [None])
    if entry.get('output') != output or not all(f is None or _plain_name(f) for f in files) or \
            not all((folder / f).is_file() for f in files if f is not None):
        return False
    if entry.get('record') is None:
        return True
    return _record_matches(folder / entry['record'], folder / output, entry.get('input_sha256'))


def _plain_name(name) -> bool:
    return isinstance(name, str) and name not in ('', '.', '..') and Path(name).name == name and '\\' not in name


def _record_matches(record: Path, output: Path, input_sha: str) -> bool:
    """Whether `record` is an edit or fix record of the input with this sha256 whose output
    pixels are those of the file `output`."""
    from photodrag import alignment
    from photodrag.pipeline.record import pixels_sha256
    try:
        if record.stat().st_size > 64 << 20:
            return False
        data = json.loads(record.read_text(encoding='utf-8'))
        if not isinstance(data, dict) or data.get('format') not in ('photodrag-edit', 'photodrag-fix') or \
                not isinstance(data.get('input'), dict) or data['input'].get('sha256') != input_sha or \
                not isinstance(data.get('output'), dict):
            return False
        return pixels_sha256(alignment.read_photo(output).pixels) == data['output'].get('pixels_sha256')
    except (OSError, ValueError, RecursionError, PhotodragError):
        return False


def _earlier_item(entry: Dict[str, Any]) -> Item:
    """The Item of a manifest line that a resume keeps."""
    return Item(**{k: entry.get(k) for k in ('photo', 'status', 'output', 'record', 'error', 'input_sha256',
                                             'output_sha256')},
                faces=entry.get('faces') or [], timings=entry.get('timings') or {}, extras=entry.get('extras') or {},
                earlier=True)


class BatchLock:
    """An exclusive flock on the output folder's lock file (released by the OS on any exit, kill -9
    too): a second batch into the same folder fails at once, naming the holder."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK
        self.f = None

    def __enter__(self):
        import fcntl
        self.f = f = open(self.path, 'a+', encoding='utf-8')
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or 'another process'
            f.close()
            raise PhotodragError(f'another batch is writing to {self.path.parent} ({holder}); wait for it to finish '
                                 'or choose another output folder') from None
        f.seek(0)
        f.truncate()
        f.write(f'pid {os.getpid()} on {socket.gethostname()} since {time.strftime("%Y-%m-%d %H:%M:%S")}\n')
        f.flush()
        return self

    def __exit__(self, *exc):
        import fcntl
        f = self.f
        if f is not None:
            f.seek(0)
            f.truncate()
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            f.close()
            self.f = None
        return False


__all__ = ['batch', 'BatchResult', 'BatchLock', 'ItemCallback', 'MANIFEST', 'LOCK', 'output_names', 'read_manifest',
           'Item', 'Recipe', 'RecipeError', 'load_recipe']
