"""Group fixes from other shots: `fix_with_references` opens closed eyes (or closes open
mouths) with the same person's eyes (mouth) from another frame of the burst
(`expressions.reference`), falls back to the generator's preset fix for faces no shot can
help, checks every face on the output with a margin, and records it all, so
`fix_from_record` gives the same pixels again from the same files.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from photodrag.errors import PhotodragError

FIX_RECORD_FORMAT = 'photodrag-fix'
FIX_RECORD_VERSION = 1


@dataclass
class FixResult:
    """The fixed photo (`pixels`, written like `photo` by `save`), one line per face that
    needed a fix saying what it achieved, the record, and the generator's edit of the faces
    no other shot could help (None when there were none)."""
    photo: Any                                  # alignment.Photo, the input
    pixels: np.ndarray
    lines: List[str]
    record: Dict[str, Any]
    edit: Any = None                            # EditResult of the fallback faces
    achieved: Dict[int, bool] = field(default_factory=dict)

    def save(self, path, quality=None, details: Optional[dict] = None) -> Path:
        from photodrag import alignment
        return alignment.write_photo(self.pixels, path, like=self.photo, quality=quality, details=details)

    def save_record(self, path) -> Path:
        from photodrag.io import write_json
        return write_json(path, self.record)


def _photo(p):
    from photodrag import alignment
    return p if isinstance(p, alignment.Photo) else alignment.read_photo(p)


def file_info(photo) -> Dict[str, Any]:
    from photodrag.io import sha256_file
    from .record import pixels_sha256
    path = None if photo.path is None else str(photo.path)
    return {'path': path, 'sha256': sha256_file(path) if path and Path(path).is_file() else None,
            'pixels_sha256': pixels_sha256(photo.pixels)}


def fix_with_references(photo, references: Sequence, fixes: Sequence[str] = ('closed-eyes',), *,
                        faces: Optional[Sequence[int]] = None, thresholds: Optional[Dict[str, float]] = None,
                        config=None, strength: float = 1.0, fallback: bool = True, upsample: Optional[int] = None,
                        cache: Union[bool, str, Path] = True, callback=None) -> FixResult:
    """Fix the faces of `photo` that need it (`fixes`: 'closed-eyes', 'open-mouth') from the
    same people in `references` (paths or Photos); faces no reference helps get the preset fix
    (`config`: the `EditConfig` for it) unless `fallback` is False. `faces`: only these."""
    from photodrag import alignment
    from photodrag.expressions import presets as presets_mod, readout, reference
    from .checks import FaceEdit
    from .editing import edit as run_edit
    unknown = [f for f in fixes if f not in reference.FIX_PARTS]
    if unknown or not fixes:
        raise PhotodragError(f'a fix is one of {", ".join(reference.FIX_PARTS)}, got {", ".join(unknown) or "none"}')
    photo = _photo(photo)
    refs = [_photo(r) for r in references]
    thresholds = thresholds or readout.check_thresholds()
    detector = alignment.default_detector()
    found = alignment.detect_faces(photo, detector=detector, upsample=upsample)
    if not found:
        raise alignment.no_face_error(0, str(photo.path or 'the photo'), upsample)
    if faces is not None:
        bad = [k for k in faces if not 0 <= k < len(found)]
        if bad:
            raise PhotodragError(f'the photo has {len(found)} face(s), numbered 0 to {len(found) - 1}; there is no '
                                 f'face {bad[0]}')
    todo = [(f, fix) for f in found if faces is None or f.index in faces
            for fix in fixes if f.landmarks is not None and readout.needs_fix(readout.read(f.landmarks), fix, thresholds)]
    lines: List[str] = []
    transfers: List[reference.Transfer] = []
    fallbacks: Dict[int, List[str]] = {}
    shots: List[reference.Shot] = []
    if todo:
        shots = [reference.load_shot(r.pixels, photo.pixels, detector=detector, upsample=upsample) for r in refs]
        wanted = sorted({f.index for f, _ in todo})
        descs = dict(zip(wanted, reference.descriptors(photo.pixels, [found[k] for k in wanted])))
        for f, fix in todo:
            part = reference.FIX_PARTS[fix]
            t, why = reference.plan_transfer(f, descs[f.index], photo.pixels, shots, part, thresholds)
            if t is None:
                fallbacks.setdefault(f.index, []).append(fix)
                lines.append(f'face {f.index}: no other shot shows this person with the {part} as wanted ({why})'
                             + ('; trying the generator' if fallback else ''))
                continue
            transfers.append(t)
    pixels = reference.apply(photo.pixels, [r.pixels for r in refs], transfers)
    achieved: Dict[int, bool] = {}
    for t in transfers:
        ok, what = reference.check(pixels, found[t.face], t, shots, thresholds, detector)
        achieved[t.face] = achieved.get(t.face, True) and ok
        verb = 'opened' if t.part == 'eyes' else 'closed'
        lines.append(f'face {t.face}: {t.part} {verb} from shot {t.reference + 1} ({what})' if ok else
                     f'face {t.face}: {t.part} taken from shot {t.reference + 1}, yet the result does not read as '
                     f'fixed ({what}); check it')
    edit_result, edit_record = None, None
    if fallbacks and fallback:
        known = presets_mod.available(())
        uses = {k: [presets_mod.PresetUse(p, presets_mod.check_strength(strength))
                    for p in readout.fixes_for(readout.read(found[k].landmarks), fx, known, thresholds)]
                for k, fx in fallbacks.items()}
        middle = dataclasses.replace(photo, pixels=pixels, path=None)
        edit_result = run_edit(middle, [FaceEdit(face=k, presets=u) for k, u in uses.items()], config,
                               callback=callback, cache=cache)
        pixels = edit_result.pixels
        edit_record = edit_result.record.to_dict()
        checked, said = check_generator_fixes(pixels, {k: (found[k], fx) for k, fx in fallbacks.items()},
                                              thresholds, detector)
        for k, ok in checked.items():
            achieved[k] = achieved.get(k, True) and ok
        lines += said
    record = fix_record(file_info(photo), [file_info(r) for r in refs], transfers, pixels, fixes=fixes,
                        faces_found=len(found), outcome=lines, edit=edit_record)
    return FixResult(photo=photo, pixels=pixels, lines=lines, record=record, edit=edit_result, achieved=achieved)


def fix_record(photo_info: Dict[str, Any], shots_info: List[Dict[str, Any]], transfers, pixels: np.ndarray, *,
               fixes: Sequence[str] = (), faces_found: int = 0, outcome: Sequence[str] = (),
               edit: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A fix record (`photodrag-fix`): the photo and shots (`file_info`), the transfers in order,
    the generator's edit record of the faces no shot helped, the output's pixel hash."""
    from .record import pixels_sha256
    return {'format': FIX_RECORD_FORMAT, 'version': FIX_RECORD_VERSION, 'fixes': list(fixes),
            'input': photo_info, 'references': shots_info, 'transfers': [t.to_dict() for t in transfers],
            'faces_found': faces_found, 'outcome': list(outcome), 'edit': edit,
            'output': {'pixels_sha256': pixels_sha256(pixels)}}


