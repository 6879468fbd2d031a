"""An encoder that maps an aligned crop to the generator's latents in one forward pass, trained
on the generator's own samples (no dataset), as the starting point of projection.

Encoders of the pSp/e4e family invert in milliseconds but lose detail; projection and pivotal
tuning recover it, and start much closer when they start from the encoder's w instead of
w_avg. Ours is a small residual network: the crop (resized to the encoder's resolution) goes
down to 4x4 features, and two linear heads give one w (as an offset from w_avg in units of
the mapping's spread) and small per-layer W+ offsets. It is trained on (image, w) pairs the
generator draws itself: random z, truncated and untruncated, some style-mixed (so the W+
heads learn something), random noise maps, photometric and small geometric augmentation so
that it sees more than perfectly generated images; the loss is the latent error plus, every
few steps, L2 + LPIPS between the target and its reconstruction through the generator.

Saved as safetensors with JSON metadata (format `photodrag-encoder`): the network's config,
the sha256 of the generator it was trained for (`inversion.generator_hash`), and its training
record. Loading it for another generator is an error: its w would mean nothing there.
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from photodrag.errors import BadCheckpointError, PhotodragError, is_number

FORMAT = 'photodrag-encoder'
VERSION = 1
META_KEY = 'photodrag'


class _Block(nn.Module):
    """Two 3x3 convolutions with a residual path; halves the resolution."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1, stride=2)
        self.skip = nn.Conv2d(cin, cout, 1, stride=2, bias=False)

    def forward(self, x):
        y = self.conv1(F.leaky_relu(self.conv0(F.leaky_relu(x, 0.2)), 0.2))
        return (y + self.skip(x)) / math.sqrt(2)


class Encoder(nn.Module):
    """Crop [N, 3, H, W] in [-1, 1] -> ws [N, num_ws, w_dim] of the generator it was trained for."""

    def __init__(self, w_dim: int, num_ws: int, resolution: int = 128, width: int = 32, max_width: int = 192):
        super().__init__()
        if resolution & (resolution - 1) or not 16 <= resolution <= 512:
            raise ValueError(f'encoder resolution must be a power of two in 16..512, not {resolution}')
        self.init_kwargs = dict(w_dim=int(w_dim), num_ws=int(num_ws), resolution=int(resolution), width=int(width),
                                max_width=int(max_width))
        self.w_dim, self.num_ws, self.resolution = int(w_dim), int(num_ws), int(resolution)
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        blocks, c, res = [], width, resolution
        while res > 4:
            nxt = min(c * 2, max_width)
            blocks.append(_Block(c, nxt))
            c, res = nxt, res // 2
        self.blocks = nn.Sequential(*blocks)
        self.reduce = nn.Conv2d(c, 64, 1)
        self.to_w = nn.Linear(64 * 16, w_dim)
        self.to_offsets = nn.Linear(64 * 16, num_ws * w_dim)
        nn.init.zeros_(self.to_offsets.weight)
        nn.init.zeros_(self.to_offsets.bias)
        self.register_buffer('w_avg', torch.zeros(w_dim))
        self.register_buffer('w_std', torch.ones([]))
        self.path: Optional[Path] = None        # the file `load` read it from (None: made in memory)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(_resize(images, self.resolution)))
        h = F.leaky_relu(self.reduce(F.leaky_relu(x, 0.2)), 0.2).flatten(1)
        base = self.to_w(h)[:, None, :]
        offsets = 0.1 * self.to_offsets(h).view(-1, self.num_ws, self.w_dim)
        return self.w_avg + self.w_std * (base + offsets)


@dataclass
class TrainConfig:
    """Settings of `train`; the defaults are what the demo encoder was trained with."""
    steps: int = 6000
    batch: int = 16
    lr: float = 1e-3
    image_loss_every: int = 4           # a step with the reconstruction loss every N steps (it costs a G pass)
    image_batch: int = 8
    lpips_weight: float = 1.0
    l2_weight: float = 1.0
    truncation: tuple = (0.5, 1.0)      # psi drawn uniformly for half of each batch
    mix_prob: float = 0.25              # style-mixed samples, for the W+ heads
    augment: bool = True                # photometric + small geometric changes of the inputs
    resolution: int = 0                 # the encoder's input size; 0: the generator's, at most 128
    pool: int = 0                       # > 0: keep this many recent samples (8-bit, at the encoder's size) ...
    fresh: int = 0                      # ... and draw only this many new ones a step (0: half the batch)
    seed: int = 0


