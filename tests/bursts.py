"""Bursts made from one photo, for the reference fix (`photodrag fix --reference`): the photo as
the reference shot, and a second frame made from it: moved (shift, a 3° turn, x1.05), re-lit
(x0.9), with chosen faces' eyes closed. Where each reference pixel belongs in that frame is
known exactly (`aligned`), so a fix can be held to it."""

import numpy as np

from photodrag import alignment
from photodrag.expressions import readout

SHIFT, ANGLE, SCALE, GAIN = (9, -6), 3.0, 1.05, 0.9
READS_CLOSED_BELOW = 0.16        # made-up closed eyes must read clearly closed (EYES_CLOSED_BELOW is 0.18)


def close_eyes(pixels, landmarks, lashes_at, thickness, shift, tall=0.5):
    """Skin from under each eye drawn over it (an ellipse `tall` eye widths high, the skin
    `shift` widths below), and a dark lash line `lashes_at` of the way from the upper lid to the
    lower (where closed lids meet), 1/`thickness` of the eye's width thick."""
    import cv2
    out = pixels.copy()
    for idx in (range(36, 42), range(42, 48)):
        e = landmarks[list(idx)]
        w = float(np.hypot(*(e[0] - e[3])))
        c = e.mean(0)
        m = np.zeros(out.shape[:2], np.float32)
        cv2.ellipse(m, (int(c[0]), int(c[1] - (tall - 0.5) * w)), (int(0.8 * w), int(tall * w)), 0, 0, 360, 1.0, -1)
        m = cv2.GaussianBlur(m, (0, 0), w / 10)[..., None]
        below = np.roll(out, -int(shift * w), axis=0)
        out = np.clip(out * (1 - m) + below * m, 0, 255).astype(np.uint8)
        upper, lower = np.array([e[0], e[1], e[2], e[3]]), np.array([e[0], e[5], e[4], e[3]])
        lashes = (1 - lashes_at) * upper + lashes_at * lower
        cv2.polylines(out, [np.round(lashes).astype(np.int32)], False, (50, 35, 35), max(1, round(w / thickness)),
                      cv2.LINE_AA)
    return out


def closed(pixels, face):
    """`pixels` with the face's eyes closed so that they read closed (dlib's landmarks decide
    where a drawn closed eye ends up: the first of a few drawings that reads closed)."""
    for params in ((0.65, 7, 1.2, 0.7), (0.8, 7, 1.2, 0.7), (0.8, 6, 1.1, 0.6), (1.0, 10, 1.3, 0.75)):
        out = close_eyes(pixels, face.landmarks, *params)
        now = min(alignment.detect_faces(out), key=lambda f: np.hypot(*(f.centre - face.centre)))
        r = readout.read(now.landmarks)
        if max(r.left_eye, r.right_eye) < READS_CLOSED_BELOW:
            return out
    raise AssertionError(f'could not draw eyes that read closed on the face at {face.centre.round()}')


def blink_burst(reference, around, frame=None, close=None):
    """The second frame of a burst whose first is `reference` (uint8 RGB): `frame` (default:
    the reference) turned about the point `around`, shifted, scaled and re-lit, then the eyes
    of the faces `close` (their indices in that frame; None: all) closed. Returns the frame,
    where the reference's pixels belong in it (`aligned`) and the transform (2x3)."""
    import cv2
    H, W = reference.shape[:2]
    A = cv2.getRotationMatrix2D(tuple(float(v) for v in around), ANGLE, SCALE)
    A[:, 2] += SHIFT
    moved = lambda im: cv2.warpAffine(im, A, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)  # noqa
    photo = np.clip(moved(reference if frame is None else frame) * GAIN, 0, 255).astype(np.uint8)
    for f in alignment.detect_faces(photo):
        if close is None or f.index in close:
            photo = closed(photo, f)
    aligned = np.clip(moved(reference) * GAIN, 0, 255).astype(np.uint8)
    return photo, aligned, A


def eye_ncc(out, aligned, eye):
    """Normalised cross-correlation of `out` and `aligned` over the box around one eye's six
    landmarks (1.4 eye widths wide, 0.8 high)."""
    w, c = float(np.hypot(*(eye[0] - eye[3]))), eye.mean(0)
    x0, x1, y0, y1 = int(c[0] - 0.7 * w), int(c[0] + 0.7 * w), int(c[1] - 0.4 * w), int(c[1] + 0.4 * w)
    p = out[y0:y1, x0:x1].astype(np.float64).ravel()
    q = aligned[y0:y1, x0:x1].astype(np.float64).ravel()
    p, q = p - p.mean(), q - q.mean()
    return float(p @ q / np.sqrt((p @ p) * (q @ q)))
