"""DragConfig: every setting of a drag, with DragGAN's values as defaults."""

import dataclasses
from dataclasses import dataclass
from typing import Optional

from photodrag.errors import InvalidSettingsError, check_settings

MODES = ('fast', 'reference')
PRECISIONS = ('fp32', 'bf16', 'fp16')
LATENT_SPACES = ('w', 'w+')
TRACKERS = ('features', 'template', 'image')
SUPERVISIONS = ('shift', 'original')

# What None means for the handle options: DragGAN's algorithm in 'reference' mode, and in 'fast'
# mode the best of the ablation in docs/measurements.md ("Following the content"): on the demo
# generator no option beat DragGAN's own tracking and supervision on both landmark rulers, so
# fast mode keeps them; every report measures the content in the images instead of trusting it.
REFERENCE_CHOICES = {'tracking': 'features', 'supervision': 'shift', 'confidence': 0.0, 'content_check': False,
                     'patience': 0}
FAST_CHOICES = dict(REFERENCE_CHOICES)


@dataclass(frozen=True)
class DragConfig:
    """Settings of one drag (docs/algorithms.md §2 says where each value comes from).

    Radii are given in pixels of a 512-px image and scale with the generator's resolution R
    (rounded, at least 1), as DragGAN's code scales them.
    """
    feature_block: Optional[int] = None     # synthesis block (1 = 4x4; StyleGAN3: layer L{k-1}) whose features drive the drag; None = 6 (128x128; StyleGAN3: L5), or the one before the last in a generator of <= 128 px
    r1: float = 3.0                         # motion-supervision disc radius (px at 512)
    r2: float = 12.0                        # point-tracking search half-size (px at 512)
    lambda_mask: float = 20.0               # weight of the keep-the-rest-still term (DragGAN's GUIs)
    lr: float = 2e-3                        # Adam learning rate (the paper's value for FFHQ, cats, cars)
    latent_space: str = 'w+'                # 'w': one shared vector for the optimised layers; 'w+': one per layer
    optimized_ws: int = 6                   # how many leading w vectors move; the rest stay at the start latent
    stop_distance: Optional[float] = None   # done when every handle is this close (px); None = max(2R/512, 1)
    max_steps: int = 300                    # step cap
    noise_mode: str = 'const'               # 'const' or 'none' (random noise would make tracking jitter)
    mode: str = 'fast'                      # 'fast' or 'reference' (what DragGAN's code does: full render, full-size features)
    precision: str = 'fp32'                 # 'fp32'; 'bf16' (CPU or CUDA autocast); 'fp16' (CUDA autocast)
    # How handles are followed and pulled (docs/algorithms.md §2.1); None = the mode's choice:
    # DragGAN's own in 'reference' mode, the measured best in 'fast' mode.
    tracking: Optional[str] = None          # 'features' (DragGAN: nearest feature), 'template' (FreeDrag: adaptive template on the handle->target line, backtracking), 'image' (features, then the rendered image's own pixels confirm or correct)
    supervision: Optional[str] = None       # 'shift' (DragGAN: pull F(q) to q + d) or 'original' (GoodDrag: pull the original handle features to q + d)
    template_rate: float = 0.2              # 'template': how fast the template follows the tracked feature (FreeDrag's 1 - lambda)
    template_bound: float = 0.5             # 'template': the template never drifts from the original feature by more than this share of its norm
    confidence: Optional[float] = None      # StableDrag: a match less similar (cosine) than this to the original feature leaves the handle where it was; 0 = off
    content_check: Optional[bool] = None    # stop only when the rendered image shows each handle's content at its target (patch correlation), not on the tracker's word
    patience: Optional[int] = None          # steps in which no handle's content (measured in the image every 10 steps) gets nearer its target by half the stop distance before the drag ends as 'stalled', back at the step where it was nearest; 0 = never

    def __post_init__(self):
        check_settings('DragConfig', self._checks)

    def _checks(self):
        return [
            (self.mode in MODES, f'mode must be one of {MODES}'),
            (self.precision in PRECISIONS, f'precision must be one of {PRECISIONS}'),
            (self.latent_space in LATENT_SPACES, f'latent_space must be one of {LATENT_SPACES}'),
            (self.noise_mode in ('const', 'none'), "noise_mode must be 'const' or 'none'"),
            (self.feature_block is None or self.feature_block >= 1, 'feature_block counts from 1'),
            (self.r1 > 0 and self.r2 > 0, 'r1 and r2 must be positive'),
            (self.lambda_mask >= 0, 'lambda_mask must be >= 0'),
            (self.lr > 0, 'lr must be positive'),
            (self.optimized_ws >= 1, 'optimized_ws must be >= 1'),
            (self.stop_distance is None or self.stop_distance >= 0, 'stop_distance must be >= 0'),
            (self.max_steps >= 0, 'max_steps must be >= 0'),
            (self.tracking is None or self.tracking in TRACKERS, f'tracking must be one of {TRACKERS}'),
            (self.supervision is None or self.supervision in SUPERVISIONS,
             f'supervision must be one of {SUPERVISIONS}'),
            (0 < self.template_rate <= 1, 'template_rate must be in (0, 1]'),
            (0 <= self.template_bound <= 2, 'template_bound must be in [0, 2]'),
            (self.confidence is None or -1 <= self.confidence < 1, 'confidence is a cosine similarity in [-1, 1)'),
            (self.content_check is None or isinstance(self.content_check, bool), 'content_check must be true or false'),
            (self.patience is None or (isinstance(self.patience, int) and self.patience >= 0),
             'patience must be a whole number of steps >= 0'),
        ]

    def choice(self, name: str):
        """The value of handle option `name` in use (its own, or the mode's choice when None)."""
        value = getattr(self, name)
        if value is not None:
            return value
        return (REFERENCE_CHOICES if self.mode == 'reference' else FAST_CHOICES)[name]

    def resolved(self) -> 'DragConfig':
        """The same settings with every None replaced by what it stands for (records, reports)."""
        return self.replace(**{k: self.choice(k) for k in FAST_CHOICES})

    def check_device(self, device) -> None:
        """fp16 autocast needs CUDA: say so before anything runs on another device."""
        if self.precision == 'fp16' and not str(device).startswith('cuda'):
            raise InvalidSettingsError(f"precision 'fp16' needs a CUDA device, not {device}; use 'bf16' (or fp32) "
                                       'on the CPU')

    def replace(self, **changes) -> 'DragConfig':
        return dataclasses.replace(self, **changes)

    def block_index(self, num_blocks: int) -> int:
        """The feature block to use in a generator with `num_blocks` synthesis blocks.

        DragGAN takes block 6 (128x128) of its 256-1024 px generators, never the last block,
        whose features are little more than the image: in a 128 px generator block 6 *is*
        the last, and a drag driven by it moves the mouth corners of the demo generator's
        faces by 28 % of the way on average (re-detected dlib landmarks, 9 samples, 150
        steps), against 42 % with block 5 (64x64). So a small generator uses the block
        before its last."""
        if self.feature_block is not None:
            return self.feature_block
        return min(6, max(1, num_blocks - 1))

    def motion_radius(self, resolution: int) -> int:
        return max(1, round(self.r1 * resolution / 512))

    def search_radius(self, resolution: int) -> int:
        return max(1, round(self.r2 * resolution / 512))

    def stop_px(self, resolution: int) -> float:
        """DragGAN's code stops at max(2R/512, 2) px; the paper at 1 px (<= 5 points). We scale
        like the code but floor at the paper's 1 px: a 2 px floor ends a 7 px drag on a 128 px
        generator at 71 % of the way (re-detected mouth corners on 5 inverted demo faces, 300
        steps: 0.62 of the way on average with 1 px)."""
        if self.stop_distance is not None:
            return float(self.stop_distance)
        return max(2 * resolution / 512, 1.0)