def _augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Light photometric and geometric changes, so that it does not only know generated images."""
    n = images.shape[0]
    dev = images.device

    def u(lo, hi, shape=(n, 1, 1, 1)):
        return (torch.rand(shape, generator=gen) * (hi - lo) + lo).to(dev)
    x = images * u(0.85, 1.15) + u(-0.1, 0.1)                                       # contrast, brightness
    x = x + (torch.rand((n, 3, 1, 1), generator=gen).to(dev) - 0.5) * 0.08          # colour cast
    reach = max(1, round(3 * images.shape[-1] / 128))                                # +-3 px at 128
    shift = torch.randint(-reach, reach + 1, (2,), generator=gen).tolist()
    scale = float(u(0.96, 1.04, (1,)))
    theta = torch.tensor([[scale, 0, shift[0] / images.shape[-1] * 2], [0, scale, shift[1] / images.shape[-2] * 2]],
                         device=dev).expand(n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode='bilinear', padding_mode='reflection', align_corners=False)
    if float(torch.rand((), generator=gen)) < 0.3:                                 # a soft blur
        k = torch.tensor([1.0, 2.0, 1.0], device=dev)
        k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode='reflect'), k, groups=3)
    x = x + torch.randn(x.shape, generator=gen).to(dev) * float(u(0.0, 0.03, (1,)))
    return x.clamp(-1, 1)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square images to size x size: area averaging down, bilinear up."""
    if images.shape[-2:] == (size, size):
        return images
    if images.shape[-1] > size:
        return F.interpolate(images, size=(size, size), mode='area')
    return F.interpolate(images, size=(size, size), mode='bilinear', align_corners=False)


