"""edit(): a real photo in, the dragged photo out — detect, align, invert, drag, paste back.

    from photodrag import pipeline
    result = pipeline.edit('group.jpg', [((410, 300), (418, 290))], checkpoint='demo-faces')
    result.save('group_edited.jpg')                       # format, EXIF, ICC, JPEG quality kept
    result.record.save('group_edited.json')
    again = pipeline.edit_from_record('group_edited.json')  # the same pixels, on the same machine

Points and masks are given in photo pixels (ARCHITECTURE.md); each face's `CropTransform`
maps them into its aligned crop and maps the results back. Faces are edited one after
another, each in its own crop with its own inversion, and pasted into one output. The
reconstruction before the drag is the paste reference, so only what the drag changed (the
old and the new silhouette) is blended in; every other pixel is the input's, bit for bit.
"""

import dataclasses
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from photodrag.errors import InvalidMaskError, InvalidPointsError, PhotodragError

Point = Tuple[float, float]
Drag = Tuple[Point, Point]
Box = Tuple[float, float, float, float]
FaceSelector = Union[int, Point, str, None]        # index, a point in the photo, 'all' or None (by the handles)
MaskLike = Union[np.ndarray, str, os.PathLike, None]

# callback(stage, step, total, info): stage 'load', 'detect', 'align', 'projection', 'tuning',
# 'drag' or 'paste'; info['face'] is the position of the face being edited (0, 1, ...); the
# 'drag' stage also passes the live `session`, its `crop` and the step's `result`.
Callback = Callable[[str, int, int, Dict[str, Any]], None]

RECORD_FORMAT = 'photodrag-edit'
RECORD_VERSION = 1


# ---------------------------------------------------------------- inputs

@dataclass(frozen=True, eq=False)
class FaceEdit:
    """The drags for one face (or object) of a photo, in photo pixels.

    face: an index (faces numbered left to right), a point (x, y) on the face, or None /
    'all' (each drag goes to the face whose box holds its handle, the nearest one otherwise).
    drags: ((x1, y1), (x2, y2)) pairs: move the content at the handle to the target.
    mask: photo-sized float [0, 1] or bool array, or a grayscale image file (white = may
    change); None lets the whole crop change. box: the face's or object's box
    (x0, y0, x1, y1) instead of detection (object recipes: None = the whole photo)."""
    face: FaceSelector = None
    drags: Sequence[Drag] = ()
    mask: MaskLike = None
    box: Optional[Box] = None


@dataclass(frozen=True)
class FaceRecord:
    """What was done to one face: where it is, the points in both coordinate systems, results."""
    index: Optional[int]                    # detected face index (left to right); None: given by box / object mode
    box: List[float]                        # (x0, y0, x1, y1) in the photo
    landmarks: Optional[List[List[float]]]  # 68 (x, y) photo points, face recipes only
    score: Optional[float]                  # detector score
    crop_matrix: List[List[float]]          # CropTransform.matrix, photo -> crop
    crop_size: List[int]
    handles_photo: List[List[float]]
    targets_photo: List[List[float]]
    handles_crop: List[List[float]]
    targets_crop: List[List[float]]
    mask: Optional[Dict[str, Any]]          # {'path': file or None, 'sha256': of the float32 photo mask}
    inversion: Dict[str, Any]               # lpips, lpips_net, psnr, from_cache, image_hash, per-stage metrics
    drag: Dict[str, Any]                    # steps, reason, final handles (crop, photo), distances (crop px, photo px)
    timings: Dict[str, float]               # seconds: align, invert, drag


