"""The arithmetic of the StyleGAN2 generator, in plain PyTorch (CPU, CUDA, MPS).

Every op reproduces NVIDIA's reference path: the same padding, filter orientation, gains
and order of bias / noise / activation / clamp, so that weights trained with NVIDIA's code
give the same image. `tests/stylegan_reference.py` restates that path op by op, literally and
slowly; the tests hold these faster versions to it.

Conventions: activations NCHW; a resampling filter is a float32 [fh, fw] tensor made by
`setup_filter`; padding lists are [x_before, x_after, y_before, y_after].
"""

import contextlib
import contextvars
import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)

# name -> (function of (x, alpha), default alpha, default gain); NVIDIA's bias_act table.
_ACTIVATIONS: Dict[str, Tuple[Callable, float, float]] = {
    'linear':   (lambda x, a: x,                        0.0, 1.0),
    'relu':     (lambda x, a: F.relu(x),                0.0, SQRT2),
    'lrelu':    (lambda x, a: F.leaky_relu(x, a),       0.2, SQRT2),
    'tanh':     (lambda x, a: torch.tanh(x),            0.0, 1.0),
    'sigmoid':  (lambda x, a: torch.sigmoid(x),         0.0, 1.0),
    'elu':      (lambda x, a: F.elu(x),                 0.0, 1.0),
    'selu':     (lambda x, a: F.selu(x),                0.0, 1.0),
    'softplus': (lambda x, a: F.softplus(x),            0.0, 1.0),
    'swish':    (lambda x, a: torch.sigmoid(x) * x,     0.0, SQRT2),
}


def check_activation(name: str) -> None:
    if name not in _ACTIVATIONS:
        raise ValueError(f'unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}')


def activation_gain(name: str) -> float:
    """The gain NVIDIA applies after activation `name` (sqrt(2) for lrelu)."""
    check_activation(name)
    return _ACTIVATIONS[name][2]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (the mapping network's input norm)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor] = None, act: str = 'linear',
             gain: Optional[float] = None, clamp: Optional[float] = None, inplace: bool = False) -> torch.Tensor:
    """x + b (broadcast over dim 1), then activation, then *gain, then clamp to ±clamp.

    `inplace=True` lets it overwrite x when autograd does not need the intermediate values
    (inference), which saves several passes over large activation maps; pass it only for
    a tensor nobody else holds.
    """
    fn, alpha, default_gain = _ACTIVATIONS[act]
    gain = default_gain if gain is None else float(gain)
    if b is not None:
        b = b.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    if not inplace or (torch.is_grad_enabled() and x.requires_grad):
        if b is not None:
            x = x + b
        x = fn(x, alpha)
        if gain != 1:
            x = x * gain
        if clamp is not None and clamp >= 0:
            x = x.clamp(-clamp, clamp)
        return x
    if b is not None:
        x = x.add_(b)
    if act == 'lrelu':
        x = F.leaky_relu_(x, alpha)
    elif act == 'relu':
        x = F.relu_(x)
    elif act != 'linear':
        x = fn(x, alpha)
    if gain != 1:
        x = x.mul_(gain)
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp)
    return x


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> torch.Tensor:
    """A normalised 2-D FIR filter [n, n] from 1-D taps (NVIDIA's `resample_filter` buffer)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim == 1:
        f = torch.outer(f, f)
    if f.ndim != 2 or f.numel() == 0:
        raise ValueError(f'resample filter must be 1-D or 2-D taps, got shape {tuple(f.shape)}')
    return f / f.sum()


class _ConstWeightConv(torch.autograd.Function):
    """conv2d / conv_transpose2d whose weight needs no gradient: autograd keeps only the
    weight, not the input activations (which a weight gradient would need)."""

    @staticmethod
    def forward(ctx, x, w, transpose, stride, padding, groups):
        op = F.conv_transpose2d if transpose else F.conv2d
        y = op(x, w, stride=stride, padding=padding, groups=groups)
        ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
        ctx.args = (transpose, stride, padding, groups)
        ctx.save_for_backward(w.to(y.dtype))     # the precision autocast actually ran in
        return y

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        transpose, stride, padding, groups = ctx.args
        grad = grad.to(w.dtype)
        # Each is the other's adjoint. (torch.nn.grad.conv2d_input would first copy a
        # channels-last weight into NCHW on every call.)
        if transpose:
            gx = F.conv2d(grad, w, stride=stride, padding=padding, groups=groups)
        else:
            st, pd = _pair(stride), _pair(padding)
            extra = [ctx.x_shape[2 + i] - ((grad.shape[2 + i] - 1) * st[i] - 2 * pd[i] + w.shape[2 + i])
                     for i in range(2)]
            gx = F.conv_transpose2d(grad, w, stride=st, padding=pd, output_padding=extra, groups=groups)
        return gx.to(ctx.x_dtype), None, None, None, None, None


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(a) for a in v)


_LEAN = contextvars.ContextVar('photodrag_lean_autograd', default=True)


@contextlib.contextmanager
def lean_autograd(enabled: bool = True):
    """Turn the memory-lean autograd functions on or off (off = plain PyTorch ops, for
    checking that both give the same gradients)."""
    token = _LEAN.set(enabled)
    try:
        yield
    finally:
        _LEAN.reset(token)


def _conv(x: torch.Tensor, w: torch.Tensor, *, transpose: bool = False, stride=1, padding=0, groups: int = 1):
    if _LEAN.get() and torch.is_grad_enabled() and x.requires_grad and not w.requires_grad:
        return _ConstWeightConv.apply(x, w, transpose, stride, padding, groups)
    op = F.conv_transpose2d if transpose else F.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether a 4-D tensor is laid out channels-last (and not also plain contiguous)."""
    return (x.ndim == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous())


