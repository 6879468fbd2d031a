"""Pictures of an edit: frames with the drag's points drawn, before/after, numbered faces, videos."""

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from photodrag.errors import PhotodragError
from photodrag.io import atomic_write, temp_sibling

HANDLE = (230, 40, 40)      # RGB: red handles
TARGET = (40, 110, 240)     # blue targets
_CODECS = {'.mp4': 'mp4v', '.webm': 'VP90', '.avi': 'MJPG'}


def draw_points(image: np.ndarray, handles: Sequence[Tuple[float, float]], targets: Sequence[Tuple[float, float]],
                mask: Optional[np.ndarray] = None, trails: Optional[Sequence[Sequence[Tuple[float, float]]]] = None,
                scale: int = 1, hollow: bool = False, radius: Optional[int] = None) -> np.ndarray:
    """A copy of uint8 RGB `image` (upscaled `scale`x) with handles (red), targets (blue),
    arrows between them, optional handle trails, and the frozen area of `mask` dimmed.
    `hollow` draws thin rings and a thin arrow, so the content under the points shows."""
    import cv2
    out = np.ascontiguousarray(image)
    if scale > 1:
        out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    out = out.copy()
    if mask is not None:
        m = cv2.resize(np.asarray(mask, np.float32), out.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        out = (out * (0.45 + 0.55 * m[..., None])).astype(np.uint8)
    size = out.shape[0]
    radius = radius or max(2, size // 100)
    line = 1 if hollow else max(1, radius // 2)

    def at(p):
        return (int(round((p[0] + 0.5) * scale - 0.5)), int(round((p[1] + 0.5) * scale - 0.5)))

    for trail in trails or ():
        if len(trail) > 1:
            cv2.polylines(out, [np.array([at(p) for p in trail], np.int32)], False, (255, 210, 60), line)
    for h, t in zip(handles, targets):
        start, end = at(h), at(t)
        if hollow:          # the arrow runs from ring to ring and leaves the points themselves clear
            d = np.subtract(end, start, dtype=np.float64)
            length = float(np.hypot(*d))
            if length > 2 * radius + 2:
                start, end = (tuple(int(round(v)) for v in np.add(start, d * radius / length)),
                              tuple(int(round(v)) for v in np.subtract(end, d * radius / length)))
                cv2.arrowedLine(out, start, end, (255, 255, 255), line, cv2.LINE_AA, tipLength=0.3)
        else:
            cv2.arrowedLine(out, start, end, (255, 255, 255), line, tipLength=0.15)
        cv2.circle(out, at(h), radius, HANDLE, line if hollow else -1, cv2.LINE_AA)
        cv2.circle(out, at(t), radius + (0 if hollow else 2), TARGET, line, cv2.LINE_AA)   # a ring: the handle shows
    return out


CAPTIONS = ('before', 'after', 'drags: red to blue')      # before_after's panels


def before_after(result, points: bool = True) -> np.ndarray:
    """The input and the edited photo side by side (uint8 RGB), both untouched, and with
    `points` a third panel: the output with each drag drawn small and hollow (handle red,
    target blue, the handle's end position as a red dot, the local editable region's outline
    yellow), so no marker hides the change. A white strip above names each panel (`CAPTIONS`)."""
    before, after = result.photo.pixels, result.pixels
    panels = [before, after]
    if points:
        panels.append(_drag_guide(result))
    strip = _caption_height(before.shape[1])
    row = [_captioned(panel, text, strip) for panel, text in zip(panels, CAPTIONS)]
    gap = np.full((strip + before.shape[0], max(4, before.shape[1] // 100), 3), 255, np.uint8)
    return np.concatenate(sum(([panel, gap] for panel in row), [])[:-1], axis=1)


def _drag_guide(result) -> np.ndarray:
    """before_after's third panel: the output with the drags, their ends and the regions drawn."""
    import cv2
    after = result.pixels
    faces = result.record.faces
    handles = [tuple(h) for f in faces for h in f.handles_photo]
    targets = [tuple(t) for f in faces for t in f.targets_photo]
    reached = [tuple(h) for f in faces for h in f.drag['handles_photo']]
    widths = [f.box[2] - f.box[0] for f in faces] or [min(after.shape[:2])]
    radius = max(3, int(round(0.025 * min(widths))))
    guide = draw_points(after, handles, targets, hollow=True, radius=radius)
    for face in result.faces:          # the local editable region's outline, in yellow
        if face.region is not None:
            inside = (face.region > 0.5).astype(np.uint8)
            contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(guide, contours, -1, (255, 220, 0), 1, cv2.LINE_AA)
    for x, y in reached:
        cv2.circle(guide, (int(round(x)), int(round(y))), max(1, radius // 3), HANDLE, -1, cv2.LINE_AA)
    return guide


def _caption_scale(width: int) -> float:
    """The caption's font scale for a panel `width` px wide: legible, not shouting."""
    return min(1.6, max(0.45, width / 700))


def _caption_height(width: int) -> int:
    import cv2
    scale = _caption_scale(width)
    (_, th), base = cv2.getTextSize('bdfhlpqy', cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, round(scale * 1.5)))
    return th + base + 2 * max(3, int(th * 0.4))


def _captioned(panel: np.ndarray, text: str, height: int) -> np.ndarray:
    """`panel` under a white strip `height` px tall with `text` in black, shrunk to fit its width."""
    import cv2
    width = panel.shape[1]
    scale = _caption_scale(width)
    while True:
        thick = max(1, round(scale * 1.5))
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        if tw <= width - 8 or scale < 0.3:
            break
        scale *= 0.9
    strip = np.full((height, width, 3), 255, np.uint8)
    y = (height + th) // 2 - base // 2
    cv2.putText(strip, text, (max(0, (width - tw) // 2), y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick,
                cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def draw_faces(pixels: np.ndarray, faces) -> np.ndarray:
    """A copy of `pixels` with each face's box and number drawn (as `photodrag faces` numbers them)."""
    import cv2
    out = pixels.copy()
    thick = max(2, round(max(out.shape[:2]) / 300))
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (255, 220, 0), thick)
        scale = max(0.6, f.width / 120)
        label = str(f.index)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y0 - base - 2 if y0 - th - base - 2 >= 0 else y0 + th + 2
        cv2.rectangle(out, (x0, ty - th - 2), (x0 + tw + 4, ty + base), (255, 220, 0), -1)
        cv2.putText(out, label, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out


def draw_plan(pixels: np.ndarray, faces, plan) -> np.ndarray:
    """The photo with its faces numbered and, on each face of `plan` ({face index: preset
    uses}), the presets' handles, targets and editable region outline: what `fix` would do."""
    import cv2
    out = draw_faces(pixels, faces)
    h, w = pixels.shape[:2]
    for f in faces:
        uses = plan.get(f.index, ())
        if not uses:
            continue
        from photodrag.expressions.presets import face_drags
        drags, region, _ = face_drags(uses, f.landmarks, (w, h))
        handles, targets = [d[0] for d in drags], [d[1] for d in drags]
        contours, _ = cv2.findContours((region > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 220, 0), 1, cv2.LINE_AA)
        out = draw_points(out, handles, targets, hollow=True, radius=max(2, int(round(0.02 * f.width))))
    return out


def draw_presets(pixels: np.ndarray, face, uses, panel: int = 320) -> np.ndarray:
    """One panel per preset use on `face` of the photo `pixels`: the face (its box grown by
    half) `panel` px wide, the preset's editable region tinted and outlined in yellow, its
    handles (red) and targets (blue), and its name: what the preset will do, before it runs."""
    import cv2
    x0, y0, x1, y1 = face.box
    gx, gy = 0.5 * (x1 - x0), 0.5 * (y1 - y0)
    h, w = pixels.shape[:2]
    bx0, by0, bx1, by1 = max(0, int(x0 - gx)), max(0, int(y0 - gy)), min(w, int(x1 + gx)), min(h, int(y1 + gy))
    window = np.ascontiguousarray(pixels[by0:by1, bx0:bx1])
    scale = panel / window.shape[1]
    size = (panel, max(1, int(round(window.shape[0] * scale))))
    base = cv2.resize(window, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    tiles = []
    for u in uses:
        handles, targets = u.preset.displacements(face.landmarks, u.strength)
        region = u.preset.mask(face.landmarks, (w, h), u.strength)[by0:by1, bx0:bx1]
        region = cv2.resize(region, size, interpolation=cv2.INTER_LINEAR)
        tile = base.astype(np.float32)
        tile = (tile * (1 - 0.35 * region[..., None]) + np.array([255, 220, 0], np.float32) * 0.35 * region[..., None])
        tile = np.clip(tile, 0, 255).astype(np.uint8)
        contours, _ = cv2.findContours((region > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(tile, contours, -1, (255, 220, 0), 1, cv2.LINE_AA)
        shift = np.array([bx0, by0], np.float64)
        tile = draw_points(tile, [tuple((p - shift) * scale) for p in handles],
                           [tuple((p - shift) * scale) for p in targets], hollow=True, radius=max(3, panel // 90))
        label = np.full((22, size[0], 3), 255, np.uint8)
        cv2.putText(label, u.label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([label, tile], axis=0))
    columns = min(4, len(tiles))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    gap_v = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    rows = [np.concatenate(sum(([t, gap_v] for t in tiles[i:i + columns]), [])[:-1], axis=1)
            for i in range(0, len(tiles), columns)]
    gap_h = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate(sum(([r, gap_h] for r in rows), [])[:-1], axis=0)


class VideoWriter:
    """Write uint8 RGB frames to .mp4 (MPEG-4), .webm (VP9) or .avi (MJPEG), atomically:
    the file appears under its name only when `close()` succeeds."""

    def __init__(self, path, fps: float = 10.0):
        self.path = Path(path)
        if self.path.suffix.lower() not in _CODECS:
            raise PhotodragError(f'{self.path}: video must be .mp4, .webm or .avi')
        self.fps = fps
        self._tmp = None
        self._writer = None
        self._size = None

    def write(self, frame: np.ndarray) -> None:
        import cv2
        h, w = frame.shape[:2]
        if self._writer is None:
            self._size = (w - w % 2, h - h % 2)
            self._tmp = temp_sibling(self.path)
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*_CODECS[self.path.suffix.lower()]),
                                           self.fps, self._size)
            if not self._writer.isOpened():
                raise PhotodragError(f'cannot open a video writer for {self.path} (OpenCV lacks the codec)')
        frame = frame[:self._size[1], :self._size[0]]
        self._writer.write(np.ascontiguousarray(frame[..., ::-1]))

    def drag_frames(self, stage: str, step: int, total: int, info) -> None:
        """An `edit` callback: each drag step's rendering, points drawn, becomes a frame."""
        if stage == 'drag':
            from photodrag import stylegan
            session = info['session']
            image = stylegan.to_uint8(session.render())[0]
            self.write(draw_points(image, session.handles, session.targets, scale=max(1, 512 // session.resolution)))

    def close(self) -> None:
        if self._writer is None:
            raise PhotodragError(f'{self.path}: no frames to write')
        self._writer.release()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def save_image(path, image: np.ndarray) -> Path:
    """Write a uint8 RGB image atomically (format from the extension)."""
    from PIL import Image
    path = Path(path)
    with atomic_write(path) as tmp:
        try:
            Image.fromarray(image).save(tmp)
        except (ValueError, KeyError) as e:
            raise PhotodragError(f'cannot write {path}: {e}') from None
    return path


def loss_plot(history, keys: Sequence[str], path, title: str = 'loss') -> Optional[Path]:
    """A small PNG of training losses over steps (log scale, one colour per key), drawn with
    OpenCV; entries lacking a key are skipped for that curve. None when there is too little."""
    import cv2
    w, h, pad = 640, 360, 40
    palette = [(200, 60, 60), (60, 140, 60), (60, 60, 200), (180, 120, 0)]
    curves = {}
    for k in keys:
        points = [(e['step'], e[k]) for e in history if e.get(k) is not None]
        if len(points) >= 2:
            curves[k] = np.array(points, float)
    if not curves:
        return None
    canvas = np.full((h, w, 3), 255, np.uint8)
    first = min(c[0, 0] for c in curves.values())
    last = max(c[-1, 0] for c in curves.values())
    logs = {k: np.log10(c[:, 1].clip(1e-6)) for k, c in curves.items()}
    lo, hi = min(v.min() for v in logs.values()), max(v.max() for v in logs.values())
    for i, (k, c) in enumerate(curves.items()):
        xs = pad + (c[:, 0] - first) / max(last - first, 1) * (w - 2 * pad)
        ys = h - pad - (logs[k] - lo) / max(hi - lo, 1e-6) * (h - 2 * pad)
        colour = palette[i % len(palette)]
        cv2.polylines(canvas, [np.stack([xs, ys], 1).astype(np.int32)], False, colour, 2, cv2.LINE_AA)
        cv2.putText(canvas, k, (w - 110, 25 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    cv2.putText(canvas, f'{title}: log10 {hi:.2f} .. {lo:.2f}; steps {int(first)}..{int(last)}', (pad, 25),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return save_image(path, canvas)
