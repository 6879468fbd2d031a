"""edit(): a real photo in, the dragged photo out — detect, align, invert, drag, paste back.

    from photodrag import pipeline
    result = pipeline.edit('group.jpg', [((410, 300), (418, 290))], checkpoint='demo-faces')
    result.save('group_edited.jpg')                       # format, EXIF, ICC, JPEG quality kept
    result.record.save('group_edited.json')
    again = pipeline.edit_from_record('group_edited.json')  # the same pixels, on the same machine

Points and masks are given in photo pixels (docs/architecture.md); each face's
`CropTransform` maps them into its aligned crop and maps the results back. Faces are edited
one after another, each in its own crop with its own inversion, and pasted into one output.
The reconstruction before the drag is the paste reference, so only what the drag changed
(the old and the new silhouette) is blended in; every other pixel is the input's, bit for bit.
"""

import dataclasses
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from photodrag.errors import InvalidPointsError, PhotodragError

from . import checks
from .checks import Box, Drag, FaceEdit, FaceSelector, MaskLike
from .config import EditConfig
from .record import EditRecord, FaceRecord, checkpoint_info, environment, library_version, pixels_sha256
from .script import progressive

# callback(stage, step, total, info): stage 'load', 'detect', 'align', 'projection', 'tuning',
# 'drag' or 'paste'; info['face'] is the position of the face being edited (0, 1, ...); the
# 'drag' stage also passes the live `session`, its `crop` and the step's `result`.
Callback = Callable[[str, int, int, Dict[str, Any]], None]


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
    region: Optional[np.ndarray] = None     # photo-space local editable region (no mask given), if any
    motions: Tuple = ()         # crop-space ((x, y) before, (x, y) after) of each handle's content, as measured


@dataclass(frozen=True, eq=False)
class EditResult:
    """The edited photo's pixels (uint8 RGB, the input's size), the input `Photo`, the blend
    mask (photo-sized float32; 0 = the input's pixels unchanged), per-face results, the record."""
    pixels: np.ndarray
    photo: Any                  # alignment.Photo
    blend_mask: np.ndarray
    faces: Tuple[FaceResult, ...]
    record: EditRecord

    def save(self, path, quality: Union[int, str, None] = None, details: Optional[dict] = None) -> Path:
        """Write the edited photo like the input (format by suffix, EXIF, ICC, JPEG quality), atomically.
        A JPEG of a JPEG keeps the input's coded blocks outside the edit; `details` (a dict)
        receives under 'encoding' how the file was coded, for `record.with_encoding`."""
        from photodrag import alignment
        return alignment.write_photo(self.pixels, path, like=self.photo, quality=quality, details=details)

    def before_after(self, points: bool = True) -> np.ndarray:
        """Input | output side by side, the drags drawn small and hollow (`report.before_after`)."""
        from .report import before_after
        return before_after(self, points=points)


# ---------------------------------------------------------------- edit

def edit(photo, edits=(), config: Optional[EditConfig] = None, *, face: FaceSelector = None, presets=(),
         preset_files: Sequence = (), mask: MaskLike = None, box: Optional[Box] = None,
         callback: Optional[Callback] = None, cache: Union[bool, str, os.PathLike] = True, detector=None,
         download: bool = True, generator=None, **settings) -> EditResult:
    """Drag points on the faces (or object) of a real photo and paste the result back.

    photo: a path or an `alignment.Photo`. edits: drags ((x1, y1), (x2, y2)) for the face
    chosen by `face` (see `FaceEdit`), one `FaceEdit`, a list of them, or a dict
    {face: drags or FaceEdit}. All points and masks are in photo pixels.
    config: an `EditConfig`; keyword `settings` are its fields and replace them
    (`edit(photo, drags, checkpoint='demo-faces', quality='fast', max_steps=100)`).
    The checkpoint's registry entry picks the crop recipe (config.recipe overrides; files
    default to 'ffhq'); object recipes crop `box` (or each FaceEdit's box, or the whole photo).
    mask: a photo-sized mask for every face without its own. Without any mask, config.region
    'local' (the default) lets only a region around each face's drags change
    (`checks.drag_region`): the drag keeps the rest still and the paste never touches a pixel
    outside it; 'whole' lets the whole crop change, as DragGAN does. cache: reuse inversions
    of the same crop ($PHOTODRAG_CACHE/inversions, or this folder).
    presets: expression presets ('smile', 'open-eyes:0.6', `presets.PresetUse`) for the faces
    `face` picks ('all', an index, a point; without `face`: the faces of the drags, or the only
    face): their drags come from each face's landmarks and, without a mask, only their region
    (mouth, eyes, brows) may change. preset_files: presets files that add to the built-in ones.
    generator: the generator of config.checkpoint, already loaded on config.device (a batch
    loads it once for all its photos); None loads it.

    The steps, one function each (docs/architecture.md cites them):
      1. read & check (`check_inputs`): settings, photo, drags, presets, masks, the points in
         the masks; a wrong input fails here, before anything slow runs.
      2. load (`_load`): the generator, the encoder inversions start from, the crop recipe.
      3. faces (`_find_faces`): detect once, give every edit its face (or box), add presets.
      4. per face (`_edit_face`): its editable region, aligned crop, inversion and drag.
      5. paste & assemble (`assemble`): every face pasted into the photo, and the record.

    Raises `InvalidPointsError` for points outside the photo or outside the face's crop,
    `NoFaceFoundError` when there is no face or the index is out of range, and
    `InvalidSettingsError` for settings that make no sense."""
    started = time.perf_counter()
    timings: Dict[str, float] = {}
    with _timed(timings, 'read'):
        inputs = check_inputs(photo, edits, config, face=face, presets=presets, preset_files=preset_files,
                              mask=mask, box=box, **settings)
    with _timed(timings, 'load'):
        run = _load(inputs, generator=generator, download=download, cache=cache, emit=callback or _silent)
    with _timed(timings, 'detect'):
        jobs, targets, faces_found = _find_faces(run, detector)
    results, records = [], []
    for k, (job, target) in enumerate(zip(jobs, targets)):
        result, record = _edit_face(run, k, job, target)
        results.append(result)
        records.append(record)
        for stage, seconds in record.timings.items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    from photodrag.alignment import DEFAULT_DETECTOR
    return assemble(run.photo, results, records, run.config, checkpoint=run.checkpoint, recipe=run.recipe,
                    faces_found=faces_found, timings=timings, started=started, emit=run.emit,
                    detector=getattr(detector, 'name', None) if detector is not None else DEFAULT_DETECTOR)