@dataclass(frozen=True)
class EditRecord:
    """Everything needed to reproduce an edit (JSON: `to_dict`, `save`, `load`)."""
    library_version: str
    input: Dict[str, Any]                   # path, sha256 (file), pixels_sha256, width, height, format
    checkpoint: Dict[str, Any]              # name as given, path, sha256 (file), generator_hash, resolution
    recipe: str                             # crop recipe: 'ffhq', 'afhq', 'car', 'object'
    device: str
    seed: int                               # inversion seed (the drag itself draws no random numbers)
    quality: Optional[str]                  # inversion preset name, None for a custom config
    inversion_config: Dict[str, Any]
    drag_config: Dict[str, Any]
    paste_config: Dict[str, Any]
    detection: Dict[str, Any]               # upsample, faces found
    faces: List[FaceRecord]
    output: Dict[str, Any]                  # pixels_sha256, width, height
    timings: Dict[str, float]               # seconds per stage, summed over faces, and 'total'
    environment: Dict[str, str] = field(default_factory=dict)   # python, torch, numpy, platform
    format: str = RECORD_FORMAT
    version: int = RECORD_VERSION

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path) -> Path:
        """Write the record as JSON, atomically."""
        from .report import save_json
        return save_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'EditRecord':
        if not isinstance(data, dict) or data.get('format') != RECORD_FORMAT:
            raise PhotodragError('not a photodrag edit record (expected JSON with "format": "photodrag-edit")')
        if data.get('version') != RECORD_VERSION:
            raise PhotodragError(f'edit record version {data.get("version")}; this photodrag reads version '
                                 f'{RECORD_VERSION}')
        names = {f.name for f in dataclasses.fields(cls)}
        face_names = {f.name for f in dataclasses.fields(FaceRecord)}
        try:
            faces = [FaceRecord(**{k: v for k, v in f.items() if k in face_names}) for f in data['faces']]
            return cls(**{**{k: v for k, v in data.items() if k in names}, 'faces': faces})
        except (KeyError, TypeError) as e:
            raise PhotodragError(f'the edit record is incomplete or damaged: {e}') from None

    @classmethod
    def load(cls, path) -> 'EditRecord':
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise PhotodragError(f'{path}: no such record file') from None
        except (OSError, ValueError) as e:
            raise PhotodragError(f'{path}: cannot read the edit record: {e}') from None
        return cls.from_dict(data)


@dataclass(frozen=True, eq=False)
class FaceResult:
    """One edited face: its crop, the reconstruction before the drag, the dragged crop (uint8),
    the inversion, and the drag's final state (crop pixels)."""
    crop: Any                   # alignment.AlignedCrop
    reconstruction: np.ndarray
    edited: np.ndarray
    inversion: Any              # inversion.Inversion
    drag: Any                   # drag.DragStep
    mask: Optional[np.ndarray]  # the crop-space drag mask, if any


@dataclass(frozen=True, eq=False)
class EditResult:
    """The edited photo's pixels (uint8 RGB, the input's size), the input `Photo`, the blend
    mask (photo-sized float32; 0 = the input's pixels unchanged), per-face results, the record."""
    pixels: np.ndarray
    photo: Any                  # alignment.Photo
    blend_mask: np.ndarray
    faces: Tuple[FaceResult, ...]
    record: EditRecord

    def save(self, path, quality: Union[int, str, None] = None) -> Path:
        """Write the edited photo like the input (format by suffix, EXIF, ICC, JPEG quality), atomically."""
        from photodrag import alignment
        return alignment.write_photo(self.pixels, path, like=self.photo, quality=quality)

    def before_after(self, points: bool = True) -> np.ndarray:
        return before_after(self, points=points)


# ---------------------------------------------------------------- edit