def _like(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # oneDNN is fastest when the weights share the activations' memory format.
    return w.contiguous(memory_format=torch.channels_last) if is_channels_last(x) else w


def fir_filter2d(x: torch.Tensor, f: torch.Tensor, pad: Sequence[int], gain: float = 1.0) -> torch.Tensor:
    """Pad (negative = crop), then convolve every channel with the 2-D filter `f` times `gain`.

    This is upfirdn2d without up- or downsampling: true convolution, as NVIDIA's default
    (flip_filter=False) does. Output size: in + pad_before + pad_after - taps + 1.
    """
    px0, px1, py0, py1 = (int(p) for p in pad)
    channels = x.shape[1]
    kernel = (f.flip([0, 1]) * gain).to(device=x.device, dtype=x.dtype)
    kernel = _like(kernel[None, None].repeat(channels, 1, 1, 1), x)
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, kernel, padding=(py0, px0), groups=channels)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    return _conv(x, kernel, groups=channels)


def _insert_zeros(x: torch.Tensor, up: int) -> torch.Tensor:
    """Insert up-1 zeros after every pixel along both axes."""
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1])
    return x.reshape(n, c, h * up, w * up)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, gain: float = 1.0) -> torch.Tensor:
    """Upsample by `up`: insert zeros after each pixel, then FIR-filter (output = up × input).

    The filter gain is up² so that a constant image stays constant (NVIDIA's upsample2d).
    """
    fh, fw = f.shape
    pad = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
    return fir_filter2d(_insert_zeros(x, up), f, pad, gain=gain * up * up)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor] = None, up: int = 1,
                    padding: int = 0, groups: int = 1) -> torch.Tensor:
    """2-D correlation with `w`, optionally upsampled ×`up` (the generator never downsamples).

    Upsampling is a strided transposed convolution followed by the FIR filter `f`, with
    `padding` counted on the upsampled image, exactly as NVIDIA's `conv2d_resample` places
    it; a 1×1 kernel convolves first and upsamples after.
    """
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1:
        return _conv(x, _like(w, x), padding=padding, groups=groups)
    if f is None:
        raise ValueError('upsampling needs a resample filter')
    fh, fw = f.shape
    px0, px1 = padding + (fw + up - 1) // 2, padding + (fw - up) // 2
    py0, py1 = padding + (fh + up - 1) // 2, padding + (fh - up) // 2
    if kh == 1 and kw == 1:
        x = _conv(x, _like(w, x), groups=groups)
        return fir_filter2d(_insert_zeros(x, up), f, [px0, px1, py0, py1], gain=up * up)
    # Transposed convolution wants [in, out/groups, kh, kw].
    if groups == 1:
        wt = w.transpose(0, 1)
    else:
        wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)
        wt = wt.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw)
    wt = _like(wt, x)
    px0, px1 = px0 - (kw - 1), px1 - (kw - up)
    py0, py1 = py0 - (kh - 1), py1 - (kh - up)
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    x = _conv(x, wt, transpose=True, stride=up, padding=[pyt, pxt], groups=groups)
    return fir_filter2d(x, f, [px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)


def prefer_fused_modconv(x: torch.Tensor, weight: torch.Tensor, up: int = 1) -> bool:
    """Whether modulating the weights (fused) is cheaper than scaling the activations.

    Fused modulation costs a pass over the [out, in, k, k] weights per sample; the other
    way costs two passes over the activations. For one sample, pick the smaller; for a
    batch, scaling activations lets all samples share one convolution.
    """
    if x.shape[0] != 1:
        return False
    out_pixels = x.shape[2] * x.shape[3] * up * up
    return out_pixels * (x.shape[1] + weight.shape[0]) >= weight.numel()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     noise: Optional[torch.Tensor] = None, up: int = 1, padding: int = 0,
                     resample_filter: Optional[torch.Tensor] = None, demodulate: bool = True,
                     fused: Optional[bool] = None, weight_sq: Optional[torch.Tensor] = None) -> torch.Tensor:
    """StyleGAN2's modulated convolution: weight·style, demodulated, plus optional noise.

    x [N, I, H, W], weight [O, I, k, k], styles [N, I]. `fused` chooses between modulating
    the weights (one grouped convolution) and scaling the activations before and after a
    shared convolution; both are the same function, the latter needs no weight gradient
    (cheap backward when only the latent is optimised). None picks the faster one.
    `weight_sq` may pass in weight.square().sum([2, 3]) when the caller has it cached.
    """
    z, dcoefs = modulated_conv2d_parts(x, weight, styles, up=up, padding=padding, resample_filter=resample_filter,
                                       demodulate=demodulate, fused=fused, weight_sq=weight_sq)
    if dcoefs is not None:
        dc = dcoefs.to(z.dtype)
        return torch.addcmul(noise.to(z.dtype), z, dc) if noise is not None else z * dc
    return z.add_(noise.to(z.dtype)) if noise is not None else z


