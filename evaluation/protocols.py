"""The evaluation protocols behind `photodrag eval`: how well an edit lands, measured the way
the papers measure it, with whatever generator is at hand.

- `eval_landmarks`: DragGAN's landmark table (Pan et al. 2023, Table 1) moved to real
  photos: drag 1, 5 or 68 of face A's landmarks to face B's positions through the whole
  pipeline, find the landmarks again on the result, and report the mean distance (MD).
- `eval_content`: where the content under each handle went, found by cross-correlation in
  pixels (not in the generator's features), against the tracker's own final distance.
- `eval_dragbench`: DragBench (Shi et al. 2024) samples through the pipeline, results written
  where the published evaluation scripts read them, image fidelity and content distance.

Each returns a JSON-ready report dict (`write_report` writes it with a contact sheet) whose
top level holds the means and a `samples` list with the same keys per sample.
"""

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from photodrag.errors import NoFaceFoundError, PhotodragError

from . import metrics
from photodrag.pipeline.config import EditConfig

Progress = Optional[Callable[[int, int, Dict[str, Any]], None]]   # (samples done, total, last sample)

PHOTO_SUFFIXES = ('.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.bmp')


# ---------------------------------------------------------------- protocol 2: the content

def content_report(face_result, face_record, crop_size: int) -> List[Dict[str, Any]]:
    """Per drag of one edited face: where the content went in the crop (pixel cross-correlation
    between the reconstruction and the edited crop), the tracker's own final distance, the drag's
    region (by nearest landmark) and direction. Distances in crop pixels and at 512 px."""
    rows = []
    landmarks = face_result.crop.transform.to_crop(face_record.landmarks) if face_record.landmarks else None
    for k, (h, t) in enumerate(zip(face_record.handles_crop, face_record.targets_crop)):
        match = metrics.content_match(face_result.reconstruction, face_result.edited, h, t)
        tracker = float(face_record.drag['distances_crop'][k])
        region = None
        if landmarks is not None:
            region = metrics.region_of(int(np.argmin(np.hypot(*(np.asarray(landmarks) - h).T))))
        rows.append({'handle': list(h), 'target': list(t), 'found': match['found'], 'length': match['length'],
                     'content_distance': match['distance'], 'content_progress': match['progress'],
                     'tracker_distance': tracker,
                     'content_distance_512': metrics.at_512(match['distance'], crop_size),
                     'tracker_distance_512': metrics.at_512(tracker, crop_size),
                     'region': region, 'direction': metrics.direction_of(h, t)})
    return rows


def eval_content(photo, drags, config: Optional[EditConfig] = None, *, face=None, cache=True, callback=None,
                 **settings) -> Dict[str, Any]:
    """Protocol 2 on one photo: edit it with `drags` (photo pixels, as `photodrag.edit` takes
    them) and report where the content under each handle ended up."""
    from photodrag.pipeline import editing
    result = editing.edit(photo, drags, config, face=face, cache=cache, callback=callback, **settings)
    samples, sheet = [], []
    for fres, frec in zip(result.faces, result.record.faces):
        rows = content_report(fres, frec, int(fres.crop.image.shape[0]))
        samples += [{'face': frec.index, **row} for row in rows]
        sheet.append(_sheet_row(fres.reconstruction, fres.edited, rows))
    report = {'protocol': 'content', 'photo': str(result.photo.path or ''), **_means(samples, (
        'content_distance', 'tracker_distance', 'content_progress', 'content_distance_512', 'tracker_distance_512')),
        'by_region': _grouped(samples, 'region', 'content_progress'),
        'by_direction': _grouped(samples, 'direction', 'content_progress'),
        'config': result.record.config, 'timings': result.record.timings, 'samples': samples}
    report['_sheet'] = sheet
    return report


# ---------------------------------------------------------------- protocol 1: landmarks