def _silent(*args) -> None:
    """The callback of an edit nobody watches."""


@contextmanager
def _timed(timings: Dict[str, float], stage: str):
    """Add the seconds the block takes to timings[stage]."""
    t = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t


@dataclass(frozen=True, eq=False)
class PhotoMasks:
    """The photo-space masks of an edit's jobs, each source read once (jobs split by face share
    their FaceEdit's mask); `default` (edit()'s mask=) serves the jobs without their own."""
    default: MaskLike
    size: Tuple[int, int]
    loaded: Dict[int, Tuple] = field(default_factory=dict)     # id(source) -> (array, record entry)

    def of(self, job: FaceEdit) -> Tuple[Optional[np.ndarray], Optional[Dict[str, Any]]]:
        """(the job's photo-sized float32 mask or None, its record entry)."""
        source = job.mask if job.mask is not None else self.default
        if id(source) not in self.loaded:
            self.loaded[id(source)] = checks.photo_mask(source, self.size)
        return self.loaded[id(source)]


@dataclass(frozen=True, eq=False)
class EditInputs:
    """What `check_inputs` found valid: the settings, the photo and the jobs, before anything slow."""
    config: EditConfig
    inversion: Any              # inversion.InversionConfig: config.inversion_config()
    drag: Any                   # drag.DragConfig: config.drag_config()
    photo: Any                  # alignment.Photo
    jobs: Tuple[FaceEdit, ...]  # drags checked in the photo and in their masks; presets resolved
    face: FaceSelector          # the faces `presets` go to
    presets: Tuple[Any, ...]    # the presets.PresetUse of edit()'s presets=
    box: Optional[Box]
    masks: PhotoMasks

    @property
    def size(self) -> Tuple[int, int]:
        return self.photo.size


def check_inputs(photo, edits=(), config: Optional[EditConfig] = None, *, face: FaceSelector = None, presets=(),
                 preset_files: Sequence = (), mask: MaskLike = None, box: Optional[Box] = None,
                 **settings) -> EditInputs:
    """Step 1 of `edit` (same arguments): settings first, then the photo, the drags, the presets,
    the masks and the drags' points in them; every error here comes before anything slow."""
    from photodrag import alignment
    from photodrag.expressions import presets as presets_mod
    config = EditConfig.with_settings(config, **settings)
    inv_config, drag_config = config.inversion_config(), config.drag_config()
    known_presets = presets_mod.available(preset_files)      # each presets file read once
    preset_uses = tuple(presets_mod.uses(presets, known=known_presets))
    photo = photo if isinstance(photo, alignment.Photo) else alignment.read_photo(photo)
    jobs = checks.normalise(edits, face, allow_none=bool(preset_uses))
    box = None if box is None else checks.check_box(box)
    jobs = [dataclasses.replace(job, presets=presets_mod.uses(job.presets, known=known_presets)) for job in jobs]
    if preset_uses and box is not None and face is not None:
        raise PhotodragError('presets go to the face in the box, or to the faces face= picks; give a box or a face, '
                             'not both')
    if not jobs and box is not None:
        jobs = [FaceEdit(box=box)]          # presets on the face in the box
    for job in jobs:
        checks.check_drags(job.drags, photo.size)
        if isinstance(job.face, tuple):
            checks.check_photo_point(job.face, photo.size, 'the face point')
    masks = PhotoMasks(mask, photo.size)
    for job in jobs:
        checks.check_points_in_mask(masks.of(job)[0], job.drags)
    return EditInputs(config=config, inversion=inv_config, drag=drag_config, photo=photo, jobs=tuple(jobs),
                      face=face, presets=preset_uses, box=box, masks=masks)