def modulated_conv2d_parts(x, weight, styles, up=1, padding=0, resample_filter=None, demodulate=True,
                           fused=None, weight_sq=None):
    """(z, dcoefs): the modulated convolution before demodulation scaling and noise.

    Fused: z is already demodulated and dcoefs is None. Unfused: z = conv(x·s) and the
    caller multiplies by dcoefs [N, O, 1, 1].
    """
    batch, in_channels = x.shape[0], x.shape[1]
    out_channels, _, kh, kw = weight.shape
    if weight.shape[1] != in_channels or styles.shape != (batch, in_channels):
        raise ValueError(f'modulated_conv2d: x {tuple(x.shape)}, weight {tuple(weight.shape)} and '
                         f'styles {tuple(styles.shape)} do not agree')

    if x.dtype == torch.float16 and demodulate:
        # NVIDIA's pre-normalisation against fp16 overflow; demodulation cancels the scale.
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    dcoefs = None
    if demodulate:
        # sum over (i, ky, kx) of (W[o,i]·s[n,i])², without forming the modulated weights.
        if weight_sq is None or x.dtype == torch.float16:
            weight_sq = weight.square().sum(dim=[2, 3])
        dcoefs = (styles.square() @ weight_sq.t() + 1e-8).rsqrt()  # [N, O]
    if fused is None:
        fused = prefer_fused_modconv(x, weight, up)

    if not fused:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        z = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding)
        return z, None if dcoefs is None else dcoefs.reshape(batch, -1, 1, 1)

    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
    if dcoefs is not None:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    w = w.reshape(batch * out_channels, in_channels, kh, kw)
    if batch == 1:
        # Reshaping would give the size-1 batch dimension an odd stride, which makes
        # oneDNN copy the whole activation map into a fresh layout; there is nothing to fold.
        return conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding), None
    x = x.reshape(1, batch * in_channels, *x.shape[2:])
    z = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=batch)
    return z.reshape(batch, out_channels, *z.shape[2:]), None


_LEAN_ACTIVATIONS = {'linear': 1.0, 'lrelu': 0.2, 'relu': 0.0}    # slope for negative inputs


