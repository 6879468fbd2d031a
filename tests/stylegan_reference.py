"""NVIDIA's StyleGAN2 forward pass restated op by op, for checking and benchmarking only.

This is a second, deliberately plain statement of what stylegan2-ada-pytorch and the
stylegan3 repository compute in fp32 on their non-CUDA path (`upfirdn2d` reference
implementation, `conv2d_resample`, `modulated_conv2d` with fused modulation as in
inference, `bias_act`). It reads the parameters of our `Generator` by their NVIDIA names
and shares no arithmetic with `stylegan.ops`, so the tests can hold the fast path to it.

path='official' takes the same route as NVIDIA's code (strided transposed convolution
then FIR filter); path='generic' upsamples by zero insertion, filters, then convolves:
NVIDIA's fallback, a mathematically identical but independent route.
"""

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

_GAINS = {'linear': 1.0, 'lrelu': math.sqrt(2), 'relu': math.sqrt(2)}


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, pad: Sequence[int] = (0, 0, 0, 0),
              gain: float = 1.0) -> torch.Tensor:
    """Insert up-1 zeros after each pixel, pad (negative = crop), convolve with f·gain."""
    n, c, h, w = x.shape
    if up > 1:
        z = torch.zeros([n, c, h * up, w * up], dtype=x.dtype, device=x.device)
        z[:, :, ::up, ::up] = x
        x = z
    px0, px1, py0, py1 = pad
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    k = torch.flip(f * gain, [0, 1]).to(x.dtype)      # convolution, not correlation
    return F.conv2d(x, k.expand(c, 1, *k.shape).contiguous(), groups=c)


