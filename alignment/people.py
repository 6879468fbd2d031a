"""Whole people in a photo, for the full-body (StyleGAN-Human) crop recipe.

No person-detection weights can be shipped or downloaded here, so a person is found from
their face: the face detector's box sets a generous frame where the body of an upright person
can be (a standing adult is about 8 heads tall; the face box is about 3/4 of a head), and
OpenCV's GrabCut, seeded with the face and the middle of the chest as certain foreground,
the other faces and everything outside the frame as certain background, cuts the person out
of that frame on a small copy of the photo. The person's box is the bounding box of the cut
part joined to the face, grown to at least the head and shoulders.

It finds people whose face is visible (front, three-quarter or profile), standing or sitting
upright. People seen from behind, lying down or upside down are not found; the caller then
gives a box (`photodrag edit --box`, the editor's box tool) or uses the whole photo.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np

Box = Tuple[float, float, float, float]

WORK_SIDE = 240          # GrabCut runs on the photo scaled so its longer side is this (px)
BODY_HEIGHT = 11.0       # the frame reaches this many face-box heights below the face's top
BODY_HALF_WIDTH = 2.6    # ... and this many face-box widths either side of its centre
ABOVE_FACE = 0.6         # ... and this many face-box heights above it (hair, a hood, a hat)
GRABCUT_ITERATIONS = 3  # 320 px and 5 iterations found the same full-body boxes in 3-4x the time


def detect_people(image, faces: Optional[Sequence] = None, detector=None) -> List[Box]:
    """The boxes (x0, y0, x1, y1) of the people whose faces `faces` are (detected when None),
    in the faces' order (left to right). May be empty."""
    from .faces import detect_faces
    from .photo import as_rgb
    pixels = as_rgb(image)
    faces = detect_faces(pixels, detector=detector) if faces is None else list(faces)
    if not faces:
        return []
    import cv2
    h, w = pixels.shape[:2]
    s = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(pixels, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) \
        if s < 1 else pixels
    bgr = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR)
    boxes = [np.asarray(f.box, np.float64) * s for f in faces]
    people = [_person(bgr, i, boxes) for i in range(len(boxes))]
    return [(float(max(0.0, x0 / s)), float(max(0.0, y0 / s)), float(min(w, x1 / s)), float(min(h, y1 / s)))
            for x0, y0, x1, y1 in people]


def _person(bgr: np.ndarray, i: int, faces: List[np.ndarray]) -> Box:
    """The box (small-image pixels) of the person with face `faces[i]`."""
    import cv2
    sh, sw = bgr.shape[:2]
    x0, y0, x1, y1 = faces[i]
    fw, fh, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    frame = (max(0.0, cx - BODY_HALF_WIDTH * fw), max(0.0, y0 - ABOVE_FACE * fh),
             min(float(sw), cx + BODY_HALF_WIDTH * fw), min(float(sh), y0 + BODY_HEIGHT * fh))
    # the least a person is: the head and shoulders under the face
    least = (max(0.0, cx - 1.2 * fw), max(0.0, y0 - 0.3 * fh), min(float(sw), cx + 1.2 * fw),
             min(float(sh), y1 + 1.5 * fh))
    # GrabCut on the frame and a margin around it (the margin is the background it learns from)
    mx, my = 0.25 * (frame[2] - frame[0]), 0.1 * (frame[3] - frame[1])
    wx0, wy0 = int(max(0, frame[0] - mx)), int(max(0, frame[1] - my))
    wx1, wy1 = int(min(sw, np.ceil(frame[2] + mx))), int(min(sh, np.ceil(frame[3] + my)))
    win = np.ascontiguousarray(bgr[wy0:wy1, wx0:wx1])
    mask = np.full(win.shape[:2], cv2.GC_BGD, np.uint8)

    def fill(box, value):
        a, b, c, d = (int(round(v)) for v in (box[0] - wx0, box[1] - wy0, box[2] - wx0, box[3] - wy0))
        mask[max(0, b):max(0, d), max(0, a):max(0, c)] = value

    fill(frame, cv2.GC_PR_FGD)
    for j, other in enumerate(faces):
        if j != i:
            fill(other, cv2.GC_BGD)
    fill((x0, y0, x1, y1), cv2.GC_FGD)
    fill((cx - 0.3 * fw, y1, cx + 0.3 * fw, y1 + 1.2 * fh), cv2.GC_FGD)      # neck and chest
    fg_ok = (mask == cv2.GC_FGD).any() and (mask == cv2.GC_BGD).any() and win.shape[0] > 1 and win.shape[1] > 1
    if fg_ok:
        try:
            cv2.grabCut(win, mask, None, np.zeros((1, 65)), np.zeros((1, 65)), GRABCUT_ITERATIONS,
                        cv2.GC_INIT_WITH_MASK)
        except cv2.error:       # a frame GrabCut cannot model (e.g. one flat colour): the frame itself
            mask[:] = np.where(mask == cv2.GC_BGD, cv2.GC_BGD, cv2.GC_PR_FGD)
    person = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    _, labels = cv2.connectedComponents(person)
    fy, fx = int(round((y0 + y1) / 2 - wy0)), int(round(cx - wx0))
    label = labels[min(max(fy, 0), labels.shape[0] - 1), min(max(fx, 0), labels.shape[1] - 1)]
    ys, xs = np.nonzero(labels == label) if label else (np.array([]), np.array([]))
    if len(xs):
        found = (xs.min() + wx0, ys.min() + wy0, xs.max() + 1 + wx0, ys.max() + 1 + wy0)
    else:
        found = least
    return (min(found[0], least[0]), min(found[1], least[1]), max(found[2], least[2]), max(found[3], least[3]))


def select_person(people: Sequence[Box], point=None) -> Box:
    """The person whose box holds `point` (the smallest such box), else the largest person."""
    people = list(people)
    if point is not None:
        x, y = float(point[0]), float(point[1])
        inside = [b for b in people if b[0] <= x < b[2] and b[1] <= y < b[3]]
        if inside:
            return min(inside, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    return max(people, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
