"""Point tracking: find each handle's content again after an update.

Three trackers (`DragConfig.tracking`), all searching around the handle's last position:

- `track`: DragGAN's nearest neighbour. The pixel in the (2r+1)^2 window whose feature is
  closest (L2) to the feature the handle had when the drag started.
- `track_template`: after FreeDrag (Ling et al., CVPR 2024). The handle only moves along
  the line from where it started to its target; it is matched against a template that
  follows the tracked feature slowly and is held within a bound of the original feature,
  so it adapts to a content that changes shape as it moves yet never forgets what it
  followed; a match worse than the original similarity bound sends the handle one pixel
  back along the line (backtracking) instead of letting it run ahead of its content.
- `match_patch` (the 'image' tracker, and the content check): the rendered image's own
  pixels, by normalised cross-correlation of the grey patch that surrounded the handle in
  the first image. What the user sees, not the generator's features, says where the content is.

`similarity` gives StableDrag's confidence (Cui et al., ECCV 2024): the cosine between a
match and the original feature; below `DragConfig.confidence` a tracker's answer is not
trusted and the handle stays where it was.
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .features import FeatureMap, window


def track(features: FeatureMap, handles: torch.Tensor, references: torch.Tensor, radius: int) -> torch.Tensor:
    """New handle positions [N, 2]: for each handle, the pixel in the (2r+1)^2 window around
    it whose feature is closest (L2 over channels) to the handle's reference feature [N, C]
    captured when the drag started. Ties go to the first pixel in row-major order."""
    out: List[torch.Tensor] = []
    with torch.no_grad():
        for handle, ref in zip(handles, references):
            pixels = window(handle, radius, features.resolution)
            distance = (features.at(pixels) - ref[None]).norm(dim=1)
            out.append(pixels[int(torch.argmin(distance))])
    return torch.stack(out) if out else handles.clone()


def similarity(features: FeatureMap, points: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Cosine similarity [N] between the features at `points` (rounded) and `references` [N, C]."""
    with torch.no_grad():
        found = features.at(points.round())
        return F.cosine_similarity(found, references, dim=1)


