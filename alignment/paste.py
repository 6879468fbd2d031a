"""Paste-back: warp edited crops into the photo and blend them in with a soft mask.

As face-restoration tools do it (docs/algorithms.md §4): the crop's transform, inverted,
brings the edited crop back; a feathered mask (edge width sqrt(area) / 20) blends it over
the photo; faces go in one after another. Beyond that:

- region: the whole crop square, or only what changed (|edited - reference| dilated, plus
  an optional caller mask in crop space), so a drag that moves the outline is covered on
  both the old and the new silhouette;
- colour matching: the low-frequency difference between photo and reconstruction, measured
  in the feather band, is added to the reconstruction, so no tint step shows at the seam;
- blend 'poisson': gradient-domain (cv2.seamlessClone) inside the mask, still feathered;
- transfer 'flow' (when the unedited reconstruction is given as `reference`): the edit is
  carried over as motion, not as pixels. Optical flow (OpenCV DIS) between the edited crop
  and the reconstruction says where each edited pixel came from; the PHOTO is resampled
  along that flow at its own resolution, and only what the motion does not explain
  (edited minus the moved reconstruction: teeth that appear) is added from the generator,
  where the motion uncovered something and less the colour drift the generator shows around
  it. A blurry or low-resolution generator then moves the photo's own pixels
  instead of pasting its blurry rendering over them.

Outside the returned blend mask (mask == 0) the output is bit-identical to the input.
"""

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from photodrag.errors import InvalidSettingsError, PhotodragError, is_number
from photodrag.io import as_mask

from .photo import as_rgb
from .recipes import AlignedCrop


@dataclass(frozen=True)
class PasteConfig:
    """Settings of paste-back (saved next to outputs like every stage's settings)."""
    blend: str = 'alpha'                # 'alpha' (feathered) or 'poisson' (gradient domain, then feathered)
    region: str = 'auto'                # 'square', 'changed', or 'auto' (= 'changed' when a mask or reference is given)
    colour_match: bool = True           # correct the reconstruction's low-frequency colour toward the photo
    feather: Optional[float] = None     # edge width in photo pixels; None = sqrt(crop area in the photo) / 20
    change_threshold: float = 0.03      # mean |edited - reference| (0..1) that counts as changed
    edge_margin: float = 2.0            # crop pixels at the crop's edge never used (resampling fringe)
    transfer: str = 'flow'              # with a reference: 'flow' (move the photo's pixels) or 'pixels' (paste the crop)
    residual: str = 'disoccluded'       # flow transfer: what it adds beyond motion: 'disoccluded' (only where the motion uncovers what was hidden), 'all', 'none'

    def __post_init__(self):
        for name, allowed in (('blend', ('alpha', 'poisson')), ('region', ('auto', 'square', 'changed')),
                              ('transfer', ('flow', 'pixels')), ('residual', ('disoccluded', 'all', 'none'))):
            if getattr(self, name) not in allowed:
                raise InvalidSettingsError(f'PasteConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}')
        numbers = (('feather', self.feather, 0, 10_000, True), ('change_threshold', self.change_threshold, 0, 1, False),
                   ('edge_margin', self.edge_margin, 0, 1_000, False))
        for name, value, lo, hi, optional in numbers:
            if optional and value is None:
                continue
            if not is_number(value, lo, hi):
                raise InvalidSettingsError(f'PasteConfig.{name} must be a number in [{lo}, {hi}], got {value!r}')
        if not isinstance(self.colour_match, bool):
            raise InvalidSettingsError(f'PasteConfig.colour_match must be true or false, got {self.colour_match!r}')


@dataclass(frozen=True, eq=False)
class Edit:
    """One crop to paste: its `AlignedCrop`, the `edited` image (uint8, crop-sized), an optional
    crop-space `mask` (float [0, 1], 1 = may change) and an optional `reference` (the unedited
    reconstruction; the change region is measured against it, default the aligned crop).
    `limit`: a photo-sized float [0, 1] bound on the paste: where it is 0 the output pixel is
    the input's, bit for bit; elsewhere the blend weight is at most its value."""
    crop: AlignedCrop
    edited: np.ndarray
    mask: Optional[np.ndarray] = None
    reference: Optional[np.ndarray] = None
    limit: Optional[np.ndarray] = None
    # crop-space correspondences the edit is known to make, ((x, y) in reference, (x, y) in edited)
    # each: what the drag measured its content to have done; the flow transfer is held to them
    motions: Tuple = ()


