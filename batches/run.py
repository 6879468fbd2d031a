"""Batches: one recipe over many photos, resumable, nothing lost and nothing done twice.

    from photodrag import pipeline
    result = photodrag.batch('retouch.yaml')              # or a dict, or a Recipe
    result = photodrag.batch('retouch.yaml', resume=True) # after a crash, a kill or Ctrl-C
    plan = photodrag.batch('retouch.yaml', dry_run=True)  # photos, faces found, edits; nothing inverted

A recipe (YAML or JSON; docs/batch.md) names the inputs (files, folders, globs, relative to
the recipe), which faces, the edits (presets and/or drags), the settings and the outputs.
Each photo is one item: one `pipeline.edit` of its chosen faces, one output photo, one
record. The output folder holds `manifest.jsonl`, one line per item and attempt (status
done / failed / skipped, output, record, faces, timings, the one-line error), appended and
fsynced after the item's files are in place, each written atomically. `resume=True` skips
the items the manifest says are done (and whose files are still there) and never writes
over a file it did not write; a lock (`.photodrag-batch.lock`, flock) keeps two batches
out of one folder.
"""

import csv
import glob
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from photodrag.errors import InvalidSettingsError, PhotodragError, one_line, is_number

MANIFEST = 'manifest.jsonl'
LOCK = '.photodrag-batch.lock'
PHOTO_SUFFIXES = ('.jpg', '.jpeg', '.jpe', '.png', '.webp', '.tif', '.tiff', '.bmp')
FORMATS = {'same': None, 'jpg': '.jpg', 'jpeg': '.jpg', 'png': '.png', 'webp': '.webp', 'tif': '.tif', 'tiff': '.tif'}
FACE_RULES = {'closed-eyes': 'eyes closed (one or both)', 'open-mouth': 'mouth open', 'not-smiling': 'not smiling'}
DRAG_KEYS = ('max_steps', 'lr', 'latent_space', 'r1', 'r2', 'lambda_mask', 'feature_block', 'precision',
             'stop_distance', 'optimized_ws')


class RecipeError(InvalidSettingsError):
    """A recipe that cannot run: names the file, the line and the key."""


# ---------------------------------------------------------------- the recipe

@dataclass(frozen=True)
class Output:
    folder: Path
    name: str = '{stem}_edited{ext}'
    format: str = 'same'
    quality: Optional[int] = None
    records: bool = True
    before_after: bool = False
    videos: bool = False


