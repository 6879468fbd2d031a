"""drag_generated(): DragGAN on an image the generator draws itself (no photo, no inversion).

    from photodrag.pipeline.generated import drag_generated
    result = drag_generated(G, seed=3, drags=[((100, 120), (130, 100))])
    result.image                 # uint8 [R, R, 3], the final image
    result.settings              # JSON-ready: every setting and the result

Points are (x, y) in the generator's pixels. The start latent is NVIDIA's for `seed`
(truncation 0.7 by default), so the same seed gives the image NVIDIA's scripts draw.
"""

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

Point = Tuple[float, float]

# callback(session, step, trails): after every step (and once before the first, with step None)
StepCallback = Callable[[Any, Any, List[List[Point]]], None]


@dataclass(frozen=True, eq=False)
class GeneratedDrag:
    """The final image (uint8 [R, R, 3]), the session's last `DragStep`, each handle's trail,
    whether Ctrl-C stopped it, and `settings` (every setting and the result, JSON-ready)."""
    image: np.ndarray
    state: Any
    trails: List[List[Point]]
    interrupted: bool
    settings: Dict[str, Any]


def drag_generated(G, seed: int, drags: Sequence[Tuple[Point, Point]], *, truncation: float = 0.7, mask=None,
                   config=None, device: str = 'cpu', callback: Optional[StepCallback] = None,
                   checkpoint: Optional[str] = None) -> GeneratedDrag:
    """Drag the content at each handle of the image G draws for `seed` to its target.

    mask: float [R, R] in [0, 1] (1 = may change), an image file of that size, or None.
    config: a `DragConfig`. Ctrl-C during the drag ends it early: the result is what was
    reached, with `interrupted` set. `checkpoint` is only recorded in `settings`."""
    from photodrag import stylegan
    from photodrag.checkpoints import describe
    from photodrag.drag import DragConfig, DragSession
    from photodrag.io import load_mask

    config = config or DragConfig()
    R = int(G.img_resolution)
    mask_array = None if mask is None else load_mask(mask, (R, R), size_name="the generator's size")
    w = stylegan.w_from_seed(G, seed, truncation_psi=truncation)
    handles, targets = [tuple(h) for h, _ in drags], [tuple(t) for _, t in drags]
    session = DragSession(G, w, handles, targets, mask=mask_array, config=config)
    trails = [[h] for h in handles]
    interrupted = False
    started = time.perf_counter()
    if callback:
        callback(session, None, trails)
    try:
        while not session.done:
            step = session.step()
            for trail, h in zip(trails, step.handles):
                trail.append(h)
            if callback:
                callback(session, step, trails)
    except KeyboardInterrupt:
        interrupted = True
    state = session.state()
    image = stylegan.to_uint8(session.render())[0]
    settings = {
        'command': 'drag', 'checkpoint': None if checkpoint is None else str(checkpoint), 'generator': describe(G),
        'seed': seed, 'truncation': truncation, 'handles': [list(h) for h in handles],
        'targets': [list(t) for t in targets], 'mask': str(mask) if isinstance(mask, (str, os.PathLike)) else None,
        'device': str(device),
        'config': dataclasses.asdict(config),
        'result': {'steps': state.step, 'reason': 'interrupted' if interrupted else state.reason,
                   'handles': [list(h) for h in state.handles], 'distances': list(state.distances),
                   'seconds': round(time.perf_counter() - started, 2)},
    }
    return GeneratedDrag(image=image, state=state, trails=trails, interrupted=interrupted, settings=settings)


__all__ = ['drag_generated', 'GeneratedDrag']
