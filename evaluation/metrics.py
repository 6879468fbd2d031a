"""Measures of an edit that do not trust the generator: where the content went (pixel
cross-correlation), landmarks found again, image fidelity (LPIPS, PSNR), inside and outside
the editable region. `photodrag eval` (evaluation/protocols.py) reports them.

Distances are in the pixels of the images given; `at_512` rescales crop pixels to a 512 px
crop, the scale DragGAN's landmark table reports.
"""

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from photodrag.errors import InvalidPointsError

# iBUG 300-W 68-point regions, to report a drag's result by where it was made
REGIONS = {'jaw': range(0, 17), 'brows': range(17, 27), 'nose': range(27, 36), 'eyes': range(36, 48),
           'mouth': range(48, 68)}
# the landmark subsets of the landmark protocol: 1 point (a mouth corner), the classic 5
# (outer eye corners, nose tip, mouth corners), all 68
POINT_SETS = {1: (48,), 5: (36, 45, 30, 48, 54), 68: tuple(range(68))}


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
        raise InvalidPointsError(f'handle {tuple(handle)} is too close to the image border for a '
                                 f'{2 * half + 1} px patch')
    patch = g0[hy - half:hy + half + 1, hx - half:hx + half + 1]
    reach = int(np.ceil(1.5 * np.hypot(target[0] - handle[0], target[1] - handle[1]))) + half + 2
    cx, cy = (handle[0] + target[0]) / 2, (handle[1] + target[1]) / 2
    x0, y0 = max(int(cx - reach), 0), max(int(cy - reach), 0)
    x1, y1 = min(int(cx + reach) + 1, g1.shape[1]), min(int(cy + reach) + 1, g1.shape[0])
    score = cv2.matchTemplate(g1[y0:y1, x0:x1], patch, cv2.TM_CCOEFF_NORMED)
    _, _, _, (mx, my) = cv2.minMaxLoc(score)
    return float(x0 + mx + half), float(y0 + my + half)


