"""invert(): W projection + pivotal tuning (PTI, Roich et al. 2021), for any generator.

    inv = invert(G, crop_uint8, InversionConfig.preset('balanced'), device='cuda')
    G_tuned = inv.generator(G)                          # G itself is never changed
    image = G_tuned.synthesis(inv.ws.to(device), noise_mode='const')

Stage A optimises one w (or one per layer, 'w+') and the per-layer noise maps of a private
copy of G against VGG-LPIPS + noise regularisation; stage B freezes that pivot and tunes
every weight of the copy with L2 + LPIPS (PTI's AlexNet by default, VGG in the presets) until
LPIPS reaches `stop_lpips` (docs/algorithms.md §3).
Works for any num_ws / resolution / device: nothing here assumes 18 layers or 1024 px.
"""

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from photodrag.errors import BadCheckpointError, InvalidImageError, InvalidSettingsError
from photodrag.io import one_at_a_time

from .config import InversionConfig
from .lpips import load_lpips
from .saved import (Inversion, StageMetrics, cache_key, cached_path, generator_hash, image_hash, pack_delta,
                    unpack_delta)

# callback(stage, step, total, metrics): stage 'projection' or 'tuning'; step counts from 1.
Callback = Callable[[str, int, int, Dict[str, float]], None]

_AUTOCAST = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def prepare_target(image, resolution: int, device='cpu') -> torch.Tensor:
    """A uint8 [H, W, 3] array (or PIL image) or a float [1, 3, H, W] tensor in [-1, 1]
    -> float32 [1, 3, R, R] on `device`; raises InvalidImageError saying what is wrong.
    Float values outside [-1, 1] (a generator's own output overshoots) are kept, not clipped."""
    if isinstance(image, torch.Tensor):
        if not image.is_floating_point():
            raise InvalidImageError(f'an image tensor must be float in [-1, 1], got {image.dtype}; pass uint8 '
                                    'pixels as a [H, W, 3] numpy array')
        if image.ndim != 4 or image.shape[0] != 1:
            raise InvalidImageError(f'an image tensor must be [1, 3, H, W], got {tuple(image.shape)}')
        t = image.detach().to(device=device, dtype=torch.float32)
        channels, h, w = t.shape[1:]
    else:
        a = np.asarray(image)
        if a.dtype != np.uint8:
            raise InvalidImageError(f'an image array must be uint8 [H, W, 3], got {a.dtype}; float images go in '
                                    'as a [1, 3, H, W] tensor in [-1, 1]')
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise InvalidImageError(f'an image array must be [H, W, 3], got shape {a.shape}')
        h, w, channels = a.shape
        t = None
    if channels != 3:
        raise InvalidImageError(f'the image has {channels} channel(s); inversion needs RGB (3 channels) — convert '
                                'grayscale or RGBA images to RGB first')
    if (h, w) != (resolution, resolution):
        raise InvalidImageError(f'the image is {w}x{h}; this generator draws {resolution}x{resolution} images, so '
                                'align/crop it to that size first (e.g. `photodrag align`)')
    if t is None:
        t = torch.tensor(a, device=device).permute(2, 0, 1)[None].float() / 127.5 - 1
    if not bool(torch.isfinite(t).all()):
        raise InvalidImageError('the image contains NaN or infinite values')
    lo, hi = float(t.min()), float(t.max())
    if lo >= 0 and hi > 1.5:
        raise InvalidImageError(f'image values span [{lo:.3g}, {hi:.3g}], which looks like 0..255 pixels; a float '
                                'image must be in [-1, 1] (uint8 pixels go in as a numpy array)')
    # A generator's own output may overshoot [-1, 1] a little; it is kept as it is, not clipped.
    return t


def _clean_stale_temps(folder: Path) -> None:
    """Remove the temporary files (`io.temp_sibling` names) and lock files that killed runs left
    in the inversion cache; a live process's may be another run writing, and stay."""
    from photodrag.io import remove_debris, remove_stale_locks
    remove_debris(folder)
    remove_stale_locks(folder)


