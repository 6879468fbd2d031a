"""Our StyleGAN2 generator: mapping and synthesis networks in plain PyTorch.

Parameter and buffer names are NVIDIA's (`mapping.fc0.weight`, `synthesis.b4.const`,
`synthesis.b8.conv0.affine.bias`, `synthesis.b8.conv0.noise_const`, ...), so a state
dict from stylegan2-ada-pytorch or the stylegan3 repository's StyleGAN2 loads one to one.
Constructor keywords of both NVIDIA generations are accepted: stylegan2-ada-pytorch's
`synthesis_kwargs` dict and the stylegan3 repository's flattened synthesis keywords.
"""

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from photodrag.errors import is_number

from . import ops

NOISE_MODES = ('random', 'const', 'none')

#----------------------------------------------------------------------------
# Layers


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalised learning rate and an optional fused activation."""

    def __init__(self,
        in_features:    int,                # Number of input features.
        out_features:   int,                # Number of output features.
        bias:           bool = True,        # Add a bias before the activation?
        activation:     str = 'linear',     # 'linear', 'lrelu', 'relu', ...
        lr_multiplier:  float = 1.0,        # Learning-rate multiplier (scales weight and bias).
        bias_init:      float = 0.0,        # Initial value of the bias.
    ):
        super().__init__()
        ops.check_activation(activation)
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == 'linear':
            return torch.nn.functional.linear(x, w, b)
        return ops.bias_act(torch.nn.functional.linear(x, w), b, act=self.activation, inplace=True)

    def extra_repr(self) -> str:
        return f'in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}'


class Conv2dLayer(nn.Module):
    """Plain convolution with equalised learning rate (the 'resnet' architecture's skip)."""

    def __init__(self,
        in_channels:        int,                    # Number of input channels.
        out_channels:       int,                    # Number of output channels.
        kernel_size:        int,                    # Width and height of the kernel.
        bias:               bool = True,            # Add a bias before the activation?
        activation:         str = 'linear',         # Activation function.
        up:                 int = 1,                # Upsampling factor.
        resample_filter:    Sequence[float] = (1, 3, 3, 1),
        conv_clamp:         Optional[float] = None, # Clamp the output to ±X, None = no clamp.
    ):
        super().__init__()
        ops.check_activation(activation)
        self.activation = activation
        self.up = up
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', ops.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = ops.activation_gain(activation)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = ops.conv2d_resample(x, w, self.resample_filter, up=self.up, padding=self.padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp, inplace=True)


class MappingNetwork(nn.Module):
    """z (and optional label c) -> w, broadcast to `num_ws` copies, with truncation."""

    def __init__(self,
        z_dim:          int,                # Input latent (Z) dimensionality, 0 = no latent.
        c_dim:          int,                # Conditioning label (C) dimensionality, 0 = no label.
        w_dim:          int,                # Intermediate latent (W) dimensionality.
        num_ws:         Optional[int],      # Number of w copies to output, None = no broadcast.
        num_layers:     int = 8,            # Number of mapping layers.
        embed_features: Optional[int] = None,   # Label embedding size, None = w_dim.
        layer_features: Optional[int] = None,   # Hidden layer size, None = w_dim.
        activation:     str = 'lrelu',      # Activation function.
        lr_multiplier:  float = 0.01,       # Learning-rate multiplier of the mapping layers.
        w_avg_beta:     Optional[float] = 0.995,    # Decay of the tracked average w, None = no w_avg.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f'fc{idx}', FullyConnectedLayer(features[idx], features[idx + 1],
                    activation=activation, lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor] = None,
                truncation_psi: float = 1, truncation_cutoff: Optional[int] = None,
                update_emas: bool = False, skip_w_avg_update: bool = True) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f'z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}')
            x = ops.normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f'this generator is conditional: c must be [N, {self.c_dim}]')
            y = ops.normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)
        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if not hasattr(self, 'w_avg'):
                raise ValueError('truncation needs w_avg, which this mapping network does not track')
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f'z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}'