@dataclass(frozen=True)
class Recipe:
    """A validated recipe; paths are absolute (relative ones were taken from the recipe's folder)."""
    inputs: Tuple[str, ...]
    base: Path
    output: Output
    faces: Any = 'all'                      # 'all' | 'largest' | (indices) | a FACE_RULES name
    presets: Tuple[str, ...] = ()           # 'name:strength'
    drags: Tuple[Tuple[Tuple[float, float], Tuple[float, float]], ...] = ()
    points: Optional[Path] = None           # per-photo drags (JSON or CSV)
    checkpoint: str = 'demo-faces'
    quality: str = 'fast'
    device: str = 'auto'
    drag: Dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    no_face: str = 'skip'                   # 'skip' | 'fail'
    source: Optional[Path] = None
    inversion: Dict[str, int] = field(default_factory=dict)     # projection_steps / tuning_steps over the preset
    encoder: str = 'auto'                   # 'auto' (the checkpoint's, if any) | 'none' | an encoder file

    def photos(self) -> List[Path]:
        """The input photos, in the order of the patterns (each pattern's matches sorted), once each."""
        seen, out = set(), []
        for pattern in self.inputs:
            full = pattern if os.path.isabs(pattern) else str(self.base / pattern)
            if os.path.isdir(full):
                found = sorted(p for p in Path(full).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
            else:
                found = sorted(Path(p) for p in glob.glob(full, recursive=True) if os.path.isfile(p))
            for p in found:
                key = os.path.realpath(p)
                if key not in seen:
                    seen.add(key)
                    out.append(p)
        return out

    def edit_config(self):
        from photodrag.pipeline import EditConfig
        from photodrag.pipeline.device import pick_device
        from photodrag.drag import DragConfig
        drag = dict(self.drag)
        max_steps = drag.pop('max_steps', None)
        inversion = None
        if self.inversion:
            from photodrag.inversion import InversionConfig
            inversion = InversionConfig.preset(self.quality, **self.inversion)
        return EditConfig(checkpoint=self.checkpoint, quality=None if inversion else self.quality,
                          inversion=inversion, seed=self.seed, drag=DragConfig(**drag), max_steps=max_steps,
                          device=pick_device(self.device), encoder=self.encoder)

    def output_name(self, photo: Path, index: int) -> str:
        ext = FORMATS[self.output.format] or photo.suffix.lower()
        return self.output.name.format(stem=photo.stem, ext=ext, name=photo.name, index=index)


def load_recipe(source, base: Optional[os.PathLike] = None) -> Recipe:
    """A recipe from a YAML/JSON file, its text's parsed dict, or a Recipe; checked whole."""
    if isinstance(source, Recipe):
        return source
    if isinstance(source, dict):
        return _recipe(source, {}, 'the recipe', Path(base or '.').resolve(), None)
    path = Path(source)
    where = path.name
    try:
        text = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        raise RecipeError(f'{path}: no such recipe file') from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f'{path}: cannot read the recipe ({e})') from None
    from photodrag.datafile import compose
    data, lines = compose(text, where, RecipeError)
    return _recipe(data, lines, where, Path(base).resolve() if base else path.resolve().parent, path.resolve())