@dataclass(frozen=True, eq=False)
class BlendMask:
    """A blend mask in photo space, stored as its window `box` (x0, y0, x1, y1) and float32 values."""
    box: Tuple[int, int, int, int]
    mask: np.ndarray

    def full(self, photo_size: Tuple[int, int]) -> np.ndarray:
        """The mask as a full photo-sized float32 array [H, W] (photo_size = (width, height))."""
        out = np.zeros((photo_size[1], photo_size[0]), np.float32)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.mask
        return out


@dataclass(frozen=True, eq=False)
class PasteResult:
    """The composited pixels (uint8 RGB) and one blend mask per pasted crop, in paste order."""
    pixels: np.ndarray
    masks: Tuple[BlendMask, ...] = field(default_factory=tuple)

    def mask(self) -> np.ndarray:
        """All blend masks together (pixelwise max), photo-sized float32."""
        h, w = self.pixels.shape[:2]
        out = np.zeros((h, w), np.float32)
        for m in self.masks:
            x0, y0, x1, y1 = m.box
            np.maximum(out[y0:y1, x0:x1], m.mask, out=out[y0:y1, x0:x1])
        return out


EditLike = Union[Edit, Tuple]


def paste_back(photo, edits: Union[EditLike, Sequence[EditLike]], config: Optional[PasteConfig] = None,
               **overrides) -> PasteResult:
    """Composite edited crops into `photo` (a `Photo` or uint8 array), one after another.

    `edits`: one or a list of `Edit` or tuples (crop, edited[, mask[, reference]]). Settings come
    from `config` with keyword `overrides` (e.g. `blend='poisson'`). Returns a `PasteResult`."""
    cfg = config or PasteConfig()
    if overrides:
        cfg = PasteConfig(**{**cfg.__dict__, **overrides})
    if cfg.blend not in ('alpha', 'poisson'):
        raise PhotodragError(f"blend must be 'alpha' or 'poisson', got {cfg.blend!r}")
    if cfg.region not in ('auto', 'square', 'changed'):
        raise PhotodragError(f"region must be 'auto', 'square' or 'changed', got {cfg.region!r}")
    out = as_rgb(photo).copy()
    masks = []
    for edit in _as_edits(edits):
        masks.append(_paste_one(out, edit, cfg))
    return PasteResult(pixels=out, masks=tuple(masks))


def _as_edits(edits) -> List[Edit]:
    if isinstance(edits, Edit) or (isinstance(edits, tuple) and edits and isinstance(edits[0], AlignedCrop)):
        edits = [edits]
    result = []
    for e in edits:
        if isinstance(e, Edit):
            result.append(e)
        elif isinstance(e, (tuple, list)) and 2 <= len(e) <= 4 and isinstance(e[0], AlignedCrop):
            result.append(Edit(*e))
        else:
            raise PhotodragError('each edit is an Edit or a tuple (AlignedCrop, edited[, mask[, reference]])')
    return result