def edit(photo, edits, checkpoint: Union[str, os.PathLike] = 'demo-faces', face: FaceSelector = None,
         quality: Union[str, Any] = 'balanced', device: str = 'cpu', callback: Optional[Callback] = None,
         seed: Optional[int] = 0, drag_config=None, mask: MaskLike = None, box: Optional[Box] = None,
         max_steps: Optional[int] = None, *, recipe: Optional[str] = None, paste_config=None,
         cache: Union[bool, str, os.PathLike] = True, upsample: Optional[int] = None, detector=None,
         download: bool = True) -> EditResult:
    """Drag points on the faces (or object) of a real photo and paste the result back.

    photo: a path or an `alignment.Photo`. edits: drags ((x1, y1), (x2, y2)) for the face
    chosen by `face` (see `FaceEdit`), one `FaceEdit`, a list of them, or a dict
    {face: drags or FaceEdit}. All points and masks are in photo pixels.
    checkpoint: registry name, file, or 'random:RES[:SEED]'. Its registry entry picks the crop
    recipe (`recipe` overrides; files default to 'ffhq'); object recipes crop `box` (or each
    FaceEdit's box, or the whole photo). quality: 'fast', 'balanced', 'best' or an
    `InversionConfig`; `seed` replaces its seed (None keeps it). drag_config: a `DragConfig`
    (`max_steps` replaces its step cap). mask: a photo-sized mask for every face without its own.
    cache: reuse inversions of the same crop ($PHOTODRAG_CACHE/inversions, or this folder).

    Raises `InvalidPointsError` for points outside the photo or outside the face's crop,
    `NoFaceFoundError` when there is no face or the index is out of range."""
    from photodrag import alignment
    from photodrag import checkpoints
    from photodrag.drag import DragConfig
    from photodrag.inversion import InversionConfig

    started = time.perf_counter()
    timings: Dict[str, float] = {}
    emit = callback or (lambda *a: None)

    # settings first: a bad setting fails before anything slow runs
    if isinstance(quality, InversionConfig):
        inv_config, quality_name = quality, None
    elif isinstance(quality, str):
        try:
            inv_config, quality_name = InversionConfig.preset(quality), quality
        except ValueError as e:
            raise PhotodragError(str(e)) from None
    else:
        raise PhotodragError(f"quality is 'fast', 'balanced', 'best' or an InversionConfig, got {quality!r}")
    if seed is not None:
        inv_config = inv_config.replace(seed=int(seed))
    drag_config = drag_config or DragConfig()
    if max_steps is not None:
        drag_config = drag_config.replace(max_steps=int(max_steps))
    paste_config = paste_config or alignment.PasteConfig(region='changed')

    t = time.perf_counter()
    photo = photo if isinstance(photo, alignment.Photo) else alignment.read_photo(photo)
    width, height = photo.size
    jobs = _normalise(edits, face)
    for job in jobs:
        _check_drags(job.drags, (width, height))
        if isinstance(job.face, tuple):
            _check_photo_point(job.face, (width, height), 'the face point')
    loaded: Dict[int, Tuple] = {}          # id(mask source) -> (array, record entry); split jobs share a source

    def mask_of(job):
        source = job.mask if job.mask is not None else mask
        if id(source) not in loaded:
            loaded[id(source)] = _load_mask(source, (width, height))
        return loaded[id(source)]

    for job in jobs:
        _check_points_in_mask(mask_of(job)[0], job.drags)
    timings['read'] = time.perf_counter() - t

    t = time.perf_counter()
    emit('load', 0, 1, {})
    G = checkpoints.load_generator(checkpoint, device=device, download=download)
    ckpt_info = _checkpoint_info(checkpoint, G)
    R = int(G.img_resolution)
    rec = _recipe(checkpoint, recipe, R, G)
    timings['load'] = time.perf_counter() - t
    emit('load', 1, 1, {'checkpoint': ckpt_info})

    # faces: detect once, then give every job its face (or box)
    t = time.perf_counter()
    found: List = []
    if rec.face and any(job.box is None and box is None for job in jobs):
        emit('detect', 0, 1, {})
        found = alignment.detect_faces(photo, detector=detector, upsample=upsample)
        if not found:
            raise alignment.no_face_error(0, str(photo.path or 'the photo'), upsample)
        emit('detect', 1, 1, {'faces': len(found)})
    targets = _assign(jobs, found, rec, box, photo, detector, (width, height))
    timings['detect'] = time.perf_counter() - t

    face_results, face_records = [], []
    for k, (job, target) in enumerate(zip(jobs, targets)):
        mask_photo, mask_info = mask_of(job)
        res, frec = _edit_one(k, job, target, mask_photo, mask_info, photo, G, rec, inv_config, drag_config,
                              device, cache, emit)
        face_results.append(res)
        face_records.append(frec)
        for stage, seconds in frec.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds

    t = time.perf_counter()
    emit('paste', 0, 1, {})
    pasted = alignment.paste_back(photo, [alignment.Edit(r.crop, _masked_edit(r), reference=r.reconstruction)
                                          for r in face_results], paste_config)
    timings['paste'] = time.perf_counter() - t
    emit('paste', 1, 1, {})
    timings['total'] = time.perf_counter() - started

    record = EditRecord(
        library_version=_library_version(),
        input={'path': str(photo.path) if photo.path else None,
               'sha256': _file_sha256(photo.path) if photo.path and Path(photo.path).is_file() else None,
               'pixels_sha256': pixels_sha256(photo.pixels), 'width': width, 'height': height,
               'format': photo.format},
        checkpoint=ckpt_info, recipe=rec.name, device=str(device), seed=inv_config.seed, quality=quality_name,
        inversion_config=dataclasses.asdict(inv_config), drag_config=dataclasses.asdict(drag_config),
        paste_config=dataclasses.asdict(paste_config),
        detection={'upsample': upsample, 'faces_found': len(found)},
        faces=face_records,
        output={'pixels_sha256': pixels_sha256(pasted.pixels), 'width': width, 'height': height},
        timings={k: round(v, 3) for k, v in timings.items()},
        environment=_environment())
    return EditResult(pixels=pasted.pixels, photo=photo, blend_mask=pasted.mask(), faces=tuple(face_results),
                      record=record)