def _recipe(data, lines, where, base: Path, source) -> Recipe:
    def fail(key, message):
        line = lines.get(tuple(key)) or (lines.get(tuple(key[:1])) if key else None) or 1
        dotted = '.'.join(str(k) if not isinstance(k, int) else f'[{k}]' for k in key).replace('.[', '[')
        raise RecipeError(f'{where} line {line}: {dotted + ": " if dotted else ""}{message}')

    if not isinstance(data, dict):
        fail((), 'a recipe is a mapping (inputs:, edits:, output:, ...)')
    known = {'inputs', 'faces', 'points', 'edits', 'checkpoint', 'quality', 'inversion', 'encoder', 'device', 'drag',
             'seed', 'output', 'no_face'}
    for k in data:
        if k not in known:
            fail((k,), f'unknown key; a recipe has {", ".join(sorted(known))}')
    inputs = data.get('inputs')
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
        fail(('inputs',), 'expected a list of files, folders or globs (relative to the recipe)')

    faces = data.get('faces', 'all')
    if isinstance(faces, list):
        if not faces or not all(is_number(i, 0, whole=True) for i in faces):
            fail(('faces',), 'a list of face numbers (0 = leftmost) must hold whole numbers >= 0')
        faces = tuple(sorted(set(faces)))
    elif faces not in ('all', 'largest', *FACE_RULES):
        fail(('faces',), f'expected all, largest, a list of face numbers, or one of {", ".join(FACE_RULES)}')

    from photodrag.expressions import presets as presets_mod
    presets, drags = [], []
    edits = data.get('edits', [])
    if not isinstance(edits, list):
        fail(('edits',), 'expected a list: - preset: NAME (strength: S) or - drags: [[[x1, y1], [x2, y2]], ...]')
    known_presets = presets_mod.available()
    for i, e in enumerate(edits):
        if not isinstance(e, dict) or not ({'preset', 'drags'} & set(e)):
            fail(('edits', i), 'expected preset: NAME (with strength:) or drags: [[[x1, y1], [x2, y2]], ...]')
        for k in e:
            if k not in ('preset', 'strength', 'drags'):
                fail(('edits', i, k), 'unknown key; an edit has preset, strength or drags')
        if 'preset' in e:
            name = e['preset']
            if name not in known_presets:
                fail(('edits', i, 'preset'), f'unknown preset {name!r}; presets: {", ".join(sorted(known_presets))}')
            strength = e.get('strength', 1.0)
            try:
                strength = presets_mod.check_strength(strength, name)
            except PhotodragError as err:
                fail(('edits', i, 'strength'), str(err))
            presets.append(presets_mod.label(name, strength))
        elif 'strength' in e:
            fail(('edits', i, 'strength'), 'strength goes with a preset')
        if 'drags' in e:
            drags.extend(_drags(e['drags'], lambda m, j=None: fail(('edits', i, 'drags') + ((j,) if j is not None
                                                                                          else ()), m)))
    points = data.get('points')
    if points is not None:
        if not isinstance(points, str):
            fail(('points',), 'expected a JSON or CSV file of drags per photo')
        points = (base / points).resolve()
        if not points.is_file():
            fail(('points',), f'{points.name}: no such file')
    if not presets and not drags and points is None:
        fail(('edits',), 'nothing to do: give at least one preset or drag (or a points file)')
    if faces in FACE_RULES and not presets:
        fail(('faces',), f'{faces} picks faces by their expression; give a preset to fix them (e.g. open-eyes)')

    checkpoint = data.get('checkpoint', 'demo-faces')
    if not isinstance(checkpoint, str) or not checkpoint:
        fail(('checkpoint',), 'expected a registry name, a file or random:RES')
    if not checkpoint.startswith('random:') and not _registry(checkpoint):
        candidate = (base / checkpoint)
        if not candidate.is_file():
            fail(('checkpoint',), f'{checkpoint!r} is neither a registry name (photodrag checkpoints list) nor a file')
        checkpoint = str(candidate.resolve())
    from photodrag.inversion.config import PRESETS
    quality = data.get('quality', 'fast')
    if quality not in PRESETS or quality == 'reference':
        fail(('quality',), f'expected one of {", ".join(q for q in PRESETS if q != "reference")}')
    inversion = data.get('inversion', {})
    if not isinstance(inversion, dict) or any(k not in ('projection_steps', 'tuning_steps') for k in inversion):
        fail(('inversion',), 'expected a mapping with projection_steps: and/or tuning_steps: (they change the quality '
                             'preset)')
    for k, v in inversion.items():
        if not is_number(v, 0, 100_000, whole=True):
            fail(('inversion', k), 'expected a whole number of steps from 0 to 100000')
    encoder = data.get('encoder', 'auto')
    if not isinstance(encoder, str) or not encoder:
        fail(('encoder',), 'expected auto, none or an encoder file')
    if encoder not in ('auto', 'none'):
        if not (base / encoder).is_file():
            fail(('encoder',), f'{encoder!r} is not a file (auto: the checkpoint\'s own encoder; none: start at w_avg)')
        encoder = str((base / encoder).resolve())
    device = data.get('device', 'auto')
    if device not in ('auto', 'cpu', 'cuda', 'mps') and not (isinstance(device, str) and device.startswith('cuda:')):
        fail(('device',), 'expected auto, cpu, cuda (cuda:N) or mps')
    drag = data.get('drag', {})
    if not isinstance(drag, dict):
        fail(('drag',), f'expected a mapping of drag settings ({", ".join(DRAG_KEYS)})')
    for k in drag:
        if k not in DRAG_KEYS:
            fail(('drag', k), f'unknown drag setting; settings are {", ".join(DRAG_KEYS)}')
    try:
        from photodrag.drag import DragConfig
        DragConfig(**{k: v for k, v in drag.items() if k != 'max_steps'})
        if 'max_steps' in drag and not (isinstance(drag['max_steps'], int) and 0 <= drag['max_steps'] <= 100_000):
            raise InvalidSettingsError('max_steps must be a whole number from 0 to 100000')
    except (PhotodragError, TypeError) as e:
        fail(('drag',), str(e))
    seed = data.get('seed', 0)
    if not is_number(seed, 0, whole=True):
        fail(('seed',), 'expected a whole number >= 0')
    no_face = data.get('no_face', 'skip')
    if no_face not in ('skip', 'fail'):
        fail(('no_face',), 'expected skip (the photo is reported and left out) or fail')

    out = data.get('output')
    if not isinstance(out, dict) or 'folder' not in out:
        fail(('output',), 'expected a mapping with folder: (and name:, format:, records:, before_after:, videos:)')
    for k in out:
        if k not in ('folder', 'name', 'format', 'quality', 'records', 'before_after', 'videos'):
            fail(('output', k), 'unknown key; output has folder, name, format, quality, records, before_after, videos')
    if not isinstance(out['folder'], str) or not out['folder']:
        fail(('output', 'folder'), 'expected a folder (relative to the recipe)')
    name = out.get('name', '{stem}_edited{ext}')
    try:
        probe = name.format(stem='a', ext='.jpg', name='a.jpg', index=0) if isinstance(name, str) else None
    except (KeyError, IndexError, ValueError):
        probe = None
    if not probe or '/' in probe or '\\' in probe or probe.startswith('.'):
        fail(('output', 'name'), 'expected a file name pattern with {stem}, {ext}, {name} or {index}, e.g. '
                                 '"{stem}_edited{ext}" (no folders)')
    fmt = out.get('format', 'same')
    if fmt not in FORMATS:
        fail(('output', 'format'), f'expected one of {", ".join(FORMATS)}')
    q = out.get('quality')
    if q is not None and not (isinstance(q, int) and 1 <= q <= 100):
        fail(('output', 'quality'), 'JPEG/WebP quality is a whole number from 1 to 100')
    flags = {}
    for k, default in (('records', True), ('before_after', False), ('videos', False)):
        v = out.get(k, default)
        if not isinstance(v, bool):
            fail(('output', k), 'expected true or false')
        flags[k] = v
    output = Output(folder=(base / out['folder']).resolve(), name=name, format=fmt, quality=q, **flags)
    return Recipe(inputs=tuple(inputs), base=base, output=output, faces=faces, presets=tuple(presets),
                  drags=tuple(drags), points=points, checkpoint=checkpoint, quality=quality, device=device,
                  drag=dict(drag), seed=seed, no_face=no_face, source=source, inversion=dict(inversion),
                  encoder=encoder)


