"""Batch recipes: what to edit in which photos, with which settings, and where the files go.

A recipe (YAML or JSON; docs/batch.md) names the inputs (files, folders, globs, relative to
the recipe), which faces, the edits (presets and/or drags, or a points file of drags per
photo), the settings and the outputs. It is checked whole before anything runs, and an
error names the file, the line and the key (`recipe.yaml line 6: drag.lr: ...`). The edit
settings (quality, inversion steps, encoder, device, drag, seed) are checked by
`EditConfig.from_options`, the one home of their rules; the rest are the recipe's own.
"""

import csv
import dataclasses
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional, Tuple

from photodrag.errors import InvalidSettingsError, PhotodragError, is_number

PHOTO_SUFFIXES = ('.jpg', '.jpeg', '.jpe', '.png', '.webp', '.tif', '.tiff', '.bmp')
FORMATS = {'same': None, 'jpg': '.jpg', 'jpeg': '.jpg', 'png': '.png', 'webp': '.webp', 'tif': '.tif', 'tiff': '.tif'}
FACE_RULES = {'closed-eyes': 'eyes closed (one or both)', 'open-mouth': 'mouth open', 'not-smiling': 'not smiling'}
RECIPE_KEYS = ('inputs', 'faces', 'points', 'edits', 'checkpoint', 'quality', 'inversion', 'encoder', 'device', 'drag',
               'seed', 'output', 'no_face', 'references')
# what `references:` fixes: the faces rule names the fix (`photodrag fix --reference`)
REFERENCE_FIXES = ('closed-eyes', 'open-mouth')
OUTPUT_KEYS = ('folder', 'name', 'format', 'quality', 'records', 'before_after', 'videos')
INVERSION_KEYS = ('projection_steps', 'tuning_steps')


class RecipeError(InvalidSettingsError):
    """A recipe that cannot run: names the file, the line and the key."""


@dataclass(frozen=True)
class Output:
    """Where a batch writes, and what: the output photo's name and format, and the extra files."""
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
    # other shots of the same people, for `faces: closed-eyes` / `open-mouth`: 'same-folder' (each
    # photo's folder is one burst) or {input (relative to the recipe): [its reference files]}
    references: Any = None

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

    def references_for(self, photo: Path) -> List[Path]:
        """The reference shots of one input photo (none when the recipe names none)."""
        if self.references is None:
            return []
        if self.references == 'same-folder':
            same = os.path.realpath(photo)
            out_folder = os.path.realpath(self.output.folder)
            return sorted(p for p in photo.parent.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()
                          and os.path.realpath(p) != same and not os.path.realpath(p).startswith(out_folder + os.sep))
        return [Path(p) if os.path.isabs(p) else self.base / p for p in self.references.get(self.relative(photo), ())]

    def relative(self, photo: Path) -> str:
        """How the manifest and the points file name a photo: relative to the recipe's folder
        (the absolute path when it lies outside)."""
        try:
            return str(photo.resolve().relative_to(self.base))
        except ValueError:
            return str(photo.resolve())

    def edit_config(self):
        """The EditConfig of every photo's edit; the device ('auto' included) is picked and
        checked here, when the batch runs, not when the recipe is read."""
        from photodrag.pipeline import EditConfig
        return EditConfig.from_options(checkpoint=self.checkpoint, quality=self.quality, **self.inversion,
                                       drag=dict(self.drag), device=self.device, encoder=self.encoder,
                                       base=self.base, seed=self.seed)

    def output_name(self, photo: Path, index: int) -> str:
        ext = FORMATS[self.output.format] or photo.suffix.lower()
        return self.output.name.format(stem=photo.stem, ext=ext, name=photo.name, index=index)


# ---------------------------------------------------------------- reading

@dataclass(frozen=True)
class _Source:
    """The recipe's file name and the line of each key, for errors that point at them."""
    where: str
    lines: Dict[tuple, int]

    def fail(self, key: tuple, message: str) -> NoReturn:
        line = self.lines.get(tuple(key)) or (self.lines.get(tuple(key[:1])) if key else None) or 1
        dotted = '.'.join(str(k) if not isinstance(k, int) else f'[{k}]' for k in key).replace('.[', '[')
        raise RecipeError(f'{self.where} line {line}: {dotted + ": " if dotted else ""}{message}')


