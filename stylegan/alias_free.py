"""Our StyleGAN3 (alias-free) generator in plain PyTorch, with NVIDIA's parameter names.

Karras et al., "Alias-Free Generative Adversarial Networks" (NeurIPS 2021), configs T and R.
The synthesis network starts from Fourier features (`SynthesisInput`: a bank of sinusoids
whose frequencies and phases a w-dependent rotation and translation move), then runs
`num_layers` modulated convolutions, each followed by a *filtered* leaky ReLU: upsample by
`up` (zero insertion + low-pass FIR), leaky ReLU at the higher rate, low-pass and downsample
by `down`, so the nonlinearity adds no aliasing. Config R uses 1x1 convolutions and radially
symmetric (jinc) downsampling filters in its non-critically-sampled layers. Every layer works
on a canvas `margin_size` samples wider than the image on each side, except the last two.

State-dict names are NVIDIA's (`synthesis.input.freqs`, `synthesis.L3_52_512.affine.weight`,
`synthesis.L5_84_1024.up_filter`, `mapping.fc1.bias`, ...), so the weights of NVIDIA's pickles
load one to one (`checkpoints.nvidia`); the filters are taken from the checkpoint, designed
here only for generators built from scratch. Everything is written from the paper's
equations and the checkpoints' layout; the computation it must match is restated plainly in
tests/stylegan3_reference.py.

The filtered leaky ReLU runs without a compiled extension: the upsampling filter as a
transposed convolution with stride `up` (no multiplications by the inserted zeros), the
downsampling filter as a strided convolution (only the kept samples are computed), both
separable per axis unless the filter is radial.
"""

import copy
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import (NOISE_MODES, FullyConnectedLayer, MappingNetwork, SynthesisFeatures, _autocast_context,
                       _quote, _real, _whole)

# NVIDIA's defaults for the stylegan3 repository's Generator (config T; R changes conv_kernel,
# use_radial_filters and the channel counts, which its pickles record).
MAPPING3_DEFAULTS: Dict[str, Any] = dict(num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998)
SYNTHESIS3_DEFAULTS: Dict[str, Any] = dict(
    channel_base=32768, channel_max=512, num_layers=14, num_critical=2, first_cutoff=2.0,
    first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3, margin_size=10, output_scale=0.25, num_fp16_res=4,
    conv_kernel=3, filter_size=6, lrelu_upsampling=2, use_radial_filters=False, conv_clamp=256,
    magnitude_ema_beta=0.999)
_TRAINING_ONLY3 = {'mapping': {'freeze_layers', 'freeze_embed'}, 'synthesis': set()}

# What any published StyleGAN3 fits in (1024 px R: 1024 channels, 16 layers); a pickle's
# settings are checked against these before anything is allocated.
LIMITS3 = dict(dim=4096, c_dim=100_000, resolution=4096, channels=4, layers=32, mapping_layers=32,
               channel_base=1 << 24, channel_max=4096, margin=256, filter_size=16, lrelu_upsampling=8,
               conv_kernel=7, parameters=400_000_000)


# ----------------------------------------------------------------------------
# The layer plan


@dataclass(frozen=True)
class LayerPlan:
    """One synthesis layer's geometry, as the paper's schedule sets it."""
    name: str
    is_torgb: bool
    critically_sampled: bool
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_rate: int                # sampling rate (samples per image width)
    out_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int
    up: int
    down: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: tuple              # (x0, x1, y0, y1) of the upsampling stage

    @property
    def margin(self) -> int:
        """Samples of canvas outside the image on each side of this layer's output."""
        return (self.out_size - self.out_rate) // 2


@dataclass(frozen=True)
class SynthesisPlan:
    input_channels: int
    input_size: int
    input_rate: int
    input_bandwidth: float
    layers: List[LayerPlan]