def line_pixels(origin: torch.Tensor, target: torch.Tensor, around: torch.Tensor, radius: int,
                resolution: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Points [M, 2] on the segment origin -> target at 1 px spacing that lie within `radius`
    of `around`, and their distance from `origin` along the line [M]."""
    way = target - origin
    length = float(way.norm())
    if length < 1e-6:
        return origin[None].clone(), origin.new_zeros(1)
    along = torch.arange(0, int(length) + 1, device=origin.device, dtype=origin.dtype)
    along = torch.cat([along, along.new_tensor([length])]) if along[-1] < length else along
    pts = origin[None] + along[:, None] * (way / length)[None]
    keep = ((pts - around[None]).norm(dim=1) <= radius + 0.5) & (pts >= 0).all(1) & (pts <= resolution - 1).all(1)
    if not bool(keep.any()):            # the handle left the line (moved by the user): start from its foot
        t = float(((around - origin) @ way) / (length ** 2))
        t = min(max(t, 0.0), 1.0)
        return (origin + t * way)[None], origin.new_tensor([t * length])
    return pts[keep], along[keep]


def track_template(features: FeatureMap, handles: torch.Tensor, origins: torch.Tensor, targets: torch.Tensor,
                   templates: torch.Tensor, references: torch.Tensor, radius: int, *, rate: float,
                   bound: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """FreeDrag-style tracking: (new handles [N, 2], new templates [N, C]).

    Each handle is searched on its own origin -> target line within `radius` of where it is.
    The best match (L2 to the template) is taken when its distance to the original feature is
    within `bound` x |original| (or, past that, the match is no further along the line than the
    handle was: backtracking by at most one pixel); the template then moves `rate` of the way to
    the tracked feature and is pulled back inside the bound around the original."""
    new_handles, new_templates = [], []
    with torch.no_grad():
        for handle, origin, target, template, ref in zip(handles, origins, targets, templates, references):
            pts, along = line_pixels(origin, target, handle, radius, features.resolution)
            feats = features.bilinear(pts)
            best = int(torch.argmin((feats - template[None]).norm(dim=1)))
            limit = bound * float(ref.norm())
            now = float(((handle - origin) @ (target - origin)) / max(float((target - origin).norm()), 1e-6))
            if float((feats[best] - ref).norm()) > limit and float(along[best]) > now:
                # the match says the content ran ahead, but it no longer looks like the content:
                # step back one pixel along the line instead
                back = int(torch.argmin((along - max(now - 1.0, 0.0)).abs()))
                best = back
            found = feats[best]
            template = template + rate * (found - template)
            drift = template - ref
            norm = float(drift.norm())
            if norm > limit > 0:
                template = ref + drift * (limit / norm)
            new_handles.append(pts[best])
            new_templates.append(template)
    return torch.stack(new_handles), torch.stack(new_templates)


def grey(image: torch.Tensor) -> torch.Tensor:
    """[R, R] luminance of an image [1, C, R, R] in [-1, 1] (one channel: itself)."""
    img = image[0].float()
    if img.shape[0] >= 3:
        return 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    return img[0]


def patch_half(resolution: int) -> int:
    """Half-size of the image patch that identifies a handle's content: 4 px at 128 (9x9),
    scaling with the image (a patch covers the same share of the face at every size)."""
    return max(2, round(4 * resolution / 128))


def cut_patch(image_grey: torch.Tensor, point: torch.Tensor, half: int) -> Optional[torch.Tensor]:
    """The (2 half + 1)^2 patch around `point` (rounded), or None too close to the border."""
    R = image_grey.shape[-1]
    x, y = int(round(float(point[0]))), int(round(float(point[1])))
    if not (half <= x < R - half and half <= y < R - half):
        return None
    return image_grey[y - half:y + half + 1, x - half:x + half + 1].clone()


def match_patch(image_grey: torch.Tensor, patch: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                at: Optional[torch.Tensor] = None) -> Tuple[Optional[torch.Tensor], float]:
    """(where `patch` best matches `image_grey` with its centre inside the box lo..hi [2]
    (x, y, inclusive; sub-pixel by a parabola through the peak), its normalised cross-
    correlation in [-1, 1]); (None, -1) when the box holds no full patch position.

    at: a position another tracker found (inside the box): the best match is then given only
    when it beats the correlation there by IMAGE_MARGIN; else (`at`, its correlation). A blurry
    render correlates almost as well a pixel or two off, and there the image cannot tell."""
    R = image_grey.shape[-1]
    half = patch.shape[0] // 2
    x0, y0 = max(int(lo[0]), half), max(int(lo[1]), half)
    x1, y1 = min(int(hi[0]), R - 1 - half), min(int(hi[1]), R - 1 - half)
    if x1 < x0 or y1 < y0:
        return None, -1.0
    region = image_grey[y0 - half:y1 + half + 1, x0 - half:x1 + half + 1][None, None]
    k = patch.shape[0]
    cols = F.unfold(region, k)[0]                                   # [k*k, L]
    cols = cols - cols.mean(0, keepdim=True)
    p = (patch - patch.mean()).reshape(-1, 1)
    score = (cols * p).sum(0) / (cols.norm(dim=0) * p.norm() + 1e-6)
    h, w = y1 - y0 + 1, x1 - x0 + 1
    score = score.reshape(h, w)
    best = int(torch.argmax(score))
    by, bx = divmod(best, w)
    if at is not None:
        ax, ay = int(round(float(at[0]))) - x0, int(round(float(at[1]))) - y0
        if 0 <= ax < w and 0 <= ay < h and float(score[by, bx] - score[ay, ax]) < IMAGE_MARGIN:
            return at.clone(), float(score[ay, ax])
    if float(score[by, bx]) >= EXACT:      # the patch itself, unchanged: no sub-pixel guess
        return torch.tensor([x0 + bx, y0 + by], device=patch.device, dtype=torch.float32), float(score[by, bx])
    fx = peak_offset(score[by, bx - 1], score[by, bx], score[by, bx + 1]) if 0 < bx < w - 1 else 0.0
    fy = peak_offset(score[by - 1, bx], score[by, bx], score[by + 1, bx]) if 0 < by < h - 1 else 0.0
    at = torch.tensor([x0 + bx + fx, y0 + by + fy], device=patch.device, dtype=torch.float32)
    return at, float(score[by, bx])


EXACT = 0.999      # a correlation this high is the unchanged patch
IMAGE_MARGIN = 0.05  # how much better the image's own best match must correlate to overrule a tracker


def peak_offset(left, centre, right) -> float:
    """Sub-pixel offset of a peak from three samples, by the parabola through them (within half
    a pixel); also what `evaluation.metrics.content_position` refines its matches with."""
    den = float(left - 2 * centre + right)
    if abs(den) < 1e-9:
        return 0.0
    return max(-0.5, min(0.5, 0.5 * float(left - right) / den))