def load_recipe(source, base: Optional[os.PathLike] = None) -> Recipe:
    """A recipe from a YAML/JSON file, its text's parsed dict, or a Recipe; checked whole."""
    if isinstance(source, Recipe):
        return source
    if isinstance(source, dict):
        return _parse(source, _Source('the recipe', {}), Path(base or '.').resolve(), None)
    path = Path(source)
    from photodrag.io import read_regular_text
    try:
        text = read_regular_text(path, 'a recipe', 16 << 20)
    except PhotodragError as e:
        raise RecipeError(str(e).replace(': no such file', ': no such recipe file')) from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f'{path}: cannot read the recipe ({e})') from None
    from photodrag.datafile import compose
    data, lines = compose(text, path.name, RecipeError)
    return _parse(data, _Source(path.name, lines), Path(base).resolve() if base else path.resolve().parent,
                  path.resolve())


def _parse(data, src: _Source, base: Path, source: Optional[Path]) -> Recipe:
    if not isinstance(data, dict):
        src.fail((), 'a recipe is a mapping (inputs:, edits:, output:, ...)')
    for k in data:
        if k not in RECIPE_KEYS:
            src.fail((k,), f'unknown key; a recipe has {", ".join(sorted(RECIPE_KEYS))}')
    inputs = _inputs(data.get('inputs'), src)
    faces = _faces(data.get('faces', 'all'), src)
    presets, drags = _edits(data.get('edits', []), src)
    points = _points(data.get('points'), src, base)
    references = _references(data.get('references'), faces, src)
    if not presets and not drags and points is None and references is None:
        src.fail(('edits',), 'nothing to do: give at least one preset or drag (or a points file)')
    if faces in FACE_RULES and not presets and references is None:
        src.fail(('faces',), f'{faces} picks faces by their expression; give a preset to fix them (e.g. open-eyes)')
    checkpoint = _checkpoint(data.get('checkpoint', 'demo-faces'), src, base)
    settings = _settings(data, src, base)
    no_face = data.get('no_face', 'skip')
    if no_face not in ('skip', 'fail'):
        src.fail(('no_face',), 'expected skip (the photo is reported and left out) or fail')
    output = _output(data.get('output'), src, base)
    if references is not None and output.videos:
        src.fail(('output', 'videos'), 'a fix from reference shots has no drag to film; drop videos')
    return Recipe(inputs=inputs, base=base, output=output, faces=faces,
                  presets=presets, drags=drags, points=points, checkpoint=checkpoint, no_face=no_face, source=source,
                  references=references, **settings)


def _references(refs, faces, src: _Source):
    """'same-folder', or {input: [reference files]} (paths relative to the recipe), or None."""
    if refs is None:
        return None
    if faces not in REFERENCE_FIXES:
        src.fail(('references',), f'reference shots fix faces picked by faces: {" or ".join(REFERENCE_FIXES)}')
    if refs == 'same-folder':
        return refs
    if not isinstance(refs, dict) or not refs or not all(
            isinstance(k, str) and k and isinstance(v, list) and v and all(isinstance(p, str) and p for p in v)
            for k, v in refs.items()):
        src.fail(('references',), 'expected same-folder (each folder is one burst) or a mapping from an input '
                                  'photo to a list of its other shots')
    if sum(len(v) for v in refs.values()) > 10_000:
        src.fail(('references',), 'at most 10000 reference files')
    return {os.path.normpath(k): tuple(v) for k, v in refs.items()}


def _inputs(inputs, src: _Source) -> Tuple[str, ...]:
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
        src.fail(('inputs',), 'expected a list of files, folders or globs (relative to the recipe)')
    return tuple(inputs)


def _faces(faces, src: _Source):
    if isinstance(faces, list):
        if not faces or not all(is_number(i, 0, whole=True) for i in faces):
            src.fail(('faces',), 'a list of face numbers (0 = leftmost) must hold whole numbers >= 0')
        return tuple(sorted(set(faces)))
    if faces not in ('all', 'largest', *FACE_RULES):
        src.fail(('faces',), f'expected all, largest, a list of face numbers, or one of {", ".join(FACE_RULES)}')
    return faces