def edit_from_record(record, *, photo=None, checkpoint=None, masks: Optional[Dict[int, np.ndarray]] = None,
                     device: Optional[str] = None, callback: Optional[Callback] = None,
                     cache: Union[bool, str, os.PathLike] = True, detector=None) -> EditResult:
    """Run the edit a record describes again (a record, its dict, or a JSON file).

    The photo and checkpoint come from the record (overridable) and must have the recorded
    sha256; every setting comes from the record. On the same machine and device the output
    is bit-identical (compare `result.record.output['pixels_sha256']`). `masks`: arrays for
    faces whose mask was given as an array (the record keeps only its hash), by face position."""
    from photodrag import alignment
    from photodrag.drag import DragConfig
    from photodrag.inversion import InversionConfig

    if not isinstance(record, EditRecord):
        record = EditRecord.from_dict(record) if isinstance(record, dict) else EditRecord.load(record)
    if photo is None:
        path = record.input.get('path')
        if not path:
            raise PhotodragError('the record was made from pixels, not a file; pass photo=')
        photo = path
    photo = photo if isinstance(photo, alignment.Photo) else alignment.read_photo(photo)
    if pixels_sha256(photo.pixels) != record.input['pixels_sha256']:
        raise PhotodragError(f'{photo.path or "the photo"} is not the photo of the record (its pixels differ: '
                             f'sha256 {pixels_sha256(photo.pixels)[:12]}, recorded '
                             f'{record.input["pixels_sha256"][:12]})')
    ckpt = checkpoint if checkpoint is not None else (record.checkpoint.get('name') or record.checkpoint.get('path'))
    if checkpoint is None and record.checkpoint.get('sha256'):
        from photodrag import checkpoints
        path = checkpoints.resolve_path(ckpt)
        digest = _file_sha256(path)
        if digest != record.checkpoint['sha256']:
            raise PhotodragError(f'checkpoint {ckpt} ({path}) has sha256 {digest[:12]}, the record was made with '
                                 f'{record.checkpoint["sha256"][:12]}; pass the original checkpoint')

    jobs = []
    for k, f in enumerate(record.faces):
        m = None
        if f.mask is not None:
            if masks is not None and k in masks:
                m = masks[k]
            elif f.mask.get('path'):
                m = f.mask['path']
            else:
                raise PhotodragError(f'face {k} of the record had a mask given as an array; pass masks={{{k}: array}}')
        drags = [(tuple(h), tuple(t)) for h, t in zip(f.handles_photo, f.targets_photo)]
        if f.index is not None:
            jobs.append(FaceEdit(face=int(f.index), drags=drags, mask=m))
        else:
            jobs.append(FaceEdit(face=None, drags=drags, mask=m, box=tuple(f.box)))
    inv_config = InversionConfig(**record.inversion_config)
    result = edit(photo, jobs, checkpoint=ckpt, quality=inv_config, device=device or record.device,
                  callback=callback, seed=None, drag_config=DragConfig(**record.drag_config),
                  recipe=record.recipe, paste_config=alignment.PasteConfig(**record.paste_config), cache=cache,
                  upsample=record.detection.get('upsample'), detector=detector)
    for k, f in enumerate(record.faces):
        if f.mask is not None and result.record.faces[k].mask['sha256'] != f.mask['sha256']:
            raise PhotodragError(f'the mask of face {k} is not the one of the record (its values differ)')
    return result


