"""Motion supervision: pull each handle's neighbourhood one pixel towards its target."""

import torch

from .features import FeatureMap, disc


def motion_loss(features: FeatureMap, handles: torch.Tensor, targets: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum over handles of mean |sg(F(q)) - F(q + d)| for the pixels q within `radius` of the
    handle, d the unit step towards its target; handles within 1 px of their target add
    nothing. The stop-gradient side is the unshifted feature, so the gradient moves the
    content at q + d towards what is now at q: the content moves along d."""
    loss = features.at(handles[:1]).sum() * 0       # a zero that keeps the graph's device and dtype
    for handle, target in zip(handles, targets):
        step = target - handle
        length = float(step.norm())
        if length <= 1:
            continue
        pixels = disc(handle, radius, features.resolution)
        if pixels.shape[0] == 0:
            continue
        direction = step / (length + 1e-7)
        still = features.at(pixels).detach()
        moved = features.bilinear(pixels + direction[None])
        loss = loss + (still - moved).abs().mean()
    return loss


def original_loss(features: FeatureMap, handles: torch.Tensor, targets: torch.Tensor, anchors, radius: int
                  ) -> torch.Tensor:
    """GoodDrag's supervision toward the original handle feature: sum over handles of mean
    |F_0(o + u) - F(p + d + u)| over the disc offsets u, where F_0 is the feature map when the
    handle was placed at o (its `anchor.disc`, captured then), p the tracked handle and d the
    unit step to its target. Every step pulls what the handle *started* on, not whatever the
    tracker landed on, so a tracker that drifts cannot make the drag move the wrong content."""
    loss = features.at(handles[:1]).sum() * 0
    for handle, target, anchor in zip(handles, targets, anchors):
        step = target - handle
        length = float(step.norm())
        if length <= 1:
            continue
        direction = step / (length + 1e-7)
        moved = features.bilinear(handle[None] + anchor.offsets + direction[None])
        loss = loss + (anchor.disc - moved).abs().mean()
    return loss