def face_pairs(photos: Sequence, n_pairs: int, detector=None):
    """(photo A, face A, photo B, face B) pairs from the faces of `photos`, in a fixed order:
    every face is paired with the next one (the last with the first), up to `n_pairs`."""
    from photodrag import alignment
    faces = []
    for path in photos:
        photo = alignment.read_photo(path)
        faces += [(photo, f) for f in alignment.detect_faces(photo, detector=detector)]
    if len(faces) < 2:
        raise NoFaceFoundError(f'the landmark protocol needs at least two faces; found {len(faces)} in '
                               f'{len(photos)} photo(s)')
    return [faces[i] + faces[(i + 1) % len(faces)] for i in range(min(n_pairs, len(faces)))]


def eval_landmarks(photos_dir, points: int = 5, pairs: int = 4, config: Optional[EditConfig] = None, *,
                   cache=True, progress: Progress = None, detector=None, **settings) -> Dict[str, Any]:
    """Protocol 1: drag `points` (1, 5 or 68) of face A's landmarks to face B's through the
    whole pipeline (inversion + drag + paste-back), for `pairs` pairs of faces from the photos
    in `photos_dir`, and find the landmarks again on the results.

    Reports md (mean distance to the targets, crop pixels at 512-px scale, comparable with
    DragGAN's 2.44 / 3.18 / 4.73 for 1 / 5 / 68 points), md_no_edit (the same pairs before
    the drag), md_iod (md as a share of the inter-ocular distance), md_photo (re-detected in
    the pasted photo, photo pixels), fidelity outside the editable region (1 - LPIPS(alex),
    PSNR against the reconstruction) and seconds per edit by stage."""
    from photodrag.errors import InvalidSettingsError
    from photodrag.pipeline.checks import crop_recipe

    if points not in metrics.POINT_SETS:
        raise InvalidSettingsError(f'points is 1, 5 or 68, got {points!r}')
    if not isinstance(pairs, int) or pairs < 1:
        raise InvalidSettingsError(f'pairs must be a whole number >= 1, got {pairs!r}')
    photos = list_photos(photos_dir)
    run = _start(EditConfig.with_settings(config, **settings), cache, detector)
    config = run.config
    recipe = crop_recipe(config.checkpoint, config.recipe, run.resolution, run.G)
    samples = []
    todo = face_pairs(photos, pairs, detector)
    for k, pair in enumerate(todo):
        photo_a, face_a, photo_b, face_b = pair
        started = time.perf_counter()
        sample: Dict[str, Any] = {'a': _face_name(photo_a, face_a), 'b': _face_name(photo_b, face_b)}
        try:
            sample.update(_landmark_sample(run, recipe, pair, metrics.POINT_SETS[points]))
        except PhotodragError as e:          # one bad pair is recorded, and never stops the others
            sample['error'] = ' '.join(str(e).split())[:300]
        sample['seconds'] = round(time.perf_counter() - started, 2)
        samples.append(sample)
        if progress:
            progress(k + 1, len(todo), sample)
    keys = ('md', 'md_no_edit', 'md_iod', 'md_no_edit_iod', 'md_photo', 'md_photo_iod', 'fidelity_outside',
            'psnr_outside', 'content_distance_512', 'tracker_distance_512', 'content_progress',
            'photo_changed_outside', 'photo_psnr_outside')
    report = {'protocol': 'landmarks', 'photos': str(photos_dir), 'points': points, 'pairs': len(samples),
              **_means(samples, keys), 'by_region': _grouped(
                  [r for s in samples for r in s.get('points_detail', ())], 'region', 'distance_512'),
              'content_by_region': _grouped([c for s in samples for c in s.get('content', ())], 'region',
                                            'content_progress'),
              'content_by_direction': _grouped([c for s in samples for c in s.get('content', ())], 'direction',
                                               'content_progress'),
              'seconds_by_stage': _mean_dicts([s['timings'] for s in samples if 'timings' in s]),
              'config': config.resolved().to_dict(), 'samples': samples}
    report['_sheet'] = run.sheet
    return report


