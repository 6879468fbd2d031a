"""InversionConfig: every setting of an inversion, with PTI's values as defaults."""

import dataclasses
from dataclasses import dataclass
from typing import Optional

from photodrag.errors import InvalidSettingsError, check_settings, is_number

PRECISIONS = ('fp32', 'bf16', 'fp16')
MAX_STEPS = 100_000             # a tampered record cannot ask for a run that never ends
MAX_W_AVG_SAMPLES = 1_000_000   # ... or for terabytes of mapping samples


def _whole(v, lo: int, hi: int) -> bool:
    return is_number(v, lo, hi, whole=True)
DELTA_FORMATS = ('int8', 'fp16', 'fp32')
LATENT_SPACES = ('w', 'w+')
INITS = ('auto', 'mean', 'encoder')
LPIPS_NETS = ('vgg', 'alex')


@dataclass(frozen=True)
class InversionConfig:
    """Settings of one inversion (docs/algorithms.md §3 says where each default comes from).

    Stage A projects the image into W (one w for every layer; 'w+' = one per layer) together
    with the per-layer noise maps; stage B fine-tunes every generator weight at that pivot.
    LPIPS resolutions are caps: an image larger than the cap is area-downsampled to it
    (None = full resolution).
    """
    # Stage A: projection
    projection_steps: int = 450             # PTI 450 (NVIDIA 1000)
    projection_lr: float = 0.01             # peak Adam lr (NVIDIA 0.1)
    lr_warmup: float = 0.05                 # linear warm-up, fraction of the steps
    lr_rampdown: float = 0.25               # cosine ramp-down, fraction of the steps
    initial_noise_factor: float = 0.05      # latent noise w_std * this * max(0, 1 - t / noise_ramp)^2
    noise_ramp: float = 0.75
    noise_reg_weight: float = 1e5           # noise-map auto-correlation penalty
    optimize_noise: bool = True             # optimise the per-layer noise maps with w
    w_avg_samples: int = 600                # mapping samples for the start point and w_std
    init: str = 'auto'                      # start at an encoder's w ('encoder'), at w_avg ('mean'), or
                                            # 'auto': the encoder's when invert() is given one
    encoder_projection_steps: Optional[int] = None      # projection steps when starting at the encoder (None: the same)
    latent_space: str = 'w'                 # 'w' (PTI) or 'w+'
    projection_lpips: str = 'vgg'
    projection_lpips_res: Optional[int] = 256
    # Stage B: pivotal tuning
    tuning_steps: int = 350                 # step cap
    tuning_lr: float = 3e-4
    tuning_l2_weight: float = 1.0
    tuning_lpips_weight: float = 1.0
    tuning_lpips: str = 'alex'
    tuning_lpips_res: Optional[int] = None  # PTI: full resolution
    stop_lpips: Optional[float] = 0.06      # stop tuning once the tuning LPIPS is this low; None = never
    locality: bool = False                  # PTI's locality regularisation (off in PTI)
    locality_alpha: float = 30.0            # w_r = w_p + alpha * (w_z - w_p) / |w_z - w_p|
    locality_l2_weight: float = 0.1
    locality_lpips_weight: float = 0.1
    # Saved form of the tuned weights: tuned - base, per output row quantised to int8 with a
    # float32 scale (about 1 byte per weight: a quarter of the generator), or fp16, or fp32.
    # The tuned generator is *defined* as base + the stored delta, so reloads are exact.
    delta_format: str = 'int8'
    # Both
    precision: str = 'fp32'                 # 'fp32'; 'bf16' (CPU or CUDA autocast); 'fp16' (CUDA autocast)
    seed: int = 0                           # start noise maps, latent noise, w_avg samples, locality samples
    allow_random_lpips: bool = False        # unit tests only: LPIPS with random trunks if no weights

    def __post_init__(self):
        check_settings('InversionConfig', self._checks)

    def _checks(self):
        return [
            (all(_whole(v, 0, MAX_STEPS) for v in (self.projection_steps, self.tuning_steps)),
             f'step counts must be whole numbers from 0 to {MAX_STEPS}'),
            (_whole(self.seed, 0, 2 ** 32 - 1), 'seed must be a whole number from 0 to 2**32-1'),
            (self.projection_lr > 0 and self.tuning_lr > 0, 'learning rates must be positive'),
            (0 <= self.lr_warmup <= 1 and 0 < self.lr_rampdown <= 1, 'lr_warmup in [0, 1], lr_rampdown in (0, 1]'),
            (self.noise_ramp > 0 and self.initial_noise_factor >= 0, 'noise_ramp > 0, initial_noise_factor >= 0'),
            (self.noise_reg_weight >= 0, 'noise_reg_weight must be >= 0'),
            (_whole(self.w_avg_samples, 2, MAX_W_AVG_SAMPLES),
             f'w_avg_samples must be a whole number from 2 to {MAX_W_AVG_SAMPLES}'),
            (self.latent_space in LATENT_SPACES, f'latent_space must be one of {LATENT_SPACES}'),
            (self.init in INITS, f'init must be one of {INITS}'),
            (self.encoder_projection_steps is None or _whole(self.encoder_projection_steps, 0, MAX_STEPS),
             f'encoder_projection_steps must be None or a whole number from 0 to {MAX_STEPS}'),
            (self.projection_lpips in LPIPS_NETS and self.tuning_lpips in LPIPS_NETS,
             f'LPIPS networks must be among {LPIPS_NETS}'),
            (all(r is None or r >= 16 for r in (self.projection_lpips_res, self.tuning_lpips_res)),
             'LPIPS resolutions must be None or >= 16'),
            (self.tuning_l2_weight >= 0 and self.tuning_lpips_weight >= 0, 'loss weights must be >= 0'),
            (self.stop_lpips is None or self.stop_lpips >= 0, 'stop_lpips must be None or >= 0'),
            (self.locality_alpha > 0, 'locality_alpha must be positive'),
            (self.precision in PRECISIONS, f'precision must be one of {PRECISIONS}'),
            (self.delta_format in DELTA_FORMATS, f'delta_format must be one of {DELTA_FORMATS}'),
        ]

    def check_device(self, device) -> None:
        """fp16 autocast needs CUDA: say so before anything runs on another device."""
        if self.precision == 'fp16' and not str(device).startswith('cuda'):
            raise InvalidSettingsError(f"precision 'fp16' needs a CUDA device, not {device}; use 'bf16' (or fp32) "
                                       'on the CPU')

    def replace(self, **changes) -> 'InversionConfig':
        """A copy with `changes`. A new `projection_steps` holds whatever the start: it also
        clears `encoder_projection_steps` unless that is given too."""
        if 'projection_steps' in changes:
            changes.setdefault('encoder_projection_steps', None)
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **changes) -> 'InversionConfig':
        """A named recipe (see PRESETS), with `changes` on top (as `replace` makes them)."""
        if name not in PRESETS:
            raise InvalidSettingsError(f'unknown inversion preset {name!r}; choose one of {sorted(PRESETS)}')
        return PRESETS[name].replace(**changes)


