"""Conversions between the model's images (float NCHW in [-1, 1]) and the edges' (uint8 HWC)."""

import numpy as np
import torch


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] or [C, H, W] in [-1, 1] -> uint8 [N, H, W, C] or [H, W, C] (NVIDIA's rounding)."""
    if img.ndim not in (3, 4):
        raise ValueError(f'expected an image tensor [N, C, H, W] or [C, H, W], got {tuple(img.shape)}')
    out = (img.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    out = out.permute(0, 2, 3, 1) if img.ndim == 4 else out.permute(1, 2, 0)
    return out.cpu().numpy()


def from_uint8(array: np.ndarray, device='cpu') -> torch.Tensor:
    """uint8 [H, W, C] -> float32 [1, C, H, W] in [-1, 1]."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(f'expected a uint8 [H, W, C] array, got {array.dtype} {array.shape}')
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:                 # torch warns on read-only memory (e.g. np.broadcast_to)
        array = array.copy()
    t = torch.from_numpy(array).to(device=device)
    return t.permute(2, 0, 1)[None].float() / 127.5 - 1