# ---------------------------------------------------------------- one face

def _edit_one(k, job, target, mask_photo, mask_info, photo, G, rec, inv_config, drag_config, device, cache, emit):
    from photodrag import alignment
    from photodrag import stylegan
    from photodrag.drag import DragSession
    from photodrag.inversion import invert

    timings = {}
    R = int(G.img_resolution)
    t = time.perf_counter()
    emit('align', 0, 1, {'face': k})
    crop = alignment.align(photo, target, size=R, recipe=rec)
    tf = crop.transform
    handles_photo = np.array([d[0] for d in job.drags], np.float64)
    targets_photo = np.array([d[1] for d in job.drags], np.float64)
    handles_crop, targets_crop = tf.to_crop(handles_photo), tf.to_crop(targets_photo)
    face_name = _face_name(k, crop)
    for i, (p, q) in enumerate(zip(handles_photo, handles_crop)):
        _check_in_crop(p, q, crop, f'handle {i + 1}', face_name)
    for i, (p, q) in enumerate(zip(targets_photo, targets_crop)):
        _check_in_crop(p, q, crop, f'target {i + 1}', face_name)
    mask_crop = None if mask_photo is None else tf.mask_to_crop(mask_photo)
    timings['align'] = time.perf_counter() - t
    emit('align', 1, 1, {'face': k, 'crop': crop})

    t = time.perf_counter()
    inv = invert(G, crop.image, inv_config, device=device, cache=cache,
                 callback=lambda stage, step, total, metrics: emit(stage, step, total, {**metrics, 'face': k}))
    G_tuned = inv.generator(G)
    timings['invert'] = time.perf_counter() - t

    t = time.perf_counter()
    session = DragSession(G_tuned, inv.ws.to(device), [tuple(p) for p in handles_crop.tolist()],
                          [tuple(p) for p in targets_crop.tolist()], mask=mask_crop, config=drag_config)
    reconstruction = stylegan.to_uint8(session.render())[0]
    emit('drag', 0, drag_config.max_steps, {'face': k, 'session': session, 'crop': crop, 'result': session.state()})
    while not session.done:
        step = session.step()
        emit('drag', step.step, drag_config.max_steps, {'face': k, 'session': session, 'crop': crop, 'result': step,
                                                        'distance': max(step.distances)})
    final = session.state()
    edited = stylegan.to_uint8(session.render())[0]
    timings['drag'] = time.perf_counter() - t
    del G_tuned, session

    final_crop = np.array(final.handles, np.float64)
    final_photo = tf.to_photo(final_crop)
    metrics = inv.metrics.get('tuning') or inv.metrics.get('projection')
    face = crop.face
    frec = FaceRecord(
        index=None if face is None or face.index < 0 else int(face.index),
        box=[float(v) for v in (face.box if face is not None else target)],
        landmarks=None if face is None or face.landmarks is None else np.asarray(face.landmarks).tolist(),
        score=None if face is None else float(face.score),
        crop_matrix=np.asarray(tf.matrix).tolist(), crop_size=list(tf.crop_size),
        handles_photo=handles_photo.tolist(), targets_photo=targets_photo.tolist(),
        handles_crop=handles_crop.tolist(), targets_crop=targets_crop.tolist(),
        mask=mask_info,
        inversion={'lpips': metrics.lpips, 'lpips_net': metrics.lpips_net, 'psnr': metrics.psnr,
                   'from_cache': bool(inv.from_cache), 'image_hash': inv.image_hash,
                   'stages': {name: dataclasses.asdict(m) for name, m in inv.metrics.items()}},
        drag={'steps': final.step, 'reason': final.reason, 'handles_crop': final_crop.tolist(),
              'handles_photo': final_photo.tolist(), 'distances_crop': [float(d) for d in final.distances],
              'distances_photo': np.hypot(*(targets_photo - final_photo).T).tolist()},
        timings={k2: round(v, 3) for k2, v in timings.items()})
    return FaceResult(crop=crop, reconstruction=reconstruction, edited=edited, inversion=inv, drag=final,
                      mask=mask_crop), frec