def check_generator_fixes(pixels: np.ndarray, faces: Dict[int, tuple], thresholds: Dict[str, float],
                          detector=None) -> tuple:
    """Read the output again for faces the generator's presets fixed ({index: (Face, [fixes])}):
    ({index: fixed}, one line per face and fix) with the same margin as every fix
    (`expressions.reference.shows`), so a preset that left the eyes shut says so."""
    from photodrag import alignment
    from photodrag.expressions import reference
    detector = detector or alignment.default_detector()
    achieved: Dict[int, bool] = {}
    lines: List[str] = []
    for k, (face, fx) in faces.items():
        for fix in fx:
            part = reference.FIX_PARTS[fix]
            ok, what = reference.shows(detector.landmarks(pixels, face.box), part, thresholds)
            achieved[k] = achieved.get(k, True) and ok
            lines.append(f'face {k}: {part} fixed by the generator ({what})' if ok else
                         f'face {k}: {part} still not fixed ({what}); the generator could not do it: give '
                         'another shot of this person with --reference')
    return achieved, lines


def write_fix_outputs(result: FixResult, photo, record=None, before_after=None, quality=None) -> List[tuple]:
    """Write the fixed photo (like its input), the record and input | output side by side, all
    or none (atomically). Returns [(what, path)]."""
    from photodrag.io import atomic_files
    from .report import save_image
    named = [('fixed photo', Path(photo))] + ([('record', Path(record))] if record else []) + \
        ([('before/after', Path(before_after))] if before_after else [])
    with atomic_files([path for _, path in named]) as temps:
        tmp = dict(zip([what for what, _ in named], temps))
        details: dict = {}
        result.save(tmp['fixed photo'], quality=quality, details=details)
        if record:
            result.save_record(tmp['record'])
        if before_after:
            save_image(tmp['before/after'], np.concatenate([result.photo.pixels, result.pixels], axis=1))
    return named