def _paste_one(out: np.ndarray, edit: Edit, cfg: PasteConfig) -> BlendMask:
    import cv2
    crop, t = edit.crop, edit.crop.transform
    h, w = out.shape[:2]
    if tuple(t.photo_size) != (w, h):
        raise PhotodragError(f'the crop was aligned on a {t.photo_size[0]}x{t.photo_size[1]} photo, '
                             f'pasting into {w}x{h}')
    edited = _crop_image(edit.edited, crop, 'edited')
    reference = _crop_image(edit.reference, crop, 'reference') if edit.reference is not None else crop.image
    caller_mask = _crop_mask(edit.mask, crop) if edit.mask is not None else None
    cw, ch = t.crop_size

    # window: the crop's footprint plus a frame of zeros, not clipped to the photo, so that
    # distances are measured to the crop's edge and never to the photo's border
    quad = t.quad()
    wx0, wy0 = (np.floor(quad.min(axis=0)) - 3).astype(int)
    wx1, wy1 = (np.ceil(quad.max(axis=0)) + 4).astype(int)
    ww, wh = wx1 - wx0, wy1 - wy0
    cx0, cy0, cx1, cy1 = crop.content
    content = np.zeros((ch, cw), np.float32)
    content[cy0:cy1, cx0:cx1] = 1
    footprint = t.warp_to_photo(content, (ww, wh), offset=(wx0, wy0), interpolation=cv2.INTER_LINEAR,
                                border=cv2.BORDER_CONSTANT)
    inside = (footprint >= 0.999).astype(np.uint8)
    inside[[0, -1], :] = 0
    inside[:, [0, -1]] = 0
    area = float(inside.sum())
    px_per_crop = 1.0 / t.scale
    edge = cfg.feather if cfg.feather is not None else max(2.0, math.sqrt(area) / 20)
    margin = cfg.edge_margin * max(1.0, px_per_crop)

    # square: 0 up to `margin` from the crop's edge, smooth ramp to 1 over `edge` pixels
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    mask = _smoothstep((dist - margin) / edge)

    region = cfg.region
    if region == 'auto':
        region = 'changed' if (caller_mask is not None or edit.reference is not None) else 'square'
    if region == 'changed':
        diff = np.abs(edited.astype(np.float32) - reference.astype(np.float32)).mean(axis=2) / 255.0
        diff = cv2.GaussianBlur(diff, (0, 0), 1.0)
        changed = (diff > cfg.change_threshold).astype(np.float32)
        if caller_mask is not None:
            changed = np.maximum(changed, (caller_mask > 0).astype(np.float32))
        changed_photo = t.warp_to_photo(changed, (ww, wh), offset=(wx0, wy0), interpolation=cv2.INTER_LINEAR,
                                        border=cv2.BORDER_CONSTANT)
        # grow by the edge width and feather outward: the whole changed area (old and new
        # silhouette alike) stays at 1, the ramp lies in unchanged pixels around it
        r = max(1, int(round(edge)))
        grown = cv2.dilate((changed_photo > 0.01).astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        outside_dist = cv2.distanceTransform((1 - grown).astype(np.uint8), cv2.DIST_L2, 5)
        soft = _smoothstep(1.0 - outside_dist / edge)
        mask = np.minimum(mask, soft)

    # the part of the window inside the photo
    px0, py0, px1, py1 = max(wx0, 0), max(wy0, 0), min(wx1, w), min(wy1, h)
    box = (int(px0), int(py0), int(px1), int(py1))
    if px1 <= px0 or py1 <= py0:
        return BlendMask(box=(0, 0, 0, 0), mask=np.zeros((0, 0), np.float32))
    mask = np.ascontiguousarray(mask[py0 - wy0:py1 - wy0, px0 - wx0:px1 - wx0])
    if edit.limit is not None:
        limit = as_mask(edit.limit, (h, w), 'the paste limit (photo-sized)')
        mask = np.minimum(mask, limit[py0:py1, px0:px1])
    if not mask.any():
        return BlendMask(box=box, mask=mask)
    original = out[py0:py1, px0:px1]
    if cfg.transfer == 'flow' and edit.reference is not None:
        recon = _flow_transfer(out, t, edited, reference, box, edit.motions, cfg.residual)
    else:
        recon = t.warp_to_photo(edited, (px1 - px0, py1 - py0), offset=(px0, py0),
                                interpolation=cv2.INTER_LANCZOS4, border=cv2.BORDER_REFLECT).astype(np.float32)
    if cfg.colour_match:
        recon += _colour_correction(original.astype(np.float32), recon, mask, math.sqrt(area))
    if cfg.blend == 'poisson':
        recon = _poisson(original, recon, mask)
    m = mask[..., None]
    blended = np.clip(np.rint(original + m * (recon - original)), 0, 255).astype(np.uint8)
    out[py0:py1, px0:px1] = np.where(m > 0, blended, original)
    return BlendMask(box=box, mask=mask)


RESIDUAL_THRESHOLD = 6.0     # grey levels of |edited - moved reconstruction| ignored by flow transfer
FLOW_UPSCALE = 2             # the flow is estimated on crops enlarged this much (a 128 px render is too coarse for DIS)
OCCLUSION_PX = 1.0           # forward-backward disagreement (crop px) that marks a pixel the motion uncovered
DRIFT_SIGMA = 1 / 8          # the generator's brightness drift is measured this wide (x the crop's width: 16 px at 128)
DRIFT_COLOUR_SIGMA = 1 / 32  # its colour drift this wide (4 px at 128)


def crop_flow(edited: np.ndarray, reference: np.ndarray, motions: Sequence = ()) -> np.ndarray:
    """The backward flow [h, w, 2] of an edit in crop space: edited(q) ~ reference(q + flow(q)).

    OpenCV's DIS flow on the crops enlarged FLOW_UPSCALE times, then held to `motions` (pairs
    ((x, y) in reference, (x, y) in edited): where the drag's own measurement says a handle's
    content went): around each, the flow is corrected by what it misses there, fading with a
    Gaussian as wide as the motion (sigma = its length / 2 + 2 px), so the photo receives the
    motion the crop shows even where DIS, on a blurry render, sees less of it."""
    ch, cw = edited.shape[:2]
    flow = _dis(edited, reference)
    if len(motions):
        gx, gy = np.meshgrid(np.arange(cw, dtype=np.float32), np.arange(ch, dtype=np.float32))
        correction = np.zeros_like(flow)
        weight = np.zeros((ch, cw), np.float32)
        for (ax, ay), (bx, by) in motions:
            want = np.array([ax - bx, ay - by], np.float32)
            ix, iy = int(round(min(max(bx, 0), cw - 1))), int(round(min(max(by, 0), ch - 1)))
            miss = want - flow[iy, ix]
            sigma = 0.5 * float(np.hypot(*want)) + 2.0
            g = np.exp(-((gx - bx) ** 2 + (gy - by) ** 2) / (2 * sigma ** 2)).astype(np.float32)
            correction += g[..., None] * miss
            weight += g
        flow = flow + correction / np.maximum(weight, 1.0)[..., None]
    return flow


def _dis(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """OpenCV DIS flow [h, w, 2] with a(q) ~ b(q + flow(q)), estimated on both images enlarged
    FLOW_UPSCALE times (grey) and given back in their own pixels."""
    import cv2
    h, w = a.shape[:2]
    big = lambda x: cv2.resize(cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY),  # noqa: E731
                               (w * FLOW_UPSCALE, h * FLOW_UPSCALE), interpolation=cv2.INTER_CUBIC)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(big(a), big(b), None)
    return cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) / FLOW_UPSCALE


