"""`load_generator`: any supported checkpoint file or name -> our Generator, running no code.

Formats are told apart by their first bytes, never by file name:
- safetensors (+ JSON config): photodrag's own format;
- a zip archive or legacy torch.save stream: read by torch's weights-only loader, then a
  rosinality `.pt` (state under 'g_ema') or one of our state dicts;
- a plain pickle: read by `RestrictedUnpickler`, then an NVIDIA network pickle (G_ema)
  or an original TensorFlow StyleGAN2 pickle (G, D, Gs).
"""

import argparse
import os
import re
import struct
from pathlib import Path
from typing import Union

import torch

from photodrag.errors import BadCheckpointError, CheckpointNotFoundError, UnsafeCheckpointError
from photodrag.stylegan.networks import Generator, grow

from . import cache, native, nvidia, rosinality, tensorflow
from .registry import REGISTRY, get_entry, named_entry
from photodrag.restricted import restricted_load, short

_LEGACY_TORCH_MAGIC = b'\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19'
_IMAGE_MAGIC = {b'\x89PNG': 'a PNG image', b'\xff\xd8\xff': 'a JPEG image', b'GIF8': 'a GIF image'}
_RANDOM = re.compile(r'random:(\d+)(?::(\d+))?')

PathOrName = Union[str, os.PathLike]


def detect_format(path: Path) -> str:
    """'safetensors', 'torch' (zip or legacy torch.save) or 'pickle'; raises for anything else."""
    try:
        with open(path, 'rb') as f:
            head = f.read(16)
    except IsADirectoryError:
        return 'safetensors'
    except OSError as e:
        raise CheckpointNotFoundError(f'cannot read {path}: {e.strerror or e}') from None
    if not head:
        raise BadCheckpointError(f'{path} is empty')
    if head.startswith(b'PK\x03\x04') or head.startswith(_LEGACY_TORCH_MAGIC):
        return 'torch'
    if len(head) >= 9 and head[8:9] == b'{':
        (header_len,) = struct.unpack('<Q', head[:8])
        if 2 <= header_len <= path.stat().st_size:
            return 'safetensors'
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return 'pickle'
    for magic, what in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            raise BadCheckpointError(f'{path} is {what}, not a checkpoint')
    raise BadCheckpointError(f'{path} is not a checkpoint photodrag can read (expected an NVIDIA or '
                             'TensorFlow pickle, a rosinality .pt, or a photodrag .safetensors)')