def eval_landmark_samples(points: int = 5, pairs: int = 4, config: Optional[EditConfig] = None, *, seed: int = 0,
                          truncation: float = 0.7, progress: Progress = None, detector=None,
                          **settings) -> Dict[str, Any]:
    """Protocol 1 on the generator's own samples, as DragGAN's Table 1 runs it: for each pair,
    two faces the generator draws (seeds seed + 2k and seed + 2k + 1, `truncation`); face A's
    `points` (1, 5 or 68) dlib landmarks are dragged onto face B's positions with the drag alone
    (no photo, no inversion, no mask), and the landmarks are found again on the result.

    Reports the same keys as `eval_landmarks` where they apply: md and md_no_edit (crop pixels at
    512-px scale: DragGAN's 2.44 / 12.93, 3.18 / 11.66 and 4.73 / 16.02 for 1, 5 and 68 points),
    md_iod, the content measured in the images (content_distance_512, content_progress), the
    tracker's own distance, steps and seconds per drag. A pair whose samples dlib cannot read
    is skipped for the next seeds (up to 4 x pairs tries) and counted under `skipped`."""
    from photodrag import checkpoints
    from photodrag.errors import InvalidSettingsError

    if points not in metrics.POINT_SETS:
        raise InvalidSettingsError(f'points is 1, 5 or 68, got {points!r}')
    if not isinstance(pairs, int) or pairs < 1:
        raise InvalidSettingsError(f'pairs must be a whole number >= 1, got {pairs!r}')
    if not isinstance(seed, int) or seed < 0:
        raise InvalidSettingsError(f'seed must be a whole number >= 0, got {seed!r}')
    config = EditConfig.with_settings(config, **settings)
    G = checkpoints.load_generator(config.checkpoint, device=config.device)
    R = int(G.img_resolution)
    drag_config = config.drag_config()
    samples, sheet, skipped = [], [], 0
    k = 0
    while len(samples) < pairs and k < 4 * pairs:
        seeds = (seed + 2 * k, seed + 2 * k + 1)
        k += 1
        drawn = [_sample_face(G, s, truncation, detector) for s in seeds]
        if any(d is None for d in drawn):
            skipped += 1
            continue
        (w_a, image_a, lm_a), (_, _, lm_b) = drawn
        chosen = [i for i in metrics.POINT_SETS[points]
                  if (lm_a[i] >= 1).all() and (lm_a[i] <= R - 2).all() and (lm_b[i] >= 1).all() and (lm_b[i] <= R - 2).all()]
        sample: Dict[str, Any] = {'a': f'seed{seeds[0]}', 'b': f'seed{seeds[1]}', 'points_used': len(chosen)}
        started = time.perf_counter()
        sample.update(_drag_sample(G, w_a, image_a, lm_a, lm_b, chosen, drag_config, detector, sheet))
        sample['seconds'] = round(time.perf_counter() - started, 2)
        samples.append(sample)
        if progress:
            progress(len(samples), pairs, sample)
    if not samples:
        raise NoFaceFoundError(f'the face detector found no face in {2 * k} samples of {config.checkpoint}; '
                               'the samples protocol needs a face generator')
    report = {'protocol': 'landmarks', 'on': 'samples', 'checkpoint': str(config.checkpoint), 'points': points,
              'pairs': len(samples), 'seed': seed, 'truncation': truncation, 'skipped': skipped,
              **_means(samples, ('md', 'md_no_edit', 'md_iod', 'md_no_edit_iod', 'content_distance_512',
                                 'content_progress', 'tracker_distance_512', 'steps', 'seconds')),
              'drag': dataclasses.asdict(drag_config.resolved()), 'samples': samples}
    report['_sheet'] = sheet
    return report


def _sample_face(G, seed: int, truncation: float, detector):
    """(w, uint8 image, its 68 landmarks) of the generator's sample for `seed`, or None when
    dlib does not find exactly one face in it."""
    import torch
    from photodrag import stylegan
    w = stylegan.w_from_seed(G, seed, truncation_psi=truncation)
    with torch.no_grad():
        image = stylegan.to_uint8(G.synthesis(w, noise_mode='const'))[0]
    lm = metrics.redetected_landmarks(image, detector)
    return None if lm is None else (w, image, lm)