def invert(G, image, config: Optional[InversionConfig] = None, callback: Optional[Callback] = None,
           device=None, cache: Union[bool, str, Path] = False, encoder=None) -> Inversion:
    """Invert `image` (uint8 [R, R, 3] or float [1, 3, R, R] in [-1, 1]) into generator G.

    `device` defaults to G's. `cache=True` keeps results under $PHOTODRAG_CACHE/inversions
    (a path: under that folder), keyed by image, generator content and settings, so the same
    crop is never inverted twice: a second process or thread asking for a crop being inverted
    waits for it (`callback` hears step 0 of the projection meanwhile and may raise to stop
    waiting) and reads the result. G is not modified.
    """
    config, device, target, img_hash, base_hash, start_key = _resolve(G, image, config, device, encoder)
    if not cache:
        return _invert(G, config, device, target, img_hash, base_hash, start_key, callback, encoder)
    path = _cache_entry(cache, img_hash, base_hash, start_key, config)
    inv = _from_cache(path, img_hash, base_hash, encoder, start_key)
    if inv is not None:
        return inv
    # the same crop being inverted elsewhere (another tab of the editor, another worker of a
    # batch, a second run): wait for it and read its result rather than do the work twice
    waiting = (lambda: callback('projection', 0, config.projection_steps, {})) if callback else None
    with one_at_a_time(path, waiting):
        inv = _from_cache(path, img_hash, base_hash, encoder, start_key, sweep=False)
        if inv is None:
            inv = _invert(G, config, device, target, img_hash, base_hash, start_key, callback, encoder)
            inv.save(path)
    return inv


def _invert(G, config: InversionConfig, device, target: torch.Tensor, img_hash: str, base_hash: str, start_key: str,
            callback: Optional[Callback], encoder) -> Inversion:
    """`invert`'s work: projection from the start `config` names, then pivotal tuning."""
    G_work = copy.deepcopy(G).to(device).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(config.seed)    # CPU draws: the same on every device
    autocast = _AUTOCAST[config.precision]

    start = None
    if config.init == 'encoder':
        from .encoder import encode
        started = time.perf_counter()
        start = encode(encoder, target).to(device)
        encode_seconds = time.perf_counter() - started
    clock = Remaining(callback, config.projection_steps, config.tuning_steps) if callback else None
    w_pivot, proj_metrics = _project(G_work, target, config, gen, autocast, device, clock, start)
    if start is not None:
        proj_metrics = dataclasses.replace(proj_metrics, seconds=proj_metrics.seconds + encode_seconds)
    base_params = {k: v.detach().clone() for k, v in G_work.named_parameters()}
    if clock:
        clock.begin('tuning')
    tune_metrics = _tune(G_work, w_pivot, target, config, gen, autocast, device, clock)

    with torch.no_grad():
        packed = {}
        for name, p in G_work.named_parameters():
            delta = p.detach().float() - base_params[name].float()
            if bool(delta.any()):
                packed[name] = pack_delta(delta, config.delta_format)
                p.copy_(base_params[name].float() + unpack_delta(packed[name]).to(device))   # what a reload rebuilds
    if packed and config.delta_format != 'fp32':
        tune_metrics = _final_metrics(G_work, w_pivot, target, config, autocast, device, tune_metrics)
    noise = {k: v.detach().float().cpu().clone() for k, v in G_work.named_buffers() if k.endswith('noise_const')}
    inv = Inversion(w_pivot=w_pivot.detach().cpu(), deltas={k: unpack_delta(v) for k, v in packed.items()},
                    noise=noise, base_hash=base_hash, config=config, image_hash=img_hash,
                    metrics={'projection': proj_metrics, 'tuning': tune_metrics}, packed=packed,
                    encoder=_encoder_info(encoder, start_key))
    return inv


# ---------------------------------------------------------------- helpers

def _resolve(G, image, config: Optional[InversionConfig], device, encoder):
    """(config with its start chosen, device, target tensor, image hash, generator hash, the
    encoder's hash or '') for an inversion of `image` into G."""
    config = config or InversionConfig()
    device = torch.device(device) if device is not None else next(G.parameters()).device
    config.check_device(device.type)
    if config.init == 'auto':
        config = config.replace(init='encoder' if encoder is not None else 'mean')
    target = prepare_target(image, G.img_resolution, device)
    img_hash, base_hash = image_hash(target), generator_hash(G)
    start_key = ''
    if config.init == 'encoder':
        from .encoder import check_fits, content_hash
        if encoder is None:
            raise InvalidSettingsError("init='encoder' needs an encoder for this generator (encoder=..., or "
                                       '`photodrag encoder train`)')
        check_fits(encoder, G, actual=base_hash)
        if config.encoder_projection_steps is not None:
            config = config.replace(projection_steps=config.encoder_projection_steps)
        start_key = content_hash(encoder)
    return config, device, target, img_hash, base_hash, start_key