@dataclass(frozen=True, eq=False)
class _Run:
    """What steps 3 to 5 of one edit share once the generator is loaded (step 2)."""
    inputs: EditInputs
    G: Any                      # the generator of inputs.config.checkpoint, on its device
    recipe: Any                 # alignment.CropRecipe
    checkpoint: Dict[str, Any]  # the record's entry for the generator
    encoder: Any                # inversion.Encoder the inversions start from, or None (w_avg)
    cache: Union[bool, str, os.PathLike]
    emit: Callback

    @property
    def photo(self):
        return self.inputs.photo

    @property
    def config(self) -> EditConfig:
        return self.inputs.config


def _load(inputs: EditInputs, *, generator, download: bool, cache, emit: Callback) -> _Run:
    """Step 2: the generator (`generator` when given), the encoder and the crop recipe."""
    from photodrag import checkpoints
    config = inputs.config
    emit('load', 0, 1, {})
    G = generator if generator is not None else \
        checkpoints.load_generator(config.checkpoint, device=config.device, download=download)
    ckpt_info = checkpoint_info(config.checkpoint, G)
    encoder = None
    if inputs.inversion.init != 'mean':
        from photodrag.inversion.encoder import for_generator
        encoder = for_generator(G, config.checkpoint, config.encoder)
    rec = checks.crop_recipe(config.checkpoint, config.recipe, int(G.img_resolution), G)
    emit('load', 1, 1, {'checkpoint': ckpt_info})
    return _Run(inputs=inputs, G=G, recipe=rec, checkpoint=ckpt_info, encoder=encoder, cache=cache, emit=emit)


def _find_faces(run: _Run, detector) -> Tuple[List[FaceEdit], List, int]:
    """Step 3: detect the faces once, then give every job its face (or box), splitting jobs
    whose drags pick their faces, and add the presets: (jobs, their targets, faces found)."""
    from photodrag import alignment
    inputs, rec, photo = run.inputs, run.recipe, run.photo
    jobs = list(inputs.jobs)
    found: List = []
    if rec.face and (any(job.box is None and inputs.box is None for job in jobs) or (inputs.presets and not jobs)):
        run.emit('detect', 0, 1, {})
        found = alignment.detect_faces(photo, detector=detector, upsample=run.config.upsample)
        if not found:
            raise alignment.no_face_error(0, str(photo.path or 'the photo'), run.config.upsample)
        run.emit('detect', 1, 1, {'faces': len(found)})
    people: List = []
    if rec.name == 'body' and inputs.box is None and any(job.box is None for job in jobs):
        # full-body people: each found from their face (none found: the whole photo, as before)
        run.emit('detect', 0, 1, {})
        people = alignment.detect_people(photo, alignment.detect_faces(photo, detector=detector,
                                                                       upsample=run.config.upsample))
        run.emit('detect', 1, 1, {'people': len(people)})
    if not rec.face and (inputs.presets or any(job.presets for job in jobs)):
        raise PhotodragError(f'presets move face landmarks; the {rec.name!r} crop recipe has none (use a face '
                             'checkpoint or recipe, or give drags)')
    targets = _assign(jobs, found, rec, inputs.box, photo, detector, inputs.size, people)
    if inputs.presets:
        _add_presets(jobs, targets, inputs.presets, inputs.face, found)
    return jobs, targets, len(found) or len(people)