def bias_act(x, b, act='linear', gain=None, clamp=None):
    if b is not None:
        x = x + b.reshape(1, -1, *([1] * (x.ndim - 2)))
    if act == 'lrelu':
        x = F.leaky_relu(x, 0.2)
    elif act == 'relu':
        x = F.relu(x)
    elif act != 'linear':
        raise NotImplementedError(act)
    x = x * (_GAINS[act] if gain is None else gain)
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def conv2d_resample(x, w, f, up, padding, groups, flip_weight, path):
    kh, kw = w.shape[2:]
    if up == 1:
        return F.conv2d(x, w if flip_weight else w.flip([2, 3]), padding=padding, groups=groups)
    fh, fw = f.shape
    px0, px1 = padding + (fw + up - 1) // 2, padding + (fw - up) // 2
    py0, py1 = padding + (fh + up - 1) // 2, padding + (fh - up) // 2
    if kh == 1 and kw == 1:
        return upfirdn2d(F.conv2d(x, w, groups=groups), f, up=up, pad=[px0, px1, py0, py1], gain=up ** 2)
    if path == 'generic':
        x = upfirdn2d(x, f, up=up, pad=[px0, px1, py0, py1], gain=up ** 2)
        return F.conv2d(x, w if flip_weight else w.flip([2, 3]), groups=groups)
    o, i = w.shape[:2]
    wt = w.reshape(groups, o // groups, i, kh, kw).transpose(1, 2).reshape(groups * i, o // groups, kh, kw)
    if flip_weight:
        # the transposed convolution flips by itself; undo it to keep correlation
        wt = wt.flip([2, 3])
    px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    x = F.conv_transpose2d(x, wt, stride=up, padding=[pyt, pxt], groups=groups)
    return upfirdn2d(x, f, pad=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2)


def fully_connected(layer, x):
    w = layer.weight * layer.weight_gain
    b = layer.bias * layer.bias_gain if layer.bias is not None else None
    if layer.activation == 'linear':
        return x.matmul(w.t()) + (b if b is not None else 0)
    return bias_act(x.matmul(w.t()), b, act=layer.activation)


def modulated_conv2d(x, weight, styles, noise, up, padding, f, demodulate, flip_weight, path):
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
    if demodulate:
        d = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        w = w * d.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    x = conv2d_resample(x, w.reshape(-1, i, kh, kw), f, up, padding, groups=n, flip_weight=flip_weight, path=path)
    x = x.reshape(n, -1, *x.shape[2:])
    return x + noise if noise is not None else x


def synthesis_layer(layer, x, w, noise_mode, path, gain=1.0):
    styles = fully_connected(layer.affine, w)
    noise = None
    if layer.use_noise and noise_mode == 'const':
        noise = layer.noise_const * layer.noise_strength
    elif layer.use_noise and noise_mode == 'random':
        raise ValueError('the reference path is deterministic: use const or none')
    x = modulated_conv2d(x, layer.weight, styles, noise, layer.up, layer.padding, layer.resample_filter,
                         demodulate=True, flip_weight=(layer.up == 1), path=path)
    clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
    return bias_act(x, layer.bias, act=layer.activation, gain=_GAINS[layer.activation] * gain, clamp=clamp)


def torgb(layer, x, w, path):
    styles = fully_connected(layer.affine, w) * layer.weight_gain
    x = modulated_conv2d(x, layer.weight, styles, None, 1, 0, None, demodulate=False, flip_weight=True, path=path)
    return bias_act(x, layer.bias, clamp=layer.conv_clamp)


@torch.no_grad()
def synthesis(G, ws: torch.Tensor, noise_mode: str = 'const', path: str = 'official') -> torch.Tensor:
    """NVIDIA's fp32 synthesis forward for our Generator's weights."""
    net = G.synthesis
    x = img = None
    w_idx = 0
    for res in net.block_resolutions:
        block = getattr(net, f'b{res}')
        n_w = block.num_conv + block.num_torgb
        block_ws = ws[:, w_idx: w_idx + n_w].unbind(1)
        w_idx += block.num_conv
        if block.in_channels == 0:
            x = block.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = synthesis_layer(block.conv1, x, block_ws[0], noise_mode, path)
            k = 1
        elif block.architecture == 'resnet':
            skip = block.skip
            y = conv2d_resample(x, skip.weight * skip.weight_gain, skip.resample_filter, 2, 0, 1, True, path)
            y = y * math.sqrt(0.5)
            x = synthesis_layer(block.conv0, x, block_ws[0], noise_mode, path)
            x = synthesis_layer(block.conv1, x, block_ws[1], noise_mode, path, gain=math.sqrt(0.5))
            x = y + x
            k = 2
        else:
            x = synthesis_layer(block.conv0, x, block_ws[0], noise_mode, path)
            x = synthesis_layer(block.conv1, x, block_ws[1], noise_mode, path)
            k = 2
        if img is not None:
            f = block.resample_filter
            img = upfirdn2d(img, f, up=2, pad=[(f.shape[1] + 1) // 2, (f.shape[1] - 2) // 2,
                                              (f.shape[0] + 1) // 2, (f.shape[0] - 2) // 2], gain=4)
        if block.is_last or block.architecture == 'skip':
            y = torgb(block.torgb, x, block_ws[k], path)
            img = y if img is None else img + y
    return img


@torch.no_grad()
def mapping(G, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1,
            truncation_cutoff: Optional[int] = None) -> torch.Tensor:
    """NVIDIA's mapping forward (normalise, layers, broadcast, truncate)."""
    m = G.mapping

    def norm(v):
        return v * (v.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()

    x = norm(z.float()) if m.z_dim > 0 else None
    if m.c_dim > 0:
        y = norm(fully_connected(m.embed, c.float()))
        x = torch.cat([x, y], dim=1) if x is not None else y
    for idx in range(m.num_layers):
        x = fully_connected(getattr(m, f'fc{idx}'), x)
    x = x.unsqueeze(1).repeat([1, m.num_ws, 1])
    if truncation_psi != 1:
        cutoff = m.num_ws if truncation_cutoff is None else truncation_cutoff
        x[:, :cutoff] = m.w_avg + truncation_psi * (x[:, :cutoff] - m.w_avg)
    return x