def _registry(name: str) -> bool:
    from photodrag import checkpoints
    try:
        return name in {c.name for c in checkpoints.list_checkpoints()}
    except Exception:          # noqa: BLE001 - a broken registry reads as "not a name"
        return False


def _drags(value, fail) -> List:
    if not isinstance(value, list) or not value:
        fail('expected a list of [[x1, y1], [x2, y2]] pairs (photo pixels)')
    out = []
    for j, d in enumerate(value):
        ok = (isinstance(d, list) and len(d) == 2 and all(isinstance(p, list) and len(p) == 2 and
              all(is_number(v) for v in p) for p in d))
        if not ok:
            fail('expected [[x1, y1], [x2, y2]] (handle, then target, in photo pixels)', j)
        out.append((tuple(float(v) for v in d[0]), tuple(float(v) for v in d[1])))
    return out


def read_points(path: Path) -> Dict[str, List]:
    """Per-photo drags: JSON {"photo.jpg": [[[x1, y1], [x2, y2]], ...]} or CSV photo,x1,y1,x2,y2."""
    where = path.name
    out: Dict[str, List] = {}
    if path.suffix.lower() == '.csv':
        with open(path, newline='', encoding='utf-8') as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or row[0].startswith('#') or (n == 1 and row[0].strip().lower() == 'photo'):
                    continue
                try:
                    name, x1, y1, x2, y2 = row[0].strip(), *(float(v) for v in row[1:5])
                    if len(row) != 5 or not all(np.isfinite([x1, y1, x2, y2])):
                        raise ValueError
                except ValueError:
                    raise RecipeError(f'{where} line {n}: expected photo,x1,y1,x2,y2') from None
                out.setdefault(name, []).append(((x1, y1), (x2, y2)))
        return out
    from photodrag.datafile import compose
    data, lines = compose(path.read_text(encoding='utf-8'), where, RecipeError)
    if not isinstance(data, dict):
        raise RecipeError(f'{where} line 1: expected {{"photo.jpg": [[[x1, y1], [x2, y2]], ...]}}')
    for name, value in data.items():
        def fail(message, j=None, name=name):
            line = lines.get((name, j) if j is not None else (name,), 1)
            raise RecipeError(f'{where} line {line}: {name}: {message}')
        out[str(name)] = _drags(value, fail)
    return out