def _masked_edit(r: FaceResult) -> np.ndarray:
    """The edited crop where the mask lets it change, the reconstruction where it is frozen:
    the paste region (|edited - reference|) then stays inside the mask."""
    if r.mask is None:
        return r.edited
    m = r.mask[..., None]
    mixed = r.edited.astype(np.float32) * m + r.reconstruction.astype(np.float32) * (1 - m)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- inputs, checked

def _normalise(edits, face) -> List[FaceEdit]:
    """Any accepted form of `edits` -> FaceEdits, each naming its face (None: decided by the handles)."""
    if isinstance(edits, FaceEdit):
        items = [edits]
    elif isinstance(edits, dict):
        items = []
        for key, value in edits.items():
            sel = tuple(key) if isinstance(key, (list, tuple)) else key
            items.append(dataclasses.replace(value, face=sel) if isinstance(value, FaceEdit)
                         else FaceEdit(face=sel, drags=value))
    else:
        try:
            items = list(edits)
        except TypeError:
            raise InvalidPointsError(f'edits must be drags ((x1, y1), (x2, y2)), FaceEdits or a dict of them, '
                                     f'got {type(edits).__name__}') from None
        if items and all(isinstance(e, FaceEdit) for e in items):
            if face is not None and face != 'all':
                raise PhotodragError('give the face in each FaceEdit, not as face=, when passing FaceEdits')
        elif any(isinstance(e, FaceEdit) for e in items):
            raise InvalidPointsError('edits mixes FaceEdits and bare drags; use one or the other')
        else:
            items = [FaceEdit(face=face, drags=items)]
    out = []
    for item in items:
        sel = item.face
        if isinstance(sel, (list, np.ndarray)):
            sel = tuple(sel)
        if isinstance(sel, str) and sel != 'all':
            raise PhotodragError(f"a face is an index, a point (x, y) or 'all', got {sel!r}")
        if isinstance(sel, (bool, np.bool_)) or not (sel is None or sel == 'all' or isinstance(sel, (int, np.integer))
                                                    or (isinstance(sel, tuple) and len(sel) == 2)):
            raise PhotodragError(f"a face is an index, a point (x, y) or 'all', got {sel!r}")
        drags = [_as_drag(d, i) for i, d in enumerate(item.drags)]
        if not drags:
            raise InvalidPointsError('an edit needs at least one drag: handle (x1, y1) -> target (x2, y2)')
        out.append(FaceEdit(face=None if sel == 'all' else (int(sel) if isinstance(sel, (int, np.integer))
                                                            else sel),
                            drags=drags, mask=item.mask, box=None if item.box is None else _as_box(item.box)))
    if not out:
        raise InvalidPointsError('no edits given')
    return out


def _as_drag(d, i) -> Drag:
    try:
        (x1, y1), (x2, y2) = d
        drag = ((float(x1), float(y1)), (float(x2), float(y2)))
    except (TypeError, ValueError):
        raise InvalidPointsError(f'drag {i + 1} must be ((x1, y1), (x2, y2)), got {d!r}') from None
    if not all(math.isfinite(v) for p in drag for v in p):
        raise InvalidPointsError(f'drag {i + 1} has a coordinate that is not a finite number: {d!r}')
    return drag


def _as_box(box) -> Box:
    try:
        b = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        b = ()
    if len(b) != 4 or not all(math.isfinite(v) for v in b) or b[2] <= b[0] or b[3] <= b[1]:
        raise PhotodragError(f'a box is (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box!r}')
    return b


def _check_photo_point(p, size, what: str) -> None:
    w, h = size
    x, y = (float(v) for v in p)
    if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= w - 1 and 0 <= y <= h - 1):
        raise InvalidPointsError(f'{what} ({x:g}, {y:g}) is outside the {w}x{h} photo '
                                 f'(valid x: 0..{w - 1}, y: 0..{h - 1})')


