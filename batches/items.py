"""One photo of a batch: which of its faces the recipe picks, the plan of a dry run, and the
edit that writes its files. Any error here is the photo's (a failed item), never the batch's.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from photodrag.errors import PhotodragError, one_line

from .recipe import FACE_RULES, Recipe

# progress(stage, step, total, info): the edit's callback (`pipeline.edit`), info['face'] the
# position of the face being edited among the photo's chosen faces; batches add info['photo']
# (the photo, relative to the recipe) and info['faces'] (how many of its faces are edited).
Progress = Callable[[str, int, int, Dict[str, Any]], None]


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
    earlier: bool = False               # finished by an earlier run (found in the manifest on resume); not written

    def to_json(self) -> str:
        return json.dumps({'photo': self.photo, 'status': self.status, 'output': self.output, 'record': self.record,
                           'extras': self.extras, 'faces': self.faces, 'timings': self.timings, 'error': self.error,
                           'input_sha256': self.input_sha256, 'output_sha256': self.output_sha256,
                           'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, sort_keys=True)


def photo_drags(recipe: Recipe, photo: Path, points) -> List:
    """The recipe's drags and the points file's for this photo (by path relative to the recipe, or by name)."""
    extra = points.get(recipe.relative(photo)) or points.get(photo.name) or []
    return list(recipe.drags) + list(extra)


def select_faces(recipe: Recipe, found, drags) -> Tuple[Dict[int, List], str]:
    """{face index: its drags} of the faces the recipe picks, and why none when empty."""
    from photodrag import alignment
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
        chosen = [f.index for f in found if _matches(recipe.faces, f)]
    out: Dict[int, List] = {i: [] for i in chosen}
    for d in drags:
        i = alignment.select_face(found, point=d[0]).index
        if i not in out:
            raise PhotodragError(f'the drag at ({d[0][0]:g}, {d[0][1]:g}) is on face {i}, which the recipe\'s faces '
                                 f'({recipe.faces}) leave out')
        out[i].append(d)
    if not recipe.presets and recipe.references is None:    # drags alone edit only the faces they are on
        out = {i: ds for i, ds in out.items() if ds}
        if not drags:
            return out, 'nothing to do for this photo: no preset, and no drags in the recipe or the points file'
    why = '' if out else (f'no face with {FACE_RULES[recipe.faces]}' if recipe.faces in FACE_RULES else 'no face')
    return out, why


def _matches(rule: str, face) -> bool:
    """Whether a face's expression read-out fits a FACE_RULES rule."""
    from photodrag.expressions import readout as expression
    s = expression.read(face.landmarks).states()
    return ((rule == 'closed-eyes' and s['eyes'] in ('closed', 'one closed')) or
            (rule == 'open-mouth' and s['mouth'] == 'open') or
            (rule == 'not-smiling' and s['smile'] == 'neutral'))


def plan_item(recipe: Recipe, photo: Path, points, detector) -> Item:
    """What a run would do with the photo (a dry run): its faces found and their edits."""
    from photodrag import alignment
    from photodrag.errors import NoFaceFoundError
    rel = recipe.relative(photo)
    try:
        image = alignment.read_photo(photo)
        found = alignment.detect_faces(image, detector=detector)
        if not found:
            raise alignment.no_face_error(0, str(photo))
        chosen, why = select_faces(recipe, found, photo_drags(recipe, photo, points))
        if not chosen:
            return Item(rel, 'skipped', error=why)
        return Item(rel, 'planned', faces=[{'face': i, 'box': [round(v) for v in found[i].box],
                                            'presets': list(recipe.presets) + _from_shots(recipe, photo),
                                            'drags': [list(map(list, d)) for d in ds]}
                                           for i, ds in sorted(chosen.items())])
    except NoFaceFoundError as e:
        return Item(rel, 'skipped' if recipe.no_face == 'skip' else 'failed', error=one_line(e))
    except PhotodragError as e:
        return Item(rel, 'failed', error=one_line(e))


def run_item(recipe: Recipe, config, photo: Path, rel: str, out: Path, points, cache, detector,
             progress: Optional[Progress] = None) -> Item:
    """Edit one photo and write its files; any error is the item's, not the batch's."""
    from photodrag.errors import NoFaceFoundError
    started = time.perf_counter()
    item = Item(rel, 'failed')
    try:
        _edit(item, recipe, config, photo, out, points, cache, detector, progress)
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