def _quantise(images: torch.Tensor) -> torch.Tensor:
    """As an 8-bit photo would be: [-1, 1] -> uint8 (on the CPU)."""
    return ((images.detach().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _from_pool(pool, new_u8: torch.Tensor, new_ws: torch.Tensor, batch: int, gen: torch.Generator):
    """The batch: the new samples first, then earlier ones drawn from the pool; the new ones
    then replace the oldest. Trades variety for speed where drawing samples is the slow part
    (a CPU): each image is seen several times, under different augmentations."""
    device = new_ws.device
    k = min(batch - len(new_ws), pool['filled'])
    idx = torch.randperm(pool['filled'], generator=gen)[:k]
    images = torch.cat([new_u8, pool['images'][idx]]).to(device).float() / 127.5 - 1
    ws = torch.cat([new_ws, pool['ws'][idx].to(device)])
    size = len(pool['images'])
    slots = (torch.arange(len(new_ws)) + pool['next']) % size
    pool['images'][slots] = new_u8
    pool['ws'][slots] = new_ws.detach().cpu()
    pool['next'] = int(slots[-1] + 1) % size
    pool['filled'] = min(size, pool['filled'] + len(new_ws))
    return images, ws


def _sample(G, n: int, cfg: TrainConfig, gen: torch.Generator, w_avg: torch.Tensor, device) -> torch.Tensor:
    """ws [n, num_ws, w_dim]: mapped z, half truncated, some style-mixed."""
    with torch.no_grad():
        z = torch.randn((n, G.z_dim), generator=gen).to(device)
        ws = G.mapping(z, None)
        psi = torch.ones((n, 1, 1))
        half = n // 2
        psi[:half] = torch.rand((half, 1, 1), generator=gen) * (cfg.truncation[1] - cfg.truncation[0]) + \
            cfg.truncation[0]
        ws = w_avg + psi.to(device) * (ws - w_avg)
        mixed = torch.rand(n, generator=gen) < cfg.mix_prob
        if mixed.any():
            other = G.mapping(torch.randn((int(mixed.sum()), G.z_dim), generator=gen).to(device), None)
            cut = int(torch.randint(1, G.num_ws, (1,), generator=gen))
            ws[mixed.to(device), cut:] = other[:, cut:]
    return ws


def train(G, cfg: TrainConfig = TrainConfig(), device='cpu', state: Optional[Dict[str, Any]] = None,
          callback: Optional[Callable[[int, int, Dict[str, float]], Any]] = None,
          checkpoint: Optional[Callable[[Dict[str, Any]], Any]] = None, checkpoint_every: int = 200,
          lpips=None, until: Optional[int] = None, seconds: Optional[float] = None) -> Dict[str, Any]:
    """Train an encoder for generator G on its own samples; resumable from `state` (what
    `checkpoint` is called with every `checkpoint_every` steps and when it stops: the encoder,
    optimiser, step, losses, random state). Stops after `cfg.steps` (the schedule's length),
    or earlier at step `until` or after `seconds` of this call. Returns the state ('encoder')."""
    from .saved import generator_hash
    device = torch.device(device)
    G = G.to(device).eval().requires_grad_(False)
    if state is None:
        gen = torch.Generator().manual_seed(cfg.seed)
        with torch.random.fork_rng(devices=[]):           # the same start every time for one seed
            torch.manual_seed(cfg.seed)
            enc = Encoder(G.w_dim, G.num_ws, resolution=cfg.resolution or min(128, G.img_resolution)).to(device)
        with torch.no_grad():
            w = G.mapping(torch.randn((10_000, G.z_dim), generator=gen).to(device), None)[:, 0]
            enc.w_avg.copy_(w.mean(0))
            enc.w_std.copy_(((w - w.mean(0)) ** 2).sum(1).mean().sqrt() / math.sqrt(G.w_dim))
        opt = torch.optim.Adam(enc.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        state = {'encoder': enc, 'optimizer': opt, 'step': 0, 'history': [], 'generator_hash': generator_hash(G),
                 'rng': gen.get_state(), 'seconds': 0.0, 'config': dict(vars(cfg))}
    enc, opt = state['encoder'], state['optimizer']
    gen = torch.Generator()
    gen.set_state(state['rng'])
    if lpips is None:
        from .lpips import load_lpips
        lpips = load_lpips('vgg', device)
    w_avg = enc.w_avg
    if cfg.pool and 'pool' not in state:
        r = enc.resolution
        state['pool'] = {'images': torch.zeros((cfg.pool, 3, r, r), dtype=torch.uint8),
                         'ws': torch.zeros((cfg.pool, G.num_ws, G.w_dim)), 'filled': 0, 'next': 0}
    enc.train()
    started = time.perf_counter() - state['seconds']
    call_started = time.perf_counter()
    last = min(cfg.steps, until) if until is not None else cfg.steps
    while state['step'] < last and (seconds is None or time.perf_counter() - call_started < seconds):
        step = state['step']
        lr = cfg.lr * min(1.0, (step + 1) / 200) * (0.5 * (1 + math.cos(math.pi * step / cfg.steps)) * 0.9 + 0.1)
        for group in opt.param_groups:
            group['lr'] = lr
        pool = state.get('pool')
        fresh = (cfg.fresh or max(1, cfg.batch // 2)) if pool is not None else cfg.batch
        ws = _sample(G, min(fresh, cfg.batch), cfg, gen, w_avg, device)
        noise_seed = int(torch.randint(2 ** 31, (1,), generator=gen))
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
            torch.manual_seed(noise_seed)               # random noise maps, drawn reproducibly (resuming)
            images = G.synthesis(ws, noise_mode='random').clamp(-1, 1)
        inputs = images
        if pool is not None:
            inputs, ws = _from_pool(pool, _quantise(_resize(images, enc.resolution)), ws, cfg.batch, gen)
        pred = enc(_augment(inputs, gen) if cfg.augment else inputs)
        latent = ((pred - ws) ** 2).mean() / float(enc.w_std) ** 2
        loss = latent
        record = {'step': step + 1, 'latent': latent.item()}
        if cfg.image_loss_every and step % cfg.image_loss_every == 0:
            k = min(cfg.image_batch, len(images))       # the new samples, at the generator's size
            recon = G.synthesis(pred[:k], noise_mode='const')
            l2 = F.mse_loss(recon, images[:k])
            lp = lpips.compare(lpips.features(recon), lpips.features(images[:k])).mean()
            loss = loss + cfg.l2_weight * l2 + cfg.lpips_weight * lp
            record.update(l2=l2.item(), lpips=lp.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state['step'] = step + 1
        state['seconds'] = time.perf_counter() - started
        state['rng'] = gen.get_state()
        state['history'].append(record)
        if callback:
            callback(state['step'], cfg.steps, record)
        if checkpoint and state['step'] % checkpoint_every == 0:
            checkpoint(state)
    if checkpoint and state['step'] % checkpoint_every:
        checkpoint(state)
    enc.eval()
    return state


# ---------------------------------------------------------------- files

def save(enc: Encoder, path, generator_hash: str, training: Optional[Dict[str, Any]] = None) -> Path:
    """Write the encoder (.safetensors with its config, generator hash and training record), atomically."""
    from safetensors.torch import save_file
    from photodrag.io import atomic_write
    meta = {'format': FORMAT, 'version': VERSION, 'config': enc.init_kwargs, 'generator_hash': generator_hash,
            'training': training or {}}
    tensors = {k: v.detach().to('cpu', torch.float32).contiguous().clone() for k, v in enc.state_dict().items()}
    path = Path(path)
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta, default=str)})
    return path


def load(path, G=None, device='cpu') -> Encoder:
    """Read an encoder; with G, refuse one that was trained for another generator."""
    from safetensors import SafetensorError, safe_open
    from photodrag.restricted import short
    path = Path(path)
    if not path.is_file():
        raise PhotodragError(f'{path}: no such encoder file')
    try:
        with safe_open(str(path), framework='pt', device='cpu') as f:
            raw = (f.metadata() or {}).get(META_KEY)
            meta = json.loads(raw) if raw and len(raw) < 1 << 20 else None
            if not isinstance(meta, dict) or meta.get('format') != FORMAT or not isinstance(meta.get('config'), dict):
                raise BadCheckpointError(f'{path} is not a photodrag encoder (no "{FORMAT}" metadata)')
            if meta.get('version') != VERSION:
                raise BadCheckpointError(f'{path}: encoder format version {short(meta.get("version"), 20)!r}; this '
                                         f'photodrag reads version {VERSION}')
            config = meta['config']
            if set(config) != {'w_dim', 'num_ws', 'resolution', 'width', 'max_width'} or not all(
                    is_number(v, 1, 4096, whole=True) for v in config.values()):
                raise BadCheckpointError(f'{path}: the encoder config is malformed')
            enc = Encoder(**config)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RecursionError) as e:
        raise BadCheckpointError(f'{path} is not a readable encoder file: {short(e, 160)}') from None
    from photodrag.checkpoints.nvidia import load_state_strict
    from .saved import generator_hash
    load_state_strict(enc, tensors, str(path))
    enc.generator_hash = str(meta.get('generator_hash'))
    enc.record = meta.get('training') if isinstance(meta.get('training'), dict) else {}     # how it was trained
    enc.path = path
    enc.sha256 = generator_hash(enc)            # its identity in inversion cache keys; it is never trained further
    if G is not None:
        check_fits(enc, G, str(path))
    return enc.eval().requires_grad_(False).to(device)


def content_hash(enc: Encoder) -> str:
    """sha256 of the encoder's weights (a loaded encoder's is computed once, when it is read)."""
    from .saved import generator_hash
    return getattr(enc, 'sha256', None) or generator_hash(enc)


def check_fits(enc: Encoder, G, source: str = 'the encoder', actual: Optional[str] = None) -> None:
    """An error unless `enc` was trained for G (`actual`: G's hash, when the caller has it)."""
    from .saved import generator_hash
    actual = actual or generator_hash(G)
    if enc.generator_hash != actual:
        raise PhotodragError(f'{source} was trained for generator {enc.generator_hash[:12]}, not this one '
                             f'({actual[:12]}); train one for it with `photodrag encoder train`')


def encode(enc: Encoder, target: torch.Tensor) -> torch.Tensor:
    """ws [1, num_ws, w_dim] for a target image [1, 3, R, R] in [-1, 1]."""
    with torch.no_grad():
        return enc(target.to(enc.w_avg.device, torch.float32))




# ---------------------------------------------------------------- which encoder a generator has

def beside(checkpoint_file) -> Path:
    """Where a checkpoint's own encoder lives: NAME.encoder.safetensors beside its file."""
    p = Path(checkpoint_file)
    return p.with_name(p.name.split('.')[0] + '.encoder.safetensors')


_loaded: Dict[tuple, Encoder] = {}


def for_generator(G, checkpoint, choice: Optional[str] = None) -> Optional[Encoder]:
    """The encoder an edit starts its inversions from: `choice` 'none' -> none; a path -> that
    file (an error if it was trained for another generator); None or 'auto' -> the one beside
    the checkpoint's file when it exists and fits G (a grown or random generator has none)."""
    import os
    from .saved import generator_hash
    if choice == 'none':
        return None
    if choice not in (None, 'auto'):
        path, must_fit = Path(choice), True
    else:
        text = os.fspath(checkpoint) if checkpoint is not None else ''
        if not text or text.startswith('random:'):
            return None
        from photodrag import checkpoints
        try:
            path = beside(checkpoints.resolve_path(text, download=False))
        except PhotodragError:
            return None
        if not path.is_file():
            return None
        must_fit = False
    key = (str(path.resolve()), path.stat().st_mtime_ns if path.exists() else 0, generator_hash(G))
    if key not in _loaded:
        enc = load(path)
        if enc.generator_hash != key[2]:
            if must_fit:
                check_fits(enc, G, str(path))
            return None
        _loaded.clear()                     # one generator's encoder at a time is plenty
        _loaded[key] = enc.to(next(G.parameters()).device)
    return _loaded[key]


__all__ = ['Encoder', 'TrainConfig', 'train', 'save', 'load', 'check_fits', 'encode', 'beside', 'for_generator']
