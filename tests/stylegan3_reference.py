"""NVIDIA's StyleGAN3 forward pass restated plainly, for checking and benchmarking only.

A second statement of what the stylegan3 repository computes in fp32 on its non-CUDA path:
`filtered_lrelu`'s reference route (bias, then `upfirdn2d` by zero insertion, padding and a
full 2-D convolution with the flipped filter, then bias_act's leaky ReLU, gain and clamp, then
`upfirdn2d` filtering every sample and keeping every `down`-th), `modulated_conv2d` with the
style folded into per-sample weights and run as a grouped convolution, and the Fourier input
sampled through `affine_grid`. The layer schedule is worked out again here, layer by layer,
from the generator's keywords; parameters are read by their NVIDIA names from a state dict.
Nothing is shared with `photodrag.stylegan.alias_free` but the state dict, so the tests can
hold the fast path to this.
"""

import math
from typing import Any, Dict, List

import numpy as np
import torch
import torch.nn.functional as F


def schedule(img_resolution: int, img_channels: int, s: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per layer (the input first): name, sizes, rates, up/down, padding, kernel."""
    n, crit = s['num_layers'], s['num_critical']
    out = []
    for i in range(-1, n + 1):
        t = min(max(i, 0) / (n - crit), 1.0)
        cutoff = s['first_cutoff'] * (img_resolution / 2 / s['first_cutoff']) ** t
        stop = s['first_stopband'] * (img_resolution / 2 * s['last_stopband_rel'] / s['first_stopband']) ** t
        rate = 2 ** math.ceil(math.log2(min(stop * 2, img_resolution)))
        size = img_resolution if i >= n - 1 else rate + 2 * s['margin_size']
        ch = img_channels if i == n else int(np.rint(min(s['channel_base'] / 2 / cutoff, s['channel_max'])))
        out.append(dict(cutoff=cutoff, rate=rate, size=size, channels=ch, half=max(stop, rate / 2) - cutoff))
    first = out[0]
    layers = []
    for i in range(n + 1):
        a, b = out[max(i, 1)], out[i + 1]          # input spec (layer 0 reads the Fourier input's), output spec
        torgb = i == n
        k = 1 if torgb else s['conv_kernel']
        tmp = max(a['rate'], b['rate']) * (1 if torgb else s['lrelu_upsampling'])
        up, down = tmp // a['rate'], tmp // b['rate']
        fu = s['filter_size'] * up if up > 1 and not torgb else 1
        fd = s['filter_size'] * down if down > 1 and not torgb else 1
        total = (b['size'] - 1) * down + 1 - (a['size'] + k - 1) * up + fu + fd - 2
        lo = (total + up) // 2
        layers.append(dict(name=f'L{i}_{b["size"]}_{b["channels"]}', torgb=torgb, k=k, up=up, down=down,
                           pad=(lo, total - lo), in_channels=a['channels']))
    return [dict(size=first['size'], rate=first['rate'], bandwidth=first['cutoff'])] + layers


def upfirdn2d(x: torch.Tensor, f, up: int = 1, down: int = 1, pad=(0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    n, c, h, w = x.shape
    if f is None:
        f = torch.ones([1, 1])
    if up > 1:
        z = torch.zeros([n, c, h * up, w * up], dtype=x.dtype)
        z[:, :, ::up, ::up] = x
        x = z
    px0, px1, py0, py1 = pad
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    if f.ndim == 1:
        f2 = torch.outer(f, f) * gain                     # a separable filter, as one 2-D kernel
    else:
        f2 = f * gain
    k = torch.flip(f2, [0, 1]).to(x.dtype)
    x = F.conv2d(x, k.expand(c, 1, *k.shape).contiguous(), groups=c)
    return x[:, :, ::down, ::down]


def fc(state: Dict[str, torch.Tensor], prefix: str, x: torch.Tensor, lr: float = 1.0, act: bool = False) -> torch.Tensor:
    w = state[prefix + '.weight'] * (lr / math.sqrt(state[prefix + '.weight'].shape[1]))
    y = x @ w.t() + state[prefix + '.bias'] * lr
    return F.leaky_relu(y, 0.2) * math.sqrt(2) if act else y


def mapping(state, z, num_layers: int, psi: float = 1.0, lr: float = 0.01) -> torch.Tensor:
    x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
    for i in range(num_layers):
        x = fc(state, f'mapping.fc{i}', x, lr=lr, act=True)
    if psi != 1:
        x = state['mapping.w_avg'] + psi * (x - state['mapping.w_avg'])
    return x


def fourier_input(state, w, size: int, rate: int, bandwidth: float) -> torch.Tensor:
    p = 'synthesis.input.'
    t = fc(state, p + 'affine', w)
    t = t / t[:, :2].norm(dim=1, keepdim=True)
    N = w.shape[0]
    m_r = torch.eye(3).repeat(N, 1, 1)
    m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
    m_t = torch.eye(3).repeat(N, 1, 1)
    m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
    T = m_r @ m_t @ state[p + 'transform'][None]
    freqs, phases = state[p + 'freqs'][None], state[p + 'phases'][None]
    phases = phases + (freqs @ T[:, :2, 2:]).squeeze(2)
    freqs = freqs @ T[:, :2, :2]
    amp = (1 - (freqs.norm(dim=2) - bandwidth) / (rate / 2 - bandwidth)).clamp(0, 1)
    theta = torch.tensor([[0.5 * size / rate, 0, 0], [0, 0.5 * size / rate, 0]], dtype=torch.float32)
    grid = F.affine_grid(theta[None], [1, 1, size, size], align_corners=False)       # [1, H, W, 2]
    x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)
    x = torch.sin((x + phases[:, None, None]) * (2 * np.pi)) * amp[:, None, None]
    weight = state[p + 'weight']
    x = x @ (weight / math.sqrt(weight.shape[0])).t()
    return x.permute(0, 3, 1, 2)


def layer(state, spec, x, w, clamp) -> torch.Tensor:
    p = f'synthesis.{spec["name"]}.'
    weight = state[p + 'weight']
    styles = fc(state, p + 'affine', w)
    if spec['torgb']:
        styles = styles / math.sqrt(spec['in_channels'] * spec['k'] ** 2)
    else:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    N = x.shape[0]
    wm = weight[None] * styles[:, None, :, None, None]
    if not spec['torgb']:
        wm = wm * (wm.square().sum([2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    wm = wm * state[p + 'magnitude_ema'].rsqrt()
    y = F.conv2d(x.reshape(1, -1, *x.shape[2:]), wm.reshape(-1, *weight.shape[1:]), padding=spec['k'] - 1,
                 groups=N)
    y = y.reshape(N, -1, *y.shape[2:]) + state[p + 'bias'][None, :, None, None]
    lo, hi = spec['pad']
    y = upfirdn2d(y, state.get(p + 'up_filter'), up=spec['up'], pad=(lo, hi, lo, hi), gain=spec['up'] ** 2)
    if not spec['torgb']:
        y = F.leaky_relu(y, 0.2) * math.sqrt(2)
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    return upfirdn2d(y, state.get(p + 'down_filter'), down=spec['down'])


def synthesis(G, ws: torch.Tensor) -> torch.Tensor:
    """The image NVIDIA's code draws from ws, for our AliasFreeGenerator `G` (its weights by name)."""
    k = G.init_kwargs
    s = {key: k[key] for key in ('num_layers', 'num_critical', 'first_cutoff', 'first_stopband',
                                 'last_stopband_rel', 'margin_size', 'channel_base', 'channel_max', 'conv_kernel',
                                 'filter_size', 'lrelu_upsampling')}
    state = {name: v.detach().float() for name, v in G.state_dict().items()}
    spec = schedule(k['img_resolution'], k['img_channels'], s)
    with torch.no_grad():
        x = fourier_input(state, ws[:, 0], **spec[0])
        for i, lay in enumerate(spec[1:], start=1):
            x = layer(state, lay, x, ws[:, i], k['conv_clamp'])
        return x * k['output_scale']