def _edit(item: Item, recipe: Recipe, config, photo: Path, out: Path, points, cache, detector,
          progress: Optional[Progress]) -> None:
    """The edit of `run_item`, filling in `item`."""
    from photodrag import alignment
    from photodrag.io import sha256_file
    from photodrag.pipeline import editing, report
    from photodrag.pipeline.checks import FaceEdit
    from photodrag.pipeline.outputs import write_outputs
    item.input_sha256 = sha256_file(photo)
    image = alignment.read_photo(photo)
    found = alignment.detect_faces(image, detector=detector, upsample=config.upsample)
    if not found:
        raise alignment.no_face_error(0, item.photo, config.upsample)
    chosen, why = select_faces(recipe, found, photo_drags(recipe, photo, points))
    if not chosen:
        item.status, item.error = 'skipped', why
        return
    record_path = out.with_name(out.stem + '.json') if recipe.output.records else None
    extras = {'before_after': out.with_name(out.stem + '_before_after.png')} if recipe.output.before_after else {}
    for p in [out, record_path, *extras.values()]:
        if p is not None and p.exists() and not _ours(record_path, item.input_sha256):
            raise PhotodragError(f'{p.name} already exists in {p.parent} and this batch did not write it; '
                                 'refusing to overwrite it (move it, or choose another output folder)')
    if recipe.references is not None:
        return _fix(item, recipe, config, image, out, record_path, extras, cache, sorted(chosen), photo)
    jobs = [FaceEdit(face=i, drags=ds, presets=recipe.presets) for i, ds in sorted(chosen.items())]
    writer = None
    if recipe.output.videos:
        extras['video'] = out.with_name(out.stem + '_drag.mp4')
        writer = report.VideoWriter(extras['video'], fps=10)
    callback = _callback(writer, progress, {'photo': item.photo, 'faces': len(jobs)})
    try:
        result = editing.edit(image, jobs, config, callback=callback, cache=cache, detector=detector,
                              generator=_generator(config))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    result.record.input['path'] = item.photo
    # all files or none; the record last, so a present record means a complete item
    write_outputs(result, out, record=record_path, before_after=extras.get('before_after'), video=writer,
                  quality=recipe.output.quality)
    item.status, item.output = 'done', out.name
    item.record = record_path.name if record_path else None
    item.extras = {k: v.name for k, v in extras.items()}
    item.output_sha256 = result.record.output['pixels_sha256']
    item.faces = [_face_summary(f) for f in result.record.faces]
    item.timings = dict(result.record.timings)


def _fix(item: Item, recipe: Recipe, config, image, out: Path, record_path, extras, cache, chosen, photo: Path) -> None:
    """The photo's faces picked by the recipe's rule fixed from its reference shots
    (`pipeline.fixes`), the generator's preset for faces no shot helps."""
    from photodrag.pipeline import fixes
    refs = recipe.references_for(photo)
    if not refs:
        raise PhotodragError(f'the recipe names no reference shot for {item.photo}')
    result = fixes.fix_with_references(image, refs, [recipe.faces], faces=chosen, config=config, cache=cache,
                                       strength=_strength(recipe))
    if not result.record['transfers'] and result.edit is None:
        item.status, item.error = 'skipped', 'no face needs the fix'
        return
    fixes.write_fix_outputs(result, out, record=record_path, before_after=extras.get('before_after'),
                            quality=recipe.output.quality)
    item.status, item.output = 'done', out.name
    item.record = record_path.name if record_path else None
    item.extras = {k: v.name for k, v in extras.items()}
    item.output_sha256 = result.record['output']['pixels_sha256']
    item.faces = [{'face': k, 'fixed': ok} for k, ok in sorted(result.achieved.items())]
    item.error = '; '.join(result.lines) if not all(result.achieved.values()) else None


def _from_shots(recipe: Recipe, photo: Path) -> List[str]:
    """How a dry run says a face would be fixed from other shots (nothing when it would not)."""
    if recipe.references is None:
        return []
    part = 'eyes' if recipe.faces == 'closed-eyes' else 'mouth'
    return [f'{part} from {len(recipe.references_for(photo))} other shot(s)']


def _strength(recipe: Recipe) -> float:
    """The strength of the recipe's preset for faces no shot helps (1 when it gives none)."""
    from photodrag.expressions import presets
    return presets.uses(recipe.presets[:1])[0].strength if recipe.presets else 1.0


def _callback(writer, progress: Optional[Progress], about: Dict[str, Any]):
    """The edit's callback: the drag video's frames and the caller's progress (told which photo)."""
    if writer is None and progress is None:
        return None

    def callback(stage, step, total, info):
        if writer is not None:
            writer.drag_frames(stage, step, total, info)
        if progress is not None:
            progress(stage, step, total, {**info, **about})
    return callback


def _face_summary(face) -> Dict[str, Any]:
    """A face of the edit record as the manifest keeps it."""
    return {'face': face.index,
            'presets': [p['name'] + (f':{p["strength"]:g}' if p['strength'] != 1 else '') for p in face.presets],
            'drags': len(face.handles_photo), 'steps': face.drag['steps'], 'reason': face.drag['reason'],
            'content_progress': face.drag.get('content_progress'),
            'lpips': round(float(face.inversion['lpips']), 4), 'from_cache': face.inversion['from_cache']}


_loaded: Dict[Tuple[str, str], Any] = {}


def _generator(config):
    """The recipe's generator, loaded once per process (a Ray actor is one process)."""
    key = (config.checkpoint, str(config.device))
    if key not in _loaded:
        from photodrag import checkpoints
        _loaded.clear()
        _loaded[key] = checkpoints.load_generator(config.checkpoint, device=config.device)
    return _loaded[key]


def _ours(record: Optional[Path], input_sha: str) -> bool:
    """Whether files at a photo's output names are an interrupted run's of this batch for this
    photo (its record says so)."""
    if record is None or not record.is_file():
        return False
    try:
        data = json.loads(record.read_text(encoding='utf-8'))
        return data.get('format') in ('photodrag-edit', 'photodrag-fix') and \
            data.get('input', {}).get('sha256') == input_sha
    except (OSError, ValueError):
        return False


__all__ = ['Item', 'Progress', 'photo_drags', 'select_faces', 'plan_item', 'run_item']
