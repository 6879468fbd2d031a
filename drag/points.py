"""Checking handle/target points and masks at the drag stage's entry points.

Points are (x, y) floats in generator pixels, pixel centres at integer coordinates, so a
valid point lies in [0, R-1] on both axes. Masks are float in [0, 1], 1 = allowed to change;
soft values are honoured (the keep-still penalty is weighted by 1 - mask).
"""

import math
from typing import List, Optional, Sequence, Tuple

import torch

from photodrag.errors import InvalidPointsError
from photodrag.io import as_mask

Point = Tuple[float, float]


def check_point(p, resolution: int, what: str) -> Point:
    try:
        x, y = (float(v) for v in p)
    except (TypeError, ValueError):
        raise InvalidPointsError(f'{what} must be an (x, y) pair of numbers, got {p!r}') from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InvalidPointsError(f'{what} ({x}, {y}) is not a finite position')
    top = resolution - 1
    if not (0 <= x <= top and 0 <= y <= top):
        raise InvalidPointsError(f'{what} ({x:g}, {y:g}) is outside the {resolution}x{resolution} image '
                                 f'(valid x and y: 0..{top})')
    return (x, y)


def check_points(handles: Sequence, targets: Sequence, resolution: int) -> Tuple[List[Point], List[Point]]:
    """Validated copies of the handle and target lists (same length, at least one pair)."""
    handles, targets = list(handles), list(targets)
    if not handles or not targets:
        raise InvalidPointsError('a drag needs at least one handle and its target')
    if len(handles) != len(targets):
        raise InvalidPointsError(f'{len(handles)} handles but {len(targets)} targets: give one target per handle')
    return ([check_point(p, resolution, f'handle {i + 1}') for i, p in enumerate(handles)],
            [check_point(p, resolution, f'target {i + 1}') for i, p in enumerate(targets)])


def prepare_mask(mask, resolution: int, device) -> Optional[torch.Tensor]:
    """A mask as a float tensor [R, R] in [0, 1] on `device`, or None when it constrains nothing
    (checked by `photodrag.io.as_mask`: bool, uint8 0..255, or numbers in [0, 1])."""
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().to('cpu').numpy()
    m = torch.from_numpy(as_mask(mask, (resolution, resolution)))
    if float(m.min()) == 1:
        return None
    return m.to(device)