def _edit_face(run: _Run, k: int, job: FaceEdit, target) -> Tuple[FaceResult, FaceRecord]:
    """Step 4 for face k (`target`: its `Face`, or a box): its editable region, aligned crop,
    inversion and drag; its result and record."""
    from .script import decode_mask
    given = len(job.drags)
    job, mask_photo, mask_info = _face_region(run, job, target, given)
    timings: Dict[str, float] = {}
    with _timed(timings, 'align'):
        face = align_face(k, job.drags, target, run.photo, run.G, run.recipe, run.emit)
        # a user's mask also drives the drag's keep-still term; the local region only bounds the
        # paste: held still inside the generator as well, the mouth corners of the demo's drag moved
        # 0.00 / 0.12 of the way instead of 0.25 / 0.48 (re-detected landmarks, astronaut, 6 %)
        local = (mask_info or {}).get('kind') in ('local', 'preset')
        mask_crop = None if mask_photo is None or local else face.crop.transform.mask_to_crop(mask_photo)
    with _timed(timings, 'invert'):
        inv = invert_face(k, run.G, face.crop, run.inputs.inversion, device=run.config.device, cache=run.cache,
                          emit=run.emit, encoder=run.encoder)
        G_tuned = inv.generator(run.G)
    with _timed(timings, 'drag'):
        if job.script is not None and progressive(job.script):
            # begun in the web editor before the tuning ended: on the inversion's start first
            from photodrag.inversion import preview
            start = preview(run.G, face.crop.image, run.inputs.inversion, device=run.config.device,
                            encoder=run.encoder)
            session = start_drag(run.G, start, face, mask_crop, run.inputs.drag, device=run.config.device)
        else:
            session = start_drag(G_tuned, inv.ws, face, mask_crop, run.inputs.drag, device=run.config.device)
        scripted = _drag(run, k, face, job, session, tuned=lambda: (G_tuned, inv.ws))
        reconstruction = drag_start_image(session)
        if scripted is not None and scripted.mask_png is not None:
            # a region painted in the editor bounds the paste, not the local one
            mask_crop = decode_mask(scripted.mask_png, session.resolution)
            mask_info, local = painted_mask_info(mask_crop), False
    return finish_face(face, target, job, inv, session, reconstruction, mask_crop=mask_crop, mask_info=mask_info,
                       region=mask_photo if local else None, timings=timings, given=given, script=scripted)


def _face_region(run: _Run, job: FaceEdit, target, given: int):
    """(the job with its presets' drags after its `given` own, its photo mask or local editable
    region (None: the whole crop may change), the mask's record entry)."""
    size = run.inputs.size
    job, preset_region = _with_presets(job, target, size)
    mask_photo, mask_info = run.inputs.masks.of(job)
    checks.check_points_in_mask(mask_photo, job.drags[given:], start=given + 1)
    if mask_photo is None and run.config.region == 'local':
        own = job.drags[:given]
        if job.script is not None:          # every pair an interactive drag was given
            from .script import script_drags
            own = script_drags(own, job.script)
        mask_photo, mask_info = local_region(own, target, size, preset_region, job.presets)
    return job, mask_photo, mask_info


def _drag(run: _Run, k: int, face: 'AlignedFace', job: FaceEdit, session, tuned):
    """Drag face k to the end: the job's interactive drag call for call (its `ScriptedDrag` is
    returned; `tuned()` gives the tuned generator and latent for its 'tuned' op), or step by
    step until the session is done (None is returned)."""
    total = run.inputs.drag.max_steps
    run.emit('drag', 0, total, {'face': k, 'session': session, 'crop': face.crop, 'result': session.state()})
    if job.script is not None:
        from .script import ScriptedDrag
        scripted = ScriptedDrag(session, face.crop.transform, tuned=tuned)
        scripted.replay(job.script)
        return scripted
    while not session.done:
        step = session.step()
        run.emit('drag', step.step, total, {'face': k, 'session': session, 'crop': face.crop, 'result': step,
                                            'distance': max(step.distances)})
    return None