# Our presets tune with VGG-LPIPS where PTI uses AlexNet. Measured on the demo generator
# (128 px; astronaut + 4 portraits, `benchmarks/demo_faces.py`): with AlexNet, tuning
# leaves speckle that AlexNet's stride-4 first layer does not see (best preset: LPIPS(vgg)
# 0.18, PSNR 27.2 dB on the astronaut, visibly noisy); with VGG the same budget gives clean
# reconstructions (fast: LPIPS(vgg) 0.06-0.10, PSNR 25.5-29.3 dB; 200 + 150 steps: 0.03-0.06,
# 28.0-32.1 dB). PSNR, which neither loss optimises directly, agrees.
PRESETS = {
    # PTI as DragGAN demos run it, without shortcuts: 450 + 350 steps, LPIPS at full
    # resolution in both stages (VGG, then AlexNet for tuning), no early stop. The
    # yardstick of benchmarks/inversion.py.
    'reference': InversionConfig(projection_lpips_res=None, stop_lpips=None),
    # 100 projection steps at twice the lr with LPIPS at 128 px, then at most 100 tuning
    # steps at 3x the lr (VGG-LPIPS at <= 256 px), stopping at LPIPS 0.06: a preview.
    'fast': InversionConfig(projection_steps=100, projection_lr=0.02, projection_lpips_res=128,
                            tuning_steps=100, tuning_lr=1e-3, tuning_lpips='vgg', tuning_lpips_res=256,
                            stop_lpips=0.06, encoder_projection_steps=25),
    # With an encoder (init 'auto' finds one) the projection starts at its w and is shorter:
    # measured on the demo generator (astronaut + facexlib portrait, 128 px, 2 CPU cores), the
    # encoder's start with 0 steps then fast's tuning equals w_avg's start with 100 steps
    # (LPIPS(vgg) 0.101/0.070 vs 0.100/0.072, in 0.45x the time); 25 steps do better than
    # both (0.096/0.062, 0.54x). balanced and best drop the same 100 steps' worth (best's
    # lr is half: 200 steps); measured for fast only.
    # 150 projection steps at twice the lr with LPIPS at 128 px (the pivot only has to be
    # close: tuning does the rest), then 120 tuning steps at 3x the lr, no early stop.
    'balanced': InversionConfig(projection_steps=150, projection_lpips_res=128, projection_lr=0.02,
                                tuning_steps=120, tuning_lr=1e-3, tuning_lpips='vgg', tuning_lpips_res=256,
                                stop_lpips=None, encoder_projection_steps=50),
    # PTI's projection (450 steps, LPIPS at 256 px) and 450 tuning steps at the presets'
    # 1e-3 (6e-4 left the demo generator grown to 256 px at LPIPS(vgg) 0.103 on two portraits,
    # 1e-3 brings them to 0.093 and 0.098).
    'best': InversionConfig(projection_steps=450, projection_lpips_res=256,
                            tuning_steps=450, tuning_lr=1e-3, tuning_lpips='vgg', tuning_lpips_res=256,
                            stop_lpips=None, encoder_projection_steps=250),
}
