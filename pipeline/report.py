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


def before_after(result, points: bool = True) -> np.ndarray:
    """The input and the edited photo side by side (uint8 RGB), both untouched, and with
    `points` a third panel: the output with each drag drawn small and hollow (handle red,
    target blue, the handle's end position as a red dot, the local editable region's outline
    yellow), so no marker hides the change."""
    before, after = result.photo.pixels, result.pixels
    gap = np.full((before.shape[0], max(4, before.shape[1] // 100), 3), 255, np.uint8)
    panels = [before, gap, after]
    if points:
        import cv2
        faces = result.record.faces
        handles = [tuple(h) for f in faces for h in f.handles_photo]
        targets = [tuple(t) for f in faces for t in f.targets_photo]
        reached = [tuple(h) for f in faces for h in f.drag['handles_photo']]
        widths = [f.box[2] - f.box[0] for f in faces] or [min(before.shape[:2])]
        radius = max(3, int(round(0.025 * min(widths))))
        guide = draw_points(after, handles, targets, hollow=True, radius=radius)
        for face in getattr(result, 'faces', ()):      # the local editable region's outline, in yellow
            if getattr(face, 'region', None) is not None:
                inside = (face.region > 0.5).astype(np.uint8)
                contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(guide, contours, -1, (255, 220, 0), 1, cv2.LINE_AA)
        for x, y in reached:
            cv2.circle(guide, (int(round(x)), int(round(y))), max(1, radius // 3), HANDLE, -1, cv2.LINE_AA)
        panels += [gap, guide]
    return np.concatenate(panels, axis=1)


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
