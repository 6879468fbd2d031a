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