def content_position(before: np.ndarray, after: np.ndarray, handle, target, half: int = 4
                     ) -> Tuple[Tuple[float, float], float]:
    """Where the content under `handle` in `before` sits in `after` (uint8 RGB, same size), and
    how sure the images are: ((x, y), normalised cross-correlation of the best match).

    The (2 half + 1)^2 grey patch around the handle is searched for within the drag's reach:
    positions no farther from the handle -> target segment than half its length + 2 px
    (content that went farther than that did not go where it was dragged). Sub-pixel by a
    parabola through the peak; among equal scores the position nearest the handle wins, so
    an unchanged flat region reads as unmoved (as does a patch with no texture at all, score 0).
A handle nearer the border than `half` is taken at the nearest position a whole patch fits."""
    import cv2
    from photodrag.drag.tracking import peak_offset
    g0 = cv2.cvtColor(np.ascontiguousarray(before), cv2.COLOR_RGB2GRAY).astype(np.float32)
    g1 = cv2.cvtColor(np.ascontiguousarray(after), cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = g0.shape
    half = int(max(1, min(half, (min(h, w) - 1) // 2)))
    hx = int(min(max(round(float(handle[0])), half), w - 1 - half))
    hy = int(min(max(round(float(handle[1])), half), h - 1 - half))
    patch = g0[hy - half:hy + half + 1, hx - half:hx + half + 1]
    hxy, txy = np.array([hx, hy], float), np.asarray(target, float)
    length = float(np.hypot(*(txy - hxy)))
    reach = 0.5 * length + 2.0
    x0 = int(max(min(hxy[0], txy[0]) - reach - half, 0))
    y0 = int(max(min(hxy[1], txy[1]) - reach - half, 0))
    x1 = int(min(max(hxy[0], txy[0]) + reach + half + 2, w))
    y1 = int(min(max(hxy[1], txy[1]) + reach + half + 2, h))
    score = cv2.matchTemplate(g1[y0:y1, x0:x1], patch, cv2.TM_CCOEFF_NORMED)
    if float(patch.std()) < 1e-3:       # a flat patch matches anything: it is where it was
        return (float(hx), float(hy)), 0.0
    sy, sx = np.mgrid[0:score.shape[0], 0:score.shape[1]]
    cx, cy = sx + x0 + half, sy + y0 + half                    # the centres the scores belong to
    way = txy - hxy
    t = np.clip(((cx - hxy[0]) * way[0] + (cy - hxy[1]) * way[1]) / max(length ** 2, 1e-9), 0, 1)
    off = np.hypot(cx - (hxy[0] + t * way[0]), cy - (hxy[1] + t * way[1]))
    near = np.hypot(cx - hxy[0], cy - hxy[1])
    ranked = np.where(off <= reach, score - 1e-4 * near, -np.inf)
    by, bx = np.unravel_index(int(np.argmax(ranked)), ranked.shape)
    if score[by, bx] >= 0.999:         # the patch itself, unchanged: no sub-pixel guess
        return (float(cx[by, bx]), float(cy[by, bx])), float(score[by, bx])
    fx = peak_offset(score[by, bx - 1], score[by, bx], score[by, bx + 1]) if 0 < bx < score.shape[1] - 1 else 0.0
    fy = peak_offset(score[by - 1, bx], score[by, bx], score[by + 1, bx]) if 0 < by < score.shape[0] - 1 else 0.0
    return (float(cx[by, bx] + fx), float(cy[by, bx] + fy)), float(score[by, bx])


def content_moved(before: np.ndarray, after: np.ndarray, handle, target, half: int = 4
                  ) -> Tuple[Tuple[float, float], float, float]:
    """(where the content under `handle` is in `after` (`content_position`), the share of the
    way to `target` it went (0 = unmoved, 1 = there; 1 for a drag under half a pixel), the
    match's correlation): the figure every report of a drag gives."""
    at, score = content_position(before, after, handle, target, half)
    if float(np.hypot(*np.subtract(target, handle, dtype=float))) < 0.5:
        return at, 1.0, score
    return at, progress_towards(handle, at, target), score


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


def photo_landmarks(pixels: np.ndarray, near, detector=None, upscale: int = 512,
                    same_box: bool = False) -> Optional[np.ndarray]:
    """The 68 landmarks of the face nearest `near` (a `Face`) in a photo, found again on its box
    grown by half and resized to `upscale` px, so that they are sub-pixel in photo pixels (dlib
    gives whole pixels of the image it sees); None when no face is found there.

    same_box: fit the landmarks inside `near.box` instead of detecting the face again. dlib's
    landmark model starts from the face box, so a new box moves every landmark, the jaw most
    (up to 8 % of the face width on a portrait whose eyes alone were edited, every pixel
    outside them unchanged); with the box held, only what the pixels show moves them."""
    import cv2
    x0, y0, x1, y1 = near.box
    gx, gy = 0.5 * (x1 - x0), 0.5 * (y1 - y0)
    h, w = pixels.shape[:2]
    bx0, by0 = max(0, int(x0 - gx)), max(0, int(y0 - gy))
    bx1, by1 = min(w, int(x1 + gx)), min(h, int(y1 + gy))
    window = np.ascontiguousarray(pixels[by0:by1, bx0:bx1])
    if not same_box:
        lm = redetected_landmarks(window, detector, upscale)
        return None if lm is None else lm + [bx0, by0]
    from photodrag import alignment
    detector = detector or alignment.default_detector()
    sx, sy = upscale / window.shape[1], upscale / window.shape[0]
    big = cv2.resize(window, (upscale, upscale), interpolation=cv2.INTER_CUBIC)
    box = ((x0 - bx0) * sx, (y0 - by0) * sy, (x1 - bx0) * sx, (y1 - by0) * sy)
    return detector.landmarks(big, box) / [sx, sy] + [bx0, by0]


def progress_towards(start, end, target) -> float:
    """How far a point went from `start` towards `target` (1 = all the way), along that line."""
    way = np.subtract(target, start, dtype=float)
    return float(np.dot(np.subtract(end, start, dtype=float), way) / np.dot(way, way))


def region_of(index: int) -> str:
    """The face region of 68-point landmark `index`."""
    return next(name for name, r in REGIONS.items() if index in r)


def direction_of(handle, target) -> str:
    """'up', 'down', 'left' or 'right': the main direction of a drag (image y grows down)."""
    dx, dy = np.subtract(target, handle, dtype=float)
    if abs(dx) >= abs(dy):
        return 'right' if dx >= 0 else 'left'
    return 'down' if dy >= 0 else 'up'


def content_match(before: np.ndarray, after: np.ndarray, handle, target, half: int = 4) -> Dict[str, float]:
    """Where the patch under `handle` in `before` went in `after` (`content_position`, the measure
    edit records use): the found position, its distance to `target`, the drag's length, and the
    share of the way it moved. A handle nearer the border than `half` is an error here."""
    hx, hy = int(round(handle[0])), int(round(handle[1]))
    if not (half <= hx < before.shape[1] - half and half <= hy < before.shape[0] - half):
        raise InvalidPointsError(f'handle {tuple(handle)} is too close to the image border for a '
                                 f'{2 * half + 1} px patch')
    found, progress, _ = content_moved(before, after, handle, target, half)
    return {'found': [found[0], found[1]], 'distance': float(np.hypot(*np.subtract(target, found))),
            'length': float(np.hypot(*np.subtract(target, handle))), 'progress': progress}


def mean_distance(a, b) -> float:
    """The mean Euclidean distance between corresponding points of a and b ([N, 2] each)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 2), np.asarray(b, np.float64).reshape(-1, 2)
    if a.shape != b.shape or not len(a):
        raise InvalidPointsError(f'mean distance needs two equal, non-empty point sets, got {a.shape} and {b.shape}')
    return float(np.hypot(*(a - b).T).mean())


def inter_ocular(landmarks) -> float:
    """The distance between the two eye centres (landmarks 36-41 and 42-47)."""
    lm = np.asarray(landmarks, np.float64)
    return float(np.hypot(*(lm[42:48].mean(axis=0) - lm[36:42].mean(axis=0))))


def at_512(distance: float, size: int) -> float:
    """A distance in the pixels of a `size` px crop, at the scale of a 512 px crop."""
    return float(distance) * 512.0 / float(size)


def region_mask(shape, points: Sequence, margin: float) -> np.ndarray:
    """The editable region an evaluation assumes for a drag: the convex hull of its handles and
    targets grown by `margin` px (bool [H, W], True = may change)."""
    import cv2
    h, w = shape[:2]
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    r = max(1, int(round(margin)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask.astype(bool)


def psnr(a: np.ndarray, b: np.ndarray, where: Optional[np.ndarray] = None) -> float:
    """PSNR in dB of uint8 images a, b (over the pixels `where` is True, all by default); inf
    when they are identical there."""
    d = a.astype(np.float64) - b.astype(np.float64)
    if where is not None:
        d = d[np.asarray(where, bool)]
    mse = float(np.mean(d ** 2)) if d.size else 0.0
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def image_fidelity(a: np.ndarray, b: np.ndarray, lpips=None, size: int = 224) -> float:
    """1 - LPIPS(alex) between uint8 RGB images a and b, both resized to `size` x `size`
    (DragBench's image fidelity, as DragDiffusion's evaluation computes it)."""
    import cv2
    import torch
    from photodrag.inversion import load_lpips
    lpips = lpips or load_lpips('alex')

    def tensor(x):
        x = cv2.resize(np.ascontiguousarray(x), (size, size), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        return 1.0 - float(lpips(tensor(a), tensor(b)))


def outside_fidelity(reference: np.ndarray, edited: np.ndarray, editable: np.ndarray,
                     lpips=None) -> Tuple[float, float]:
    """(1 - LPIPS(alex), PSNR) of `edited` against `reference` outside the `editable` region:
    the editable pixels are taken from the reference, so only changes elsewhere count."""
    keep = ~np.asarray(editable, bool)
    only_outside = np.where(keep[..., None], edited, reference)
    return image_fidelity(reference, only_outside, lpips, size=max(reference.shape[:2])), psnr(reference, edited, keep)


def unexplained_change(before: np.ndarray, after: np.ndarray, where: np.ndarray) -> Tuple[float, float]:
    """(mean, 99th percentile) in grey levels over the pixels `where` is True of what an edit
    changed that motion does not explain: `after` minus `before` warped onto it by the optical
    flow between them (OpenCV DIS, on the images enlarged to at least 256 px). A drag that only
    moves the photo's pixels scores near 0; new texture (hair, a shadow) scores high."""
    import cv2
    g0 = cv2.cvtColor(np.ascontiguousarray(before), cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(np.ascontiguousarray(after), cv2.COLOR_RGB2GRAY)
    h, w = g0.shape
    k = max(1, int(np.ceil(256 / max(min(h, w), 1))))
    big = lambda g: cv2.resize(g, (w * k, h * k), interpolation=cv2.INTER_CUBIC)  # noqa: E731
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(big(g1), big(g0), None)
    flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) / k
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    moved = cv2.remap(g0.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    d = np.abs(g1.astype(np.float32) - moved)[np.asarray(where, bool)]
    if not d.size:
        return 0.0, 0.0
    return float(d.mean()), float(np.percentile(d, 99))