def edit_from_record(record, *, photo=None, checkpoint=None, masks: Optional[Dict[int, np.ndarray]] = None,
                     device: Optional[str] = None, callback: Optional[Callback] = None,
                     cache: Union[bool, str, os.PathLike] = True, detector=None) -> EditResult:
    """Run the edit a record describes again (a record, its dict, or a JSON file).

    The photo and checkpoint come from the record (overridable) and must have the recorded
    sha256; every setting comes from the record. On the same machine and device the output
    is bit-identical (compare `result.record.output['pixels_sha256']`). `masks`: arrays for
    faces whose mask was given as an array (the record keeps only its hash), by face position."""
    from photodrag import alignment
    from photodrag.io import sha256_file

    if not isinstance(record, EditRecord):
        record = EditRecord.from_dict(record) if isinstance(record, dict) else EditRecord.load(record)
    config = record.edit_config()
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
    recorded_file = record.input.get('sha256')
    if recorded_file and photo.path and Path(photo.path).is_file() and sha256_file(photo.path) != recorded_file:
        import warnings
        warnings.warn(f'{photo.path} has the pixels of the record\'s photo but is another file (sha256 '
                      f'{sha256_file(photo.path)[:12]}, recorded {recorded_file[:12]}: re-saved, or its metadata '
                      'changed); the edit replays the same, the output keeps this file\'s metadata', stacklevel=2)
    ckpt = checkpoint if checkpoint is not None else (record.checkpoint.get('name') or record.checkpoint.get('path'))
    if checkpoint is None and record.checkpoint.get('sha256'):
        from photodrag import checkpoints
        path = checkpoints.resolve_path(ckpt)
        digest = sha256_file(path)
        if digest != record.checkpoint['sha256']:
            raise PhotodragError(f'checkpoint {ckpt} ({path}) has sha256 {digest[:12]}, the record was made with '
                                 f'{record.checkpoint["sha256"][:12]}; pass the original checkpoint')

    jobs = []
    for k, f in enumerate(record.faces):
        m = None
        script = None
        if isinstance(f.drag, dict) and f.drag.get('script') is not None:     # made in the web editor
            from .script import check_script
            script = check_script(f.drag['script'], f'face {k} of the record')
        if f.mask is not None and f.mask.get('kind') == 'painted' and script is None:
            raise PhotodragError(f'face {k} of the record has a painted mask but no drag script; the record is damaged')
        if f.mask is not None and f.mask.get('kind') not in ('local', 'preset', 'painted'):     # made again
            if masks is not None and k in masks:
                m = masks[k]
            elif f.mask.get('path'):
                m = f.mask['path']
            else:
                raise PhotodragError(f'face {k} of the record had a mask given as an array; pass masks={{{k}: array}}')
        drags = [(tuple(h), tuple(t)) for h, t in zip(f.handles_photo, f.targets_photo)]
        if f.presets:                           # the presets' drags are made again from the face's landmarks
            from photodrag.expressions import presets as presets_mod
            if not isinstance(f.drags_given, int) or not 0 <= f.drags_given <= len(drags):
                raise PhotodragError(f'face {k} of the record has presets but no valid drags_given; the record is '
                                     'damaged')
            uses = tuple(presets_mod.PresetUse.from_dict(p) for p in f.presets)
            drags = drags[:f.drags_given]
        else:
            uses = ()
        if f.index is not None:
            jobs.append(FaceEdit(face=int(f.index), drags=drags, mask=m, presets=uses, script=script))
        else:
            jobs.append(FaceEdit(face=None, drags=drags, mask=m, box=tuple(f.box), presets=uses, script=script))
    config = config.replace(checkpoint=os.fspath(ckpt), device=device or config.device)
    if detector is None and any(job.face is not None for job in jobs):
        # the faces the record was made on: records from before RetinaFace name no detector (HOG)
        detector = alignment.named_detector((record.detection or {}).get('detector') or 'hog')
    result = edit(photo, jobs, config, callback=callback, cache=cache, detector=detector)
    for k, f in enumerate(record.faces):
        if f.mask is not None and result.record.faces[k].mask['sha256'] != f.mask['sha256']:
            raise PhotodragError(f'the mask of face {k} is not the one of the record (its values differ)')
    return result


# ---------------------------------------------------------------- one face
# The steps of one face's edit, one function each: edit() runs them in a row, the web editor
# (photodrag.web) runs them as the user asks, with the same arguments, so both give the same
# pixels and the same record.

@dataclass(frozen=True, eq=False)
class AlignedFace:
    """A face's aligned crop, and its drags in photo and crop pixels (checked to lie in the crop)."""
    k: int
    crop: Any                   # alignment.AlignedCrop
    handles_photo: np.ndarray
    targets_photo: np.ndarray
    handles_crop: np.ndarray
    targets_crop: np.ndarray

    @property
    def name(self) -> str:
        return checks.face_name(self.k, self.crop)

    def to_crop(self, points, what: str = 'point') -> np.ndarray:
        """Photo points [N, 2] -> crop points, each checked to lie in the crop."""
        photo = np.asarray(points, np.float64).reshape(-1, 2)
        crop = self.crop.transform.to_crop(photo)
        for i, (p, q) in enumerate(zip(photo, crop)):
            checks.check_in_crop(p, q, self.crop, f'{what} {i + 1}' if len(photo) > 1 else what, self.name)
        return crop


def align_face(k: int, drags, target, photo, G, rec, emit: Callback) -> AlignedFace:
    """Cut face `k`'s crop (`target`: its `Face`, or a box) and map its drags into it."""
    from photodrag import alignment
    emit('align', 0, 1, {'face': k})
    crop = alignment.align(photo, target, size=int(G.img_resolution), recipe=rec)
    tf = crop.transform
    handles_photo = np.array([d[0] for d in drags], np.float64).reshape(-1, 2)
    targets_photo = np.array([d[1] for d in drags], np.float64).reshape(-1, 2)
    face = AlignedFace(k, crop, handles_photo, targets_photo, tf.to_crop(handles_photo), tf.to_crop(targets_photo))
    for i, (p, q) in enumerate(zip(handles_photo, face.handles_crop)):
        checks.check_in_crop(p, q, crop, f'handle {i + 1}', face.name)
    for i, (p, q) in enumerate(zip(targets_photo, face.targets_crop)):
        checks.check_in_crop(p, q, crop, f'target {i + 1}', face.name)
    emit('align', 1, 1, {'face': k, 'crop': crop})
    return face