def _edits(edits, src: _Source) -> Tuple[Tuple[str, ...], tuple]:
    """The presets ('name:strength') and the drags of the recipe's edits."""
    from photodrag.expressions import presets as presets_mod
    if not isinstance(edits, list):
        src.fail(('edits',), 'expected a list: - preset: NAME (strength: S) or - drags: [[[x1, y1], [x2, y2]], ...]')
    known = presets_mod.available()
    presets, drags = [], []
    for i, e in enumerate(edits):
        if not isinstance(e, dict) or not ({'preset', 'drags'} & set(e)):
            src.fail(('edits', i), 'expected preset: NAME (with strength:) or drags: [[[x1, y1], [x2, y2]], ...]')
        for k in e:
            if k not in ('preset', 'strength', 'drags'):
                src.fail(('edits', i, k), 'unknown key; an edit has preset, strength or drags')
        if 'preset' in e:
            name = e['preset']
            if name not in known:
                src.fail(('edits', i, 'preset'), f'unknown preset {name!r}; presets: {", ".join(sorted(known))}')
            try:
                strength = presets_mod.check_strength(e.get('strength', 1.0), name)
            except PhotodragError as err:
                src.fail(('edits', i, 'strength'), str(err))
            presets.append(presets_mod.label(name, strength))
        elif 'strength' in e:
            src.fail(('edits', i, 'strength'), 'strength goes with a preset')
        if 'drags' in e:
            drags.extend(_drags(e['drags'], lambda m, j=None, i=i: src.fail(
                ('edits', i, 'drags') + ((j,) if j is not None else ()), m)))
    return tuple(presets), tuple(drags)


MAX_DRAGS_PER_PHOTO = 1024


def _drags(value, fail) -> List:
    if not isinstance(value, list) or not value:
        fail('expected a list of [[x1, y1], [x2, y2]] pairs (photo pixels)')
    if len(value) > MAX_DRAGS_PER_PHOTO:
        fail(f'{len(value):,} drags; a photo takes at most {MAX_DRAGS_PER_PHOTO}')
    out = []
    for j, d in enumerate(value):
        ok = (isinstance(d, list) and len(d) == 2 and all(isinstance(p, list) and len(p) == 2 and
              all(is_number(v) for v in p) for p in d))
        if not ok:
            fail('expected [[x1, y1], [x2, y2]] (handle, then target, in photo pixels)', j)
        out.append((tuple(float(v) for v in d[0]), tuple(float(v) for v in d[1])))
    return out


def _points(points, src: _Source, base: Path) -> Optional[Path]:
    if points is None:
        return None
    if not isinstance(points, str):
        src.fail(('points',), 'expected a JSON or CSV file of drags per photo')
    path = (base / points).resolve()
    if path.exists() and not path.is_file():
        src.fail(('points',), f'{points} is not a regular file (a folder, a device?)')
    if not path.is_file():
        src.fail(('points',), f'{points}: no such file')
    if path.stat().st_size > MAX_POINTS_FILE_BYTES:
        src.fail(('points',), f'{points} is {path.stat().st_size:,} bytes; a points file is at most '
                              f'{MAX_POINTS_FILE_BYTES >> 20} MB')
    return path


def _checkpoint(checkpoint, src: _Source, base: Path) -> str:
    """A registry name, random:RES, or a checkpoint file (relative to the recipe; made absolute)."""
    if not isinstance(checkpoint, str) or not checkpoint:
        src.fail(('checkpoint',), 'expected a registry name, a file or random:RES')
    if checkpoint.startswith('random:') or _registry(checkpoint):
        return checkpoint
    candidate = base / checkpoint
    if not candidate.is_file():
        src.fail(('checkpoint',), f'{checkpoint!r} is neither a registry name (photodrag checkpoints list) nor a file')
    return str(candidate.resolve())


def _registry(name: str) -> bool:
    from photodrag import checkpoints
    try:
        return name in {c.name for c in checkpoints.list_checkpoints()}
    except Exception:          # noqa: BLE001 - a broken registry reads as "not a name"
        return False


# ---------------------------------------------------------------- the edit settings