def _check_drags(drags, size) -> None:
    for i, (h, t) in enumerate(drags):
        _check_photo_point(h, size, f'handle {i + 1}')
        _check_photo_point(t, size, f'target {i + 1}')


def _check_in_crop(p, q, crop, what: str, face_name: str) -> None:
    x0, y0, x1, y1 = crop.content
    if not (x0 <= q[0] <= x1 - 1 and y0 <= q[1] <= y1 - 1):
        raise InvalidPointsError(
            f'{what} ({p[0]:g}, {p[1]:g}) lies outside the aligned crop of {face_name} (it maps to '
            f'({q[0]:.1f}, {q[1]:.1f}) in the {crop.image.shape[1]}x{crop.image.shape[0]} crop); put the points on '
            'that face or its surroundings, or choose the face with --face')


def _face_name(k: int, crop) -> str:
    if crop.face is not None:
        return f'face {crop.face.index}'
    return f'edit {k}' if crop.recipe != 'object' else 'the object box'


def _load_mask(mask, size) -> Tuple[Optional[np.ndarray], Optional[Dict[str, Any]]]:
    """(photo-sized float32 mask in [0, 1] or None, its record entry)."""
    if mask is None:
        return None, None
    w, h = size
    path = None
    if isinstance(mask, (str, os.PathLike)):
        from PIL import Image, ImageOps, UnidentifiedImageError
        from photodrag.errors import UnreadableImageError
        path = Path(mask)
        try:
            with Image.open(path) as im:
                im.load()
                gray = ImageOps.exif_transpose(im).convert('L')
        except FileNotFoundError:
            raise UnreadableImageError(f'{path}: no such mask file') from None
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise UnreadableImageError(f'cannot read mask {path}: {e}') from None
        if gray.size != (w, h):
            raise InvalidMaskError(f'mask {path} is {gray.size[0]}x{gray.size[1]}; it must be the photo\'s size '
                                   f'{w}x{h} (white = may change, black = keep)')
        m = np.asarray(gray, np.float32) / 255.0
    else:
        a = np.asarray(mask)
        if a.shape != (h, w):
            raise InvalidMaskError(f'a mask must be photo-sized [{h}, {w}] (height, width), got shape {a.shape}')
        if a.dtype == np.bool_:
            m = a.astype(np.float32)
        elif a.dtype == np.uint8:
            m = a.astype(np.float32) / 255.0
        elif np.issubdtype(a.dtype, np.floating):
            m = a.astype(np.float32)
            if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
                raise InvalidMaskError('mask values must lie in [0, 1] (1 = may change)')
        else:
            raise InvalidMaskError(f'a mask is bool, uint8 or float in [0, 1], got {a.dtype}')
    m = np.ascontiguousarray(m)
    digest = hashlib.sha256(f'{m.shape};'.encode() + m.tobytes()).hexdigest()
    return m, {'path': str(path.resolve()) if path is not None else None, 'sha256': digest}


def _check_points_in_mask(mask, drags) -> None:
    if mask is None:
        return
    for i, (h, t) in enumerate(drags):
        for what, (x, y) in ((f'handle {i + 1}', h), (f'target {i + 1}', t)):
            if mask[int(round(y)), int(round(x))] < 0.01:
                raise InvalidMaskError(f'{what} at ({x:g}, {y:g}) lies in the masked (frozen) area; paint it as '
                                       'editable or move the point')


def _recipe(checkpoint, recipe: Optional[str], size: int, G=None):
    """The crop recipe: `recipe` if given, else the checkpoint's (`alignment.recipe_for`)."""
    from photodrag import alignment
    if recipe is not None:
        name = {'none': 'object'}.get(recipe, recipe)
        if name not in alignment.RECIPES:
            raise PhotodragError(f'unknown crop recipe {recipe!r}; known: {", ".join(alignment.RECIPES)}')
        r = alignment.RECIPES[name]
        return dataclasses.replace(r, size=size)
    return alignment.recipe_for(checkpoint, G, size=size)


