"""One client's editing session: its photo, its faces, their drags, the pasted result.

The HTTP layer (`app.py`) only parses requests and forwards them here. Everything slow or
that touches a `DragSession` runs on the session's own worker thread, one call at a time, so
the server stays responsive and a drag is never changed while it steps. The stages are the
pipeline's own (`pipeline.editing.align_face`, `invert_face`, `start_drag`, `finish_face`,
`assemble`), called with the arguments `pipeline.edit` gives them, so "apply" gives the
pixels `pipeline.edit` gives for the same points and settings, and the record replays.

Points travel in crop pixels (what the page draws); the session keeps them in photo pixels
(what the record stores) and maps them into the crop the way `pipeline.edit` does.
"""

import base64
import concurrent.futures
import dataclasses
import io
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from photodrag.errors import InvalidPointsError, InvalidSettingsError, PhotodragError, is_number, one_line

FRAME_FPS = 10.5            # frames streamed per second while a client watches (each costs the blocks
                            # above the feature block: 7.8 ms for the demo on 2 CPU cores)
FRAME_TIMEOUT_S = 1.0       # send the next frame even without the page's acknowledgement after this long
PROGRESS_EVERY_S = 0.1
VIEW_MAX_PX = 1600          # the photo as the page shows it
MAX_SHOTS = 8               # other shots of a burst a session holds
MAX_SUBJECTS = 64           # faces (or objects) a photo can have, those boxed by hand included
MIN_BOX_PX = 16             # the smallest box drawn around a subject (photo pixels, each side)


class NotFound(PhotodragError):
    """No such session, face or output (answered 404)."""


class Conflict(PhotodragError):
    """Not possible in the session's present state (answered 409)."""


class _Cancelled(Exception):
    """Ends a background inversion whose face or session went away."""


@dataclass
class FaceState:
    """A face opened in the editor: crop, inversion, points (photo px), painted region, drag."""
    k: int
    target: Any                             # alignment.Face
    aligned: Any                            # editing.AlignedFace, no drags
    inv: Any                                # the inversion; None while it runs in the background
    G_tuned: Any                            # its tuned generator (None while tuning)
    reconstruction: np.ndarray              # uint8 crop at the inversion (while tuning: at its start)
    pairs: List[List[Tuple[float, float]]] = field(default_factory=list)   # [handle, target] photo px
    start_pairs: List[List[Tuple[float, float]]] = field(default_factory=list)
    mask_png: Optional[bytes] = None        # the painted editable region (crop-sized PNG)
    lr: Optional[float] = None
    latent_space: Optional[str] = None
    drag: Any = None                        # script.ScriptedDrag once started
    drag_reconstruction: Optional[np.ndarray] = None
    running: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    future: Optional[concurrent.futures.Future] = None
    trails: List[List[Tuple[float, float]]] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)
    preset_labels: List[str] = field(default_factory=list)
    last_run: Optional[Dict[str, float]] = None     # steps taken and seconds of the last Start..stop
    photo_view: Optional[np.ndarray] = None # the crop's square cut from the photo at view size (uint8)
    view_limit: Optional[Tuple[Any, np.ndarray]] = None     # (drags, their local region in the view)
    view: str = 'photo'                     # what frames show: 'photo' (its pixels moved) or 'generator'
    tuning: Optional[concurrent.futures.Future] = None  # the background inversion, while it runs
    tuning_error: Optional[str] = None      # why it failed (one line), if it did
    start_pending: bool = False             # Start was pressed while tuning: the drag starts when it ends
    cancel: threading.Event = field(default_factory=threading.Event)   # ends the background inversion
    start_ws: Any = None                    # the inversion's start (its latents), while it runs
    handoff: Optional[Tuple[Any, Any, float]] = None    # (inversion, tuned G, seconds) from the tuning thread