def _settings(data, src: _Source, base: Path) -> Dict[str, Any]:
    """quality, inversion, encoder, device, drag and seed, each group checked by
    `EditConfig.from_options` on its own so that an error names the key it came from."""
    from photodrag.inversion.config import PRESETS
    quality = data.get('quality', 'fast')
    if quality not in PRESETS or quality == 'reference':     # reference is the benchmarks' yardstick, hours a photo
        src.fail(('quality',), f'expected one of {", ".join(q for q in PRESETS if q != "reference")}')
    inversion = data.get('inversion', {})
    if not isinstance(inversion, dict) or any(k not in INVERSION_KEYS for k in inversion):
        src.fail(('inversion',), 'expected a mapping with projection_steps: and/or tuning_steps: (they change the '
                                 'quality preset)')
    for k, v in inversion.items():
        _check(src, ('inversion', k), quality=quality, **{k: v})
    encoder = data.get('encoder', 'auto')
    encoder = _check(src, ('encoder',), encoder=encoder, base=base).encoder or 'auto'
    device = data.get('device', 'auto') or 'auto'
    if device != 'auto':                     # the name only: the device is picked when the batch runs
        from photodrag.pipeline import EditConfig
        try:
            EditConfig.with_settings(device=device)
        except InvalidSettingsError as e:
            src.fail(('device',), f'{_tidy(e, "device")} (or auto: the best there is)')
    seed = data.get('seed', 0)
    _check(src, ('seed',), seed=seed)
    return dict(quality=quality, inversion=dict(inversion), encoder=encoder, device=device,
                drag=_drag(data.get('drag', {}), src), seed=seed)


def _drag(drag, src: _Source) -> Dict[str, Any]:
    """The drag settings (DragConfig's fields), each key checked on its own, then together."""
    from photodrag.drag import DragConfig
    names = [f.name for f in dataclasses.fields(DragConfig)]
    if not isinstance(drag, dict):
        src.fail(('drag',), f'expected a mapping of drag settings ({", ".join(names)})')
    for k, v in drag.items():
        try:
            _check(src, ('drag', k), drag=_on_cpu({k: v}))
        except RecipeError:
            if k in names:
                raise
            src.fail(('drag', k), f'unknown drag setting; settings are {", ".join(names)}')
    _check(src, ('drag',), drag=_on_cpu(drag))
    return dict(drag)


def _on_cpu(drag: Dict[str, Any]) -> Dict[str, Any]:
    """Drag settings to check on the CPU: fp16 needs CUDA, which is checked with the device
    the batch picks when it runs (a recipe for a GPU machine is read anywhere)."""
    return {**drag, 'precision': 'bf16'} if drag.get('precision') == 'fp16' else drag


def _check(src: _Source, key: tuple, **options):
    """`EditConfig.from_options` over one group of the recipe's settings, on the CPU (the
    recipe's device is picked when the batch runs); its error becomes the recipe's, at `key`."""
    from photodrag.pipeline import EditConfig
    options = {'device': 'cpu', 'encoder': 'none', **options}
    try:
        return EditConfig.from_options(**options)
    except InvalidSettingsError as e:
        src.fail(key, _tidy(e, str(key[-1])))


def _tidy(error: Exception, name: str) -> str:
    """An EditConfig/DragConfig message without the owner or the key it repeats
    ('EditConfig.seed must be ...' at key seed reads 'seed: must be ...')."""
    return re.sub(rf'^(?:EditConfig\.{re.escape(name)}|\w+Config:|{re.escape(name)})\s+', '', str(error))


# ---------------------------------------------------------------- output

NAME_FIELDS = ('stem', 'ext', 'name', 'index')
MAX_POINTS_FILE_BYTES = 64 << 20
MAX_POINTS_ROWS = 100_000           # drags in a points file (a face takes 256; a batch of photos, a few thousand)


def _probe_name(name) -> Optional[str]:
    """`output.name` filled in for a test photo, or None when it is not a pattern of the
    documented fields only: no attribute or index access (`{stem.__class__}`), no conversion,
    and a format spec only as a zero-padded width of at most 9 for {index} (`{index:04d}`)."""
    import string
    if not isinstance(name, str) or not name or len(name) > 200:
        return None
    try:
        for _, field, spec, conversion in string.Formatter().parse(name):
            if field is None:
                continue
            if field not in NAME_FIELDS or conversion is not None:
                return None
            if spec and not (field == 'index' and re.fullmatch(r'0?[1-9]d?', spec)):
                return None
        return name.format(stem='a', ext='.jpg', name='a.jpg', index=0)
    except (KeyError, IndexError, ValueError):
        return None


