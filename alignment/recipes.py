"""Crop recipes: the FFHQ face alignment and object crops, producing an `AlignedCrop`.

Every recipe comes down to a quad in the photo (the crop's four outer corners) and the
same resampling: cut the quad's neighbourhood out, shrink it when the face is much larger
than the output, pad with reflection blended toward a blur and the median colour where
the quad leaves the photo, warp to `supersample` x the output size and area-downsample.
"""

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from photodrag.errors import PhotodragError
from photodrag.io import check_box

from .faces import Face, FaceDetector, default_detector, no_face_error, select_face
from .photo import as_rgb
from .transform import CropTransform

Box = Tuple[float, float, float, float]
DIGIFACE_QUAD = (0.7809, (-0.006, -0.0069))   # checkpoints/demo_faces/template.json


@dataclass(frozen=True)
class CropRecipe:
    """How to crop for one kind of generator."""
    name: str                       # 'ffhq', 'afhq', 'car', 'object', 'body', 'digiface'
    face: bool                      # True: from 68 landmarks (FFHQ); False: from a box
    aspect: float = 1.0             # content width / height (LSUN cars: 4/3, letterboxed in a square)
    margin: float = 0.1             # box recipes: extra context on each side, as a fraction of the box
    size: Optional[int] = None      # generator resolution, when known (recipe_for_checkpoint)
    # Face recipes other than FFHQ's, expressed through the FFHQ quad: the crop is the FFHQ
    # quad with its half-axes scaled by `quad_scale` and its centre moved by `quad_shift`
    # (in units of the half-axes x, y). FFHQ itself is (1, (0, 0)).
    quad_scale: float = 1.0
    quad_shift: Tuple[float, float] = (0.0, 0.0)
    bars: int = 0                   # letterboxed recipes: what the generator draws outside the content (0-255)


RECIPES = {
    'ffhq': CropRecipe('ffhq', face=True),
    'afhq': CropRecipe('afhq', face=False, aspect=1.0, margin=0.1),
    'car': CropRecipe('car', face=False, aspect=4 / 3, margin=0.05),
    'object': CropRecipe('object', face=False, aspect=1.0, margin=0.1),
    # StyleGAN-Human's full-body people: a person box grown 5 % each way to 1:2 (w:h), in the
    # middle of a square crop whose side bands are white, as photodrag shows those generators
    # (their R x R/2 image on a white square canvas, DragGAN's padding)
    'body': CropRecipe('body', face=False, aspect=0.5, margin=0.05, bars=255),
    # The bundled demo generator's crop (DigiFace-1M's tight face crop, which its teacher
    # learned): measured by `python training/train_demo.py --measure-template` as the
    # median FFHQ quad of dlib landmarks found on teacher samples (checkpoints/demo_faces/).
    'digiface': CropRecipe('digiface', face=True, quad_scale=DIGIFACE_QUAD[0], quad_shift=DIGIFACE_QUAD[1]),
}
_ALIGNMENT_TO_RECIPE = {'ffhq': 'ffhq', 'afhq': 'afhq', 'car': 'car', 'none': 'object', 'digiface': 'digiface',
                        'body': 'body'}


@dataclass(frozen=True, eq=False)
class AlignedCrop:
    """A crop the generator understands, with the transform that put it there.

    `content_box` (x0, y0, x1, y1) in crop pixels is the part that shows the photo (the
    whole crop except for letterboxed recipes such as LSUN cars); paste-back uses only it."""
    image: np.ndarray
    transform: CropTransform
    face: Optional[Face]
    recipe: str
    content_box: Optional[Tuple[int, int, int, int]] = None

    @property
    def content(self) -> Tuple[int, int, int, int]:
        return self.content_box or (0, 0, self.image.shape[1], self.image.shape[0])


def recipe_for_checkpoint(entry_or_name, size: Optional[int] = None) -> CropRecipe:
    """The crop recipe a checkpoint needs, from its registry entry's `alignment` field
    ('ffhq' -> FFHQ face, 'afhq' -> square object, 'car' -> 4:3 content, 'none' -> object box),
    with `size` = the entry's resolution. Accepts an entry, a registry name, or anything with
    `.alignment` (and optionally `.resolution`)."""
    entry = entry_or_name
    if isinstance(entry_or_name, str):
        from photodrag.checkpoints.registry import get_entry
        entry = get_entry(entry_or_name)
    alignment = getattr(entry, 'alignment', None)
    if alignment not in _ALIGNMENT_TO_RECIPE:
        raise PhotodragError(f'unknown alignment {alignment!r} for checkpoint {getattr(entry, "name", entry)!r}; '
                             f'known: {", ".join(_ALIGNMENT_TO_RECIPE)}')
    recipe = RECIPES[_ALIGNMENT_TO_RECIPE[alignment]]
    res = size if size is not None else getattr(entry, 'resolution', None)
    return dataclasses.replace(recipe, size=res)