def invert_face(k: int, G, crop, inv_config, *, device, cache, emit: Callback, encoder=None):
    """The crop's inversion (from the cache when it holds this crop and these settings),
    starting from `encoder`'s latents when given and the settings allow it (init 'auto')."""
    from photodrag.inversion import invert
    return invert(G, crop.image, inv_config, device=device, cache=cache, encoder=encoder,
                  callback=lambda stage, step, total, metrics: emit(stage, step, total, {**metrics, 'face': k}))


def start_drag(G, ws, face: AlignedFace, mask_crop, drag_config, *, device):
    """The DragSession on `G` from latent `ws` (the inversion's, on its tuned generator) with the
    face's crop drags; `drag_start_image` gives the paste's reference."""
    from photodrag.drag import DragSession
    return DragSession(G, ws.to(device), [tuple(p) for p in face.handles_crop.tolist()],
                       [tuple(p) for p in face.targets_crop.tolist()], mask=mask_crop, config=drag_config)


def drag_start_image(session) -> np.ndarray:
    """The image the drag started from on the generator it is on now, uint8 [R, R, C]: what
    the paste measures the edit's motion against (after a progressive start, the tuned
    generator's reconstruction)."""
    from photodrag import stylegan
    return stylegan.to_uint8(session.render(start=True))[0]


def finish_face(face: AlignedFace, target, job: FaceEdit, inv, session, reconstruction, *, mask_crop, mask_info,
                region, timings, given=None, script=None) -> Tuple[FaceResult, FaceRecord]:
    """The face's result and record once its drag is over (`session` in its final state).
    mask_crop: the crop mask the drag used (None: none); region: the photo-space local region
    bounding the paste (None: none); script: the `ScriptedDrag` the drag was made with, if any."""
    from photodrag import stylegan
    final = session.state()
    edited = stylegan.to_uint8(session.render())[0]
    tf = face.crop.transform
    final_crop = np.array(final.handles, np.float64).reshape(-1, 2)
    final_photo = tf.to_photo(final_crop)
    final_targets = tf.to_photo(np.array(final.targets, np.float64).reshape(-1, 2))
    metrics = inv.metrics.get('tuning') or inv.metrics.get('projection')
    f = face.crop.face
    content_crop, motions = content_in_crop(reconstruction, edited, face.handles_crop, face.targets_crop)
    drag = {'steps': final.step, 'reason': final.reason, 'handles_crop': final_crop.tolist(),
            'handles_photo': final_photo.tolist(), 'distances_crop': [float(d) for d in final.distances],
            'distances_photo': np.hypot(*(final_targets - final_photo).T).tolist(), 'content_crop': content_crop}
    if script is not None:
        drag['script'] = script.to_dict()
    frec = FaceRecord(
        index=None if f is None or f.index < 0 else int(f.index),
        box=[float(v) for v in (f.box if f is not None else target)],
        landmarks=None if f is None or f.landmarks is None else np.asarray(f.landmarks).tolist(),
        score=None if f is None else float(f.score),
        crop_matrix=np.asarray(tf.matrix).tolist(), crop_size=list(tf.crop_size),
        handles_photo=face.handles_photo.tolist(), targets_photo=face.targets_photo.tolist(),
        handles_crop=face.handles_crop.tolist(), targets_crop=face.targets_crop.tolist(),
        mask=mask_info,
        inversion={'lpips': metrics.lpips, 'lpips_net': metrics.lpips_net, 'psnr': metrics.psnr,
                   'from_cache': bool(inv.from_cache), 'image_hash': inv.image_hash, 'init': inv.config.init,
                   'encoder': inv.encoder,
                   'stages': {name: dataclasses.asdict(m) for name, m in inv.metrics.items()}},
        drag=drag,
        timings={k2: round(v, 3) for k2, v in timings.items()},
        presets=[u.to_dict() for u in job.presets], drags_given=len(job.drags) if given is None else int(given))
    return FaceResult(crop=face.crop, reconstruction=reconstruction, edited=edited, inversion=inv, drag=final,
                      mask=mask_crop, region=region, motions=motions), frec


def content_in_crop(before: np.ndarray, after: np.ndarray, handles, targets) -> Tuple[List[List[float]], Tuple]:
    """Where each handle's content went in the crop (the reconstruction before the drag against
    the dragged render, `evaluation.metrics.content_position`): [x, y] per handle, and the
    correspondences the paste is held to (those the images show clearly)."""
    from photodrag.drag.session import IMAGE_TRUST
    from photodrag.drag.tracking import patch_half
    from photodrag.evaluation.metrics import content_position
    half = patch_half(before.shape[0])
    found, motions = [], []
    for h, t in zip(handles, targets):
        at, score = content_position(before, after, h, t, half)
        found.append([round(at[0], 2), round(at[1], 2)])
        if score >= IMAGE_TRUST:
            motions.append(((float(h[0]), float(h[1])), at))
    return found, tuple(motions)