def _output(out, src: _Source, base: Path) -> Output:
    if not isinstance(out, dict) or 'folder' not in out:
        src.fail(('output',), f'expected a mapping with folder: (and {", ".join(OUTPUT_KEYS[1:])}:)')
    for k in out:
        if k not in OUTPUT_KEYS:
            src.fail(('output', k), f'unknown key; output has {", ".join(OUTPUT_KEYS)}')
    if not isinstance(out['folder'], str) or not out['folder']:
        src.fail(('output', 'folder'), 'expected a folder (relative to the recipe)')
    name = out.get('name', '{stem}_edited{ext}')
    probe = _probe_name(name)
    if not probe or '/' in probe or '\\' in probe or probe.startswith('.'):
        src.fail(('output', 'name'), 'expected a file name pattern with {stem}, {ext}, {name} or {index}, e.g. '
                                     '"{stem}_edited{ext}" (no folders)')
    fmt = out.get('format', 'same')
    if fmt not in FORMATS:
        src.fail(('output', 'format'), f'expected one of {", ".join(FORMATS)}')
    q = out.get('quality')
    if q is not None and not is_number(q, 1, 100, whole=True):
        src.fail(('output', 'quality'), 'JPEG/WebP quality is a whole number from 1 to 100')
    flags = {}
    for k, default in (('records', True), ('before_after', False), ('videos', False)):
        flags[k] = out.get(k, default)
        if not isinstance(flags[k], bool):
            src.fail(('output', k), 'expected true or false')
    return Output(folder=(base / out['folder']).resolve(), name=name, format=fmt, quality=q, **flags)


# ---------------------------------------------------------------- points files

def read_points(path: Path) -> Dict[str, List]:
    """Per-photo drags: JSON {"photo.jpg": [[[x1, y1], [x2, y2]], ...]} or CSV photo,x1,y1,x2,y2."""
    if path.suffix.lower() == '.csv':
        return _read_points_csv(path)
    from photodrag.datafile import compose
    where = path.name
    from photodrag.io import read_regular_text
    try:
        text = read_regular_text(path, 'a points file', MAX_POINTS_FILE_BYTES)
    except (PhotodragError, OSError, UnicodeDecodeError) as e:
        raise RecipeError(f'{where}: cannot read the points file ({str(e)[:160]})') from None
    data, lines = compose(text, where, RecipeError)
    if not isinstance(data, dict):
        raise RecipeError(f'{where} line 1: expected {{"photo.jpg": [[[x1, y1], [x2, y2]], ...]}}')
    out: Dict[str, List] = {}
    for name, value in data.items():
        def fail(message, j=None, name=name):
            line = lines.get((name, j) if j is not None else (name,), 1)
            raise RecipeError(f'{where} line {line}: {name}: {message}')
        out[str(name)] = _drags(value, fail)
    return out


def _read_points_csv(path: Path) -> Dict[str, List]:
    out: Dict[str, List] = {}
    with open(path, newline='', encoding='utf-8') as f:
        for n, row in enumerate(csv.reader(f), 1):
            if n > MAX_POINTS_ROWS:
                raise RecipeError(f'{path.name}: more than {MAX_POINTS_ROWS:,} rows; a points file holds the drags '
                                  'of a batch, not more')
            if not row or row[0].startswith('#') or (n == 1 and row[0].strip().lower() == 'photo'):
                continue
            try:
                x1, y1, x2, y2 = (float(v) for v in row[1:])
                if not all(is_number(v) for v in (x1, y1, x2, y2)):
                    raise ValueError
            except ValueError:
                raise RecipeError(f'{path.name} line {n}: expected photo,x1,y1,x2,y2') from None
            drags = out.setdefault(row[0].strip(), [])
            if len(drags) >= MAX_DRAGS_PER_PHOTO:
                raise RecipeError(f'{path.name} line {n}: more than {MAX_DRAGS_PER_PHOTO} drags for {row[0][:60]!r}')
            drags.append(((x1, y1), (x2, y2)))
    return out


__all__ = ['Recipe', 'Output', 'RecipeError', 'load_recipe', 'read_points', 'FACE_RULES', 'FORMATS',
           'PHOTO_SUFFIXES']
