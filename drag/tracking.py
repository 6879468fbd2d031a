"""Point tracking: find each handle's content again by nearest-neighbour feature search."""

from typing import List

import torch

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