def load_fix_record(source) -> Dict[str, Any]:
    """A fix record from a dict or a JSON file, its shape checked."""
    import json
    from photodrag.errors import one_line
    from .record import MAX_RECORD_BYTES
    if not isinstance(source, dict):
        path = Path(source)
        from photodrag.io import read_regular_text
        try:
            source = json.loads(read_regular_text(path, 'a fix record', MAX_RECORD_BYTES))
        except RecursionError:
            raise PhotodragError(f'{path}: the record nests too deeply to be one') from None
        except (OSError, ValueError) as e:
            raise PhotodragError(f'{path}: cannot read the fix record: {one_line(e, 160)}') from None
    if not isinstance(source, dict) or source.get('format') != FIX_RECORD_FORMAT:
        raise PhotodragError('not a fix record (its format is not photodrag-fix)')
    if source.get('version') != FIX_RECORD_VERSION:
        raise PhotodragError(f'fix record version {source.get("version")!r:.20} is not one this version reads')
    if not isinstance(source.get('transfers'), list) or not isinstance(source.get('references'), list) or \
            not isinstance(source.get('input'), dict) or not all(isinstance(r, dict) for r in source['references']):
        raise PhotodragError('the fix record has no input, transfers or references')
    return source


def fix_from_record(record, *, photo=None, references: Optional[Sequence] = None,
                    cache: Union[bool, str, Path] = True) -> FixResult:
    """The fix a record describes, made again from the same files (their pixels' sha256 are
    checked): the same regions brought over, then the generator's edit of the other faces."""
    from photodrag.expressions import reference
    from .editing import edit_from_record
    from .record import pixels_sha256
    rec = load_fix_record(record)

    def checked(p, info, what):
        if p is None:
            p = info.get('path') if isinstance(info, dict) else None
            if not p:
                raise PhotodragError(f'the record does not say where {what} is; give it')
        got = _photo(p)
        if pixels_sha256(got.pixels) != info.get('pixels_sha256'):
            raise PhotodragError(f'{got.path or what} is not {what} of the record (its pixels differ)')
        return got

    photo = checked(photo, rec['input'], 'the photo')
    given = list(references) if references is not None else [None] * len(rec['references'])
    if len(given) != len(rec['references']):
        raise PhotodragError(f'the record took from {len(rec["references"])} reference shot(s); {len(given)} given')
    refs = [checked(p, info, f'reference {i + 1}') for i, (p, info) in enumerate(zip(given, rec['references']))]
    try:
        transfers = [reference.Transfer.from_dict(t) for t in rec['transfers']]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise PhotodragError('the fix record\'s transfers are not in the form photodrag writes') from None
    pixels = reference.apply(photo.pixels, [r.pixels for r in refs], transfers)
    edit_result = None
    if rec.get('edit'):
        middle = dataclasses.replace(photo, pixels=pixels, path=None)
        edit_result = edit_from_record(rec['edit'], photo=middle, cache=cache)
        pixels = edit_result.pixels
    out = {**rec, 'output': {'pixels_sha256': pixels_sha256(pixels)}}
    return FixResult(photo=photo, pixels=pixels, lines=list(rec.get('outcome') or []), record=out, edit=edit_result)