def _uncovered(edited: np.ndarray, reference: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """float [h, w] in [0, 1]: the pixels of `edited` the motion uncovered (teeth as a mouth
    opens), where the flow back to the reference and the flow forward again disagree."""
    import cv2
    ch, cw = flow.shape[:2]
    forward = _dis(reference, edited)
    gx, gy = np.meshgrid(np.arange(cw, dtype=np.float32), np.arange(ch, dtype=np.float32))
    back = cv2.remap(forward, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    disagree = np.hypot(*(flow + back).transpose(2, 0, 1))
    hole = (disagree > OCCLUSION_PX).astype(np.float32)
    return np.clip(cv2.GaussianBlur(hole, (0, 0), 1.0) * 2, 0, 1)


def _flow_transfer(photo: np.ndarray, t, edited: np.ndarray, reference: np.ndarray, box, motions=(),
                   residual_mode: str = 'disoccluded') -> np.ndarray:
    """The photo window `box`, with the motion from `reference` to `edited` (crop space)
    applied to the photo's own pixels at full resolution, plus the part of the edit the
    motion does not explain where `residual_mode` allows it. float32 [h, w, 3]."""
    import cv2
    flow = crop_flow(edited, reference, motions)        # edited(q) ~ reference(q + flow(q))
    ch, cw = flow.shape[:2]
    # crop space: the reconstruction moved along the flow; what is left is the generator's own change
    gx, gy = np.meshgrid(np.arange(cw, dtype=np.float32), np.arange(ch, dtype=np.float32))
    moved_ref = cv2.remap(reference.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
    residual = edited.astype(np.float32) - moved_ref
    uncovered = _uncovered(edited, reference, flow) if residual_mode == 'disoccluded' else None
    if uncovered is not None:
        # the generator's colour drift (a face that turns grey as it is dragged) is not part of
        # what the motion uncovered: measured in the pixels the motion explains, spread over the
        # uncovered ones and taken out, so new content keeps only what differs from its
        # surroundings (teeth stay white, a cheek does not turn into a grey blotch)
        residual -= _drift(residual, (1.0 - uncovered).astype(np.float32), cw)
    # keep what the edit adds (teeth that appear, new shading: large differences); drop the
    # generator's small drift in colour and texture around them (soft threshold, in levels)
    residual = np.sign(residual) * np.maximum(np.abs(residual) - RESIDUAL_THRESHOLD, 0.0)
    if residual_mode == 'none':
        residual[:] = 0
    elif uncovered is not None:
        # only what the motion uncovered: elsewhere the photo's own pixels, moved, are the
        # whole edit, and the generator's prior (a moustache, a shadow) never paints over them
        residual *= uncovered[..., None]
    # photo space: each window pixel p -> crop q -> source q + flow(q) -> photo p'
    x0, y0, x1, y1 = box
    px, py = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    m = t.matrix
    den = m[2, 0] * px + m[2, 1] * py + m[2, 2]
    qx = ((m[0, 0] * px + m[0, 1] * py + m[0, 2]) / den).astype(np.float32)
    qy = ((m[1, 0] * px + m[1, 1] * py + m[1, 2]) / den).astype(np.float32)
    f = cv2.remap(flow, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    sx, sy = qx + f[..., 0], qy + f[..., 1]
    inv = np.linalg.inv(m)
    den = inv[2, 0] * sx + inv[2, 1] * sy + inv[2, 2]
    map_x = ((inv[0, 0] * sx + inv[0, 1] * sy + inv[0, 2]) / den).astype(np.float32)
    map_y = ((inv[1, 0] * sx + inv[1, 1] * sy + inv[1, 2]) / den).astype(np.float32)
    moved = cv2.remap(photo.astype(np.float32), map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    extra = cv2.remap(residual, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return moved + extra


def _drift(residual: np.ndarray, explained: np.ndarray, width: int) -> np.ndarray:
    """The generator's drift in `residual` (edited minus the moved reconstruction, [h, w, 3]) at
    every pixel, as the pixels the motion explains (`explained`, weights [h, w]) show it around
    there: its brightness (the channels' mean) over DRIFT_SIGMA x `width`, its colour over
    DRIFT_COLOUR_SIGMA x `width`. Brightness is measured wider because a darker spot next to an
    uncovered one can be the edit's own content (a mouth corner the flow carried less far than
    the generator drew it); a change of colour at that scale is the generator's cast."""
    broad = _spread(residual, explained, width * DRIFT_SIGMA)
    colour = _spread(residual, explained, width * DRIFT_COLOUR_SIGMA) - broad
    return broad + colour - colour.mean(axis=2, keepdims=True)


def _colour_correction(original: np.ndarray, recon: np.ndarray, mask: np.ndarray, side: float) -> np.ndarray:
    """A smooth field (photo - reconstruction) interpolated from the feather band by
    normalised convolution; far from the band it tends to the band's mean difference."""
    band = (4.0 * mask * (1.0 - mask)).astype(np.float32)
    return _spread(original - recon, band, max(2.0, side / 8))


def _spread(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised convolution: `values` [h, w, c], known where `weights` [h, w] is high, spread
    smoothly (Gaussian `sigma`) over the whole image; where no weight reaches, their weighted
    mean. Zeros when the weights sum to less than one pixel."""
    import cv2
    total = float(weights.sum())
    if total < 1.0:
        return np.zeros_like(values, dtype=np.float32)
    mean = (values * weights[..., None]).reshape(-1, values.shape[2]).sum(axis=0) / total
    # blur at reduced resolution: the field is low-frequency anyway, and big sigmas are slow
    f = max(1, int(sigma // 4))
    small = lambda a: cv2.resize(a, (max(1, a.shape[1] // f), max(1, a.shape[0] // f)), interpolation=cv2.INTER_AREA)  # noqa: E731
    num = cv2.GaussianBlur(small(values * weights[..., None]), (0, 0), sigma / f)
    den = cv2.GaussianBlur(small(weights), (0, 0), sigma / f)[..., None]
    eps = 1e-3 * float(den.max())
    field_small = (num + eps * mean) / (den + eps)
    return cv2.resize(field_small, (values.shape[1], values.shape[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _poisson(original: np.ndarray, recon: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Gradient-domain blend of `recon` into `original` where mask > 0 (OpenCV's seamlessClone)."""
    import cv2
    pad = 4                      # seamlessClone misbehaves when the mask touches the image border
    src = cv2.copyMakeBorder(np.clip(np.rint(recon), 0, 255).astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    dst = cv2.copyMakeBorder(original, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    m = np.zeros(src.shape[:2], np.uint8)
    m[pad:-pad, pad:-pad] = (mask > 0).astype(np.uint8) * 255
    m[:pad + 1], m[-pad - 1:], m[:, :pad + 1], m[:, -pad - 1:] = 0, 0, 0, 0
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return recon
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    centre = (int(x0 + (x1 - x0) // 2), int(y0 + (y1 - y0) // 2))
    cloned = cv2.seamlessClone(src, dst, m, centre, cv2.NORMAL_CLONE)
    return cloned[pad:-pad, pad:-pad].astype(np.float32)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    return x * x * (3.0 - 2.0 * x)


def _crop_image(image, crop: AlignedCrop, what: str) -> np.ndarray:
    a = as_rgb(image)
    if a.shape != crop.image.shape:
        raise PhotodragError(f'the {what} image must have the crop\'s shape {crop.image.shape}, got {a.shape}')
    return a


def _crop_mask(mask, crop: AlignedCrop) -> np.ndarray:
    return as_mask(mask, crop.image.shape[:2], 'the edit mask (crop-sized)')

