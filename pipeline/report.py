"""Reports of an edit: frames with the drag's points drawn, trajectory videos, atomic writes."""

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from photodrag.errors import PhotodragError

HANDLE = (230, 40, 40)      # RGB: red handles
TARGET = (40, 110, 240)     # blue targets
_CODECS = {'.mp4': 'mp4v', '.webm': 'VP90', '.avi': 'MJPG'}


def draw_points(image: np.ndarray, handles: Sequence[Tuple[float, float]], targets: Sequence[Tuple[float, float]],
                mask: Optional[np.ndarray] = None, trails: Optional[Sequence[Sequence[Tuple[float, float]]]] = None,
                scale: int = 1) -> np.ndarray:
    """A copy of uint8 RGB `image` (upscaled `scale`x) with handles (red), targets (blue),
    arrows between them, optional handle trails, and the frozen area of `mask` dimmed."""
    import cv2
    out = np.ascontiguousarray(image)
    if scale > 1:
        out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    out = out.copy()
    if mask is not None:
        m = cv2.resize(np.asarray(mask, np.float32), out.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        out = (out * (0.45 + 0.55 * m[..., None])).astype(np.uint8)
    size = out.shape[0]
    radius = max(2, size // 100)

    def at(p):
        return (int(round((p[0] + 0.5) * scale - 0.5)), int(round((p[1] + 0.5) * scale - 0.5)))

    for trail in trails or ():
        if len(trail) > 1:
            cv2.polylines(out, [np.array([at(p) for p in trail], np.int32)], False, (255, 210, 60), max(1, radius // 2))
    for h, t in zip(handles, targets):
        cv2.arrowedLine(out, at(h), at(t), (255, 255, 255), max(1, radius // 2), tipLength=0.15)
        cv2.circle(out, at(h), radius, HANDLE, -1)
        cv2.circle(out, at(t), radius + 2, TARGET, max(1, radius // 2))     # a ring: the handle shows through
    return out


class VideoWriter:
    """Write uint8 RGB frames to .mp4 (MPEG-4), .webm (VP9) or .avi (MJPEG), atomically:
    the file appears under its name only when `close()` succeeds."""

    def __init__(self, path, fps: float = 10.0):
        self.path = Path(path)
        if self.path.suffix.lower() not in _CODECS:
            raise PhotodragError(f'{self.path}: video must be .mp4, .webm or .avi')
        self.fps = fps
        self._tmp = self.path.with_name(f'.{self.path.stem}.{os.getpid()}.tmp{self.path.suffix}')
        self._writer = None
        self._size = None

    def write(self, frame: np.ndarray) -> None:
        import cv2
        h, w = frame.shape[:2]
        if self._writer is None:
            self._size = (w - w % 2, h - h % 2)
            self.path.parent.mkdir(parents=True, exist_ok=True)
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
    tmp = path.with_name(f'.{path.stem}.{os.getpid()}.tmp{path.suffix}')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp)
        os.replace(tmp, path)
    except (OSError, ValueError, KeyError) as e:
        raise PhotodragError(f'cannot write {path}: {e}') from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_json(path, data: Dict[str, Any]) -> Path:
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(data, indent=2, default=str) + '\n')
    os.replace(tmp, path)
    return path


def content_shift(before: np.ndarray, after: np.ndarray, handle, target, half: int = 4) -> Tuple[float, float]:
    """Where the content under `handle` in `before` (uint8 RGB) is in `after`: the (2 half + 1)^2
    grey patch around the handle found again by normalised cross-correlation (OpenCV
    matchTemplate) in a window covering handle and target. A measure of a drag that does not
    depend on the generator's features (which drive the drag's own point tracking)."""
    import cv2
    g0 = cv2.cvtColor(np.ascontiguousarray(before), cv2.COLOR_RGB2GRAY).astype(np.float32)
    g1 = cv2.cvtColor(np.ascontiguousarray(after), cv2.COLOR_RGB2GRAY).astype(np.float32)
    hx, hy = int(round(handle[0])), int(round(handle[1]))
    if not (half <= hx < g0.shape[1] - half and half <= hy < g0.shape[0] - half):
        raise ValueError(f'handle {tuple(handle)} is too close to the image border for a {2 * half + 1} px patch')
    patch = g0[hy - half:hy + half + 1, hx - half:hx + half + 1]
    reach = int(np.ceil(1.5 * np.hypot(target[0] - handle[0], target[1] - handle[1]))) + half + 2
    cx, cy = (handle[0] + target[0]) / 2, (handle[1] + target[1]) / 2
    x0, y0 = max(int(cx - reach), 0), max(int(cy - reach), 0)
    x1, y1 = min(int(cx + reach) + 1, g1.shape[1]), min(int(cy + reach) + 1, g1.shape[0])
    score = cv2.matchTemplate(g1[y0:y1, x0:x1], patch, cv2.TM_CCOEFF_NORMED)
    _, _, _, (mx, my) = cv2.minMaxLoc(score)
    return float(x0 + mx + half), float(y0 + my + half)


def redetected_landmarks(image: np.ndarray, detector=None, upscale: int = 512) -> Optional[np.ndarray]:
    """The 68 landmarks of the one face in uint8 RGB `image` (a crop), found again by the face
    detector on the crop resized to `upscale` px and mapped back; None unless exactly one
    face is found. Like `content_shift`, it measures an edit without the generator's features."""
    import cv2

    from photodrag import alignment
    detector = detector or alignment.default_detector()
    h, w = image.shape[:2]
    big = cv2.resize(np.ascontiguousarray(image), (upscale, upscale), interpolation=cv2.INTER_CUBIC)
    faces = detector.detect(big)
    if len(faces) != 1:
        return None
    return faces[0].landmarks * np.array([w / upscale, h / upscale])


def progress_towards(start, end, target) -> float:
    """How far a point went from `start` towards `target` (1 = all the way), along that line."""
    way = np.subtract(target, start, dtype=float)
    return float(np.dot(np.subtract(end, start, dtype=float), way) / np.dot(way, way))
