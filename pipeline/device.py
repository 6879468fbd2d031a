"""Which device to run on: cuda -> mps -> cpu unless told (the CLI's and the web editor's rule;
library functions take `device` explicitly)."""

from photodrag.errors import InvalidSettingsError

DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'mps')


def pick_device(requested: str = 'auto') -> str:
    """'auto' -> the best available device; 'cpu', 'cuda', 'cuda:N' or 'mps' after checking it exists."""
    import torch
    requested = str(requested or 'auto')
    if requested == 'auto':
        if torch.cuda.is_available():
            return 'cuda'
        if torch.backends.mps.is_available():
            return 'mps'
        return 'cpu'
    if requested == 'cpu':
        return requested
    if requested == 'cuda' or requested.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise InvalidSettingsError(f'device {requested} was asked for, but no CUDA GPU is available; '
                                       'use --device cpu (or auto)')
        index = requested.partition(':')[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise InvalidSettingsError(f'device {requested}: this machine has CUDA devices '
                                       f'0..{torch.cuda.device_count() - 1}')
        return requested
    if requested == 'mps':
        if not torch.backends.mps.is_available():
            raise InvalidSettingsError('device mps was asked for, but MPS is not available; use --device cpu')
        return requested
    raise InvalidSettingsError(f'unknown device {requested!r}; use one of {", ".join(DEVICE_CHOICES)} (or cuda:N)')


__all__ = ['pick_device', 'DEVICE_CHOICES']