def _drag_sample(G, w, image, lm_a, lm_b, chosen, drag_config, detector, sheet) -> Dict[str, Any]:
    """Drag landmarks `chosen` of the sample drawn from `w` (`lm_a`) to face B's (`lm_b`); the
    landmarks and the content measured again in the result."""
    from photodrag import stylegan
    from photodrag.drag import DragSession
    R = int(G.img_resolution)
    handles, targets = lm_a[chosen], lm_b[chosen]
    session = DragSession(G, w, [tuple(h) for h in handles.tolist()], [tuple(t) for t in targets.tolist()],
                          config=drag_config)
    state = session.run()
    edited = stylegan.to_uint8(session.render())[0]
    iod = metrics.inter_ocular(lm_b)
    out: Dict[str, Any] = {'md_no_edit': metrics.at_512(metrics.mean_distance(handles, targets), R),
                           'md_no_edit_iod': metrics.mean_distance(handles, targets) / iod, 'steps': state.step,
                           'reason': state.reason,
                           'tracker_distance_512': metrics.at_512(float(np.mean(state.distances)), R)}
    found = metrics.redetected_landmarks(edited, detector)
    rows = []
    content = []
    for h, t in zip(handles, targets):
        try:
            content.append(metrics.content_match(image, edited, h, t))
        except PhotodragError:          # a landmark too near the border for a patch
            content.append(None)
    measured = [c for c in content if c is not None]
    if measured:
        out['content_distance_512'] = metrics.at_512(float(np.mean([c['distance'] for c in measured])), R)
        out['content_progress'] = float(np.mean([c['progress'] for c in measured]))
    if found is None:
        out['error'] = 'no single face found again in the dragged sample'
    else:
        d = np.hypot(*(found[chosen] - targets).T)
        out.update(md=metrics.at_512(float(d.mean()), R), md_iod=float(d.mean()) / iod)
    for i, (h, t) in enumerate(zip(handles, targets)):
        rows.append({'handle': list(h), 'target': list(t),
                     'found': None if content[i] is None else content[i]['found']})
    if len(rows) > 8:
        rows = rows[::len(rows) // 8]
    sheet.append(_sheet_row(image, edited, rows))
    return out


@dataclass(frozen=True, eq=False)
class _Run:
    """What every sample of one protocol run shares: the settings, the generator (loaded once,
    not per sample), the inversion cache, LPIPS (alex), the face detector, the contact sheet."""
    config: EditConfig
    G: Any
    cache: Any
    lpips: Any
    detector: Any
    sheet: List[np.ndarray] = field(default_factory=list)

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)

    def edit(self, photo, job, config: Optional[EditConfig] = None):
        """`pipeline.edit` of one sample with this run's generator (`config`: the run's, or a variant)."""
        from photodrag.pipeline import editing
        return editing.edit(photo, job, config or self.config, cache=self.cache, detector=self.detector,
                            generator=self.G)


def _start(config: EditConfig, cache, detector) -> _Run:
    """The run's generator and LPIPS, loaded once for all its samples."""
    from photodrag import checkpoints
    from photodrag.inversion import load_lpips
    lpips = load_lpips('alex')
    G = checkpoints.load_generator(config.checkpoint, device=config.device)
    return _Run(config=config, G=G, cache=cache, lpips=lpips, detector=detector)