def _cache_entry(cache: Union[bool, str, Path], img_hash: str, base_hash: str, start_key: str,
                 config: InversionConfig) -> Path:
    """Where the cache (`invert`'s `cache`: True or a folder) keeps this inversion."""
    return cached_path(None if cache is True else Path(cache), cache_key(img_hash, base_hash + start_key, config))


def _from_cache(path: Path, img_hash: str, base_hash: str, encoder, start_key: str,
                sweep: bool = True) -> Optional[Inversion]:
    """The cached inversion at `path`, or None (a damaged or foreign file there is removed);
    `sweep` first clears what killed runs left in the folder."""
    if sweep:
        _clean_stale_temps(path.parent)
    if path.is_file():
        try:
            inv = Inversion.load(path)
            if inv.image_hash == img_hash and inv.base_hash == base_hash:
                inv.from_cache = True
                inv.encoder = _encoder_info(encoder, start_key)
                return inv
        except BadCheckpointError:
            pass
        path.unlink(missing_ok=True)        # truncated, damaged or not this crop's: made again
    return None


def cached(G, image, config: Optional[InversionConfig] = None, device=None, cache: Union[bool, str, Path] = True,
           encoder=None) -> Optional[Inversion]:
    """What `invert` with these arguments would answer from its cache at once, or None when it
    would have to optimise."""
    if not cache:
        return None
    config, device, target, img_hash, base_hash, start_key = _resolve(G, image, config, device, encoder)
    return _from_cache(_cache_entry(cache, img_hash, base_hash, start_key, config), img_hash, base_hash, encoder,
                       start_key)


def preview(G, image, config: Optional[InversionConfig] = None, device=None, encoder=None) -> torch.Tensor:
    """The latents `invert` starts from, at once (no optimisation): the encoder's ws for `image`
    when the settings start from it, else the generator's mean w; [1, num_ws, w_dim], in the
    config's latent space (W: one w repeated). What to show while the inversion runs."""
    config, device, target, *_ = _resolve(G, image, config, device, encoder)
    with torch.no_grad():
        if config.init == 'encoder':
            from .encoder import encode
            ws = encode(encoder, target).to(device).float()
        else:
            w_avg = getattr(G.mapping, 'w_avg', None)
            if w_avg is None or not bool(w_avg.any()):
                gen = torch.Generator().manual_seed(config.seed)
                c = torch.zeros([config.w_avg_samples, G.c_dim], device=device) if G.c_dim else None
                z = torch.randn([config.w_avg_samples, G.z_dim], generator=gen).to(device)
                w_avg = G.mapping(z, c)[:, 0, :].float().mean(dim=0)
            ws = w_avg.to(device).float().reshape(1, 1, -1).repeat(1, G.num_ws, 1)
        if config.latent_space != 'w+':
            ws = ws.mean(dim=1, keepdim=True).repeat(1, G.num_ws, 1)
    return ws



class Remaining:
    """A progress callback that adds `remaining_s` to every step's metrics: the time the whole
    inversion still needs at the pace of the steps so far (an upper bound: tuning stops early
    once the fit reaches `stop_lpips`). The pace is timed from a stage's first step on (that
    step also loads LPIPS and samples w_avg), so the figure comes with the second step; while
    projecting, the tuning steps still to come count at TUNE_COST projection steps each."""

    TUNE_COST = 1.25    # a tuning step (every weight's gradient) over a projection step; 2 CPU cores, 128 px: 0.31 / 0.25 s

    def __init__(self, callback: Callback, projection_steps: int, tuning_steps: int):
        self.callback, self.projection_steps, self.tuning_steps = callback, projection_steps, tuning_steps
        self.first: Dict[str, float] = {}

    def begin(self, stage: str) -> None:
        self.first.pop(stage, None)

    def __call__(self, stage: str, step: int, total: int, metrics: Dict[str, Any]) -> None:
        now = time.perf_counter()
        if stage not in self.first or step <= 1:
            self.first[stage] = now
            self.callback(stage, step, total, metrics)
            return
        pace = (now - self.first[stage]) / (step - 1)
        left = pace * (total - step)
        if stage == 'projection':
            left += pace * self.TUNE_COST * self.tuning_steps
        self.callback(stage, step, total, {**metrics, 'remaining_s': left})


