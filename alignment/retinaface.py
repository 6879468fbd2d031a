"""The default face detector: RetinaFace (MobileNet-0.25) run by OpenCV's dnn module, with
dlib's 68 landmarks fitted on its boxes.

Measured on the shared test photos and the astronaut (2 cores; see docs/measurements.md,
"Finding every face"): it finds every face dlib's HOG detector finds, and also faces cut by
the frame, strongly darkened and close-up faces, in 4-210 ms a photo (HOG: 15-820 ms). The
model file ships inside photodrag (alignment/assets, MIT; see its NOTICE.txt), so nothing is
downloaded and no new runtime is needed.
"""

import functools
import hashlib
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from photodrag.errors import PhotodragError

from .faces import (DETECT_MAX_PIXELS, UPSAMPLED_MAX_PIXELS, Box, DlibDetector, Face, check_pixels, resize,
                    sort_faces, upsample_error)

MODEL = Path(__file__).resolve().parent / 'assets' / 'retinaface-mobilenet0.25.onnx'
MODEL_SHA256 = 'b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5'

MIN_SCORE = 0.9                 # face probability; the photos' faces score 0.99-1.00, non-faces up to 0.87
NMS_OVERLAP = 0.4               # boxes overlapping more than this (IoU) are one face
MEAN_BGR = (104.0, 117.0, 123.0)            # the training images' mean, subtracted from BGR pixels
VARIANCE = (0.1, 0.2)                       # the box regression's scale for centres and for sizes
ANCHORS = ((8, (16, 32)), (16, (64, 128)), (32, (256, 512)))    # (stride, anchor sizes) per output level
# RetinaFace's boxes sit higher and are taller than the HOG boxes dlib's 68-point model was
# trained on; moved by this (centre shift as a share of the box, size scale) the landmarks
# fitted on them agree with the HOG-box fit to 0.017 inter-ocular distances on the shared
# photos' 23 faces (0.035 unmapped).
TO_DLIB_BOX = (-0.007, 0.092, 1.104, 0.848)     # dx, dy (x width, x height), width and height scale


@functools.lru_cache(maxsize=1)
def _network():
    import cv2
    try:
        data = MODEL.read_bytes()
    except OSError as e:
        raise PhotodragError(f'the face detector model {MODEL} cannot be read ({e.strerror}); reinstall photodrag') from None
    if hashlib.sha256(data).hexdigest() != MODEL_SHA256:
        raise PhotodragError(f'the face detector model {MODEL} is not the file photodrag ships (its sha256 differs); '
                             'reinstall photodrag')
    return cv2.dnn.readNetFromONNX(str(MODEL))


@functools.lru_cache(maxsize=8)
def anchors(height: int, width: int) -> np.ndarray:
    """The anchor boxes (cx, cy, size) of a padded height x width input, in the network's output order."""
    rows = []
    for stride, sizes in ANCHORS:
        ys, xs = np.mgrid[0:height // stride, 0:width // stride]
        centres = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], -1).reshape(-1, 1, 2)
        both = np.concatenate([np.repeat(centres, len(sizes), 1),
                               np.broadcast_to(np.array(sizes, np.float32)[None, :, None], (len(centres), len(sizes), 1))], -1)
        rows.append(both.reshape(-1, 3))
    return np.concatenate(rows).astype(np.float32)


def find_boxes(pixels: np.ndarray, min_score: float = MIN_SCORE) -> List[Tuple[Box, float]]:
    """RetinaFace's face boxes (x0, y0, x1, y1, in `pixels`' coordinates, dlib's box
    convention) and probabilities, strongest first, for uint8 RGB `pixels`."""
    import cv2
    h, w = pixels.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32         # every output level divides the padded size
    x = np.zeros((ph, pw, 3), np.float32)
    x[:h, :w] = pixels[..., ::-1].astype(np.float32) - np.array(MEAN_BGR, np.float32)
    net = _network()
    net.setInput(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
    loc, conf = net.forward(['loc', 'conf'])
    prior = anchors(ph, pw)
    if loc.shape[1] != len(prior):
        raise PhotodragError(f'the face detector gave {loc.shape[1]} boxes for {len(prior)} anchors')
    score = conf[0, :, 1]
    keep = np.flatnonzero(score >= min_score)
    if not len(keep):
        return []
    p, d = prior[keep], loc[0, keep]
    centre = p[:, :2] + d[:, :2] * VARIANCE[0] * p[:, 2:]
    size = p[:, 2:] * np.exp(d[:, 2:] * VARIANCE[1])
    dx, dy, sw, sh = TO_DLIB_BOX
    centre = centre + size * (dx, dy)
    size = size * (sw, sh)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    picked = cv2.dnn.NMSBoxes([[float(a), float(b), float(c - a), float(e - b)] for a, b, c, e in boxes],
                              score[keep].tolist(), min_score, NMS_OVERLAP)
    return [(tuple(float(v) for v in boxes[i]), float(score[keep][i])) for i in np.asarray(picked).reshape(-1)]


class RetinaFaceDetector:
    """RetinaFace boxes, dlib's 68 landmarks fitted on them (FaceDetector protocol).

    `upsample` None or 0: the photo as it is (its smallest anchors find faces of about 10
    px; a second, enlarged pass only found animal faces on the test photos); k: the photo
    enlarged 2**k times.
    Photos above `detect_max_pixels` are searched on a downscaled copy; landmarks always come
    from the full-resolution photo. Scores are face probabilities (>= `min_score`)."""

    name = 'retinaface'

    def __init__(self, upsample: Optional[int] = None, detect_max_pixels: int = DETECT_MAX_PIXELS,
                 min_score: float = MIN_SCORE,
                 landmarker: Optional[DlibDetector] = None):
        self.upsample = upsample
        self.detect_max_pixels = detect_max_pixels
        self.min_score = min_score
        self._landmarker = landmarker or DlibDetector()
        _network()

    def detect(self, pixels: np.ndarray, upsample: Optional[int] = None) -> List[Face]:
        pixels = check_pixels(pixels)
        upsample = self.upsample if upsample is None else upsample
        h, w = pixels.shape[:2]
        scale = min(1.0, (self.detect_max_pixels / (w * h)) ** 0.5)
        up = int(upsample or 0)
        if up < 0:
            raise PhotodragError(f'upsample must be >= 0, got {up}')
        s = scale * 2 ** up
        if w * h * s * s > UPSAMPLED_MAX_PIXELS:
            raise upsample_error(w * h * scale * scale, up, w * h)
        search = pixels if s == 1.0 else resize(pixels, s)
        sx, sy = search.shape[1] / w, search.shape[0] / h
        found = [((b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy), p) for b, p in find_boxes(search, self.min_score)]
        faces = [Face(box=box, landmarks=self.landmarks(pixels, box), score=p) for box, p in found]
        return sort_faces(faces)

    def landmarks(self, pixels: np.ndarray, box: Box) -> np.ndarray:
        return self._landmarker.landmarks(pixels, box)