def _landmark_sample(run: _Run, recipe, pair, chosen) -> Dict[str, Any]:
    """One pair of protocol 1: drag face A's `chosen` landmarks to face B's and measure."""
    from photodrag import alignment
    from photodrag.pipeline.checks import FaceEdit
    photo_a, face_a, photo_b, face_b = pair
    R, detector = run.resolution, run.detector
    crop_a = alignment.align(photo_a, face_a, size=R, recipe=recipe)
    crop_b = alignment.align(photo_b, face_b, size=R, recipe=recipe)
    lm_a = metrics.redetected_landmarks(crop_a.image, detector)
    lm_b = metrics.redetected_landmarks(crop_b.image, detector)
    if lm_a is None or lm_b is None:
        raise NoFaceFoundError('the face detector does not find exactly one face in '
                               + ('the crop of face A' if lm_a is None else 'the crop of face B'))
    # a tight crop (the demo generator's) can leave the chin's landmarks at its very edge: those
    # cannot be dragged, so they are left out and the report says how many were used
    inside = lambda p: (p >= 1).all() and (p <= R - 2).all()      # noqa: E731
    chosen = [i for i in chosen if inside(lm_a[i]) and inside(lm_b[i])]
    if not chosen:
        raise NoFaceFoundError('no chosen landmark of the pair lies inside both aligned crops')
    handles, targets = lm_a[chosen], lm_b[chosen]
    handles_photo, targets_photo = crop_a.transform.to_photo(handles), crop_a.transform.to_photo(targets)
    drags = [(tuple(h), tuple(t)) for h, t in zip(handles_photo.tolist(), targets_photo.tolist())]
    result = run.edit(photo_a, FaceEdit(face=face_a.index, drags=drags))
    fres, frec = result.faces[0], result.record.faces[0]
    found = metrics.redetected_landmarks(fres.edited, detector)
    iod = metrics.inter_ocular(lm_b)
    out = {'points_used': len(chosen), 'md_no_edit': metrics.at_512(metrics.mean_distance(handles, targets), R),
           'md_no_edit_iod': metrics.mean_distance(handles, targets) / iod,
           'lpips_inversion': frec.inversion['lpips'], 'timings': {k: v for k, v in result.record.timings.items()},
           'drag_steps': frec.drag['steps'], 'tracker_md_512': metrics.at_512(
               float(np.mean(frec.drag['distances_crop'])), R)}
    if found is None:
        out['error'] = 'no single face found again in the edited crop'
    else:
        d = np.hypot(*(found[list(chosen)] - targets).T)
        out.update(md=metrics.at_512(float(d.mean()), R), md_iod=float(d.mean()) / iod,
                   points_detail=[{'landmark': int(i), 'region': metrics.region_of(int(i)),
                                   'direction': metrics.direction_of(h, t), 'distance_512': metrics.at_512(float(v), R)}
                                  for i, h, t, v in zip(chosen, handles, targets, d)])
    out.update(_in_the_photo(run, photo_a, face_a, result, crop_a.transform, chosen, lm_a, lm_b))
    margin = 0.25 * metrics.inter_ocular(lm_a)
    editable = metrics.region_mask(fres.reconstruction.shape, np.concatenate([handles, targets]), margin)
    if (~editable).any():
        out['fidelity_outside'], out['psnr_outside'] = metrics.outside_fidelity(
            fres.reconstruction, fres.edited, editable, run.lpips)
    content = content_report(fres, frec, R)          # protocol 2 on the same edit
    out.update(content=content, **{k: float(np.mean([c[k] for c in content]))
                                   for k in ('content_distance_512', 'tracker_distance_512', 'content_progress')})
    rows = [{'handle': list(h), 'target': list(t), 'found': None if found is None else list(found[i])}
            for i, h, t in zip(chosen, handles, targets)]
    if len(rows) > 8:       # 68 points: the sheet shows the drags, not a cloud of circles
        rows = rows[::len(rows) // 8]
    run.sheet.append(_sheet_row(fres.reconstruction, fres.edited, rows))
    return out


def _in_the_photo(run: _Run, photo_a, face_a, result, transform, chosen, lm_a, lm_b) -> Dict[str, Any]:
    """Protocol 1 in the pasted photo, in photo pixels: the landmarks found again there, and
    how much of the face (its box grown by half) changed outside the dragged region."""
    from photodrag import alignment
    handles_photo, targets_photo = transform.to_photo(lm_a[chosen]), transform.to_photo(lm_b[chosen])
    out: Dict[str, Any] = {}
    pasted = alignment.detect_faces(result.pixels, detector=run.detector)
    if pasted:
        near = min(pasted, key=lambda f: float(np.hypot(*(f.centre - face_a.centre))))
        d_photo = np.hypot(*(near.landmarks[list(chosen)] - targets_photo).T)
        iod_photo = metrics.inter_ocular(transform.to_photo(lm_b))
        out.update(md_photo=float(d_photo.mean()), md_photo_iod=float(d_photo.mean()) / iod_photo)
    hull = metrics.region_mask(result.pixels.shape, np.concatenate([handles_photo, targets_photo]),
                               0.25 * metrics.inter_ocular(transform.to_photo(lm_a)))
    x0, y0, x1, y1 = face_a.box
    gx, gy = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
    near_face = np.zeros(hull.shape, bool)
    near_face[max(0, int(y0 - gy)):int(y1 + gy), max(0, int(x0 - gx)):int(x1 + gx)] = True
    outside = near_face & ~hull
    changed = (result.pixels != photo_a.pixels).any(axis=2)
    out.update(photo_changed_outside=float(changed[outside].mean()) if outside.any() else 0.0,
               photo_psnr_outside=metrics.psnr(photo_a.pixels, result.pixels, outside))
    return out


def list_photos(folder) -> List[Path]:
    """The photo files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PhotodragError(f'{folder}: no such folder of photos')
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not photos:
        raise PhotodragError(f'{folder}: no photos in it ({", ".join(PHOTO_SUFFIXES)})')
    return photos


def _face_name(photo, face) -> str:
    return f'{Path(photo.path).name if photo.path else "photo"}#{face.index}'


# ---------------------------------------------------------------- protocol 3: DragBench

def eval_dragbench(root, out_dir, config: Optional[EditConfig] = None, *, limit: Optional[int] = None, cache=True,
                   progress: Progress = None, detector=None, **settings) -> Dict[str, Any]:
    """DragBench samples through the pipeline: the face recipe where a face holds the first
    handle, else the object recipe on the whole image, with the sample's mask; each result
    goes to out_dir/<category>/<sample>/dragged_image.png (where DragDiffusion's evaluation
    scripts read it). Reports image fidelity (1 - LPIPS(alex) at 224 px, original vs dragged)
    and, per point, the content distance of protocol 2 in image pixels."""
    from . import dragbench
    config = EditConfig.with_settings(config, **settings)
    items = dragbench.read_dragbench(root, limit=limit, skip_bad=True)
    run = _start(config, cache, detector)
    samples = []
    for k, item in enumerate(items):
        started = time.perf_counter()
        sample: Dict[str, Any] = {'name': item.name}
        try:
            if isinstance(item, dragbench.BadSample):       # recorded, and the others go on
                raise PhotodragError(item.error)
            sample.update(_dragbench_sample(run, item, out_dir))
        except PhotodragError as e:
            sample['error'] = ' '.join(str(e).split())[:300]
        sample['seconds'] = round(time.perf_counter() - started, 2)
        samples.append(sample)
        if progress:
            progress(k + 1, len(items), sample)
    report = {'protocol': 'dragbench', 'root': str(root), 'results': str(out_dir),
              **_means(samples, ('image_fidelity', 'content_distance', 'content_progress')),
              'config': config.resolved().to_dict(), 'samples': samples}
    report['_sheet'] = run.sheet
    return report


def _dragbench_sample(run: _Run, item, out_dir) -> Dict[str, Any]:
    """One DragBench sample: the face recipe where a face holds the first handle, else the object
    recipe on the whole image; its result written for the published scripts, and measured."""
    from photodrag import alignment
    from photodrag.pipeline.checks import FaceEdit
    from . import dragbench
    photo = alignment.Photo(pixels=item.image)
    drags = list(zip(item.handles, item.targets))
    try:
        faces = alignment.detect_faces(photo, detector=run.detector)
    except PhotodragError:
        faces = []
    on_face = [f for f in faces if f.box[0] <= item.handles[0][0] < f.box[2]
               and f.box[1] <= item.handles[0][1] < f.box[3]]
    if on_face:
        result = run.edit(photo, FaceEdit(face=on_face[0].index, drags=drags, mask=item.mask))
    else:
        result = run.edit(photo, FaceEdit(drags=drags, mask=item.mask), run.config.replace(recipe='object'))
    dragbench.write_result(out_dir, item, result.pixels)
    points = [metrics.content_match(item.image, result.pixels, h, t) for h, t in drags]
    run.sheet.append(_sheet_row(item.image, result.pixels, [
        {'handle': list(h), 'target': list(t), 'found': p['found']} for (h, t), p in zip(drags, points)]))
    return dict(recipe=result.record.recipe, image_fidelity=metrics.image_fidelity(item.image, result.pixels, run.lpips),
                content_distance=float(np.mean([p['distance'] for p in points])),
                content_progress=float(np.mean([p['progress'] for p in points])), points=points,
                timings=result.record.timings)


# ---------------------------------------------------------------- reports

def write_report(report: Dict[str, Any], out_dir) -> Dict[str, Path]:
    """Write `report.json` and `contact_sheet.png` (per sample: before | after, handles red,
    targets blue, where the content or landmark ended up green) into `out_dir`."""
    from photodrag.io import write_json
    from photodrag.pipeline.report import save_image
    out_dir = Path(out_dir)
    data = {k: v for k, v in report.items() if not k.startswith('_')}
    written = {'report': write_json(out_dir / 'report.json', _finite(data))}
    rows = report.get('_sheet') or []
    if rows:
        width = max(r.shape[1] for r in rows)
        padded = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        written['contact_sheet'] = save_image(out_dir / 'contact_sheet.png', np.concatenate(padded, axis=0))
    return written


def _sheet_row(before: np.ndarray, after: np.ndarray, rows, height: int = 256) -> np.ndarray:
    import cv2
    from photodrag.pipeline.report import HANDLE, TARGET, draw_points
    scale = max(1, height // before.shape[0])
    handles = [tuple(r['handle']) for r in rows]
    targets = [tuple(r['target']) for r in rows]
    left = draw_points(before, handles, targets, scale=scale, hollow=True, radius=max(3, 2 * scale))
    right = draw_points(after, [], [], scale=scale)
    for r in rows:
        for image, p, colour in ((right, r['target'], TARGET), (right, r.get('found'), (40, 200, 60))):
            if p is not None:
                centre = (int(round((p[0] + 0.5) * scale - 0.5)), int(round((p[1] + 0.5) * scale - 0.5)))
                cv2.circle(image, centre, max(2, scale), colour, 1 if colour == TARGET else -1, cv2.LINE_AA)
        h = r['handle']
        cv2.circle(right, (int(round((h[0] + 0.5) * scale - 0.5)), int(round((h[1] + 0.5) * scale - 0.5))),
                   max(2, scale), HANDLE, 1, cv2.LINE_AA)
    gap = np.full((left.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def _means(samples, keys) -> Dict[str, Optional[float]]:
    out = {}
    for key in keys:
        values = [s[key] for s in samples if isinstance(s.get(key), (int, float)) and math.isfinite(s[key])]
        out[key] = float(np.mean(values)) if values else None
    out['failed'] = sum(1 for s in samples if 'error' in s)
    return out


def _grouped(rows, by: str, value: str) -> Dict[str, Dict[str, float]]:
    groups: Dict[str, List[float]] = {}
    for r in rows:
        if r.get(by) is not None and isinstance(r.get(value), (int, float)):
            groups.setdefault(r[by], []).append(r[value])
    return {k: {'mean': float(np.mean(v)), 'n': len(v)} for k, v in sorted(groups.items())}


def _mean_dicts(dicts) -> Dict[str, float]:
    keys = sorted({k for d in dicts for k in d})
    return {k: round(float(np.mean([d[k] for d in dicts if k in d])), 3) for k in keys}


def _finite(value):
    """JSON has no inf or NaN: they become None (PSNR of identical images is inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


__all__ = ['eval_landmarks', 'eval_landmark_samples', 'eval_content', 'eval_dragbench', 'write_report', 'content_report', 'face_pairs',
           'list_photos']
