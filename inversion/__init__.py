"""Inversion: LPIPS, W/W+ projection, pivotal tuning and saved inversions.

    from photodrag.inversion import invert, InversionConfig
    inv = invert(G, crop, InversionConfig.preset('balanced'), cache=True)
    G_tuned, ws = inv.generator(G), inv.ws
"""

from .config import PRESETS, InversionConfig
from .optimize import cached, invert, prepare_target, preview, psnr
from .lpips import load_lpips
from .saved import Inversion, StageMetrics, generator_hash

__all__ = ['cached', 'invert', 'preview', 'Inversion', 'InversionConfig', 'PRESETS', 'StageMetrics', 'load_lpips', 'generator_hash',
           'prepare_target', 'psnr']
