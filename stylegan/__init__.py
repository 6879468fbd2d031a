"""Our own StyleGAN2 generator in plain PyTorch, with NVIDIA's parameter names and API."""

from .images import from_uint8, to_uint8
from .networks import (Generator, MappingNetwork, SynthesisFeatures, SynthesisNetwork, grow, w_from_seed)

__all__ = [
    'Generator', 'MappingNetwork', 'SynthesisNetwork', 'SynthesisFeatures', 'w_from_seed', 'grow',
    'to_uint8', 'from_uint8',
]