class Editor:
    """A client's session. `publish(message)` sends a JSON-able dict to the client's page."""

    def __init__(self, sid: str, server, publish: Callable[[Dict[str, Any]], None]):
        self.sid = sid
        self.server = server
        self.publish = publish
        self.tmp = Path(tempfile.mkdtemp(prefix='photodrag-web-'))
        self.photo = None
        self.photo_name: Optional[str] = None
        self.faces: List[Any] = []
        self.face_states: Dict[int, FaceState] = {}
        self.applied: Dict[int, Tuple[Any, Any]] = {}
        self.result = None
        self.result_files: Dict[str, Path] = {}
        self.encoding: Dict[str, Any] = {}          # how the downloaded photo was coded (its record says)
        self.shots: List[Tuple[str, Any]] = []      # other shots of the same people: (name, Photo)
        self.original = None                        # the photo as opened, before parts taken from shots
        self.transfers: List[Any] = []              # expressions.reference.Transfer, in order
        self._shot_cache: Dict[str, Any] = {}
        self.watchers = 0
        self.frame_ready = threading.Event()
        self.frame_ready.set()
        self.last_active = time.monotonic()
        self.closed = False
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f'editor-{sid[:6]}')
        # frames are painted (paste into the photo view, JPEG) beside the drag, in order, so the
        # drag does not wait for them
        self._frames = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f'frames-{sid[:6]}')
        # inversions run here, one face after another, while the user places points
        self._tuning = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f'tuning-{sid[:6]}')

    # ---------------------------------------------------------------- plumbing

    def submit(self, fn, *args) -> concurrent.futures.Future:
        if self.closed:
            raise NotFound('this editing session has ended; reload the page')
        self.touch()
        return self._worker.submit(fn, *args)

    def touch(self) -> None:
        self.last_active = time.monotonic()

    @property
    def running(self) -> bool:
        return any(fs.running for fs in self.face_states.values())

    def close(self) -> None:
        """Stop any drag, free the models and delete the session's files."""
        self.closed = True
        for fs in self.face_states.values():
            fs.stop.set()
            self._cancel_tuning(fs)
        self._tuning.shutdown(wait=True, cancel_futures=True)
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._frames.shutdown(wait=True, cancel_futures=True)
        self.face_states.clear()
        self.applied.clear()
        self.result = self.photo = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def stop_all(self) -> None:
        """Ask every running drag to stop (each stops within a step), so the next call on the
        worker does not wait behind it."""
        for fs in self.face_states.values():
            if fs.running:
                fs.stop.set()

    def face(self, k: int) -> FaceState:
        fs = self.face_states.get(k)
        if fs is None:
            raise NotFound(f'face {k} is not open; open it first')
        return fs

    # ---------------------------------------------------------------- the photo

    def open_photo(self, data: Optional[bytes], name: str, sample: Optional[Path] = None) -> Dict[str, Any]:
        """A photo from uploaded bytes (recognised by content) or a bundled sample; finds its faces."""
        from photodrag import alignment
        name = _safe_name(name)
        self.server.release_photos(self.sid)        # the new photo replaces the old one
        for _, shot in self.shots:
            self.server.reserve_photo(self.sid, 3 * shot.pixels.nbytes)
        photo = self._read_upload(data, name, 'upload', sample)
        self.publish({'type': 'progress', 'stage': 'detect', 'step': 0, 'total': 1})
        cfg = self.server.config
        found = alignment.detect_faces(photo, upsample=cfg.upsample) if self.server.recipe.face else []
        if self.server.recipe.face and not found:
            raise alignment.no_face_error(0, name, cfg.upsample)
        if self.server.recipe.name == 'body':
            # full-body people: each person found from their face is a subject (boxes, as `edit --box` gives)
            found = alignment.detect_people(photo, alignment.detect_faces(photo, upsample=cfg.upsample))
        if not self.server.recipe.face and not found:
            # a generator of objects (cars, animals; people when none is found): the whole photo is
            # the one subject, cut by the checkpoint's box recipe (the record keeps the box)
            found = [(0, 0, photo.size[0], photo.size[1])]
        for fs in self.face_states.values():
            fs.stop.set()
            self._cancel_tuning(fs)
        self.photo, self.photo_name, self.faces = photo, name, list(found)
        self.face_states, self.applied, self.result = {}, {}, None
        self.original, self.transfers = photo, []           # shots stay: another photo of the same burst
        self._shot_cache.clear()
        self.result_files = {}
        view = self._write_view(photo.pixels, 'view.jpg')
        self.publish({'type': 'progress', 'stage': 'detect', 'step': 1, 'total': 1})
        return {'photo': {'name': name, 'width': photo.size[0], 'height': photo.size[1],
                          'view_scale': view}, 'faces': self._faces_info()}

    def _read_upload(self, data: Optional[bytes], name: str, stem: str, sample: Optional[Path] = None):
        """An uploaded photo (recognised by content, kept in the session's folder as STEM.ext) or
        a bundled sample, decoded."""
        from photodrag import alignment
        from PIL import Image, UnidentifiedImageError
        from photodrag.errors import UnreadableImageError
        if sample is not None:
            path = sample
        else:
            try:
                with Image.open(io.BytesIO(data)) as img:
                    fmt = img.format
                    width, height = img.size
            except Image.DecompressionBombError:
                raise UnreadableImageError(f'{name} declares more pixels than any photo the editor takes (a '
                                           'decompression bomb?)') from None
            except (UnidentifiedImageError, OSError, ValueError):
                raise UnreadableImageError(f'{name} is not an image the editor can read (JPEG, PNG, WebP, TIFF, ...)') \
                    from None
            suffix = {'JPEG': '.jpg', 'PNG': '.png', 'WEBP': '.webp', 'TIFF': '.tif', 'BMP': '.bmp',
                      'GIF': '.gif'}.get(fmt)
            if suffix is None:
                raise UnreadableImageError(f'{name} is a {fmt} image; the editor reads JPEG, PNG, WebP, TIFF, BMP')
            # decoded (RGB, plus what the session keeps of it: the original, the result, views)
            self.server.reserve_photo(self.sid, 4 * 3 * int(width) * int(height))
            path = self.tmp / f'{stem}{suffix}'
            path.write_bytes(data)
        try:
            photo = alignment.read_photo(path)
        except PhotodragError as e:
            raise type(e)(str(e).replace(str(path), name)) from None
        if sample is not None:                      # a bundled photo: counted once decoded (small)
            self.server.reserve_photo(self.sid, 4 * photo.pixels.nbytes)
        return photo

    def add_subject(self, box) -> Dict[str, Any]:
        """A subject boxed by hand in the photo: a face the detector missed (its landmarks fitted
        in the box, as `photodrag edit --box` fits them; its record keeps the box) or, with a
        generator of objects, the object (or person) to edit. It is numbered after the others."""
        from photodrag import alignment
        from photodrag.io import check_box
        if self.photo is None:
            raise Conflict('open a photo first')
        if len(self.faces) >= MAX_SUBJECTS:
            raise Conflict(f'the photo has {MAX_SUBJECTS} subjects already')
        w, h = self.photo.size
        x0, y0, x1, y1 = check_box(box, 'the box')
        x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
        if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
            raise PhotodragError(f'the box must cover at least {MIN_BOX_PX}x{MIN_BOX_PX} pixels of the '
                                 f'{w}x{h} photo, got {x1 - x0:.0f}x{y1 - y0:.0f} inside it')
        box = (round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1))
        if self.server.recipe.face:
            landmarks = alignment.default_detector().landmarks(self.photo.pixels, box)
            subject: Any = alignment.Face(box=box, landmarks=landmarks, score=0.0, index=-1)
        else:
            subject = box
        self.faces.append(subject)
        return {'index': len(self.faces) - 1, 'faces': self._faces_info()}

    def _faces_info(self) -> List[Dict[str, Any]]:
        return [_face_info(f, i, self.photo.size) for i, f in enumerate(self.faces)]

    # ---------------------------------------------------------------- other shots of the burst

    def add_shot(self, data: bytes, name: str) -> Dict[str, Any]:
        """Another shot of the same people, to take a face's eyes (mouth) from."""
        if len(self.shots) >= MAX_SHOTS:
            raise Conflict(f'the session holds {MAX_SHOTS} other shots already')
        name = _safe_name(name)
        shot = self._read_upload(data, name, f'shot{len(self.shots)}')
        self.shots.append((name, shot))
        self._shot_cache.clear()
        return {'shots': [n for n, _ in self.shots]}

    def from_shot(self, k: int, part: str = 'eyes') -> Dict[str, Any]:
        """Face k's eyes (or mouth) taken from the same person in another shot
        (`expressions.reference`): the session's photo changes there, every edit applied
        afterwards goes on top, and the record keeps the transfer (a fix record)."""
        import dataclasses as dc
        from photodrag import alignment
        from photodrag.expressions import readout, reference
        if self.photo is None:
            raise Conflict('open a photo first')
        if not self.shots:
            raise Conflict('add another shot of the same people first')
        if part not in reference.PARTS:
            raise InvalidSettingsError(f'the part must be one of {", ".join(reference.PARTS)}, got {part!r:.40}')
        if self.applied:
            raise Conflict('take eyes or mouths from other shots before applying drags; Reset the applied faces first')
        if not 0 <= k < len(self.faces):
            raise NotFound(f'the photo has {len(self.faces)} face(s); there is no face {k}')
        face = self.faces[k]
        if getattr(face, 'landmarks', None) is None:
            raise PhotodragError('this face has no landmarks to align its eyes by (or the generator draws objects, '
                                 'not faces)')
        thresholds = readout.check_thresholds()
        if k not in self._shot_cache.get('descriptors', {}):
            self._shot_cache.setdefault('descriptors', {})[k] = reference.descriptors(self.photo.pixels, [face])[0]
        if 'shots' not in self._shot_cache:
            self._shot_cache['shots'] = [reference.load_shot(s.pixels, self.photo.pixels) for _, s in self.shots]
        shots = self._shot_cache['shots']
        t, why = reference.plan_transfer(face, self._shot_cache['descriptors'][k], self.photo.pixels, shots, part,
                                         thresholds)
        if t is None:
            raise PhotodragError(f'face {k}: no other shot shows this person with the {part} as wanted ({why})')
        pixels = reference.apply(self.photo.pixels, [p.pixels for _, p in self.shots], [t])
        detector = alignment.default_detector()
        ok, what = reference.check(pixels, face, t, shots, thresholds, detector)
        self.transfers.append(t)
        self.photo = dc.replace(self.photo, pixels=pixels)
        self.faces[k] = dc.replace(face, landmarks=detector.landmarks(pixels, face.box))
        stale = self.face_states.pop(k, None)       # its crop and inversion were of the old pixels
        if stale is not None:
            stale.stop.set()
            self._cancel_tuning(stale)
        self.result, self.result_files = None, {}
        self._write_view(pixels, 'view.jpg')
        verb = 'opened' if part == 'eyes' else 'closed'
        shot_name = self.shots[t.reference][0]
        message = (f'face {k}: {part} {verb} from {shot_name} ({what})' if ok else
                   f'face {k}: {part} taken from {shot_name}, yet they do not read as fixed ({what}); check them')
        return {'face': k, 'fixed': ok, 'message': message, 'faces': self._faces_info()}

    def _fix_record(self, edit_record: Optional[Dict[str, Any]], pixels: np.ndarray) -> Dict[str, Any]:
        """The session's fix record: the transfers from other shots, then the drags' edit record."""
        from photodrag.pipeline import fixes
        return fixes.fix_record({**fixes.file_info(self.original), 'path': self.photo_name},
                                [{**fixes.file_info(p), 'path': n} for n, p in self.shots], self.transfers, pixels,
                                faces_found=len(self.faces), edit=edit_record)

    def _write_view(self, pixels: np.ndarray, filename: str) -> float:
        """A JPEG the page can show (at most VIEW_MAX_PX a side); returns its scale."""
        from PIL import Image
        h, w = pixels.shape[:2]
        scale = min(1.0, VIEW_MAX_PX / max(h, w))
        img = Image.fromarray(pixels)
        if scale < 1:
            img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
        img.save(self.tmp / filename, format='JPEG', quality=90)
        self.result_files[filename] = self.tmp / filename
        return scale

    # ---------------------------------------------------------------- a face

    def open_face(self, k: int) -> Dict[str, Any]:
        """Align face k and make it ready for points at once: from the cache's inversion when it
        holds this crop, else from the inversion's start (the encoder's latents), while the
        inversion itself runs in the background (`_tune`). Start meanwhile drags on the inversion's
        start and goes on on the tuned generator when it is there (`_take_tuned`); with the
        server's `drag_while_tuning` off it waits for it."""
        from photodrag import inversion
        from photodrag.pipeline import editing
        if self.photo is None:
            raise Conflict('open a photo first')
        if k in self.face_states:
            return self.face_info(k)
        if not 0 <= k < len(self.faces):
            raise NotFound(f'the photo has {len(self.faces)} face(s), numbered 0 to {len(self.faces) - 1}; there is '
                           f'no face {k}')
        server, cfg = self.server, self.server.config
        target = self.faces[k]
        t = time.perf_counter()
        aligned = editing.align_face(k, [], target, self.photo, server.G, server.recipe, self._emitter(k))
        align_s = time.perf_counter() - t
        t = time.perf_counter()
        inv = inversion.cached(server.G, aligned.crop.image, cfg.inversion_config(), device=cfg.device,
                               cache=server.cache, encoder=server.encoder)
        if inv is not None:
            G_tuned = inv.generator(server.G)
            ws = inv.ws
        else:
            G_tuned, ws = None, inversion.preview(server.G, aligned.crop.image, cfg.inversion_config(),
                                                  device=cfg.device, encoder=server.encoder)
        fs = FaceState(k=k, target=target, aligned=aligned, inv=inv, G_tuned=G_tuned,
                       start_ws=None if inv is not None else ws,
                       reconstruction=self._reconstruct(G_tuned or server.G, ws),
                       timings={'align': align_s, 'invert': time.perf_counter() - t},
                       photo_view=_photo_view(self.photo, aligned.crop))
        self.face_states[k] = fs
        _save_png(self.tmp / f'face{k}_crop.png', aligned.crop.image)
        _save_png(self.tmp / f'face{k}_reconstruction.png', fs.reconstruction)
        _save_png(self.tmp / f'face{k}_photo.png', fs.photo_view)
        if inv is None:
            fs.tuning = self._tuning.submit(self._tune, fs)
        return self.face_info(k)

    def _emitter(self, k: int):
        """A stage callback that sends face k's progress to the page (at most every PROGRESS_EVERY_S)."""
        started: Dict[str, float] = {}

        def emit(stage, step, total, info):
            now = time.perf_counter()
            first = started.setdefault(stage, now)
            last = started.get('_sent', 0.0)
            if step not in (0, total) and now - last < PROGRESS_EVERY_S:
                return
            started['_sent'] = now
            # the inversion says what it still needs in all (projection and tuning); other
            # stages go by their own pace
            eta = info.get('remaining_s', (now - first) / step * (total - step) if step else None)
            self.publish({'type': 'progress', 'face': k, 'stage': stage, 'step': step, 'total': total,
                          'eta_s': None if eta is None else round(eta, 1)})
        return emit

    def _reconstruct(self, G, ws) -> np.ndarray:
        import torch
        from photodrag import stylegan
        with torch.no_grad():
            noise_mode = self.server.config.drag_config().noise_mode
            return stylegan.to_uint8(G.synthesis(ws.to(self.server.config.device), noise_mode=noise_mode))[0]

    def _tune(self, fs: FaceState) -> None:
        """The face's inversion (projection and pivotal tuning), on the tuning thread; its result
        is taken over on the worker (`_take_tuned`). A cancel ends it within a step, leaving nothing
        behind (the cache is written only by a finished inversion)."""
        from photodrag.pipeline import editing
        server, cfg = self.server, self.server.config
        emit = self._emitter(fs.k)

        def step(stage, i, total, info):
            if fs.cancel.is_set() or self.closed:
                raise _Cancelled()
            emit(stage, i, total, info)

        t = time.perf_counter()
        try:
            inv = editing.invert_face(fs.k, server.G, fs.aligned.crop, cfg.inversion_config(), device=cfg.device,
                                      cache=server.cache, emit=step, encoder=server.encoder)
            G_tuned = inv.generator(server.G)
        except _Cancelled:
            return
        except Exception as e:              # noqa: BLE001 - the page gets one line, the log the rest
            fs.tuning_error = one_line(e)
            self.publish({'type': 'error', 'face': fs.k, 'error': f'face {fs.k}: {fs.tuning_error}'})
            self.server.log_exception(e)
            G_tuned = inv = None
        seconds = time.perf_counter() - t
        if not (self.closed or fs.cancel.is_set()):
            # a drag running on the face's start takes it over between two steps; otherwise the
            # worker does when it is free
            fs.handoff = (inv, G_tuned, seconds)
            try:
                self.submit(self._take_tuned, fs)
            except (NotFound, RuntimeError):        # the session ended meanwhile
                pass

    def _take_tuned(self, fs: FaceState) -> None:
        """On the worker: take over the face's finished inversion (or its failure: inv None), if
        the tuning thread left one. A drag begun on the inversion's start goes on on the tuned
        generator, call for call in its script (`ScriptedDrag.tuned`); one that had ended by
        itself runs on until the content is at the targets there; a Start pressed while waiting
        begins the drag now. The page hears it ('tuned')."""
        handoff, fs.handoff = fs.handoff, None
        if handoff is None:
            return
        fs.tuning = None
        if self.face_states.get(fs.k) is not fs or fs.cancel.is_set():
            return
        inv, G_tuned, seconds = handoff
        if inv is None:
            fs.start_pending = False
            self.publish({'type': 'tuned', 'face': fs.k, **self._tuning_info(fs), **self.points_info(fs)})
            return
        from photodrag.pipeline import editing
        fs.inv, fs.G_tuned, fs.start_ws = inv, G_tuned, None
        fs.timings['invert'] = fs.timings.get('invert', 0.0) + seconds
        fs.reconstruction = self._reconstruct(G_tuned, inv.ws)
        _save_png(self.tmp / f'face{fs.k}_reconstruction.png', fs.reconstruction)
        pending, fs.start_pending = fs.start_pending, False
        switched = go_on = False
        if fs.drag is not None and fs.drag.session.G is not G_tuned:
            go_on = fs.drag.session.done and not fs.running     # it had arrived on the untuned generator
            fs.drag.tuned(G_tuned, inv.ws.to(fs.drag.session.device))
            fs.drag_reconstruction = editing.drag_start_image(fs.drag.session)
            switched = True
        if pending or go_on:
            try:
                self.start(fs.k)
            except PhotodragError as e:     # the points changed meanwhile: say why, keep them
                self.publish({'type': 'error', 'face': fs.k, 'error': one_line(e)})
        elif switched and not fs.running:   # stopped by the user: show where it stands on the tuned generator
            self._send_frame(fs, self._render(fs), fs.drag.session.state(), final=True)
        # behind the frames still being painted (those of the untuned generator, and that one)
        if not self.closed:
            self._frames.submit(self.publish, {'type': 'tuned', 'face': fs.k, 'switched': switched,
                                               **self._tuning_info(fs), **self.points_info(fs)})

    def _cancel_tuning(self, fs: FaceState) -> None:
        fs.cancel.set()
        fs.start_pending = False
        if fs.tuning is not None:
            fs.tuning.cancel()

    def _tuning_info(self, fs: FaceState) -> Dict[str, Any]:
        """The face's inversion as the page shows it: its fit once done, else that it runs (or failed)."""
        if fs.inv is None:
            return {'inversion': {'tuning': fs.tuning_error is None, 'error': fs.tuning_error, 'lpips': None,
                                  'psnr': None, 'from_cache': False}}
        metrics = fs.inv.metrics.get('tuning') or fs.inv.metrics.get('projection')
        return {'inversion': {'tuning': False, 'error': None, 'lpips': round(float(metrics.lpips), 4),
                              'psnr': round(float(metrics.psnr), 2), 'from_cache': bool(fs.inv.from_cache)}}

    def face_info(self, k: int) -> Dict[str, Any]:
        fs = self.face(k)
        crop = fs.aligned.crop
        R = crop.image.shape[0]
        corners = crop.transform.to_photo(np.array([[0, 0], [R, 0], [R, R], [0, R]], np.float64))
        return {'face': k, 'size': R, 'quad': corners.tolist(), 'content': [float(v) for v in crop.content],
                'view': fs.view, 'view_size': int(fs.photo_view.shape[0]), **self._tuning_info(fs),
                'applied': k in self.applied, **self.points_info(fs)}

    def points_info(self, fs: FaceState) -> Dict[str, Any]:
        """What the page draws: handles (tracked, once a drag ran) and targets, in crop px."""
        if fs.drag is not None:
            s = fs.drag.session
            handles, targets, step, done = s.handles, s.targets, s.step_count, s.done
            reason = s.state().reason
        else:
            to_crop = fs.aligned.crop.transform.to_crop
            handles = [tuple(p) for p in to_crop(np.array([p[0] for p in fs.pairs], np.float64).reshape(-1, 2))]
            targets = [tuple(p) for p in to_crop(np.array([p[1] for p in fs.pairs], np.float64).reshape(-1, 2))]
            step, done, reason = 0, False, None
        return {'handles': [list(map(float, p)) for p in handles], 'targets': [list(map(float, p)) for p in targets],
                'step': step, 'done': done, 'reason': reason, 'running': fs.running,
                'lr': fs.lr or self.server.config.drag_config().lr,
                'latent_space': fs.latent_space or self.server.config.drag_config().latent_space,
                'has_mask': fs.mask_png is not None, 'presets': list(fs.preset_labels),
                'started': fs.drag is not None, 'last_run': fs.last_run,
                'tuned': fs.inv is not None, 'waiting': fs.start_pending,
                'on_start': fs.drag is not None and fs.inv is None}

    def _canonical(self, fs: FaceState, point, what: str) -> Tuple[float, float]:
        """A crop point from the page -> the photo point the record keeps (checked to lie in the crop)."""
        if (not isinstance(point, (list, tuple)) or len(point) != 2 or
                not all(is_number(v) for v in point)):
            raise InvalidPointsError(f'{what} must be [x, y] in crop pixels')
        R = fs.aligned.crop.image.shape[0]
        if not (0 <= point[0] <= R - 1 and 0 <= point[1] <= R - 1):
            raise InvalidPointsError(f'{what} ({point[0]:g}, {point[1]:g}) lies outside the {R}x{R} crop')
        photo = fs.aligned.crop.transform.to_photo(np.array([point], np.float64))[0]
        fs.aligned.to_crop([photo], what)
        return float(photo[0]), float(photo[1])

    def add_point(self, k: int, handle, target) -> Dict[str, Any]:
        from photodrag.pipeline.record import MAX_POINTS
        fs = self.face(k)
        if len(fs.pairs) >= MAX_POINTS:
            raise InvalidPointsError(f'a face takes at most {MAX_POINTS} pairs of points (as records and scripts do)')
        h, t = self._canonical(fs, handle, 'the handle'), self._canonical(fs, target, 'the target')
        if fs.drag is not None:
            fs.drag.add(h, t)
        fs.pairs.append([h, t])
        fs.trails.append([])
        return self.points_info(fs)

    def move_point(self, k: int, index: int, handle=None, target=None) -> Dict[str, Any]:
        fs = self.face(k)
        self._check_index(fs, index)
        h = None if handle is None else self._canonical(fs, handle, 'the handle')
        t = None if target is None else self._canonical(fs, target, 'the target')
        if h is None and t is None:
            raise InvalidPointsError('say where the handle or the target goes')
        if fs.drag is not None:
            fs.drag.move(index, h, t)
        fs.pairs[index] = [h or fs.pairs[index][0], t or fs.pairs[index][1]]
        if h is not None:
            fs.trails[index] = []
        return self.points_info(fs)

    def remove_point(self, k: int, index: int) -> Dict[str, Any]:
        fs = self.face(k)
        self._check_index(fs, index)
        if fs.drag is not None:
            if len(fs.pairs) == 1:
                raise InvalidPointsError('a started drag needs at least one point; Reset to start over')
            fs.drag.remove(index)
        del fs.pairs[index]
        del fs.trails[index]
        return self.points_info(fs)

    def _check_index(self, fs: FaceState, index: int) -> None:
        if not isinstance(index, int) or not 0 <= index < len(fs.pairs):
            raise NotFound(f'there is no point {index}; the face has {len(fs.pairs)}')

    def set_mask(self, k: int, png: Optional[bytes]) -> Dict[str, Any]:
        from photodrag.pipeline.script import decode_mask
        fs = self.face(k)
        if png is not None:
            decode_mask(png, fs.aligned.crop.image.shape[0])
        if fs.drag is not None:
            fs.drag.set_mask(png)
        fs.mask_png = png
        path = self.tmp / f'face{k}_mask.png'
        if png is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(png)
        return self.points_info(fs)

    def set_view(self, k: int, view) -> bool:
        """What face k's frames show: 'photo' (the photo's pixels moved by the edit) or
        'generator' (its rendering). Called off the worker, so a running drag's next frame
        already shows it; True when a stopped drag should be drawn again (`redraw`)."""
        fs = self.face(k)
        if view not in VIEWS:
            raise InvalidSettingsError(f'the view must be one of {", ".join(VIEWS)}, got {view!r:.40}')
        fs.view = view
        return fs.drag is not None and not fs.running

    def redraw(self, k: int) -> None:
        """Send face k's current drag state as a final frame (on the worker)."""
        fs = self.face(k)
        if fs.drag is not None and not fs.running:
            self._send_frame(fs, self._render(fs), fs.drag.session.state(), final=True)

    def set_settings(self, k: int, lr=None, latent_space=None) -> Dict[str, Any]:
        from photodrag.drag.config import LATENT_SPACES
        fs = self.face(k)
        if lr is not None:
            if not is_number(lr, 0, 1) or lr == 0:
                raise InvalidSettingsError(f'the step size must be a number in (0, 1], got {lr!r}')
            if fs.drag is not None:
                fs.drag.set_lr(float(lr))
            fs.lr = float(lr)
        if latent_space is not None:
            if latent_space not in LATENT_SPACES:
                raise InvalidSettingsError(f'the latent space must be one of {", ".join(LATENT_SPACES)}')
            current = fs.latent_space or self.server.config.drag_config().latent_space
            if fs.drag is not None and latent_space != current:
                raise Conflict('the latent space is fixed once a drag started; Reset to change it')
            fs.latent_space = latent_space
        return self.points_info(fs)

    def add_preset(self, k: int, name: str, strength: float = 1.0) -> Dict[str, Any]:
        """Place a preset's handles and targets and paint its region; the user adjusts them before Start."""
        from photodrag.expressions import presets as presets_mod
        from photodrag.pipeline.script import encode_mask
        fs = self.face(k)
        if getattr(fs.target, 'landmarks', None) is None:
            raise PhotodragError('presets move face landmarks, and this face has none (or the generator draws '
                                 'objects, not faces)')
        use = presets_mod.uses([presets_mod.label(name, strength)])[0]
        drags, region, labels = presets_mod.face_drags([use], fs.target.landmarks, self.photo.size)
        for (h, t), what in zip(drags, labels):
            fs.aligned.to_crop([h, t], what)           # all inside the crop before any is placed
        for h, t in drags:
            hc = fs.aligned.crop.transform.to_crop(np.array([h], np.float64))[0]
            tc = fs.aligned.crop.transform.to_crop(np.array([t], np.float64))[0]
            self.add_point(k, hc.tolist(), tc.tolist())
        painted = fs.aligned.crop.transform.mask_to_crop(region)
        if fs.mask_png is not None:
            from photodrag.pipeline.script import decode_mask
            painted = np.maximum(painted, decode_mask(fs.mask_png, painted.shape[0]))
        self.set_mask(k, encode_mask(painted))
        fs.preset_labels.append(use.label)
        return self.points_info(fs)

    # ---------------------------------------------------------------- the drag

    def drag_config(self, fs: FaceState):
        cfg = self.server.config.drag_config()
        return cfg.replace(**{k: v for k, v in (('latent_space', fs.latent_space),) if v is not None})

    def start(self, k: int) -> Dict[str, Any]:
        """Start (or go on with) face k's drag; frames stream to the page until done or Stop."""
        from photodrag.pipeline import editing
        from photodrag.pipeline import checks
        from photodrag.pipeline.script import ScriptedDrag, decode_mask
        fs = self.face(k)
        self._take_tuned(fs)
        if fs.running:
            return self.points_info(fs)
        if not fs.pairs:
            raise InvalidPointsError('add a handle and a target first: click the point to move, then where it goes')
        if fs.mask_png is not None:
            m = decode_mask(fs.mask_png, fs.aligned.crop.image.shape[0])
            info = self.points_info(fs)
            checks.check_points_in_mask(m, list(zip(info['handles'], info['targets'])))
        if fs.inv is None:
            if fs.tuning_error is not None:
                raise PhotodragError(f'this face could not be inverted ({fs.tuning_error}); open it again')
            if not self.server.settings.drag_while_tuning:
                fs.start_pending = True     # `_take_tuned` starts it, with the points as they are then
                return self.points_info(fs)
        if fs.drag is None:
            fs.start_pairs = [list(p) for p in fs.pairs]
            face = _with_drags(fs.aligned, fs.pairs)
            t = time.perf_counter()
            # while the face is still being tuned: on the untuned generator from the inversion's start
            G, ws = (fs.G_tuned, fs.inv.ws) if fs.inv is not None else (self.server.G, fs.start_ws)
            session = editing.start_drag(G, ws, face, None, self.drag_config(fs), device=self.server.config.device)
            fs.drag = ScriptedDrag(session, face.crop.transform)
            fs.drag_reconstruction = editing.drag_start_image(session)
            fs.timings['drag'] = time.perf_counter() - t
            if fs.lr is not None:
                fs.drag.set_lr(fs.lr)
            if fs.mask_png is not None:
                fs.drag.set_mask(fs.mask_png)
            fs.trails = [[tuple(h)] for h in session.handles]
        fs.stop.clear()
        fs.running = True
        self.frame_ready.set()
        fs.future = self._worker.submit(self._drag_loop, fs)
        return self.points_info(fs)

    def _drag_loop(self, fs: FaceState) -> None:
        from photodrag import stylegan
        session = fs.drag.session
        last_frame = due = 0.0
        t = time.perf_counter()
        first_step = session.step_count
        try:
            while not fs.stop.is_set() and not session.done and not self.closed:
                if fs.handoff is not None:  # the tuned generator is there: go on on it
                    self._take_tuned(fs)
                now = time.perf_counter()
                # frames on a fixed beat (not "interval since the last"), so steps that do not
                # divide the interval still average FRAME_FPS; a page that has not drawn the
                # last frame yet gets none (FRAME_TIMEOUT_S guards against a lost acknowledgement)
                want = self.watchers > 0 and now >= due and (
                    self.frame_ready.is_set() or now - last_frame >= FRAME_TIMEOUT_S)
                result = fs.drag.step(preview=want)
                for trail, h in zip(fs.trails, result.handles):
                    trail.append(tuple(h))
                if want:
                    # frames in bf16 on the CPU (1.2 ms less each); the last frame is the exact render
                    image = session.preview('bf16' if session.device.type == 'cpu' else None)
                    if image is not None:
                        self._send_frame(fs, stylegan.to_uint8(image)[0], result)
                        last_frame, due = now, max(due + 1 / FRAME_FPS, now - 0.5 / FRAME_FPS)
        except Exception as e:              # noqa: BLE001 - the page gets one line, the log the rest
            self.publish({'type': 'error', 'face': fs.k, 'error': one_line(e)})
            self.server.log_exception(e)
        finally:
            seconds = time.perf_counter() - t
            fs.timings['drag'] = fs.timings.get('drag', 0.0) + seconds
            fs.last_run = {'steps': session.step_count - first_step, 'seconds': round(seconds, 4)}
            fs.running = False
        if not self.closed:
            self._send_frame(fs, stylegan.to_uint8(session.render())[0], session.state(), final=True)

    def _send_frame(self, fs: FaceState, image: np.ndarray, result, final: bool = False) -> None:
        """Publish a frame of `image` (the render) and the drag's state, painted on the frame
        thread: the caller goes on at once, frames keep their order."""
        self.frame_ready.clear()
        state = {'step': result.step, 'handles': [list(h) for h in result.handles],
                 'targets': [list(t) for t in result.targets], 'distances': [round(d, 2) for d in result.distances],
                 'done': result.done, 'reason': result.reason, 'final': final, 'running': fs.running and not final,
                 'trails': [[[round(p[0], 1), round(p[1], 1)] for p in trail[-200:]] for trail in list(fs.trails)]}
        if not self.closed:
            self._frames.submit(self._paint_frame, fs, fs.drag, fs.drag_reconstruction, image, state)

    def _paint_frame(self, fs: FaceState, drag, before: np.ndarray, image: np.ndarray, state: Dict[str, Any]) -> None:
        """Paint and publish one frame of `drag` (the drag as it was when the frame was asked
        for: a Reset since then does not take it away), `before` being its reconstruction."""
        try:
            self._publish_frame(fs, drag, before, image, state)
        except Exception as e:              # noqa: BLE001 - the page gets one line, the log the rest
            self.frame_ready.set()
            self.publish({'type': 'error', 'face': fs.k, 'error': one_line(e)})
            self.server.log_exception(e)

    def _publish_frame(self, fs: FaceState, drag, before: np.ndarray, image: np.ndarray,
                       state: Dict[str, Any]) -> None:
        mask = None
        if drag.mask_png is not None:           # what the paste will take: the painted region only
            from photodrag.pipeline.script import decode_mask
            mask = decode_mask(drag.mask_png, image.shape[0])
            image = np.clip(np.rint(image * mask[..., None] + before * (1 - mask[..., None])), 0, 255).astype(np.uint8)
        progress = _content_progress(drag.session, before, image)
        shown = self._photo_frame(fs, drag, before, image, mask) if fs.view == 'photo' else image
        self.publish({'type': 'frame', 'face': fs.k, 'image': 'data:image/jpeg;base64,' + _jpeg_b64(shown),
                      'view': fs.view, 'content_progress': progress, **state})

    def _photo_frame(self, fs: FaceState, drag, before: np.ndarray, image: np.ndarray,
                     mask: Optional[np.ndarray]) -> np.ndarray:
        """What Apply would make of the face at this step, seen in the photo view: paste-back of
        `image` (the current render, its painted region `mask` already applied) into the view,
        with the same settings, the same region and the same measured correspondences as `apply`."""
        from photodrag import alignment
        from photodrag.pipeline import editing
        session, crop, s = drag.session, fs.aligned.crop, fs.photo_view.shape[0]
        whole = [[-0.5, -0.5], [-0.5, s - 0.5], [s - 0.5, s - 0.5], [s - 0.5, -0.5]]
        in_view = alignment.AlignedCrop(image=crop.image, face=None, recipe=crop.recipe, content_box=crop.content_box,
                                        transform=alignment.CropTransform.from_quad(whole, crop.transform.crop_size,
                                                                                    (s, s)))
        pairs = [(o, t) for o, t in zip(session.origins, session.targets) if o is not None]
        _, motions = editing.content_in_crop(before, image, [p[0] for p in pairs], [p[1] for p in pairs])
        edit = alignment.Edit(in_view, image, mask=mask, reference=before,
                              limit=self._view_limit(fs, drag) if mask is None else None, motions=motions)
        return alignment.paste_back(fs.photo_view, [edit], self.server.config.paste).pixels

    def _view_limit(self, fs: FaceState, drag) -> Optional[np.ndarray]:
        """The local editable region `apply` bounds the paste with, seen in the photo view (kept
        until the drag's pairs change)."""
        import cv2
        from photodrag.pipeline import editing
        from photodrag.pipeline.script import script_drags
        if self.server.config.region != 'local':
            return None
        drags = script_drags([(tuple(h), tuple(t)) for h, t in fs.start_pairs], drag.ops)
        if fs.view_limit is None or fs.view_limit[0] != drags:
            s = fs.photo_view.shape[0]
            region, _ = editing.local_region(drags, fs.target, self.photo.size)
            to_view = view_transform(fs.aligned.crop, s, self.photo.size)
            fs.view_limit = (drags, cv2.warpPerspective(region, to_view.matrix, (s, s), flags=cv2.INTER_LINEAR))
        return fs.view_limit[1]

    def stop(self, k: int, wait: bool = True) -> Dict[str, Any]:
        fs = self.face(k)
        fs.stop.set()
        fs.start_pending = False
        if wait and fs.future is not None:
            fs.future.result()
        return self.points_info(fs)

    def undo(self, k: int, steps: int = 1) -> Dict[str, Any]:
        fs = self.face(k)
        if fs.drag is None or fs.drag.session.step_count == 0:
            raise Conflict('nothing to undo: the drag has taken no step')
        steps = min(int(steps), fs.drag.session.step_count)
        fs.drag.undo(steps)
        self._sync_pairs(fs)
        s = fs.drag.session
        fs.trails = [trail[:s.step_count + 1] for trail in fs.trails]
        self._send_frame(fs, self._render(fs), s.state(), final=True)
        return self.points_info(fs)

    def reset(self, k: int) -> Dict[str, Any]:
        """Back to the inversion: the drag and its steps are dropped, the points stay where they were placed."""
        fs = self.face(k)
        if fs.drag is not None:
            fs.pairs = [list(p) for p in fs.start_pairs] if not fs.pairs else fs.pairs
        fs.drag, fs.drag_reconstruction = None, None
        fs.trails = [[] for _ in fs.pairs]
        if self.applied.pop(k, None) is not None:      # the result no longer holds this face
            if self.applied:
                self._paste()
            else:
                self.result = None
                self.result_files.pop('result.jpg', None)
        frame = {'type': 'frame', 'face': k, 'image': 'data:image/jpeg;base64,' + _jpeg_b64(fs.reconstruction),
                 'step': 0, 'final': True, 'running': False, 'done': False, 'reason': None,
                 'trails': [], **{key: self.points_info(fs)[key] for key in ('handles', 'targets')},
                 'distances': [], 'content_progress': []}
        # through the frame thread, behind the frames of the drag it replaces still being painted:
        # a page never gets an old drag's last frame after the reset's
        if not self.closed:
            self._frames.submit(self.publish, frame)
        return self.points_info(fs)

    def _sync_pairs(self, fs: FaceState) -> None:
        """After an undo the session's points are those of then: the photo pairs follow."""
        s, to_photo = fs.drag.session, fs.aligned.crop.transform.to_photo
        hs = to_photo(np.array(s.handles, np.float64).reshape(-1, 2))
        ts = to_photo(np.array(s.targets, np.float64).reshape(-1, 2))
        old = fs.pairs
        fs.pairs = [[tuple(map(float, h)), tuple(map(float, t))] for h, t in zip(hs, ts)]
        for i in range(min(len(old), len(fs.pairs))):      # keep the exact photo targets where they are unchanged
            if np.allclose(old[i][1], fs.pairs[i][1], atol=1e-6):
                fs.pairs[i][1] = old[i][1]
        while len(fs.trails) < len(fs.pairs):
            fs.trails.append([])
        del fs.trails[len(fs.pairs):]

    def _render(self, fs: FaceState) -> np.ndarray:
        from photodrag import stylegan
        return stylegan.to_uint8(fs.drag.session.render())[0]

    # ---------------------------------------------------------------- apply and download

    def apply(self, k: int) -> Dict[str, Any]:
        """Paste face k's edit into the photo, with every face applied before it."""
        from photodrag.pipeline import editing
        from photodrag.pipeline.checks import FaceEdit
        from photodrag.pipeline.script import decode_mask, script_drags
        fs = self.face(k)
        if fs.drag is None:
            raise Conflict('nothing to apply: start a drag first')
        self._take_tuned(fs)
        if fs.inv is None and fs.tuning_error is not None:
            raise PhotodragError(f'this face could not be inverted ({fs.tuning_error}), so its drag cannot be pasted; '
                                 'open it again')
        if fs.inv is None:
            raise Conflict('the generator is still learning this face (see the progress bar); the drag goes on on '
                           'it when it has, then Apply')
        session, drag = fs.drag.session, fs.drag
        plain = session.done and all(op['op'] == 'step' for op in drag.ops)
        start = [(tuple(h), tuple(t)) for h, t in fs.start_pairs]
        job = FaceEdit(face=k, drags=start)
        face = _with_drags(fs.aligned, start)
        mask_crop = region = mask_info = None
        if drag.mask_png is not None:
            mask_crop = decode_mask(drag.mask_png, session.resolution)
            mask_info = editing.painted_mask_info(mask_crop)
        elif self.server.config.region == 'local':
            region, mask_info = editing.local_region(script_drags(start, drag.ops), fs.target, self.photo.size)
        result, record = editing.finish_face(face, fs.target, job, fs.inv, session, fs.drag_reconstruction,
                                             mask_crop=mask_crop, mask_info=mask_info, region=region,
                                             timings={key: fs.timings.get(key, 0.0) for key in
                                                      ('align', 'invert', 'drag')},
                                             script=None if plain else drag)
        spaces = {self.drag_config(self.face_states[j]).latent_space for j in self.applied if j != k}
        if spaces and self.drag_config(fs).latent_space not in spaces:
            raise Conflict('the faces of one photo share the latent space (w or w+); Reset this face and choose '
                           f'{spaces.pop()}')
        self.applied[k] = (result, record)
        return self._paste()

    def _paste(self) -> Dict[str, Any]:
        from photodrag.pipeline import editing
        order = sorted(self.applied)
        results = [self.applied[j][0] for j in order]
        records = [self.applied[j][1] for j in order]
        first = self.face_states[order[0]]
        cfg = self.server.config
        cfg = cfg.replace(drag=self.drag_config(first), max_steps=None)
        timings = {}
        for fs in (self.face_states[j] for j in order):
            for key, v in fs.timings.items():
                timings[key] = timings.get(key, 0.0) + v
        # the total is the stages that ran for these faces (each face's align, invert and drag,
        # however long the page took between them) and this paste, not the paste alone
        started = time.perf_counter() - sum(timings.values())
        self.result = editing.assemble(self.photo, results, records, cfg, checkpoint=self.server.checkpoint_info,
                                       recipe=self.server.recipe, faces_found=len(self.faces), timings=timings,
                                       started=started)
        self.result.record.input['path'] = self.photo_name
        self.result_files.pop('photo', None)
        self.result_files.pop('record', None)
        self.encoding = {}
        self._write_view(self.result.pixels, 'result.jpg')
        return {'applied': order, 'width': self.photo.size[0], 'height': self.photo.size[1]}

    def output(self, what: str) -> Tuple[Path, str]:
        """(file, download name) of the edited photo, its record, or the result's view."""
        if what in ('view.jpg', 'result.jpg') or re.fullmatch(r'face\d+_(crop|reconstruction|mask|photo)\.png', what):
            path = self.result_files.get(what) or (self.tmp / what)
            if not path.is_file():
                raise NotFound(f'no {what} in this session')
            return path, what
        if self.result is None and not self.transfers:
            raise NotFound('nothing applied yet: apply an edit to the photo first')
        stem = Path(self.photo_name).stem
        if what == 'photo':
            if 'photo' not in self.result_files:
                from photodrag import alignment
                suffix = {'JPEG': '.jpg', 'PNG': '.png', 'WEBP': '.webp', 'TIFF': '.tif'}.get(self.photo.format, '.png')
                path = self.tmp / f'edited{suffix}'
                if self.result is not None:
                    self.result_files['photo'] = self.result.save(path, details=self.encoding)
                else:                               # parts taken from other shots, no drag applied
                    self.result_files['photo'] = alignment.write_photo(self.photo.pixels, path, like=self.original,
                                                                       details=self.encoding)
            path = self.result_files['photo']
            return path, f'{stem}_edited{path.suffix}'
        if what == 'record':
            if 'record' not in self.result_files:
                if 'photo' not in self.result_files:
                    self.output('photo')            # the record says how that file was coded
                edit = None if self.result is None else self.result.record.with_encoding(self.encoding.get('encoding'))
                if self.transfers:
                    from photodrag.io import write_json
                    pixels = self.photo.pixels if self.result is None else self.result.pixels
                    self.result_files['record'] = write_json(self.tmp / 'edited.json', self._fix_record(
                        None if edit is None else edit.to_dict(), pixels))
                else:
                    self.result_files['record'] = edit.save(self.tmp / 'edited.json')
            return self.result_files['record'], f'{stem}_edited.json'
        raise NotFound(f'no output {what!r}')

    def video(self, k: int) -> Tuple[Path, str]:
        """The drag of face k, step by step, points drawn (MP4)."""
        import torch
        from photodrag import stylegan
        from photodrag.pipeline import report
        fs = self.face(k)
        if fs.drag is None:
            raise Conflict('no drag to show: start one first')
        session = fs.drag.session
        path = self.tmp / f'face{k}_drag.mp4'
        scale = max(1, 512 // session.resolution)
        trails: List[List[Tuple[float, float]]] = []
        with report.VideoWriter(path, fps=15) as writer, torch.no_grad():
            for step, ws, handles, targets in session.trajectory():
                trails = [t + [h] for t, h in zip(trails, handles)] if len(trails) == len(handles) else \
                    [[h] for h in handles]
                image = stylegan.to_uint8(session.G.synthesis(ws, noise_mode=session.config.noise_mode))[0]
                writer.write(report.draw_points(image, handles, targets, trails=trails, scale=scale))
        return path, f'{Path(self.photo_name).stem}_face{k}_drag.mp4'


VIEWS = ('photo', 'generator')
VIEW_MIN, VIEW_MAX = 256, 512       # the photo view's side: the crop's size in the photo, within these


def view_transform(crop, size: int, photo_size):
    """The CropTransform from the photo to the crop's square seen at `size` px."""
    from photodrag.alignment import CropTransform
    return CropTransform.from_quad(crop.transform.quad(), (size, size), photo_size)


def _photo_view(photo, crop) -> np.ndarray:
    """The crop's square cut from the photo at about its size there (VIEW_MIN..VIEW_MAX px): the
    face the page draws, sharp where the generator's rendering is 128 px."""
    from photodrag.alignment import warp_quad
    side = int(round(crop.image.shape[0] / crop.transform.scale))
    size = min(VIEW_MAX, max(VIEW_MIN, side))
    return warp_quad(photo.pixels, view_transform(crop, size, photo.size))


def _with_drags(aligned, pairs):
    """The aligned face with these photo-pixel (handle, target) pairs, mapped into its crop the
    way `editing.align_face` maps an edit's drags."""
    handles = np.array([p[0] for p in pairs], np.float64).reshape(-1, 2)
    targets = np.array([p[1] for p in pairs], np.float64).reshape(-1, 2)
    to_crop = aligned.crop.transform.to_crop
    return dataclasses.replace(aligned, handles_photo=handles, targets_photo=targets, handles_crop=to_crop(handles),
                               targets_crop=to_crop(targets))


def _face_info(f, i: int, size) -> Dict[str, Any]:
    from photodrag.expressions import readout as expression
    if isinstance(f, tuple):            # an object recipe's box: a person found, or the whole photo
        return {'index': i, 'box': [float(v) for v in f], 'score': 1.0, 'object': True,
                'whole': tuple(f) == (0, 0, size[0], size[1])}
    # a face: found by the detector, or boxed by hand (index -1: its record keeps the box)
    info = {'index': i, 'box': [float(v) for v in f.box], 'score': round(float(f.score), 3),
            'boxed': f.index < 0}
    if f.landmarks is not None:
        r = expression.read(f.landmarks)
        info['expression'] = {**r.states(), 'text': r.describe()}
    return info


def _safe_name(name: Optional[str]) -> str:
    """The client's file name, for display and download names only (never a path here)."""
    base = re.split(r'[\\/]', name or '')[-1]
    base = re.sub(r'[^\w.\- ]', '_', base)[:100].strip(' .')
    return base or 'photo'


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image
    Image.fromarray(image).save(path, format='PNG')


def _content_progress(session, before: Optional[np.ndarray], image: np.ndarray) -> List[Optional[float]]:
    """Per handle, the share of the way its content went in the frame the page shows (0 = unmoved,
    1 = at the target), measured in the pixels (reconstruction before the drag against `image`),
    not by the tracker; None for a handle the drag has not picked up yet."""
    from photodrag.drag.tracking import patch_half
    from photodrag.evaluation.metrics import content_moved
    half = patch_half(image.shape[0])
    out: List[Optional[float]] = []
    for origin, target in zip(session.origins, session.targets):
        if origin is None or before is None:
            out.append(None)
        else:
            out.append(round(content_moved(before, image, origin, target, half)[1], 3))
    return out


def _jpeg_b64(image: np.ndarray, quality: int = 88) -> str:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format='JPEG', quality=quality)
    return base64.b64encode(buf.getvalue()).decode('ascii')