def painted_mask_info(mask_crop: np.ndarray) -> Dict[str, Any]:
    """The record entry of a mask painted on the crop (its pixels are in the drag script)."""
    from photodrag.io import mask_sha256
    return {'kind': 'painted', 'path': None, 'sha256': mask_sha256(mask_crop), 'space': 'crop'}


def assemble(photo, face_results, face_records, config: EditConfig, *, checkpoint: Dict[str, Any], recipe,
             faces_found: int, timings: Dict[str, float], started: Optional[float] = None,
             emit: Callback = _silent, detector: Optional[str] = None) -> EditResult:
    """Step 5 of `edit`: paste every face's edit into the photo, and the whole edit's record.
    checkpoint: the record's generator entry (`record.checkpoint_info`); recipe: the crop
    recipe; timings: seconds by stage so far (paste and total are added); started: when the
    edit began (`time.perf_counter()`; None: now); detector: the name of the face detector
    (None: the default's)."""
    from photodrag import alignment
    from photodrag.io import sha256_file
    width, height = photo.size
    t = time.perf_counter()
    started = t if started is None else started
    emit('paste', 0, 1, {})
    pasted = alignment.paste_back(photo, [alignment.Edit(r.crop, masked_edit(r), reference=r.reconstruction,
                                                         limit=r.region, motions=r.motions)
                                          for r in face_results], config.paste)
    timings['paste'] = time.perf_counter() - t
    for r, rec in zip(face_results, face_records):
        rec.drag.update(content_in_photo(photo.pixels, pasted.pixels, r.crop.transform, rec))
    emit('paste', 1, 1, {})
    timings['total'] = time.perf_counter() - started
    record = EditRecord(
        library_version=library_version(),
        input={'path': str(photo.path) if photo.path else None,
               'sha256': sha256_file(photo.path) if photo.path and Path(photo.path).is_file() else None,
               'pixels_sha256': pixels_sha256(photo.pixels), 'width': width, 'height': height,
               'format': photo.format},
        checkpoint=checkpoint, recipe=recipe.name, device=str(config.device),
        config=config.replace(recipe=recipe.name).resolved().to_dict(),
        detection={'upsample': config.upsample, 'faces_found': faces_found,
                   'detector': detector or alignment.DEFAULT_DETECTOR},
        faces=list(face_records),
        output={'pixels_sha256': pixels_sha256(pasted.pixels), 'width': width, 'height': height},
        timings={k: round(v, 3) for k, v in timings.items()},
        environment=environment())
    return EditResult(pixels=pasted.pixels, photo=photo, blend_mask=pasted.mask(), faces=tuple(face_results),
                      record=record)


REACHED = 0.9      # the share of the way, measured in the output photo, that counts as at the target


def content_in_photo(before: np.ndarray, after: np.ndarray, transform, face_record) -> Dict[str, Any]:
    """Where each handle's content sits in the output photo, measured from the images (not the
    tracker): the photo patch under the handle found again near the drag by normalised
    cross-correlation (`evaluation.metrics.content_position`), with the patch as wide as the
    drag's own check sees in the crop. content_photo: [x, y] per handle (photo px);
    content_progress: the share of the way it went (0 = unmoved, 1 = at the target);
    content_score: how clearly the images show it (1 = an exact match); reached: every handle's
    content went at least REACHED of the way (what 'reached' means in every report)."""
    from photodrag.drag.tracking import patch_half
    from photodrag.evaluation.metrics import content_moved
    crop_size = int(transform.crop_size[0])
    half = max(3, int(round(patch_half(crop_size) / transform.scale)))
    found, progress, score = [], [], []
    for h, t in zip(face_record.handles_photo, face_record.targets_photo):
        at, share, sure = content_moved(before, after, h, t, half)
        found.append([round(at[0], 2), round(at[1], 2)])
        progress.append(round(share, 3))
        score.append(round(sure, 3))
    return {'content_photo': found, 'content_progress': progress, 'content_score': score,
            'reached': bool(min(progress) >= REACHED) if progress else True}


def local_region(drags, target, size, preset_region=None, preset_uses=()):
    """The local editable region of a face's drags (`checks.drag_region`), sized by the face
    (or object box) width, joined with its presets' regions, and its record entry."""
    from photodrag.io import mask_sha256
    box = target if isinstance(target, tuple) else target.box      # an object recipe's box, or a Face
    width = float(box[2] - box[0])
    region = checks.drag_region(drags, width, size)
    if preset_region is not None:
        np.maximum(region, preset_region, out=region)
    info = {'kind': 'preset' if preset_uses else 'local', 'path': None, 'sha256': mask_sha256(region),
            'face_width': width, 'radius': [checks.REGION_FACE, checks.REGION_DRAG], 'feather': checks.REGION_FEATHER}
    if preset_uses:
        info['presets'] = [u.label for u in preset_uses]
    return region, info