def plan_synthesis(img_resolution: int, img_channels: int, channel_base: int, channel_max: int, num_layers: int,
                   num_critical: int, first_cutoff: float, first_stopband: float, last_stopband_rel: float,
                   margin_size: int, conv_kernel: int, filter_size: int, lrelu_upsampling: int,
                   use_radial_filters: bool, **_ignored) -> SynthesisPlan:
    """Cutoffs and minimum stopbands grow geometrically from the first layer's to the image's
    Nyquist frequency over the first `num_layers - num_critical` layers, then stay; each
    layer's sampling rate is the power of two just above twice its stopband (capped at the
    image resolution); its channels fall as 1 / cutoff."""
    n = num_layers
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    t = np.minimum(np.arange(n + 1) / (n - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** t
    stopbands = first_stopband * (last_stopband / first_stopband) ** t
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    layers = []
    for i in range(n + 1):
        p = max(i - 1, 0)
        torgb = i == n
        critical = i >= n - num_critical
        kernel = 1 if torgb else int(conv_kernel)
        tmp_rate = max(rates[p], rates[i]) * (1 if torgb else lrelu_upsampling)
        up, down = int(np.rint(tmp_rate / rates[p])), int(np.rint(tmp_rate / rates[i]))
        up_taps = filter_size * up if up > 1 and not torgb else 1
        down_taps = filter_size * down if down > 1 and not torgb else 1
        # the padding makes the output grid land where the symmetric interpretation puts it
        total = (sizes[i] - 1) * down + 1 - (sizes[p] + kernel - 1) * up + up_taps + down_taps - 2
        lo = int((total + up) // 2)
        hi = int(total - lo)
        layers.append(LayerPlan(
            name=f'L{i}_{int(sizes[i])}_{int(channels[i])}', is_torgb=torgb, critically_sampled=critical,
            in_channels=int(channels[p]), out_channels=int(channels[i]), in_size=int(sizes[p]), out_size=int(sizes[i]),
            in_rate=int(rates[p]), out_rate=int(rates[i]), in_cutoff=float(cutoffs[p]), out_cutoff=float(cutoffs[i]),
            in_half_width=float(half_widths[p]), out_half_width=float(half_widths[i]), conv_kernel=kernel, up=up,
            down=down, up_taps=up_taps, down_taps=down_taps, down_radial=bool(use_radial_filters) and not critical,
            padding=(lo, hi, lo, hi)))
    return SynthesisPlan(input_channels=int(channels[0]), input_size=int(sizes[0]), input_rate=int(rates[0]),
                         input_bandwidth=float(cutoffs[0]), layers=layers)


def lowpass_filter(taps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> Optional[torch.Tensor]:
    """A Kaiser-windowed low-pass FIR (None for one tap: no filter). Separable: 1-D windowed sinc,
    normalised to unit DC gain; radial: a 2-D jinc windowed by the outer product of the 1-D
    Kaiser window, normalised to unit sum. `width` is the transition band (2 f_h)."""
    import scipy.signal
    import scipy.special
    if taps <= 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=taps, cutoff=cutoff, width=width, fs=fs),
                               dtype=torch.float32)
    x = (np.arange(taps) - (taps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(invalid='ignore', divide='ignore'):
        f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    f[r == 0] = cutoff              # the jinc's limit at 0 (odd tap counts)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(taps, width / (fs / 2)))
    window = np.kaiser(taps, beta)
    f = f * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# ----------------------------------------------------------------------------
# The filtered leaky ReLU


def _axis_weight(f: torch.Tensor, channels: int, axis: int, x: torch.Tensor) -> torch.Tensor:
    shape = [channels, 1, 1, 1]
    shape[2 + axis] = f.numel()
    return f.to(device=x.device, dtype=x.dtype).reshape(1, 1, -1).expand(channels, 1, -1).reshape(shape)


def _upsample(x: torch.Tensor, f: torch.Tensor, up: int, padding: Sequence[int]) -> torch.Tensor:
    """Insert up-1 zeros after each sample, pad by `padding` (x0, x1, y0, y1; negative crops),
    convolve with `f` (gain `up` per axis): as a transposed convolution of stride `up` per axis,
    which never multiplies the inserted zeros."""
    c = x.shape[1]
    L = f.shape[-1]
    px0, px1, py0, py1 = padding
    for axis, (p0, p1) in ((0, (py0, py1)), (1, (px0, px1))):
        w = _axis_weight(f * up, c, axis, x)
        stride = (up, 1) if axis == 0 else (1, up)
        x = F.conv_transpose2d(x, w, stride=stride, groups=c)
        pads = [0, 0, p0 - L + 1, p1 + up - L] if axis == 0 else [p0 - L + 1, p1 + up - L, 0, 0]
        x = F.pad(x, pads)
    return x


def _downsample(x: torch.Tensor, f: torch.Tensor, down: int) -> torch.Tensor:
    """Convolve with `f` (1-D: per axis; 2-D: radial) and keep every `down`-th sample, computing
    the kept samples only."""
    c = x.shape[1]
    if f.ndim == 2:
        w = f.flip([0, 1]).to(device=x.device, dtype=x.dtype)[None, None].expand(c, 1, -1, -1)
        return F.conv2d(x, w, stride=down, groups=c)
    f = f.flip(0)
    x = F.conv2d(x, _axis_weight(f, c, 0, x), stride=(down, 1), groups=c)
    return F.conv2d(x, _axis_weight(f, c, 1, x), stride=(1, down), groups=c)


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], b: torch.Tensor,
                   up: int, down: int, padding: Sequence[int], gain: float, slope: float,
                   clamp: Optional[float]) -> torch.Tensor:
    """x + b, upsampled by `up` through `fu` (with `padding`), leaky ReLU (`slope`) times `gain`
    clamped to ±clamp, then low-passed by `fd` and downsampled by `down`."""
    x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    if fu is not None:
        x = _upsample(x, fu, up, padding)
    else:
        if up != 1:
            raise ValueError('upsampling needs a filter')
        px0, px1, py0, py1 = padding
        x = F.pad(x, [px0, px1, py0, py1])
    if torch.is_grad_enabled() and x.requires_grad:
        if slope != 1:
            x = F.leaky_relu(x, slope)
        if gain != 1:
            x = x * gain
        if clamp is not None and clamp >= 0:
            x = x.clamp(-clamp, clamp)
    else:                           # inference: x is this function's own intermediate, done in place
        if slope != 1:
            x = F.leaky_relu_(x, slope)
        if gain != 1:
            x = x.mul_(gain)
        if clamp is not None and clamp >= 0:
            x = x.clamp_(-clamp, clamp)
    if fd is not None:
        return _downsample(x, fd, down)
    return x[:, :, ::down, ::down] if down > 1 else x


# ----------------------------------------------------------------------------
# Layers


class SynthesisInput(nn.Module):
    """Fourier features: `channels` sinusoids of fixed frequencies (inside a disc of radius
    `bandwidth`) and phases, rotated and translated by a transform predicted from w, sampled on
    a `size`-sample canvas at `sampling_rate` samples per image width, then mixed by a learnt
    channels x channels matrix."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: int, bandwidth: float):
        super().__init__()
        self.w_dim, self.channels = w_dim, channels
        self.size, self.sampling_rate, self.bandwidth = int(size), int(sampling_rate), float(bandwidth)
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():       # starts as the identity transform: (cos, sin, tx, ty) = (1, 0, 0, 0)
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer('transform', torch.eye(3, 3))     # a user's inverse transform of the image
        self.register_buffer('freqs', freqs)
        self.register_buffer('phases', torch.rand([channels]) - 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        t = self.affine(w)                                      # (r_cos, r_sin, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        rotate = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1),
                              torch.stack([zero, zero, one], 1)], 1)
        shift = torch.stack([torch.stack([one, zero, -tx], 1), torch.stack([zero, one, -ty], 1),
                             torch.stack([zero, zero, one], 1)], 1)
        m = rotate @ shift @ self.transform.unsqueeze(0)       # [n, 3, 3]
        freqs = self.freqs.unsqueeze(0)                         # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ m[:, :2, 2:]).squeeze(2)
        freqs = freqs @ m[:, :2, :2]                            # [n, C, 2]
        # frequencies a user's transform pushed past the band fade out
        amplitude = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        # sample centres of a `size` canvas, in image widths, as affine_grid (align_corners=False) places them
        s = self.size
        coords = ((torch.arange(s, device=w.device, dtype=torch.float32) * 2 + 1) / s - 1) * (0.5 * s / self.sampling_rate)
        grid = torch.stack(torch.meshgrid(coords, coords, indexing='xy'), dim=-1)     # [s, s, 2] (x, y)
        x = torch.einsum('hwk,nck->nhwc', grid, freqs) + phases[:, None, None, :]
        x = torch.sin(x * (2 * math.pi)) * amplitude[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2).contiguous()

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, size={self.size}, sampling_rate={self.sampling_rate}, '
                f'bandwidth={self.bandwidth:g}')


class AliasFreeLayer(nn.Module):
    """Modulated convolution (demodulated, except ToRGB), then the filtered leaky ReLU."""

    def __init__(self, w_dim: int, plan: LayerPlan, conv_clamp: Optional[float], design_filters: bool = True):
        super().__init__()
        self.plan = plan
        self.is_torgb = plan.is_torgb
        self.in_channels, self.out_channels = plan.in_channels, plan.out_channels
        self.conv_kernel = plan.conv_kernel
        self.up, self.down, self.padding = plan.up, plan.down, list(plan.padding)
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, plan.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([plan.out_channels, plan.in_channels, plan.conv_kernel,
                                                plan.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([plan.out_channels]))
        self.register_buffer('magnitude_ema', torch.ones([]))
        fs = plan.in_rate * plan.up         # the rate the nonlinearity runs at
        up = lowpass_filter(plan.up_taps, plan.in_cutoff, plan.in_half_width * 2, fs) if design_filters else \
            (torch.zeros([plan.up_taps]) if plan.up_taps > 1 else None)
        down = lowpass_filter(plan.down_taps, plan.out_cutoff, plan.out_half_width * 2, fs, radial=plan.down_radial) \
            if design_filters else (torch.zeros([plan.down_taps] * (2 if plan.down_radial else 1))
                                    if plan.down_taps > 1 else None)
        if up is not None:
            self.register_buffer('up_filter', up)
        else:
            self.up_filter = None
        if down is not None:
            self.register_buffer('down_filter', down)
        else:
            self.down_filter = None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        weight = self.weight
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        else:                       # pre-normalised, then demodulated
            weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
            styles = styles * styles.square().mean().rsqrt()
        x = x * (styles * self.magnitude_ema.rsqrt()).to(x.dtype)[:, :, None, None]
        x = F.conv2d(x, weight.to(x.dtype), padding=self.conv_kernel - 1)
        if not self.is_torgb:
            demod = (styles.square() @ weight.square().sum([2, 3]).t() + 1e-8).rsqrt()     # [N, out]
            x = x * demod.to(x.dtype)[:, :, None, None]
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, self.up, self.down, self.padding,
                              gain=1.0 if self.is_torgb else math.sqrt(2), slope=1.0 if self.is_torgb else 0.2,
                              clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        p = self.plan
        return (f'{p.in_size}->{p.out_size} px, rate {p.in_rate}->{p.out_rate}, up {p.up}, down {p.down}, '
                f'channels {p.in_channels}->{p.out_channels}')


class AliasFreeSynthesis(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R] (w 0 drives the input, w i the
    layer L{i-1}). Feature blocks, for the drag, are the layers L0..L{num_layers-1}, counted
    from 1 as DragGAN counts its StyleGAN3 features."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, design_filters: bool = True,
                 **kwargs):
        super().__init__()
        settings = {**SYNTHESIS3_DEFAULTS, **kwargs}
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_layers = int(settings['num_layers'])
        self.num_ws = self.num_layers + 2
        self.output_scale = float(settings['output_scale'])
        self.margin_size = int(settings['margin_size'])
        plan = plan_synthesis(img_resolution, img_channels, **settings)
        self.plan = plan
        self.input = SynthesisInput(w_dim, plan.input_channels, plan.input_size, plan.input_rate,
                                    plan.input_bandwidth)
        self.layer_names: List[str] = []
        clamp = settings['conv_clamp']
        for lp in plan.layers:
            setattr(self, lp.name, AliasFreeLayer(w_dim, lp, None if clamp is None else float(clamp), design_filters))
            self.layer_names.append(lp.name)
        # the drag's feature blocks: layer k (1-based) is L{k-1}; ToRGB is not one
        self.block_resolutions = [lp.out_rate for lp in plan.layers[:-1]]

    @property
    def num_blocks(self) -> int:
        return self.num_layers

    def image_area(self, x: torch.Tensor, block: int) -> torch.Tensor:
        """The part of block `block`'s output map that covers the image (the margin cut off)."""
        m = self.plan.layers[block - 1].margin
        return x[:, :, m:x.shape[2] - m, m:x.shape[3] - m] if m else x

    def forward(self, ws: torch.Tensor, noise_mode: str = 'const', force_fp32: bool = False,
                fused_modconv: Optional[bool] = None, autocast: Optional[torch.dtype] = None,
                **_ignored) -> torch.Tensor:
        """The image for ws (StyleGAN3 has no noise inputs: noise_mode is accepted and has no effect)."""
        return self.features(ws, noise_mode=noise_mode, autocast=autocast, return_image=True, collect=()).image

    def _check(self, ws: torch.Tensor, noise_mode: str) -> None:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f'ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}')
        if noise_mode not in NOISE_MODES:
            raise ValueError(f'noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}')

    def features(self, ws: torch.Tensor, *, stop_after: Optional[int] = None, collect: Optional[Sequence[int]] = None,
                 return_image: bool = False, noise_mode: str = 'const', force_fp32: bool = False,
                 fused_modconv: Optional[bool] = None, autocast: Optional[torch.dtype] = None) -> SynthesisFeatures:
        """Run the input and the layers up to block `stop_after` (1..num_layers; None = all and
        ToRGB) and return the outputs (whole canvases, margins included) of the blocks in
        `collect` (None = every block run). The image comes only from a full run with
        `return_image`; `finish` completes a stopped one."""
        self._check(ws, noise_mode)
        if stop_after is not None and not (isinstance(stop_after, int) and 1 <= stop_after <= self.num_layers):
            raise ValueError(f'stop_after must be a block 1..{self.num_layers}, got {stop_after}')
        last = stop_after or self.num_layers
        wanted = list(range(1, last + 1)) if collect is None else list(collect)
        if any(not isinstance(k, int) or not 1 <= k <= last for k in wanted):
            raise ValueError(f'collect must list blocks 1..{last}, got {list(collect or [])}')
        ws = ws.to(torch.float32)
        feats: Dict[int, torch.Tensor] = {}
        img = None
        with _autocast_context(ws.device, autocast):
            x = self.input(ws[:, 0])
            for k, name in enumerate(self.layer_names[:last], start=1):
                x = getattr(self, name)(x, ws[:, k])
                if k in wanted:
                    feats[k] = x
            if stop_after is None and return_image:
                img = self._to_image(getattr(self, self.layer_names[-1])(x, ws[:, self.num_ws - 1]))
        return SynthesisFeatures(features=feats, image=img)

    def finish(self, ws: torch.Tensor, x: torch.Tensor, img: Optional[torch.Tensor], after: int, *,
               noise_mode: str = 'const', force_fp32: bool = False, fused_modconv: Optional[bool] = None,
               autocast: Optional[torch.dtype] = None) -> torch.Tensor:
        """The image from block `after`'s output `x` (its whole canvas): only the layers above it run."""
        self._check(ws, noise_mode)
        if not (isinstance(after, int) and 1 <= after <= self.num_layers):
            raise ValueError(f'after must be a block 1..{self.num_layers}, got {after}')
        ws = ws.to(torch.float32)
        with _autocast_context(ws.device, autocast):
            for k in range(after + 1, self.num_ws - 1):
                x = getattr(self, self.layer_names[k - 1])(x, ws[:, k])
            return self._to_image(getattr(self, self.layer_names[-1])(x, ws[:, self.num_ws - 1]))

    def _to_image(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.output_scale if self.output_scale != 1 else x).float()

    def extra_repr(self) -> str:
        return f'w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}'


# ----------------------------------------------------------------------------
# Generator


def _resolve3(kind: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> Dict[str, Any]:
    if not isinstance(given, Mapping):
        raise ValueError(f'{kind} keywords must be a mapping, not {type(given).__name__}')
    unknown = sorted(str(k)[:40] for k in set(given) - set(defaults) - _TRAINING_ONLY3[kind])
    if unknown:
        raise ValueError(f'unsupported StyleGAN3 {kind} keyword(s) {unknown[:8]}; supported: {sorted(defaults)}')
    out = dict(defaults)
    out.update({k: v for k, v in given.items() if k in defaults})
    return out


def check_config3(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping: Mapping[str, Any],
                  synthesis: Mapping[str, Any]) -> None:
    """Raise ValueError unless these keywords describe a StyleGAN3 generator of sane size
    (types, ranges, and the parameter count from the layer plan, before any weight exists)."""
    L = LIMITS3
    _whole(z_dim, 'z_dim', 1, L['dim'])
    _whole(c_dim, 'c_dim', 0, L['c_dim'])
    w = _whole(w_dim, 'w_dim', 1, L['dim'])
    res = _whole(img_resolution, 'img_resolution', 8, L['resolution'])
    if res & (res - 1):
        raise ValueError(f'img_resolution = {res} is not a power of two')
    ch = _whole(img_channels, 'img_channels', 1, L['channels'])
    _whole(mapping['num_layers'], 'mapping num_layers', 1, L['mapping_layers'])
    _real(mapping['lr_multiplier'], 'mapping lr_multiplier', 1e-6, 1e3)
    _real(mapping['w_avg_beta'], 'mapping w_avg_beta', 0.0, 1.0)
    s = synthesis
    base = _whole(s['channel_base'], 'channel_base', 1, L['channel_base'])
    cmax = _whole(s['channel_max'], 'channel_max', 1, L['channel_max'])
    n = _whole(s['num_layers'], 'num_layers', 2, L['layers'])
    _whole(s['num_critical'], 'num_critical', 0, n - 1)
    _real(s['first_cutoff'], 'first_cutoff', 0.5, res / 2)
    _real(s['first_stopband'], 'first_stopband', 0.5, res)
    _real(s['last_stopband_rel'], 'last_stopband_rel', 1.0, 4.0)
    _whole(s['margin_size'], 'margin_size', 0, L['margin'])
    _real(s['output_scale'], 'output_scale', 1e-6, 1e6)
    _whole(s['num_fp16_res'], 'num_fp16_res', 0, 16)
    _whole(s['conv_kernel'], 'conv_kernel', 1, L['conv_kernel'])
    _whole(s['filter_size'], 'filter_size', 1, L['filter_size'])
    _whole(s['lrelu_upsampling'], 'lrelu_upsampling', 1, L['lrelu_upsampling'])
    if not isinstance(s['use_radial_filters'], (bool, np.bool_)):
        raise ValueError(f'use_radial_filters must be true or false, not {_quote(s["use_radial_filters"])}')
    _real(s['conv_clamp'], 'conv_clamp', 1e-6, 1e9, optional=True)
    _real(s['magnitude_ema_beta'], 'magnitude_ema_beta', 0.0, 1.0)
    # parameters and the largest activation map, from the plan (cheap: numbers only)
    plan = plan_synthesis(res, ch, **{**s, 'channel_base': base, 'channel_max': cmax})
    params = plan.input_channels ** 2 + (w + 1) * 4
    for lp in plan.layers:
        params += lp.out_channels * lp.in_channels * lp.conv_kernel ** 2 + (w + 1) * lp.in_channels
        if max(lp.in_size, lp.out_size) > res + 2 * L['margin']:
            raise ValueError(f'layer {lp.name} would be {lp.out_size} px; the settings are not a StyleGAN3')
    if params > L['parameters']:
        raise ValueError(f'the config asks for about {params / 1e6:,.0f} M parameters; no StyleGAN3 has over '
                         f'{L["parameters"] / 1e6:,.0f} M (a crafted or corrupt file?)')


class AliasFreeGenerator(nn.Module):
    """StyleGAN3 generator with NVIDIA's API: `mapping(z, c)`, `synthesis(ws)`, `forward(z, c)`.

    Keywords are the stylegan3 repository's (synthesis keywords flat); `init_kwargs` holds
    every one explicitly, with `architecture: 'stylegan3'`, so a saved config rebuilds it.
    `design_filters=False` leaves the filter buffers for a checkpoint to fill (loading)."""

    family = 'stylegan3'

    def __init__(self, z_dim: int = 512, c_dim: int = 0, w_dim: int = 512, img_resolution: int = 1024,
                 img_channels: int = 3, mapping_kwargs: Optional[Mapping[str, Any]] = None,
                 design_filters: bool = True, **synthesis_kwargs):
        super().__init__()
        synthesis_kwargs.pop('architecture', None)
        mapping = _resolve3('mapping', dict(mapping_kwargs or {}), MAPPING3_DEFAULTS)
        synthesis = _resolve3('synthesis', synthesis_kwargs, SYNTHESIS3_DEFAULTS)
        check_config3(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping, synthesis)
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.init_kwargs = dict(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim,
                                img_resolution=self.img_resolution, img_channels=self.img_channels,
                                mapping_kwargs=copy.deepcopy(mapping), architecture='stylegan3',
                                **{k: (bool(v) if isinstance(v, (bool, np.bool_)) else
                                       (None if v is None else float(v) if isinstance(v, float) else v))
                                   for k, v in synthesis.items()})
        self.synthesis = AliasFreeSynthesis(self.w_dim, self.img_resolution, self.img_channels,
                                            design_filters=design_filters, **synthesis)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                                      num_layers=int(mapping['num_layers']),
                                      lr_multiplier=float(mapping['lr_multiplier']),
                                      w_avg_beta=float(mapping['w_avg_beta']))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False, **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)

    @property
    def num_blocks(self) -> int:
        return self.synthesis.num_blocks

    def block_resolution(self, index: int) -> int:
        """The drag's feature block `index` (1-based: layer L{index-1}); the synthesis network's
        `features`, `finish` and `image_area` take it as is."""
        if not 1 <= index <= self.synthesis.num_layers:
            raise ValueError(f'this StyleGAN3 has feature blocks (layers) 1..{self.synthesis.num_layers}, not {index}')
        return index

    def extra_repr(self) -> str:
        return f'z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, img_resolution={self.img_resolution}'