def _assign(jobs: List[FaceEdit], found, rec, box, photo, detector, size) -> List:
    """Each job's `Face` (index -1: located by a box) or, for object recipes, its box; splits
    jobs that pick their faces by the handles into one job per face (`jobs` is updated)."""
    from photodrag import alignment
    if not rec.face:
        for job in jobs:
            if job.face is not None:
                raise PhotodragError(f'the {rec.name!r} crop recipe works on a box, not on faces; give a box '
                                     '(or none for the whole photo) instead of a face')
        if len(jobs) > 1 and any(job.box is None for job in jobs) and box is None:
            raise PhotodragError('several edits of one photo with an object recipe need a box each')
        return [job.box or box or (0.0, 0.0, float(size[0]), float(size[1])) for job in jobs]

    out: List = []
    split: List[FaceEdit] = []
    for job in jobs:
        if job.box is not None or (box is not None and job.face is None):
            b = job.box or box
            det = detector or alignment.default_detector()
            split.append(job)
            out.append(alignment.Face(box=b, landmarks=det.landmarks(photo.pixels, b), score=0.0, index=-1))
        elif job.face is None:
            groups: Dict[int, List[Drag]] = {}
            for d in job.drags:
                groups.setdefault(alignment.select_face(found, point=d[0]).index, []).append(d)
            for index in sorted(groups):
                split.append(dataclasses.replace(job, face=index, drags=groups[index]))
                out.append(found[index])
        else:
            if isinstance(job.face, tuple):
                f = alignment.select_face(found, point=job.face)
            else:
                f = alignment.select_face(found, index=job.face)
            split.append(job)
            out.append(f)
    jobs[:] = split
    seen = {}
    for k, f in enumerate(out):
        if f.index >= 0:
            if f.index in seen:
                raise PhotodragError(f'face {f.index} is edited twice (edits {seen[f.index]} and {k}); put all of '
                                     'its drags in one edit')
            seen[f.index] = k
    return out


# ---------------------------------------------------------------- records

def pixels_sha256(pixels: np.ndarray) -> str:
    """sha256 of an image's shape and uint8 pixels (what 'bit-identical' is checked with)."""
    a = np.ascontiguousarray(pixels)
    return hashlib.sha256(f'{a.shape};{a.dtype};'.encode() + a.tobytes()).hexdigest()


def _file_sha256(path) -> str:
    from photodrag.checkpoints import sha256_file
    return sha256_file(path)


def _checkpoint_info(checkpoint, G) -> Dict[str, Any]:
    from photodrag import checkpoints
    from photodrag.inversion import generator_hash
    text = os.fspath(checkpoint)
    path = digest = None
    if not text.startswith('random:') or Path(text).exists():
        path = checkpoints.resolve_path(text, download=False)
        if path.is_file():
            digest = _file_sha256(path)
        path = str(Path(path).resolve())
    return {'name': text, 'path': path, 'sha256': digest, 'generator_hash': generator_hash(G),
            'resolution': int(G.img_resolution), 'description': checkpoints.describe(G)}


def _library_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version('photodrag')
    except PackageNotFoundError:
        return 'unknown'


def _environment() -> Dict[str, str]:
    import torch
    return {'python': platform.python_version(), 'torch': torch.__version__, 'numpy': np.__version__,
            'platform': platform.platform(), 'threads': str(torch.get_num_threads())}


# ---------------------------------------------------------------- pictures

def before_after(result: EditResult, points: bool = True) -> np.ndarray:
    """The input and the edited photo side by side (uint8 RGB), with the drags drawn on the
    input (handles red, targets blue) and the reached handles on the output."""
    from .report import draw_points
    before, after = result.photo.pixels, result.pixels
    if points:
        handles = [tuple(h) for f in result.record.faces for h in f.handles_photo]
        targets = [tuple(t) for f in result.record.faces for t in f.targets_photo]
        reached = [tuple(h) for f in result.record.faces for h in f.drag['handles_photo']]
        before = draw_points(before, handles, targets)
        after = draw_points(after, reached, targets)
    gap = np.full((before.shape[0], max(4, before.shape[1] // 100), 3), 255, np.uint8)
    return np.concatenate([before, gap, after], axis=1)


__all__ = ['edit', 'edit_from_record', 'EditResult', 'EditRecord', 'FaceEdit', 'FaceRecord', 'FaceResult',
           'before_after', 'pixels_sha256']