class _ModulatedTail(torch.autograd.Function):
    """y = clamp(act(z·dc + noise + b)·gain), keeping only y for the backward pass.

    For linear, ReLU and leaky-ReLU activations the pre-activation can be recovered from y
    wherever the gradient is not zero, and from it z; so one activation map per layer is
    kept instead of four. Gradients are exact (up to rounding).
    """

    @staticmethod
    def forward(ctx, z, dc, noise, b, slope, gain, clamp):
        y = z * dc.to(z.dtype) if dc is not None else z.clone()
        if noise is not None:
            y.add_(noise.to(z.dtype))
        y.add_(b.to(z.dtype).reshape(1, -1, 1, 1))
        if slope != 1:
            y = F.leaky_relu_(y, slope) if slope > 0 else F.relu_(y)
        if gain != 1:
            y.mul_(gain)
        if clamp is not None:
            y.clamp_(-clamp, clamp)
        ctx.meta = (slope, gain, clamp, z.dtype, None if dc is None else dc.dtype,
                    None if noise is None else (noise.dtype, noise.shape), b.dtype)
        ctx.save_for_backward(y, dc, noise, b)
        return y

    @staticmethod
    def backward(ctx, gy):
        y, dc, noise, b = ctx.saved_tensors
        slope, gain, clamp, z_dtype, dc_dtype, noise_meta, b_dtype = ctx.meta
        gy = gy.to(y.dtype)
        # ga = d loss / d pre-activation, without the gain factor (applied to the small tensors)
        if slope == 1:
            ga = gy
        elif slope > 0:
            ga = torch.ops.aten.leaky_relu_backward(gy, y, slope, True)
        else:
            ga = torch.ops.aten.threshold_backward(gy, y, 0)
        gy_kept = gy
        if clamp is not None:
            kept = y.abs() < clamp
            ga, gy_kept = ga * kept, gy * kept
        need_z, need_dc, need_noise, need_b = ctx.needs_input_grad[:4]
        gz = gdc = gnoise = gb = None
        if need_z:
            gz = ga * (gain * dc).to(ga.dtype) if dc is not None else ga * gain
            gz = gz.to(z_dtype)
        # Reductions run in the maps' own precision (PyTorch accumulates reduced-precision
        # sums in float32) and only their small results are converted.
        if need_b or (need_dc and dc is not None):
            ga_sum = ga.sum(dim=[2, 3]).float() * gain                              # [N, O]
        if need_dc and dc is not None:
            # sum over pixels of ga·z with z = (a - b - noise) / dc and a recovered from y:
            # ga·a = gy·y where the gradient flows, so no pre-activation map is needed.
            total = (gy_kept * y).sum(dim=[2, 3]).float() - ga_sum * b.float()[None]
            if noise is not None:
                n = noise.to(ga.dtype)
                if n.ndim == 4 and n.shape[0] > 1:
                    total = total - gain * (ga * n).sum(dim=[2, 3]).float()
                else:
                    total = total - gain * torch.einsum('nchw,hw->nc', ga, n.reshape(n.shape[-2:])).float()
            gdc = (total[:, :, None, None] / dc.float()).to(dc_dtype)
        if need_noise and noise is not None:
            gnoise = (ga.sum(dim=1, keepdim=True).float() * gain).sum_to_size(noise_meta[1]).to(noise_meta[0])
        if need_b:
            gb = ga_sum.sum(dim=0).to(b_dtype)
        return gz, gdc, gnoise, gb, None, None, None


def modulated_tail(z: torch.Tensor, dcoefs: Optional[torch.Tensor], noise: Optional[torch.Tensor],
                   b: torch.Tensor, act: str = 'lrelu', gain: Optional[float] = None,
                   clamp: Optional[float] = None) -> torch.Tensor:
    """What follows the convolution in a synthesis layer: ·dcoefs, +noise, +bias, activation,
    ·gain, clamp. Under autograd this keeps a quarter of the activations the plain ops would.
    z is consumed: in inference it is overwritten with the result."""
    fn, alpha, default_gain = _ACTIVATIONS[act]
    gain = default_gain if gain is None else float(gain)
    if _LEAN.get() and torch.is_grad_enabled() and act in _LEAN_ACTIVATIONS:
        inputs = (z, dcoefs, noise, b)
        if any(t is not None and t.requires_grad for t in inputs):
            return _ModulatedTail.apply(z, dcoefs, noise, b, _LEAN_ACTIVATIONS[act], gain,
                                        None if clamp is None or clamp < 0 else float(clamp))
    if dcoefs is not None:
        dc = dcoefs.to(z.dtype)
        z = torch.addcmul(noise.to(z.dtype), z, dc) if noise is not None else z * dc
    elif noise is not None:
        z = z + noise.to(z.dtype) if torch.is_grad_enabled() and z.requires_grad else z.add_(noise.to(z.dtype))
    return bias_act(z, b, act=act, gain=gain, clamp=clamp, inplace=True)