def _encoder_info(encoder, weights_hash: str) -> Optional[Dict[str, Any]]:
    """What an edit's record keeps of the encoder an inversion started from (None: it did not)."""
    if not weights_hash:
        return None
    path = encoder.path
    return {'path': None if path is None else str(path), 'weights_hash': weights_hash}


_LPIPS_MIN = 32     # AlexNet's pooling needs at least this many pixels


def _downsample(img: torch.Tensor, cap: Optional[int]) -> torch.Tensor:
    """The image as LPIPS sees it: area-downsampled to `cap` (None = as is), tiny images enlarged."""
    if img.shape[-1] < _LPIPS_MIN:
        return F.interpolate(img, size=(_LPIPS_MIN, _LPIPS_MIN), mode='bilinear', align_corners=False)
    if cap is None or img.shape[-1] <= cap:
        return img
    return F.interpolate(img, size=(cap, cap), mode='area')


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [-1, 1] (peak-to-peak 2)."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float('inf') if mse == 0 else 10 * math.log10(4.0 / mse)


def _noise_buffers(G) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in G.named_buffers() if k.endswith('noise_const')}


def _noise_regularization(bufs) -> torch.Tensor:
    """Squared auto-correlation of each noise map with its 1-pixel shifts, at every scale down to 8x8."""
    reg = 0.0
    for v in bufs:
        v = v[None, None]
        while True:
            reg = reg + (v * torch.roll(v, shifts=1, dims=3)).mean() ** 2 \
                      + (v * torch.roll(v, shifts=1, dims=2)).mean() ** 2
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, kernel_size=2)
    return reg


def _lr_schedule(t: float, config: InversionConfig) -> float:
    ramp = min(1.0, (1.0 - t) / config.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / config.lr_warmup) if config.lr_warmup > 0 else 1.0
    return config.projection_lr * ramp


def _project(G, target, config: InversionConfig, gen: torch.Generator, autocast, device, callback, start=None):
    started = time.perf_counter()
    lpips = load_lpips(config.projection_lpips, device, allow_random=config.allow_random_lpips)
    c = torch.zeros([config.w_avg_samples, G.c_dim], device=device) if G.c_dim else None
    with torch.no_grad():
        z = torch.randn([config.w_avg_samples, G.z_dim], generator=gen).to(device)
        w_samples = G.mapping(z, c)[:, :1, :].float()                          # [S, 1, C]
        w_avg = w_samples.mean(dim=0, keepdim=True)                             # [1, 1, C]
        w_std = float(((w_samples - w_avg) ** 2).sum() / config.w_avg_samples) ** 0.5
    num_ws = G.num_ws if config.latent_space == 'w+' else 1
    if start is not None:           # the encoder's ws: all of them in W+, their mean in W
        begin = start.float() if num_ws == G.num_ws else start.float().mean(dim=1, keepdim=True)
    else:
        begin = w_avg.repeat(1, num_ws, 1)
    w_opt = begin.clone().requires_grad_(True)

    bufs = list(_noise_buffers(G).values())
    with torch.no_grad():
        for b in bufs:
            b.copy_(torch.randn(b.shape, generator=gen).to(device))
    params = [w_opt] + (bufs if config.optimize_noise else [])
    for b in bufs:
        b.requires_grad_(config.optimize_noise)
    optimizer = torch.optim.Adam(params, betas=(0.9, 0.999), lr=config.projection_lr)
    with torch.no_grad():
        target_feats = lpips.features(_downsample(target, config.projection_lpips_res))

    steps = config.projection_steps
    for step in range(steps):
        t = step / steps
        lr = _lr_schedule(t, config)
        for group in optimizer.param_groups:
            group['lr'] = lr
        noise_scale = w_std * config.initial_noise_factor * max(0.0, 1.0 - t / config.noise_ramp) ** 2
        w_noise = torch.randn(w_opt.shape, generator=gen).to(device) * noise_scale
        ws = (w_opt + w_noise).expand(1, G.num_ws, -1)
        synth = G.synthesis(ws, noise_mode='const', autocast=autocast)
        dist = lpips.compare(lpips.features(_downsample(synth, config.projection_lpips_res)), target_feats).sum()
        reg = _noise_regularization(bufs) if config.optimize_noise and config.noise_reg_weight else 0.0
        loss = dist + config.noise_reg_weight * reg
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for b in bufs:                                    # back to zero mean, unit variance
                b.sub_(b.mean())
                b.mul_(b.square().mean().rsqrt())
        if callback:
            callback('projection', step + 1, steps, {'lpips': dist.item(), 'loss': loss.item(), 'lr': lr})
    for b in bufs:
        b.requires_grad_(False)

    w_pivot = w_opt.detach().expand(1, G.num_ws, -1).clone()
    with torch.no_grad():
        synth = G.synthesis(w_pivot, noise_mode='const', autocast=autocast)
        final = float(lpips.compare(lpips.features(_downsample(synth, config.projection_lpips_res)),
                                    target_feats).sum())
        metrics = StageMetrics(lpips=final, psnr=psnr(synth, target), seconds=time.perf_counter() - started,
                               steps=steps, lpips_net=config.projection_lpips)
    return w_pivot, metrics