class SynthesisLayer(nn.Module):
    """Modulated 3×3 convolution (optionally upsampling ×2) + noise + bias + activation."""

    def __init__(self,
        in_channels:        int,                    # Number of input channels.
        out_channels:       int,                    # Number of output channels.
        w_dim:              int,                    # W dimensionality.
        resolution:         int,                    # Output resolution of this layer.
        kernel_size:        int = 3,                # Convolution kernel size.
        up:                 int = 1,                # Upsampling factor.
        use_noise:          bool = True,            # Add per-pixel noise?
        activation:         str = 'lrelu',          # Activation function.
        resample_filter:    Sequence[float] = (1, 3, 3, 1),
        conv_clamp:         Optional[float] = None, # Clamp the output to ±X, None = no clamp.
        square:             bool = True,            # False: StyleGAN-Human's maps, half as wide as high.
    ):
        super().__init__()
        ops.check_activation(activation)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.width = resolution if square else resolution // 2
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', ops.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ops.activation_gain(activation)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer('noise_const', torch.randn([resolution, self.width]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = 'random',
                fused_modconv: Optional[bool] = None, gain: float = 1) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == 'random':
            noise = torch.randn([x.shape[0], 1, self.resolution, self.width], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == 'const':
            noise = self.noise_const * self.noise_strength
        if fused_modconv is None:
            fused_modconv = ops.prefer_fused_modconv(x, self.weight, self.up)
        # Modulated weights are computed in float32; shared (unfused) ones in the precision
        # the convolution will run in.
        device_type = x.device.type
        run_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype
        weight = self.prepared_weight(x, torch.float32 if fused_modconv else run_dtype)
        z, dcoefs = ops.modulated_conv2d_parts(x, weight, styles, up=self.up, padding=self.padding,
                                               resample_filter=self.resample_filter, fused=fused_modconv,
                                               weight_sq=self.derived('sq', lambda w: w.square().sum(dim=[2, 3])))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.modulated_tail(z, dcoefs, noise, self.bias, act=self.activation, gain=self.act_gain * gain,
                                  clamp=clamp)

    def derived(self, kind: str, make):
        """`make(self.weight)`, memoised until the weight changes (in inference only)."""
        w = self.weight
        if torch.is_grad_enabled() and w.requires_grad:
            return make(w)
        key = (w._version, w.data_ptr(), w.dtype, w.device)
        cache = self.__dict__.setdefault('_derived_cache', {})
        hit = cache.get(kind)
        if hit is None or hit[0] != key:
            hit = cache[kind] = (key, make(w.detach()))
        return hit[1]

    def prepared_weight(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The weight in `dtype` and in x's memory format, so no convolution re-lays it out.
        An upsampling layer runs a transposed convolution, which wants [in, out, k, k]
        channels-last; its weight is kept as a transposed view of exactly that."""
        if not ops.is_channels_last(x):
            return self.weight
        cl = torch.channels_last
        if self.up > 1:
            return self.derived(('clT', dtype),
                                lambda w: w.to(dtype).transpose(0, 1).contiguous(memory_format=cl).transpose(0, 1))
        return self.derived(('cl', dtype), lambda w: w.to(dtype).contiguous(memory_format=cl))

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, out_channels={self.out_channels}, '
                f'resolution={self.resolution}, up={self.up}')


class ToRGBLayer(nn.Module):
    """Modulated 1×1 convolution to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: Optional[float] = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: Optional[bool] = None) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused_modconv)
        return ops.bias_act(x, self.bias, clamp=self.conv_clamp, inplace=True)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: [upsampling conv,] conv, [ToRGB]."""

    def __init__(self,
        in_channels:        int,                    # Input channels, 0 = first block (learned constant).
        out_channels:       int,                    # Output channels.
        w_dim:              int,                    # W dimensionality.
        resolution:         int,                    # Resolution of this block.
        img_channels:       int,                    # Number of image channels.
        is_last:            bool,                   # Is this the last block?
        architecture:       str = 'skip',           # 'orig', 'skip' or 'resnet'.
        resample_filter:    Sequence[float] = (1, 3, 3, 1),
        conv_clamp:         Optional[float] = None, # Clamp conv outputs to ±X, None = no clamp.
        use_fp16:           bool = False,           # Run this block in fp16 (on CUDA only)?
        fp16_channels_last: bool = False,           # Channels-last memory format with fp16?
        square:             bool = True,            # False: maps half as wide as high (StyleGAN-Human).
        **layer_kwargs,                             # Keywords of SynthesisLayer.
    ):
        if architecture not in ('orig', 'skip', 'resnet'):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer('resample_filter', ops.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution if square else resolution // 2]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, square=square,
                                        **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, square=square, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == 'skip':
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == 'resnet':
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def compute_dtype(self, device: torch.device, force_fp32: bool) -> torch.dtype:
        # Half precision only where it is fast and tested: on CUDA (as the stylegan3 code does).
        return torch.float16 if self.use_fp16 and not force_fp32 and device.type == 'cuda' else torch.float32

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], ws: torch.Tensor,
                noise_mode: str = 'random', force_fp32: bool = False, fused_modconv: Optional[bool] = None,
                need_image: bool = True):
        """Returns (features, image so far); the image is None when `need_image` is False."""
        w_iter = iter(ws.unbind(dim=1))
        dtype = self.compute_dtype(ws.device, force_fp32)
        # oneDNN convolutions on the CPU are up to 4x faster channels-last (bf16 most of all);
        # on CUDA keep NVIDIA's choice (channels-last for fp16 blocks when asked).
        channels_last = ws.device.type == 'cpu' or (self.channels_last and dtype == torch.float16)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = x.to(memory_format=memory_format)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        else:
            # Under autocast the activations stay in its precision between blocks.
            keep = torch.is_autocast_enabled(x.device.type) and dtype == torch.float32
            x = x.to(dtype=x.dtype if keep else dtype, memory_format=memory_format)
            if self.architecture == 'resnet':
                y = self.skip(x, gain=math.sqrt(0.5))
                x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
                x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv, gain=math.sqrt(0.5))
                x = y.add_(x)
            else:
                x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
                x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        if not need_image:
            return x, None
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == 'skip':
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f'resolution={self.resolution}, architecture={self.architecture}'


#----------------------------------------------------------------------------
# Synthesis network


@dataclass
class SynthesisFeatures:
    """What `SynthesisNetwork.features` computed.

    features: block resolution -> that block's output activations [N, C, res, res] (float32
        unless the block ran in reduced precision).
    image: the RGB image [N, C, R, R] in [-1, 1], or None when it was not asked for or the
        network stopped early.
    """
    features: Dict[int, torch.Tensor]
    image: Optional[torch.Tensor]


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R]."""

    def __init__(self,
        w_dim:          int,            # W dimensionality.
        img_resolution: int,            # Output resolution (a power of two, 4..1024 and beyond).
        img_channels:   int,            # Number of image channels.
        channel_base:   int = 32768,    # Channels at resolution r: min(channel_base // r, channel_max).
        channel_max:    int = 512,      # Maximum number of channels.
        num_fp16_res:   int = 0,        # Run the N highest resolutions in fp16 (CUDA only).
        square:         bool = True,    # False: StyleGAN-Human's layout, R x R/2 (shown on a white R x R canvas)
        **block_kwargs,                 # Keywords of SynthesisBlock.
    ):
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f'img_resolution must be a power of two >= 4, got {img_resolution}')
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.square = bool(square)
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        if min(channels.values()) < 1:
            raise ValueError(f'channel_base {channel_base} leaves no channels at {img_resolution} px')
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim,
                                   resolution=res, img_channels=img_channels, is_last=(res == img_resolution),
                                   use_fp16=(res >= fp16_resolution), square=self.square, **block_kwargs)
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f'b{res}', block)

    def image_area(self, x: torch.Tensor, block: int) -> torch.Tensor:
        """Block `block`'s output laid over the image canvas: as it is; a non-square network's
        map (half as wide as high) in the middle of a square of zeros, as DragGAN pads
        StyleGAN-Human's features (StyleGAN3's layers cut their margins off instead)."""
        return x if self.square else _to_square(x, 0.0)

    def canvas(self, img: torch.Tensor) -> torch.Tensor:
        """The image as photodrag shows it: square; a non-square network's image (R x R/2) in the
        middle of a white R x R canvas, as DragGAN shows StyleGAN-Human's."""
        return img if self.square else _to_square(img, 1.0)

    def block_channels(self, resolution: int) -> int:
        """Number of feature channels that block `resolution` outputs."""
        return getattr(self, f'b{resolution}').conv1.out_channels

    def forward(self, ws: torch.Tensor, noise_mode: str = 'random', force_fp32: bool = False,
                fused_modconv: Optional[bool] = None, autocast: Optional[torch.dtype] = None,
                **_ignored) -> torch.Tensor:
        """The image for ws. `autocast` = torch.bfloat16 (CPU, CUDA) or torch.float16 (CUDA)
        runs the convolutions in that precision; the image is returned in float32."""
        return self.features(ws, noise_mode=noise_mode, force_fp32=force_fp32, fused_modconv=fused_modconv,
                             autocast=autocast, return_image=True, collect=()).image

    def features(self, ws: torch.Tensor, *, stop_after: Optional[int] = None, collect: Optional[Sequence[int]] = None,
                 return_image: bool = False, noise_mode: str = 'random', force_fp32: bool = False,
                 fused_modconv: Optional[bool] = None, autocast: Optional[torch.dtype] = None) -> SynthesisFeatures:
        """Run the blocks up to and including resolution `stop_after` (None = all) and return
        the output features of the blocks listed in `collect` (None = every block run);
        higher blocks are not computed. ToRGB layers run only when `return_image` is True;
        with `stop_after` the image is the one so far (the skip sum up to that block), which
        `finish` turns into the full image."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f'ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}')
        if noise_mode not in NOISE_MODES:
            raise ValueError(f'noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}')
        if stop_after is not None and stop_after not in self.block_resolutions:
            raise ValueError(f'stop_after must be one of the block resolutions {self.block_resolutions}, got {stop_after}')
        last = stop_after or self.img_resolution
        wanted = [r for r in self.block_resolutions if r <= last] if collect is None else list(collect)
        if any(r not in self.block_resolutions or r > last for r in wanted):
            raise ValueError(f'collect must list block resolutions up to {last}, got {list(collect)}')
        ws = ws.to(torch.float32)
        feats: Dict[int, torch.Tensor] = {}
        x = img = None
        w_idx = 0
        with _autocast_context(ws.device, autocast):
            for res in self.block_resolutions:
                block = getattr(self, f'b{res}')
                block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
                w_idx += block.num_conv
                x, img = block(x, img, block_ws, noise_mode=noise_mode, force_fp32=force_fp32,
                               fused_modconv=fused_modconv, need_image=return_image)
                if res in wanted:
                    feats[res] = x
                if res == stop_after:
                    break
        if img is not None:
            img = img.float()
            if stop_after is None or stop_after == self.img_resolution:
                img = self.canvas(img)
        return SynthesisFeatures(features=feats, image=img)

    def finish(self, ws: torch.Tensor, x: torch.Tensor, img: Optional[torch.Tensor], after: int, *,
               noise_mode: str = 'random', force_fp32: bool = False, fused_modconv: Optional[bool] = None,
               autocast: Optional[torch.dtype] = None) -> torch.Tensor:
        """The full image [N, C, R, R] from the output `x` of block `after` and the image so
        far `img` (`features(ws, stop_after=after, return_image=True)`): only the blocks above
        `after` run, so a caller that already ran the lower ones pays for the rest alone."""
        if after not in self.block_resolutions:
            raise ValueError(f'after must be one of the block resolutions {self.block_resolutions}, got {after}')
        ws = ws.to(torch.float32)
        w_idx = 0
        with _autocast_context(ws.device, autocast):
            for res in self.block_resolutions:
                block = getattr(self, f'b{res}')
                if res > after:
                    x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb),
                                   noise_mode=noise_mode, force_fp32=force_fp32, fused_modconv=fused_modconv)
                w_idx += block.num_conv
        return self.canvas(img.float())

    def extra_repr(self) -> str:
        return f'w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}'


def _to_square(x: torch.Tensor, value: float) -> torch.Tensor:
    """x [N, C, H, W<H] centred in an [N, C, H, H] canvas filled with `value`."""
    pad = x.shape[2] - x.shape[3]
    return F.pad(x, [pad // 2, pad - pad // 2], value=value) if pad > 0 else x


def _autocast_context(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f'autocast must be torch.bfloat16 or torch.float16, got {dtype}')
    if dtype == torch.float16 and device.type != 'cuda':
        raise ValueError('fp16 autocast is for CUDA; on the CPU use torch.bfloat16')
    return torch.autocast(device_type=device.type, dtype=dtype)


#----------------------------------------------------------------------------
# Generator

# Keywords each sub-network accepts, with our defaults. The defaults are
# stylegan2-ada-pytorch's; the loaders fill in the stylegan3 repository's where they differ.
MAPPING_DEFAULTS: Dict[str, Any] = dict(num_layers=8, embed_features=None, layer_features=None,
                                        activation='lrelu', lr_multiplier=0.01, w_avg_beta=0.995)
SYNTHESIS_DEFAULTS: Dict[str, Any] = dict(channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None,
                                          architecture='skip', resample_filter=[1, 3, 3, 1], use_noise=True,
                                          activation='lrelu', kernel_size=3, fp16_channels_last=False)
# Keywords recorded only when they differ from the default, so the configs (and the hashes of
# inversions, caches and encoders made from them) of generators that never used them stay
# what they were: square=False is StyleGAN-Human's layout.
OPTIONAL_SYNTHESIS: Dict[str, Any] = dict(square=True)
# Keywords of NVIDIA's code that only matter for training; accepted and dropped.
_TRAINING_ONLY = {'mapping': {'freeze_layers', 'freeze_embed'},
                  'synthesis': {'fused_modconv_default'}}


# What any real StyleGAN2 fits in (FFHQ-1024: 512-d latents, 18 ws, 30 M parameters). A
# checkpoint's config is untrusted text: it is checked against these before anything is
# allocated, so a 300-byte file cannot ask for gigabytes.
LIMITS = dict(dim=4096, c_dim=100_000, resolution=4096, channels=4, layers=32, channel_base=1 << 24,
              channel_max=4096, parameters=400_000_000, filter_taps=16)


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if not is_number(value, whole=True):
        raise ValueError(f'{name} must be a whole number, not {type(value).__name__} {_quote(value)}')
    if not low <= value <= high:
        raise ValueError(f'{name} = {_quote(value)} is outside {low}..{high}')
    return int(value)


def _real(value: Any, name: str, low: float, high: float, optional: bool = False) -> Optional[float]:
    if value is None and optional:
        return None
    if not (is_number(value) or isinstance(value, float)):
        raise ValueError(f'{name} must be a number, not {type(value).__name__} {_quote(value)}')
    if not is_number(value, low, high):
        raise ValueError(f'{name} = {_quote(value)} is outside {low:g}..{high:g}')
    return float(value)


def _quote(value: Any, limit: int = 40) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else f'<{type(value).__name__}>'
    return text if len(text) <= limit else text[:limit - 3] + '...'


def check_config(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping: Mapping[str, Any],
                 synthesis: Mapping[str, Any]) -> None:
    """Raise ValueError unless these keywords describe a StyleGAN2 generator of sane size
    (types, ranges, and the parameter count estimated before any weight exists)."""
    L = LIMITS
    z = _whole(z_dim, 'z_dim', 1, L['dim'])
    c = _whole(c_dim, 'c_dim', 0, L['c_dim'])
    w = _whole(w_dim, 'w_dim', 1, L['dim'])
    res = _whole(img_resolution, 'img_resolution', 4, L['resolution'])
    if res & (res - 1):
        raise ValueError(f'img_resolution = {res} is not a power of two')
    ch = _whole(img_channels, 'img_channels', 1, L['channels'])
    layers = _whole(mapping.get('num_layers', 8), 'mapping num_layers', 1, L['layers'])
    features = [_whole(mapping[k], f'mapping {k}', 1, L['dim']) if mapping.get(k) is not None else w
                for k in ('embed_features', 'layer_features')]
    for kind, settings in (('mapping', mapping), ('synthesis', synthesis)):
        if 'activation' in settings and not isinstance(settings['activation'], str):
            raise ValueError(f'{kind} activation must be a name, not {_quote(settings["activation"])}')
    _real(mapping.get('lr_multiplier', 0.01), 'mapping lr_multiplier', 1e-6, 1e3)
    _real(mapping.get('w_avg_beta', 0.995), 'mapping w_avg_beta', 0.0, 1.0)
    base = _whole(synthesis.get('channel_base', 32768), 'channel_base', 1, L['channel_base'])
    cmax = _whole(synthesis.get('channel_max', 512), 'channel_max', 1, L['channel_max'])
    _whole(synthesis.get('num_fp16_res', 0), 'num_fp16_res', 0, 16)
    _real(synthesis.get('conv_clamp'), 'conv_clamp', 1e-6, 1e9, optional=True)
    k = _whole(synthesis.get('kernel_size', 3), 'kernel_size', 1, 7)
    if synthesis.get('architecture', 'skip') not in ('orig', 'skip', 'resnet'):
        raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', not {_quote(synthesis['architecture'])}")
    for key in ('use_noise', 'fp16_channels_last', 'square'):
        if not isinstance(synthesis.get(key, False), (bool, np.bool_)):
            raise ValueError(f'{key} must be true or false, not {_quote(synthesis[key])}')
    taps = synthesis.get('resample_filter', [1, 3, 3, 1])
    if taps is not None:
        flat = taps
        if isinstance(taps, (list, tuple)) and taps and all(isinstance(row, (list, tuple)) for row in taps):
            flat = [v for row in taps for v in row]         # a 2-D filter, as NVIDIA's code allows
        if not (isinstance(flat, (list, tuple)) and 1 <= len(flat) <= L['filter_taps'] ** 2):
            raise ValueError(f'resample_filter must be a short list of numbers, not {_quote(taps)}')
        for v in flat:
            _real(v, 'a resample_filter tap', -1e6, 1e6)
    # Parameters, counted the way the networks below allocate them (an upper bound is enough).
    n = c * features[0] + (z + features[0]) * features[1] + (layers - 1) * features[1] * max(features[1], w) \
        + layers * w
    r, prev = 4, None
    while r <= res:
        out = min(base // r, cmax) if base // r else 1
        if prev is None:
            n += out * 16
        else:
            n += prev * out * k * k + w * prev + r * r
            n += (prev * out if synthesis.get('architecture', 'skip') == 'resnet' else 0)
        n += out * out * k * k + w * out + r * r + ch * out + w * out
        prev, r = out, r * 2
    if n > L['parameters']:
        raise ValueError(f'the config asks for about {n / 1e6:,.0f} M parameters; no StyleGAN2 has over '
                         f'{L["parameters"] / 1e6:,.0f} M (a crafted or corrupt file?)')


def _resolve_kwargs(kind: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> Dict[str, Any]:
    if not isinstance(given, Mapping):
        raise ValueError(f'{kind} keywords must be a mapping, not {type(given).__name__}')
    optional = OPTIONAL_SYNTHESIS if kind == 'synthesis' else {}
    unknown = sorted(str(k)[:40] for k in set(given) - set(defaults) - set(optional) - _TRAINING_ONLY[kind])
    if unknown:
        raise ValueError(f'unsupported {kind} keyword(s) {unknown[:8]}; supported: {sorted({**defaults, **optional})}')
    out = dict(defaults)
    out.update({k: v for k, v in given.items() if k in defaults})
    out.update({k: v for k, v in given.items() if k in optional and v != optional[k]})
    if out.get('resample_filter') is not None:
        out['resample_filter'] = [float(v) for v in torch.as_tensor(out['resample_filter']).flatten().tolist()]
    return out


class Generator(nn.Module):
    """StyleGAN2 generator with NVIDIA's API: `mapping(z, c)`, `synthesis(ws)`, `forward(z, c)`.

    Attributes z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels; `init_kwargs`
    holds every constructor keyword explicitly (JSON-serialisable) so a saved config
    rebuilds the same network.
    """

    def __init__(self,
        z_dim:              int = 512,      # Input latent (Z) dimensionality.
        c_dim:              int = 0,        # Conditioning label dimensionality, 0 = unconditional.
        w_dim:              int = 512,      # Intermediate latent (W) dimensionality.
        img_resolution:     int = 256,      # Output resolution.
        img_channels:       int = 3,        # Number of image channels.
        mapping_kwargs:     Optional[Mapping[str, Any]] = None,     # Keywords of MappingNetwork.
        synthesis_kwargs:   Optional[Mapping[str, Any]] = None,     # Keywords of SynthesisNetwork (ada style).
        **flat_synthesis_kwargs,            # The same keywords, flattened (stylegan3-repository style).
    ):
        super().__init__()
        both = set(synthesis_kwargs or {}) & set(flat_synthesis_kwargs)
        if both:
            raise ValueError(f'synthesis keyword(s) {sorted(both)} given twice')
        for kind, given in (('mapping', mapping_kwargs), ('synthesis', synthesis_kwargs)):
            if given is not None and not isinstance(given, Mapping):
                raise ValueError(f'{kind}_kwargs must be a mapping, not {type(given).__name__}')
        raw_synthesis = {**dict(synthesis_kwargs or {}), **flat_synthesis_kwargs}
        check_config(z_dim, c_dim, w_dim, img_resolution, img_channels, dict(mapping_kwargs or {}), raw_synthesis)
        mapping = _resolve_kwargs('mapping', dict(mapping_kwargs or {}), MAPPING_DEFAULTS)
        synthesis = _resolve_kwargs('synthesis', raw_synthesis, SYNTHESIS_DEFAULTS)
        self.z_dim = int(z_dim)
        self.c_dim = int(c_dim)
        self.w_dim = int(w_dim)
        self.img_resolution = int(img_resolution)
        self.img_channels = int(img_channels)
        self.init_kwargs = dict(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim,
                                img_resolution=self.img_resolution, img_channels=self.img_channels,
                                mapping_kwargs=copy.deepcopy(mapping), synthesis_kwargs=copy.deepcopy(synthesis))
        self.synthesis = SynthesisNetwork(w_dim=self.w_dim, img_resolution=self.img_resolution,
                                          img_channels=self.img_channels, **synthesis)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim,
                                      num_ws=self.num_ws, **mapping)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False, **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, **synthesis_kwargs)

    def block_resolution(self, index: int) -> int:
        """Resolution of the `index`-th synthesis block, counted from 1 (block 1 is 4×4)."""
        if not 1 <= index <= len(self.synthesis.block_resolutions):
            raise ValueError(f'this {self.img_resolution}px generator has blocks 1..'
                             f'{len(self.synthesis.block_resolutions)}, not {index}')
        return self.synthesis.block_resolutions[index - 1]

    def extra_repr(self) -> str:
        return f'z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, img_resolution={self.img_resolution}'


def w_from_seed(G: Generator, seed: int, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None,
                c: Optional[torch.Tensor] = None, device: Optional[torch.device] = None) -> torch.Tensor:
    """ws [1, num_ws, w_dim] for a seed, with z drawn as NVIDIA's scripts draw it
    (numpy RandomState(seed).randn), so seeds name the same images as theirs."""
    import numpy as np
    device = device if device is not None else next(G.parameters()).device
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).to(device=device, dtype=torch.float32)
    if G.c_dim and c is None:
        c = torch.zeros([1, G.c_dim], device=device)
    with torch.no_grad():
        return G.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


def grow(G: Generator, resolution: int, seed: int = 0) -> Generator:
    """`G` with synthesis blocks added up to `resolution` (progressive growing).

    The new blocks start with ToRGB weights and biases at zero, so until something trains
    them (pivotal tuning does: it tunes every weight) the grown generator draws exactly G's
    images, upsampled 2x per new block by the synthesis network's own resample filter. The
    new blocks' other weights and constant noise come from `seed`, so growing is
    deterministic. Needs the 'skip' architecture, where every block adds its ToRGB output to
    the upsampled image. Attributes such as `crop_recipe` carry over."""
    synthesis = G.init_kwargs['synthesis_kwargs']
    if synthesis.get('architecture', 'skip') != 'skip':
        raise ValueError(f"only a 'skip' generator can be grown, not {synthesis['architecture']!r}")
    if resolution & (resolution - 1) or resolution <= G.img_resolution:
        raise ValueError(f'can grow a {G.img_resolution} px generator to a larger power of two, not {resolution}')
    kwargs = copy.deepcopy(G.init_kwargs)
    kwargs['img_resolution'] = int(resolution)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        big = Generator(**kwargs)
    new = [res for res in big.synthesis.block_resolutions if res > G.img_resolution]
    missing, unexpected = big.load_state_dict(G.state_dict(), strict=False)
    grown = tuple(f'synthesis.b{res}.' for res in new)
    if unexpected or any(not name.startswith(grown) for name in missing):
        raise ValueError(f'growing left weights unmatched: {unexpected or missing}')
    with torch.no_grad():
        for res in new:
            torgb = getattr(big.synthesis, f'b{res}').torgb
            torgb.weight.zero_()
            torgb.bias.zero_()
    for name, value in vars(G).items():
        if not name.startswith('_') and name not in vars(big):
            setattr(big, name, value)
    param = next(G.parameters())
    return big.to(param.device).train(G.training).requires_grad_(param.requires_grad)
