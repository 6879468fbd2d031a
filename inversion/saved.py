"""Inversion: the result of `invert` — pivot, tuned weights as deltas, noise maps, metrics.

Saved as one safetensors file: `w_pivot`, `noise.<buffer name>` (the projected noise maps)
and the weight deltas tuned - base, only for parameters that changed, in the config's
`delta_format`: 'int8' (default) stores `delta.<name>.q` (int8) and `delta.<name>.scale`
(float32, one per output row: the row's largest |delta| / 127), about one byte per weight, a
quarter of the generator; 'fp16' and 'fp32' store `delta.<name>` as is. The JSON metadata
(settings, metrics, the base generator's content hash, the target's hash) sits in the
safetensors header. The tuned weights are *defined* as base + the stored delta (invert()
snaps them to that sum before its final render), so a reload rebuilds them bit for bit.
"""

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from photodrag.errors import BadCheckpointError, InvalidSettingsError, PhotodragError
from photodrag.io import atomic_write, cache_dir

from .config import InversionConfig

FORMAT = 'photodrag-inversion'
VERSION = 1


@dataclass(frozen=True)
class StageMetrics:
    """How one stage ended: LPIPS of its loss network at its resolution, PSNR (dB) over the
    full image, wall-clock seconds and optimisation steps taken."""
    lpips: float
    psnr: float
    seconds: float
    steps: int
    lpips_net: str
    stopped_early: bool = False