def _tune(G, w_pivot, target, config: InversionConfig, gen: torch.Generator, autocast, device, callback):
    started = time.perf_counter()
    lpips = load_lpips(config.tuning_lpips, device, allow_random=config.allow_random_lpips)
    with torch.no_grad():
        target_feats = lpips.features(_downsample(target, config.tuning_lpips_res))
    G_orig = None
    if config.locality and config.tuning_steps:
        G_orig = copy.deepcopy(G).requires_grad_(False)
    G.requires_grad_(True)
    optimizer = torch.optim.Adam(G.parameters(), lr=config.tuning_lr)

    def losses(synth):
        dist = lpips.compare(lpips.features(_downsample(synth, config.tuning_lpips_res)), target_feats).sum()
        l2 = F.mse_loss(synth, target)
        return dist, l2

    steps_taken, stopped = 0, False
    for step in range(config.tuning_steps):
        synth = G.synthesis(w_pivot, noise_mode='const', autocast=autocast)
        dist, l2 = losses(synth)
        if config.stop_lpips is not None and dist.item() <= config.stop_lpips:
            stopped = True
            break
        loss = config.tuning_l2_weight * l2 + config.tuning_lpips_weight * dist
        if G_orig is not None:
            loss = loss + _locality_loss(G, G_orig, w_pivot, config, gen, autocast, lpips, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps_taken = step + 1
        if callback:
            callback('tuning', step + 1, config.tuning_steps,
                     {'lpips': dist.item(), 'l2': l2.item(), 'loss': loss.item()})
    G.requires_grad_(False)
    with torch.no_grad():
        synth = G.synthesis(w_pivot, noise_mode='const', autocast=autocast)
        dist, _ = losses(synth)
        metrics = StageMetrics(lpips=float(dist), psnr=psnr(synth, target), seconds=time.perf_counter() - started,
                               steps=steps_taken, lpips_net=config.tuning_lpips, stopped_early=stopped)
    return metrics


def _final_metrics(G, w_pivot, target, config: InversionConfig, autocast, device, metrics: StageMetrics):
    """Tuning metrics re-measured on the generator as stored (base + quantised delta)."""
    lpips = load_lpips(config.tuning_lpips, device, allow_random=config.allow_random_lpips)
    with torch.no_grad():
        synth = G.synthesis(w_pivot, noise_mode='const', autocast=autocast)
        dist = lpips(_downsample(synth, config.tuning_lpips_res), _downsample(target, config.tuning_lpips_res))
    return StageMetrics(lpips=float(dist.sum()), psnr=psnr(synth, target), seconds=metrics.seconds, steps=metrics.steps,
                        lpips_net=metrics.lpips_net, stopped_early=metrics.stopped_early)


def _locality_loss(G, G_orig, w_pivot, config: InversionConfig, gen, autocast, lpips, device):
    """PTI's locality regularisation: keep the tuned generator equal to the original one at a
    latent `locality_alpha` away from the pivot, towards a random mapped sample."""
    c = torch.zeros([1, G.c_dim], device=device) if G.c_dim else None
    with torch.no_grad():
        w_z = G_orig.mapping(torch.randn([1, G.z_dim], generator=gen).to(device), c)
        direction = w_z - w_pivot
        w_r = w_pivot + config.locality_alpha * direction / direction.norm()
        reference = G_orig.synthesis(w_r, noise_mode='const', autocast=autocast)
    synth = G.synthesis(w_r, noise_mode='const', autocast=autocast)
    l2 = F.mse_loss(synth, reference)
    dist = lpips(_downsample(synth, config.tuning_lpips_res), _downsample(reference, config.tuning_lpips_res)).sum()
    return config.locality_l2_weight * l2 + config.locality_lpips_weight * dist