def recipe_for(checkpoint=None, G=None, size: Optional[int] = None) -> CropRecipe:
    """The crop recipe a generator needs: its registry entry's when `checkpoint` is a registry
    name (and no file of that name exists), else the one its checkpoint file recorded
    (`G.crop_recipe`), else full-body people for a non-square (StyleGAN-Human) generator, else
    FFHQ faces; at `size` (default: G's resolution)."""
    from photodrag.checkpoints.registry import named_entry
    if size is None and G is not None:
        size = G.img_resolution
    entry = named_entry(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None
    if entry is not None:
        return recipe_for_checkpoint(entry, size=size)
    if getattr(G, 'crop_recipe', None):
        return recipe_from_metadata(G.crop_recipe, size=size)
    if getattr(getattr(G, 'synthesis', None), 'square', True) is False:     # StyleGAN-Human's layout: people
        return dataclasses.replace(RECIPES['body'], size=size)
    return dataclasses.replace(RECIPES['ffhq'], size=size)


def recipe_from_metadata(info: dict, size: Optional[int] = None) -> CropRecipe:
    """The recipe a checkpoint file records ({'recipe': name[, 'quad_scale': s, 'quad_shift': [dx, dy]]},
    checked by `checkpoints.native.check_crop_meta`), at `size`."""
    from photodrag.checkpoints.native import check_crop_meta
    check_crop_meta(info)
    base = RECIPES[_ALIGNMENT_TO_RECIPE.get(info['recipe'], info['recipe'])]
    changes: Dict[str, Any] = {'size': size}
    if base.face and ('quad_scale' in info or 'quad_shift' in info):
        scale, shift = info.get('quad_scale', 1.0), info.get('quad_shift', (0.0, 0.0))
        changes.update(quad_scale=float(scale), quad_shift=(float(shift[0]), float(shift[1])))
    return dataclasses.replace(base, **changes)


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ crop quad [4, 2] (TL, BL, BR, TR) from 68 landmarks (docs/algorithms.md §4)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise PhotodragError(f'the FFHQ recipe needs 68 finite (x, y) landmarks, got shape {lm.shape}')
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    # x: the crop's horizontal half-axis, leaning on both the eye line and the face's vertical
    x = eye_to_eye - eye_to_mouth[::-1] * np.array([-1.0, 1.0])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = x[::-1] * np.array([-1.0, 1.0])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def scale_quad(quad: np.ndarray, scale: float = 1.0, shift: Tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """`quad` (TL, BL, BR, TR) with its half-axes scaled by `scale` and its centre moved by
    `shift` (in units of the half-axes x and y)."""
    quad = np.asarray(quad, np.float64)
    c = quad.mean(axis=0)
    x = (quad[2] + quad[3]) / 2 - c
    y = (quad[1] + quad[2]) / 2 - c
    c = c + shift[0] * x + shift[1] * y
    x, y = x * scale, y * scale
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_relative_to_crop(quad: np.ndarray, crop_size: float) -> Tuple[float, Tuple[float, float]]:
    """The (scale, shift) that turn `quad` into the axis-aligned square crop [0, crop_size]^2
    (the inverse of `scale_quad`, for measuring a recipe from faces in finished crops)."""
    quad = np.asarray(quad, np.float64)
    c = quad.mean(axis=0)
    x = (quad[2] + quad[3]) / 2 - c
    y = (quad[1] + quad[2]) / 2 - c
    d = np.array([crop_size / 2 - 0.5, crop_size / 2 - 0.5]) - c   # pixel centres: the crop spans -0.5..size-0.5
    half = (np.hypot(*x) + np.hypot(*y)) / 2
    return crop_size / 2 / half, (float(d @ x / (x @ x)), float(d @ y / (y @ y)))


def box_quad(box: Box, aspect: float = 1.0, margin: float = 0.1, crop_aspect: float = 1.0) -> Tuple[np.ndarray, Box]:
    """An axis-aligned quad around `box` (x0, y0, x1, y1, numpy-slice style) grown by `margin`
    on each side and to the content `aspect` (w/h), then extended to the crop's own aspect.
    Returns (quad [4, 2], content rectangle in continuous photo coordinates (l, t, r, b))."""
    x0, y0, x1, y1 = check_box(box)
    if aspect <= 0 or margin < 0:
        raise PhotodragError(f'aspect must be > 0 and margin >= 0, got aspect={aspect}, margin={margin}')
    l, t, r, b = x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5        # outer pixel edges in centre coordinates
    cx, cy = (l + r) / 2, (t + b) / 2
    w, h = (r - l) * (1 + 2 * margin), (b - t) * (1 + 2 * margin)
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    content = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    cw, ch = (w, w / crop_aspect) if aspect >= crop_aspect else (h * crop_aspect, h)
    quad = np.array([[cx - cw / 2, cy - ch / 2], [cx - cw / 2, cy + ch / 2],
                     [cx + cw / 2, cy + ch / 2], [cx + cw / 2, cy - ch / 2]])
    return quad, content


def align(image, face_or_box: Union[Face, Box, None] = None, size: Optional[int] = None,
          recipe: Union[str, CropRecipe] = 'ffhq', *, aspect: Optional[float] = None, margin: Optional[float] = None,
          supersample: Union[bool, int] = True, detector: Optional[FaceDetector] = None) -> AlignedCrop:
    """Crop `image` for a generator of resolution `size`.

    `recipe` 'ffhq' (or a face `CropRecipe`): from a `Face`'s landmarks; a box gets landmarks
    from the detector's predictor; None detects faces and takes the largest (NoFaceFoundError
    when there is none). Box recipes ('object', 'afhq', 'car'): from a box (x0, y0, x1, y1) or a
    Face's box, or the whole image when None, grown by `margin` and to the content `aspect`.
    `supersample` True = 4x (or an int factor; False = 1). Where the crop leaves the photo it is
    filled with reflection blended toward a blur and the median colour."""
    pixels = as_rgb(image)
    rec = _resolve_recipe(recipe)
    size = size if size is not None else rec.size
    if size is None or int(size) < 8:
        raise PhotodragError(f'give size= (the generator resolution, >= 8), got {size!r}')
    size = int(size)
    ss = 4 if supersample is True else (1 if supersample is False else int(supersample))
    if ss < 1:
        raise PhotodragError(f'supersample must be True, False or a factor >= 1, got {supersample!r}')
    h, w = pixels.shape[:2]
    face = face_or_box if isinstance(face_or_box, Face) else None
    content_box = None
    if rec.face:
        if face is None:
            det = detector or default_detector()
            if face_or_box is None:
                faces = det.detect(pixels)
                if not faces:
                    raise no_face_error(0, getattr(image, 'path', None) or '')
                face = select_face(faces)
            else:
                box = check_box(face_or_box)
                face = Face(box=box, landmarks=det.landmarks(pixels, box), score=0.0)
        if face.landmarks is None:
            raise PhotodragError('the FFHQ recipe needs a face with landmarks; use a box recipe for a bare box')
        quad = scale_quad(ffhq_quad(face.landmarks), rec.quad_scale, rec.quad_shift)
    else:
        box = face.box if face is not None else (check_box(face_or_box) if face_or_box is not None else (0, 0, w, h))
        asp = rec.aspect if aspect is None else float(aspect)
        mar = (rec.margin if face_or_box is not None else 0.0) if margin is None else float(margin)
        quad, _ = box_quad(box, asp, mar)
        if asp > 1.0:            # letterboxed content (e.g. LSUN cars: 4:3 in a square)
            ch = int(round(size / asp))
            top = (size - ch) // 2
            content_box = (0, top, size, top + ch)
        elif asp < 1.0:
            cw = int(round(size * asp))
            left = (size - cw) // 2
            content_box = (left, 0, left + cw, size)
    transform = CropTransform.from_quad(quad, (size, size), (w, h))
    crop = warp_quad(pixels, transform, ss)
    if content_box is not None:
        x0, y0, x1, y1 = content_box
        bars = np.ones(crop.shape[:2], bool)
        bars[y0:y1, x0:x1] = False
        crop[bars] = rec.bars   # what the generator draws there (black bars for cars, white for people)
    return AlignedCrop(image=crop, transform=transform, face=face, recipe=rec.name, content_box=content_box)


def warp_quad(pixels: np.ndarray, transform: CropTransform, supersample: int = 4) -> np.ndarray:
    """Resample `pixels` into `transform`'s crop: crop the neighbourhood, shrink large faces,
    pad (reflect, blended toward blur and median) where the quad leaves the photo, warp at
    `supersample` x the output size, area-downsample."""
    import cv2
    h, w = pixels.shape[:2]
    out_w, out_h = transform.crop_size
    quad = transform.quad()
    qsize = float(np.sqrt(np.prod([np.hypot(*(quad[3] - quad[0])), np.hypot(*(quad[1] - quad[0]))])))
    border = max(int(round(qsize * 0.1)), 3)
    # 1. the quad's neighbourhood, in photo pixel indices [cx0, cx1) x [cy0, cy1)
    qx0, qy0 = np.floor(quad.min(axis=0)).astype(int)
    qx1, qy1 = np.ceil(quad.max(axis=0)).astype(int) + 1
    cx0, cy0 = max(qx0 - border, 0), max(qy0 - border, 0)
    cx1, cy1 = min(qx1 + border, w), min(qy1 + border, h)
    if cx1 <= cx0 or cy1 <= cy0:
        raise PhotodragError('the crop lies entirely outside the photo')
    region = pixels[cy0:cy1, cx0:cx1]
    # region pixel -> photo pixel, kept exact through every step below
    to_photo = np.array([[1.0, 0, cx0], [0, 1.0, cy0], [0, 0, 1]])
    # 2. shrink: faces much larger than the output are first area-downsampled
    shrink = int(np.floor(qsize / out_w * 0.5))
    if shrink > 1:
        rw, rh = max(1, round(region.shape[1] / shrink)), max(1, round(region.shape[0] / shrink))
        sx, sy = region.shape[1] / rw, region.shape[0] / rh
        region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
        # small pixel i covers big pixels [i*s, (i+1)*s): centre (i + 0.5) * s - 0.5
        to_photo = to_photo @ np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    # 3. pad where the quad (plus border) leaves the photo
    inv_region = np.linalg.inv(to_photo)
    rq = (np.c_[quad, np.ones(4)] @ inv_region.T)[:, :2]
    rb = border / max(shrink, 1)
    need = [int(np.ceil(max(0.0, -(rq[:, 0].min() - rb)))), int(np.ceil(max(0.0, -(rq[:, 1].min() - rb)))),
            int(np.ceil(max(0.0, rq[:, 0].max() + rb - region.shape[1] + 1))),
            int(np.ceil(max(0.0, rq[:, 1].max() + rb - region.shape[0] + 1)))]
    if max(need) > 0:
        region, (left, top) = _soft_pad(region, need, qsize / max(shrink, 1))
        to_photo = to_photo @ np.array([[1.0, 0, -left], [0, 1.0, -top], [0, 0, 1]])
    # 4. warp at supersample x, then area-downsample
    up = np.array([[supersample, 0, 0.5 * supersample - 0.5], [0, supersample, 0.5 * supersample - 0.5], [0, 0, 1]])
    m = up @ transform.matrix @ to_photo            # region pixel -> supersampled crop pixel
    big = cv2.warpPerspective(region, m, (out_w * supersample, out_h * supersample), flags=cv2.INTER_LANCZOS4
                              if supersample == 1 else cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    if supersample > 1:
        big = cv2.resize(big, (out_w, out_h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(big)


def _soft_pad(region: np.ndarray, need, qsize: float):
    """Reflect-pad by at least `need` (left, top, right, bottom) and 0.3 qsize on those sides,
    fading the reflection into a Gaussian blur and then into the median colour outward.
    Returns (padded region, (left, top) pad)."""
    import cv2
    pad = [max(n, int(round(qsize * 0.3))) if n > 0 else 0 for n in need]
    left, top, right, bottom = pad
    h, w = region.shape[:2]
    # reflect with numpy (OpenCV's border maps fail when the pad exceeds the region's size)
    img = np.pad(region.astype(np.float32), ((top, bottom), (left, right), (0, 0)), mode='reflect')
    H, W = img.shape[:2]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # outward distance beyond the photo's edge, as a fraction of that side's pad (0 at the edge, 1 at the end)
    dist = np.full((H, W), -np.inf, np.float32)
    for p, d in ((left, left - xx), (top, top - yy), (right, xx - (left + w - 1)), (bottom, yy - (top + h - 1))):
        if p > 0:
            dist = np.maximum(dist, d / p)
    sigma = max(qsize * 0.02, 0.5)
    blur = cv2.GaussianBlur(img, (0, 0), sigma)
    img += (blur - img) * np.clip(3.0 * dist + 1.0, 0.0, 1.0)[..., None]
    median = np.median(region.reshape(-1, region.shape[2]), axis=0).astype(np.float32)
    img += (median - img) * np.clip(dist, 0.0, 1.0)[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), (left, top)


def _resolve_recipe(recipe) -> CropRecipe:
    if isinstance(recipe, CropRecipe):
        return recipe
    name = _ALIGNMENT_TO_RECIPE.get(recipe, recipe)
    if name not in RECIPES:
        raise PhotodragError(f'unknown crop recipe {recipe!r}; known: {", ".join(RECIPES)} (or "none")')
    return RECIPES[name]



