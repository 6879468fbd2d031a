"""The drag's view of a feature map, in image pixels, at two costs.

DragGAN resizes the feature map (128x128 at 512 px) bilinearly to the image size and then
reads it at pixels and at sub-pixel positions. `FullResFeatures` does exactly that (the
reference mode). `LowResFeatures` gives the same numbers without ever building the
full-size map: the value of the resized map at an image pixel is a bilinear sample of the
small map, and the value between image pixels is the bilinear blend of its four neighbouring
pixels' values, each sampled from the small map. Only the few hundred positions that
tracking and supervision read are ever computed.

Coordinates are (x, y) in image pixels, pixel centres at integers, as tensors [N, 2].
"""

import torch
import torch.nn.functional as F


class FeatureMap:
    """Common interface; `resolution` is the image size R the coordinates refer to."""

    resolution: int

    def at(self, xy: torch.Tensor) -> torch.Tensor:
        """Features [N, C] at integer image pixels xy [N, 2] (inside the image)."""
        raise NotImplementedError

    def bilinear(self, xy: torch.Tensor) -> torch.Tensor:
        """Features [N, C] at sub-pixel positions, bilinear between image pixels; zero
        outside the image (grid_sample with align_corners=True on the resized map)."""
        raise NotImplementedError

    def masked_l1(self, start: 'FeatureMap', keep: torch.Tensor) -> torch.Tensor:
        """mean(|self - start| * keep) with keep [R, R] = 1 - mask (the keep-still term)."""
        raise NotImplementedError

    def detach(self) -> 'FeatureMap':
        """The same view, cut from the autograd graph (the start features)."""
        raise NotImplementedError


class FullResFeatures(FeatureMap):
    """The reference: the feature map resized to R x R, as DragGAN's code builds it."""

    def __init__(self, low_res: torch.Tensor, resolution: int, *, resized: bool = False):
        self.resolution = resolution
        self.map = low_res if resized else F.interpolate(low_res, size=(resolution, resolution),
                                                         mode='bilinear', align_corners=False)

    def at(self, xy):
        ix, iy = xy[:, 0].long(), xy[:, 1].long()
        return self.map[0, :, iy, ix].t()

    def bilinear(self, xy):
        grid = xy / (self.resolution - 1) * 2 - 1
        out = F.grid_sample(self.map, grid.view(1, 1, -1, 2).to(self.map.dtype), mode='bilinear',
                            padding_mode='zeros', align_corners=True)
        return out[0, :, 0].t()

    def masked_l1(self, start, keep):
        return ((self.map - start.map).abs() * keep).mean()

    def detach(self):
        return FullResFeatures(self.map.detach(), self.resolution, resized=True)


class _GradLikeInput(torch.autograd.Function):
    """Identity whose backward hands the gradient on in the input's memory layout.

    grid_sample returns its input gradient NCHW-contiguous; the generator runs channels-last
    on the CPU, and every convolution backward would otherwise copy the gradient over."""

    @staticmethod
    def forward(ctx, x):
        ctx.channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=torch.channels_last) if ctx.channels_last else grad


class LowResFeatures(FeatureMap):
    """The same numbers as FullResFeatures, read straight from the small map."""

    def __init__(self, low_res: torch.Tensor, resolution: int):
        self.resolution = resolution
        self.map = _GradLikeInput.apply(low_res) if low_res.requires_grad else low_res

    def at(self, xy):
        # Image pixel u sits at (u + 0.5) * h / R - 0.5 in the small map; F.interpolate's
        # align_corners=False sampling clamps at the borders, which padding 'border' repeats.
        grid = (2 * xy + 1) / self.resolution - 1
        out = F.grid_sample(self.map, grid.view(1, 1, -1, 2).to(self.map.dtype), mode='bilinear',
                            padding_mode='border', align_corners=False)
        return out[0, :, 0].t()

    def bilinear(self, xy):
        x0, y0 = xy[:, 0].floor(), xy[:, 1].floor()
        fx, fy = (xy[:, 0] - x0)[:, None], (xy[:, 1] - y0)[:, None]
        corners = torch.stack([torch.stack([x0, y0], 1), torch.stack([x0 + 1, y0], 1),
                               torch.stack([x0, y0 + 1], 1), torch.stack([x0 + 1, y0 + 1], 1)])  # [4, N, 2]
        top = self.resolution - 1
        inside = ((corners >= 0) & (corners <= top)).all(dim=2, keepdim=True)             # [4, N, 1]
        values = self.at(corners.clamp(0, top).reshape(-1, 2)).reshape(4, xy.shape[0], -1) * inside
        return (values[0] * (1 - fx) * (1 - fy) + values[1] * fx * (1 - fy)
                + values[2] * (1 - fx) * fy + values[3] * fx * fy)

    def masked_l1(self, start, keep):
        # Evaluated at feature resolution with the mask area-averaged onto it: the only part
        # of the fast mode that is close to, not identical with, the full-size computation.
        h, w = self.map.shape[2:]
        keep_small = F.adaptive_avg_pool2d(keep[None, None], (h, w))
        return ((self.map - start.map).abs() * keep_small).mean()

    def detach(self):
        return LowResFeatures(self.map.detach(), self.resolution)


def window(center: torch.Tensor, radius: int, resolution: int) -> torch.Tensor:
    """Integer pixels [M, 2] of the square search window around `center` (rounded),
    clipped to the image, in row-major order (y outer, x inner) as DragGAN scans it."""
    cx, cy = int(round(float(center[0]))), int(round(float(center[1])))
    xs = torch.arange(max(cx - radius, 0), min(cx + radius + 1, resolution), device=center.device)
    ys = torch.arange(max(cy - radius, 0), min(cy + radius + 1, resolution), device=center.device)
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).float()


def disc(center: torch.Tensor, radius: int, resolution: int) -> torch.Tensor:
    """Integer pixels [M, 2] strictly closer than `radius` to `center`, inside the image."""
    pts = window(center, radius, resolution)
    keep = (pts - center.float()).norm(dim=1) < radius
    return pts[keep]