@dataclass
class Inversion:
    """An image inverted into a generator: render it with `inv.generator(G_base)` at `inv.ws`."""
    w_pivot: torch.Tensor                         # [1, num_ws, w_dim], float32, CPU
    deltas: Dict[str, torch.Tensor]               # parameter name -> tuned - base (float32, CPU)
    noise: Dict[str, torch.Tensor]                # noise buffer name -> [R, R] map (float32, CPU)
    base_hash: str                                # generator_hash of the base generator
    config: InversionConfig
    metrics: Dict[str, StageMetrics] = field(default_factory=dict)   # 'projection', 'tuning'
    image_hash: str = ''
    from_cache: bool = False
    # the encoder the pivot started from (init 'encoder'): {'path', 'weights_hash'}, for the
    # edit's record; like from_cache, not saved (the cache key already holds the encoder's hash)
    encoder: Optional[Dict[str, Any]] = None
    packed: Dict[str, Dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)   # stored form

    def __post_init__(self):
        if not self.packed:
            self.packed = {k: pack_delta(v, self.config.delta_format) for k, v in self.deltas.items()}
            self.deltas = {k: unpack_delta(v) for k, v in self.packed.items()}

    @property
    def stored_bytes(self) -> int:
        """Size of the tuned weights as saved (the deltas in their stored form)."""
        return sum(t.numel() * t.element_size() for parts in self.packed.values() for t in parts.values())

    @property
    def ws(self) -> torch.Tensor:
        return self.w_pivot

    def generator(self, G_base, check: bool = True):
        """A tuned copy of `G_base` (which must be the generator this was inverted with);
        eval mode, no gradients, on G_base's device. G_base is not changed."""
        if check:
            got = generator_hash(G_base)
            if got != self.base_hash:
                raise PhotodragError(f'this inversion was made with generator {self.base_hash[:12]}, not with '
                                     f'the one given ({got[:12]}); load the checkpoint it was inverted with')
        G = copy.deepcopy(G_base).eval().requires_grad_(False)
        params, buffers = dict(G.named_parameters()), dict(G.named_buffers())
        with torch.no_grad():
            for name, delta in self.deltas.items():
                p = params.get(name)
                if p is None or p.shape != delta.shape:
                    raise BadCheckpointError(f'inversion delta {name} does not fit the generator')
                p.copy_(p.float() + delta.to(p.device))
            for name, noise in self.noise.items():
                b = buffers.get(name)
                if b is None or b.shape != noise.shape:
                    raise BadCheckpointError(f'inversion noise map {name} does not fit the generator')
                b.copy_(noise.to(b.device))
        return G

    def render(self, G_base) -> torch.Tensor:
        """The reconstruction, [1, 3, R, R] in [-1, 1] (noise mode const)."""
        G = self.generator(G_base)
        with torch.no_grad():
            return G.synthesis(self.w_pivot.to(next(G.parameters()).device), noise_mode='const')

    def metadata(self) -> Dict[str, Any]:
        return {'format': FORMAT, 'version': VERSION, 'base_hash': self.base_hash, 'image_hash': self.image_hash,
                'config': asdict(self.config), 'metrics': {k: asdict(v) for k, v in self.metrics.items()}}

    def save(self, path) -> Path:
        """Write to `path` (a .safetensors file) atomically."""
        from safetensors.torch import save_file
        path = Path(path)
        tensors = {'w_pivot': self.w_pivot.detach().float().cpu().contiguous()}
        tensors.update({f'noise.{k}': v.detach().float().cpu().contiguous() for k, v in self.noise.items()})
        tensors.update({f'delta.{k}{suffix}': t for k, parts in self.packed.items() for suffix, t in parts.items()})
        with atomic_write(path) as tmp:
            save_file(tensors, str(tmp), metadata={'photodrag': json.dumps(self.metadata())})
        return path

    @classmethod
    def load(cls, path) -> 'Inversion':
        from safetensors import SafetensorError, safe_open
        path = Path(path)
        try:
            with safe_open(str(path), framework='pt', device='cpu') as f:
                meta = json.loads((f.metadata() or {}).get('photodrag', 'null'))
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except FileNotFoundError:
            raise PhotodragError(f'no such inversion file: {path}') from None
        except (SafetensorError, OSError, ValueError) as e:
            raise BadCheckpointError(f'{path} is not a readable inversion file ({e})') from None
        if not isinstance(meta, dict) or meta.get('format') != FORMAT or 'w_pivot' not in tensors:
            raise BadCheckpointError(f'{path} is a safetensors file but not a photodrag inversion')
        if meta.get('version') != VERSION:
            raise BadCheckpointError(f'{path} is inversion format version {meta.get("version")}; this photodrag '
                                     f'reads version {VERSION}')
        config = InversionConfig(**meta['config'])
        packed: Dict[str, Dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith('delta.'):
                name = k[len('delta.'):]
                suffix = ''
                if config.delta_format == 'int8':
                    name, suffix = name.rsplit('.', 1)
                    suffix = '.' + suffix
                packed.setdefault(name, {})[suffix] = v
        try:
            deltas = {k: unpack_delta(v) for k, v in packed.items()}
        except (KeyError, RuntimeError, ValueError) as e:
            raise BadCheckpointError(f'{path}: its weight deltas are incomplete or malformed ({e})') from None
        return cls(w_pivot=tensors['w_pivot'], deltas=deltas, packed=packed,
                   noise={k[len('noise.'):]: v for k, v in tensors.items() if k.startswith('noise.')},
                   base_hash=meta['base_hash'], image_hash=meta.get('image_hash', ''),
                   config=config,
                   metrics={k: StageMetrics(**v) for k, v in meta.get('metrics', {}).items()})


def pack_delta(delta: torch.Tensor, fmt: str) -> Dict[str, torch.Tensor]:
    """The stored form of one weight delta (suffix -> tensor; '' for a plain tensor)."""
    delta = delta.detach().float().cpu()
    if fmt == 'fp32':
        return {'': delta.contiguous()}
    if fmt == 'fp16':
        return {'': delta.half().contiguous()}
    if fmt != 'int8':
        raise InvalidSettingsError(f'unknown delta format {fmt!r}; use one of int8, fp16, fp32')
    rows = delta.reshape(delta.shape[0], -1) if delta.ndim > 1 else delta.reshape(1, -1)
    scale = rows.abs().amax(dim=1) / 127
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(rows / safe[:, None]).clamp(-127, 127).to(torch.int8)
    return {'.q': q.reshape(delta.shape).contiguous(), '.scale': scale.contiguous()}


def unpack_delta(packed: Dict[str, torch.Tensor]) -> torch.Tensor:
    """float32 delta from `pack_delta`'s output (the one definition both invert and load use)."""
    if '' in packed:
        return packed[''].float()
    q, scale = packed['.q'], packed['.scale'].float()
    rows = q.reshape(scale.shape[0], -1).float() * scale[:, None]
    return rows.reshape(q.shape)


def generator_hash(G) -> str:
    """sha256 of a generator's architecture and every parameter and buffer: the identity of
    the base checkpoint, whatever file format it came from (or 'random:RES:SEED')."""
    h = hashlib.sha256(json.dumps(getattr(G, 'init_kwargs', {}), sort_keys=True, default=str).encode())
    for name, t in sorted(G.state_dict().items()):
        t = t.detach().to('cpu').contiguous().reshape(-1)
        h.update(f'{name}:{t.dtype}:{tuple(t.shape)};'.encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return h.hexdigest()


def image_hash(target: torch.Tensor) -> str:
    """sha256 of a target image tensor's float32 values and shape."""
    t = target.detach().to('cpu', torch.float32).contiguous()
    return hashlib.sha256(f'{tuple(t.shape)};'.encode() + t.numpy().tobytes()).hexdigest()


def cache_key(img_hash: str, base_hash: str, config: InversionConfig) -> str:
    settings = json.dumps(asdict(config), sort_keys=True)
    return hashlib.sha256(f'{img_hash}|{base_hash}|{settings}'.encode()).hexdigest()[:40]


def default_cache_dir() -> Path:
    return cache_dir() / 'inversions'


def cached_path(root: Optional[Path], key: str) -> Path:
    return Path(root if root is not None else default_cache_dir()) / f'{key}.safetensors'