def _add_presets(jobs: List[FaceEdit], targets: List, uses, face, found) -> None:
    """Give `uses` (the presets given to edit()) to the faces `face` picks: every found face
    ('all'), one face (an index or a point); without `face`, the faces the drags (or the box)
    edit, or else the only face of the photo."""
    from photodrag import alignment
    if isinstance(face, (list, np.ndarray)):
        face = tuple(face)
    if face is None and jobs:
        for k, job in enumerate(jobs):
            jobs[k] = dataclasses.replace(job, presets=tuple(job.presets) + tuple(uses))
        return
    if face == 'all':
        picked = list(found)
    elif face is not None:
        picked = [alignment.select_face(found, point=face) if isinstance(face, tuple)
                  else alignment.select_face(found, index=face)]
    elif len(found) == 1:
        picked = [found[0]]
    else:
        raise PhotodragError(f'the photo has {len(found)} faces; say which the presets are for: face=N (numbered '
                             'from 0, left to right; see `photodrag faces`) or face="all"')
    for f in picked:
        at = next((k for k, t in enumerate(targets) if t.index == f.index), None)     # presets: faces only
        if at is None:
            jobs.append(FaceEdit(face=f.index, presets=tuple(uses)))
            targets.append(f)
        else:
            jobs[at] = dataclasses.replace(jobs[at], presets=tuple(jobs[at].presets) + tuple(uses))


def _with_presets(job: FaceEdit, target, size) -> Tuple[FaceEdit, Optional[np.ndarray]]:
    """The job with its presets' drags after its own, and the presets' editable region (None without presets)."""
    if not job.presets:
        return job, None
    from photodrag.expressions import presets as presets_mod
    landmarks = target.landmarks        # presets need a face recipe: the target is a Face
    if landmarks is None:
        raise PhotodragError('presets move face landmarks, and this face has none')
    drags, region, labels = presets_mod.face_drags(job.presets, landmarks, size)
    w, h = size
    for (start, end), label in zip(drags, labels):
        for what, (x, y) in (('is', start), ('would move to', end)):
            if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
                raise InvalidPointsError(
                    f'{label} of face {target.index} {what} ({x:.0f}, {y:.0f}), outside the '
                    f'{w}x{h} photo; presets need the face inside the photo (a lower strength, or drags of your own)')
    return dataclasses.replace(job, drags=list(job.drags) + drags), region


def masked_edit(r: FaceResult) -> np.ndarray:
    """The edited crop where the mask lets it change, the reconstruction where it is frozen:
    the paste region (|edited - reference|) then stays inside the mask."""
    if r.mask is None:
        return r.edited
    m = r.mask[..., None]
    mixed = r.edited.astype(np.float32) * m + r.reconstruction.astype(np.float32) * (1 - m)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _assign(jobs: List[FaceEdit], found, rec, box, photo, detector, size, people=()) -> List:
    """Each job's `Face` (index -1: located by a box) or, for object recipes, its box; splits
    jobs that pick their faces (or, full-body, their people) by the handles into one job per
    face or person (`jobs` is updated)."""
    from photodrag import alignment
    if not rec.face:
        for job in jobs:
            if job.face is not None:
                raise PhotodragError(f'the {rec.name!r} crop recipe works on a box, not on faces; give a box '
                                     '(or none for the whole photo) instead of a face')
        if len(jobs) > 1 and any(job.box is None for job in jobs) and box is None and not people:
            raise PhotodragError('several edits of one photo with an object recipe need a box each')
        out: List = []
        split: List[FaceEdit] = []
        for job in jobs:
            if job.box is not None or box is not None or not people:
                split.append(job)
                out.append(job.box or box or (0.0, 0.0, float(size[0]), float(size[1])))
                continue
            groups: Dict[Box, List[Drag]] = {}          # the person whose box holds each handle
            for d in job.drags:
                groups.setdefault(alignment.select_person(people, d[0]), []).append(d)
            for person, drags in (groups or {alignment.select_person(people): []}).items():
                split.append(dataclasses.replace(job, drags=drags))
                out.append(person)
        if people and len(set(out)) < len(out):
            raise PhotodragError('one person is edited twice; put all of their drags in one edit')
        jobs[:] = split
        return out

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


__all__ = ['edit', 'edit_from_record', 'check_inputs', 'EditInputs', 'PhotoMasks', 'assemble', 'EditConfig', 'EditResult',
           'FaceResult', 'FaceEdit', 'Callback']