def load_file(path: PathOrName) -> Generator:
    """Read a checkpoint file of any supported format into a Generator on the CPU."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f'no such file: {path}')
    if not (path.is_file() or path.is_dir()):
        raise BadCheckpointError(f'{path} is not a regular file (a device, a pipe?); a checkpoint is a file')
    fmt = detect_format(path)
    source = str(path)
    if fmt == 'safetensors':
        return native.load_native(path)
    if fmt == 'torch':
        return _load_torch(path, source)
    with open(path, 'rb') as f:
        data = restricted_load(f, source)
    try:
        if tensorflow.is_tf_pickle(data):
            return tensorflow.build_generator(data, source)
        return nvidia.build_generator(nvidia.find_generator(data, source), source)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError, OverflowError) as e:
        # The readers check what real pickles hold; a crafted one can still put an odd type
        # anywhere in its settings. It is refused in one line, like any other bad file.
        raise BadCheckpointError(f'{source} holds a network with malformed settings ({type(e).__name__}: '
                                 f'{short(e, 120)})') from None


def _load_torch(path: Path, source: str) -> Generator:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(str(path), map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, zipfile errors, ...
        message = str(e)
        if 'Weights only load failed' in message:
            match = re.search(r'(?i)unsupported (?:global: )?GLOBAL ([\w.]+)', message)
            what = match.group(1) if match else 'objects that are not weights'
            raise UnsafeCheckpointError(f'{source} asks to use {what}, which a checkpoint has no business '
                                        'with; it was refused and nothing in the file ran') from None
        first = message.strip().splitlines()[0] if message.strip() else type(e).__name__
        raise BadCheckpointError(f'{source} is truncated or corrupt: {first}') from None
    if rosinality.looks_like_rosinality(data):
        return rosinality.build_generator(data, source)
    raise BadCheckpointError(f'{source} is a torch file but not a generator photodrag knows (expected a '
                             "rosinality checkpoint with 'g_ema')")


def random_generator(resolution: int = 512, seed: int = 0, **synthesis_kwargs) -> Generator:
    """A generator with NVIDIA's initialisation and the FFHQ architecture (channel_base
    32768, channel_max 512) unless told otherwise. Random weights draw noise-like images:
    for testing mechanics and measuring speed, not for editing."""
    kwargs = dict(channel_base=32768, channel_max=512)
    kwargs.update(synthesis_kwargs)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Generator(img_resolution=resolution, **kwargs)


def resolve_path(path_or_name: PathOrName, download: bool = True, progress=None) -> Path:
    """The file behind a path or a registry name, downloading it into the cache if allowed."""
    text = os.fspath(path_or_name)
    if text not in REGISTRY and Path(text).exists():     # registry names win over files (named_entry)
        return Path(text)
    if text in REGISTRY:
        entry = get_entry(text)
        if not entry.supported:
            raise BadCheckpointError(f'{entry.name}: {entry.notes}')
        if entry.bundled:
            if entry.bundled_path.is_file():
                return entry.bundled_path
            raise CheckpointNotFoundError(f'{entry.name} should ship with photodrag at {entry.bundled_path}, '
                                          'but that file is missing; reinstall photodrag')
        path = cache.local_path(entry)
        if path.exists():
            return path
        if not download:
            raise CheckpointNotFoundError(f'{entry.name} is not downloaded yet; run `photodrag checkpoints '
                                          f'download {entry.name}`. ' + cache.manual_instructions(entry))
        return cache.download(entry.name, progress=progress).path
    raise CheckpointNotFoundError(f'{text!r} is neither a file nor a known checkpoint name; '
                                  '`photodrag checkpoints list` shows the names')


def load_generator(path_or_name: PathOrName, device='cpu', *, download: bool = True,
                   progress=None) -> Generator:
    """A StyleGAN2 Generator (eval mode, no gradients on its weights) from a checkpoint file,
    a registry name (downloaded into the cache on first use unless `download=False`), or
    'random:RES[:SEED]' for random weights. A registry entry with `grown_from` is its file's
    generator grown to the entry's resolution (`stylegan.grow`, seed 0: the same every time)."""
    text = os.fspath(path_or_name)
    match = _RANDOM.fullmatch(text)
    if match:                                       # as names do, random:RES wins over a file of that name
        try:
            G = random_generator(int(match.group(1)), int(match.group(2) or 0))
        except ValueError as e:
            raise BadCheckpointError(f'{text}: {e}') from None
    else:
        G = load_file(resolve_path(text, download=download, progress=progress))
        entry = named_entry(text)
        if entry is not None and entry.grown_from:
            G = grow(G, entry.resolution)
    return G.eval().requires_grad_(False).to(device)


def describe(G: Generator) -> str:
    """One line about a generator's architecture, for CLI output."""
    if getattr(G, 'family', None) == 'stylegan3':
        s = G.init_kwargs
        kind = 'StyleGAN3-R' if s['use_radial_filters'] else 'StyleGAN3-T'
    else:
        s, kind = G.init_kwargs['synthesis_kwargs'], 'StyleGAN2'
        if not s.get('square', True):
            kind += f' ({G.img_resolution}x{G.img_resolution // 2} on a white square canvas)'
    return (f'{G.img_resolution}px {kind}, {G.num_ws} ws of {G.w_dim}, channels '
            f'{s["channel_base"]}/{s["channel_max"]}, {G.mapping.num_layers} mapping layers'
            + (f', {G.c_dim}-class conditional' if G.c_dim else ''))