# ---------------------------------------------------------------- running

@dataclass
class Item:
    """One photo of the batch: what was done with it (a manifest line)."""
    photo: str                          # relative to the recipe's folder
    status: str                         # 'done' | 'failed' | 'skipped' | 'planned'
    output: Optional[str] = None
    record: Optional[str] = None
    extras: Dict[str, str] = field(default_factory=dict)
    faces: List[Dict[str, Any]] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)
    error: Optional[str] = None
    input_sha256: Optional[str] = None
    output_sha256: Optional[str] = None

    def to_json(self) -> str:
        return json.dumps({'photo': self.photo, 'status': self.status, 'output': self.output, 'record': self.record,
                           'extras': self.extras, 'faces': self.faces, 'timings': self.timings, 'error': self.error,
                           'input_sha256': self.input_sha256, 'output_sha256': self.output_sha256,
                           'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, sort_keys=True)


@dataclass
class BatchResult:
    items: List[Item]
    manifest: Optional[Path]
    skipped_done: int = 0               # items a resume found done already

    @property
    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for it in self.items:
            out[it.status] = out.get(it.status, 0) + 1
        return out


ItemCallback = Callable[[Item, int, int], None]


ENGINES = ('local', 'ray')


def batch(recipe, *, resume: bool = False, dry_run: bool = False, callback: Optional[ItemCallback] = None,
          cache: Union[bool, str, os.PathLike] = True, detector=None, engine: str = 'local',
          address: Optional[str] = None, workers: Optional[int] = None) -> BatchResult:
    """Run `recipe` (a file, a dict or a `Recipe`) over its photos; see the module docstring.
    callback(item, position, total) after each photo (in the order they finish).
    engine: 'local' (this process, the generator loaded once) or 'ray' (`workers` actors, each
    with the generator loaded once and a GPU if the cluster has them; `address` joins a
    running cluster, else a local Ray starts). Both give the same files. Raises `RecipeError`
    before anything runs when the recipe cannot run, `PhotodragError` when the output folder
    is in use or holds another batch (without resume)."""
    if engine not in ENGINES:
        raise InvalidSettingsError(f'engine must be one of {", ".join(ENGINES)}, got {engine!r}')
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InvalidSettingsError(f'workers must be a whole number >= 1, got {workers!r}')
    if engine == 'local' and workers not in (None, 1):
        raise InvalidSettingsError('the local engine is one process (torch already uses every core); for more '
                                   'workers use engine="ray" (--engine ray --workers N)')
    recipe = load_recipe(recipe)
    photos = recipe.photos()
    if not photos:
        raise RecipeError(f'the inputs ({", ".join(recipe.inputs)}) match no files under {recipe.base}')
    points = read_points(recipe.points) if recipe.points else {}
    names = _output_names(recipe, photos)
    config = recipe.edit_config()
    if dry_run:
        return BatchResult([_plan(recipe, p, points, detector) for p in photos], None)

    folder = recipe.output.folder
    folder.mkdir(parents=True, exist_ok=True)
    with _Lock(folder):
        manifest = folder / MANIFEST
        done = _read_manifest(manifest) if manifest.exists() else {}
        if done and not resume:
            raise PhotodragError(f'{folder} holds the manifest of an earlier batch; resume it (--resume) or choose '
                                 'another output folder')
        _clean_temps(folder, names.values())
        items: List[Optional[Item]] = [None] * len(photos)
        todo, count = [], 0
        for n, photo in enumerate(photos):
            rel = _rel(photo, recipe.base)
            prev = done.get(rel)
            if prev is not None and _still_done(prev, folder):
                items[n] = Item(**{k: prev.get(k) for k in ('photo', 'status', 'output', 'record', 'error',
                                                           'input_sha256', 'output_sha256')},
                                faces=prev.get('faces') or [], timings=prev.get('timings') or {},
                                extras=prev.get('extras') or {})
                count += 1
                if callback:
                    callback(items[n], count, len(photos))
            else:
                todo.append((n, str(photo), rel, str(folder / names[photo])))
        skipped = count
        run = _local_items(recipe, config, todo, points, cache, detector) if engine == 'local' else \
            _ray_items(recipe, todo, points, cache, address, workers)
        with open(manifest, 'a', encoding='utf-8') as log:
            for n, item in run:
                log.write(item.to_json() + '\n')
                log.flush()
                os.fsync(log.fileno())
                items[n] = item
                count += 1
                if callback:
                    callback(item, count, len(photos))
    return BatchResult(items, manifest, skipped)


def _local_items(recipe, config, todo, points, cache, detector):
    for n, photo, rel, out in todo:
        yield n, _run_item(recipe, config, Path(photo), rel, Path(out), points, cache, detector)


class _Worker:
    """A Ray actor: the generator loaded once, photos taken from the driver's queue. Torch uses
    as many threads as in the driver, so its numbers, and the files, are the local engine's."""

    def __init__(self, recipe, points, cache, threads):
        import torch
        torch.set_num_threads(threads)
        self.recipe, self.points, self.cache = recipe, points, cache
        self.config = recipe.edit_config()      # 'auto' picks the GPU Ray gave this actor, if any

    def run(self, n, photo, rel, out):
        return n, _run_item(self.recipe, self.config, Path(photo), rel, Path(out), self.points, self.cache, None)


def _ray_items(recipe, todo, points, cache, address, workers):
    """(position, Item) as Ray's actors finish them; the driver writes the manifest."""
    if not todo:
        return
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise PhotodragError('the ray engine needs Ray: pip install "photodrag[ray]"') from None
    import torch
    started = False
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        started = True
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get('GPU', 0)), int(resources.get('CPU', 1))
        threads = torch.get_num_threads()
        if gpus:
            count = workers or gpus
            options = {'num_gpus': 1, 'num_cpus': 1}
        else:
            count = workers or max(1, cpus // max(threads, 1))
            options = {'num_cpus': max(1, min(threads, cpus // max(count, 1)))}
        actor = ray.remote(**options)(_Worker)
        pool = ActorPool([actor.remote(recipe, points, cache, threads) for _ in range(min(count, len(todo)))])
        for n, item in pool.map_unordered(lambda a, job: a.run.remote(*job), todo):
            yield n, item
    finally:
        if started:
            ray.shutdown()


def _rel(photo: Path, base: Path) -> str:
    try:
        return str(photo.resolve().relative_to(base))
    except ValueError:
        return str(photo.resolve())


def _output_names(recipe: Recipe, photos: Sequence[Path]) -> Dict[Path, str]:
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


def _read_manifest(path: Path) -> Dict[str, Dict[str, Any]]:
    """The last line of each photo; a torn last line (a crash while writing it) is ignored."""
    out: Dict[str, Dict[str, Any]] = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get('photo'), str):
                out[entry['photo']] = entry
    return out


def _still_done(entry: Dict[str, Any], folder: Path) -> bool:
    """A manifest entry that needs no redoing: failed and skipped items are final; a done one
    needs its output (and record) still there."""
    if entry.get('status') in ('failed', 'skipped'):
        return True
    if entry.get('status') != 'done':
        return False
    files = [entry.get('output')] + ([entry['record']] if entry.get('record') else []) + \
        list((entry.get('extras') or {}).values())
    return all(f and (folder / f).is_file() for f in files)


def _select(recipe: Recipe, found, drags) -> Tuple[Dict[int, List], str]:
    """{face index: its drags} of the faces the recipe picks, and why none when empty."""
    from photodrag import alignment
    from photodrag.expressions import readout as expression
    if recipe.faces == 'all':
        chosen = [f.index for f in found]
    elif recipe.faces == 'largest':
        chosen = [max(found, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])).index]
    elif isinstance(recipe.faces, tuple):
        missing = [i for i in recipe.faces if i >= len(found)]
        if missing:
            raise PhotodragError(f'the photo has {len(found)} face(s) (0 to {len(found) - 1}); faces '
                                 f'{", ".join(map(str, missing))} of the recipe are not there')
        chosen = list(recipe.faces)
    else:
        rule = recipe.faces
        chosen = []
        for f in found:
            s = expression.read(f.landmarks).states()
            if ((rule == 'closed-eyes' and s['eyes'] in ('closed', 'one closed')) or
                    (rule == 'open-mouth' and s['mouth'] == 'open') or
                    (rule == 'not-smiling' and s['smile'] == 'neutral')):
                chosen.append(f.index)
    out: Dict[int, List] = {i: [] for i in chosen}
    for d in drags:
        i = alignment.select_face(found, point=d[0]).index
        if i not in out:
            raise PhotodragError(f'the drag at ({d[0][0]:g}, {d[0][1]:g}) is on face {i}, which the recipe\'s faces '
                                 f'({recipe.faces}) leave out')
        out[i].append(d)
    if not recipe.presets:                  # drags alone edit only the faces they are on
        out = {i: ds for i, ds in out.items() if ds}
        if not drags:
            return out, 'nothing to do for this photo: no preset, and no drags in the recipe or the points file'
    why = '' if out else (f'no face with {FACE_RULES[recipe.faces]}' if recipe.faces in FACE_RULES else 'no face')
    return out, why


def _photo_drags(recipe: Recipe, photo: Path, points) -> List:
    extra = points.get(_rel(photo, recipe.base)) or points.get(photo.name) or []
    return list(recipe.drags) + list(extra)


def _plan(recipe: Recipe, photo: Path, points, detector) -> Item:
    from photodrag import alignment
    from photodrag.errors import NoFaceFoundError
    rel = _rel(photo, recipe.base)
    try:
        image = alignment.read_photo(photo)
        found = alignment.detect_faces(image, detector=detector)
        if not found:
            raise alignment.no_face_error(0, str(photo))
        chosen, why = _select(recipe, found, _photo_drags(recipe, photo, points))
        if not chosen:
            return Item(rel, 'skipped', error=why)
        return Item(rel, 'planned', faces=[{'face': i, 'box': [round(v) for v in found[i].box],
                                            'presets': list(recipe.presets), 'drags': [list(map(list, d)) for d in ds]}
                                           for i, ds in sorted(chosen.items())])
    except NoFaceFoundError as e:
        return Item(rel, 'skipped' if recipe.no_face == 'skip' else 'failed', error=one_line(e))
    except PhotodragError as e:
        return Item(rel, 'failed', error=one_line(e))


def _run_item(recipe: Recipe, config, photo: Path, rel: str, out: Path, points, cache, detector) -> Item:
    """Edit one photo and write its files; any error is the item's, not the batch's."""
    from photodrag import alignment
    from photodrag.errors import NoFaceFoundError
    from photodrag.io import sha256_file
    from photodrag.pipeline import editing
    from photodrag.pipeline.checks import FaceEdit
    from photodrag.pipeline.outputs import write_outputs
    started = time.perf_counter()
    item = Item(rel, 'failed')
    try:
        item.input_sha256 = sha256_file(photo)
        image = alignment.read_photo(photo)
        found = alignment.detect_faces(image, detector=detector, upsample=config.upsample)
        if not found:
            raise alignment.no_face_error(0, rel, config.upsample)
        chosen, why = _select(recipe, found, _photo_drags(recipe, photo, points))
        if not chosen:
            item.status, item.error = 'skipped', why
            return item
        record_path = out.with_name(out.stem + '.json') if recipe.output.records else None
        extras = {}
        if recipe.output.before_after:
            extras['before_after'] = out.with_name(out.stem + '_before_after.png')
        for p in [out, record_path, *extras.values()]:
            if p is not None and p.exists() and not _ours(p, out, record_path, item.input_sha256):
                raise PhotodragError(f'{p.name} already exists in {p.parent} and this batch did not write it; '
                                     'refusing to overwrite it (move it, or choose another output folder)')
        jobs = [FaceEdit(face=i, drags=ds, presets=recipe.presets) for i, ds in sorted(chosen.items())]
        writer = None
        callback = None
        if recipe.output.videos:
            from photodrag.pipeline import report
            extras['video'] = out.with_name(out.stem + '_drag.mp4')
            writer = report.VideoWriter(extras['video'], fps=10)
            callback = writer.drag_frames
        try:
            result = editing.edit(image, jobs, config, callback=callback, cache=cache, detector=detector,
                                  generator=_generator(config))
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        result.record.input['path'] = rel
        # all files or none; the record last, so a present record means a complete item
        write_outputs(result, out, record=record_path, before_after=extras.get('before_after'), video=writer,
                      quality=recipe.output.quality)
        item.status = 'done'
        item.output = out.name
        item.record = record_path.name if record_path else None
        item.extras = {k: v.name for k, v in extras.items()}
        item.output_sha256 = result.record.output['pixels_sha256']
        item.faces = [{'face': f.index, 'presets': [p['name'] + (f':{p["strength"]:g}' if p['strength'] != 1 else '')
                                                    for p in f.presets],
                       'drags': len(f.handles_photo), 'steps': f.drag['steps'], 'reason': f.drag['reason'],
                       'lpips': round(float(f.inversion['lpips']), 4), 'from_cache': f.inversion['from_cache']}
                      for f in result.record.faces]
        item.timings = dict(result.record.timings)
    except NoFaceFoundError as e:
        item.status = 'skipped' if recipe.no_face == 'skip' else 'failed'
        item.error = one_line(e)
    except PhotodragError as e:
        item.error = one_line(e)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:          # noqa: BLE001 - one photo's bug must not stop the others
        item.error = f'{type(e).__name__}: {one_line(e)} (a bug: please report it)'
    item.timings['item'] = round(time.perf_counter() - started, 3)
    return item


_loaded: Dict[Tuple[str, str], Any] = {}


def _generator(config):
    """The recipe's generator, loaded once per process (a Ray actor is one process)."""
    key = (config.checkpoint, str(config.device))
    if key not in _loaded:
        from photodrag import checkpoints
        _loaded.clear()
        _loaded[key] = checkpoints.load_generator(config.checkpoint, device=config.device)
    return _loaded[key]


def _ours(path: Path, out: Path, record: Optional[Path], input_sha: str) -> bool:
    """A file an interrupted run of this batch wrote for this photo (its record says so)."""
    if record is None or not record.is_file():
        return False
    try:
        data = json.loads(record.read_text(encoding='utf-8'))
        return data.get('format') == 'photodrag-edit' and data.get('input', {}).get('sha256') == input_sha
    except (OSError, ValueError):
        return False


class _Lock:
    """An exclusive flock on the output folder's lock file (released by the OS on any exit, kill -9 too)."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK
        self.f = None

    def __enter__(self):
        import fcntl
        self.f = open(self.path, 'a+', encoding='utf-8')
        try:
            fcntl.flock(self.f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.seek(0)
            holder = self.f.read().strip() or 'another process'
            self.f.close()
            raise PhotodragError(f'another batch is writing to {self.path.parent} ({holder}); wait for it to finish '
                                 'or choose another output folder') from None
        self.f.seek(0)
        self.f.truncate()
        self.f.write(f'pid {os.getpid()} on {socket.gethostname()} since {time.strftime("%Y-%m-%d %H:%M:%S")}\n')
        self.f.flush()
        return self

    def __exit__(self, *exc):
        import fcntl
        self.f.seek(0)
        self.f.truncate()
        fcntl.flock(self.f.fileno(), fcntl.LOCK_UN)
        self.f.close()
        return False
