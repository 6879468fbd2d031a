"""photodrag's own generator format: safetensors weights + a JSON config.

One `.safetensors` file whose metadata holds the JSON config under the key 'photodrag'
({"format": "photodrag-generator", "version": 1, "config": Generator.init_kwargs, ...}).
A config may also sit beside the weights as `<name>.json` (or `config.json` in a
directory holding one `.safetensors` file). Loading runs no code: safetensors is a flat
tensor container and the config is JSON.
"""

import json
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from photodrag.errors import BadCheckpointError, PhotodragError
from photodrag.io import atomic_write
from photodrag.stylegan.networks import Generator

from .nvidia import load_state_strict

FORMAT = 'photodrag-generator'
VERSION = 1
META_KEY = 'photodrag'


def save_generator(G: Generator, path, extra: Optional[Dict[str, Any]] = None, overwrite: bool = False) -> Path:
    """Write G to `path` (.safetensors with the config inside), atomically."""
    from safetensors.torch import save_file
    path = Path(path)
    if path.exists() and not overwrite:
        raise PhotodragError(f'{path} already exists; choose another name or allow overwriting')
    meta = {'format': FORMAT, 'version': VERSION, 'config': G.init_kwargs}
    if getattr(G, 'crop_recipe', None):     # the crop recipe a loaded checkpoint carried travels on
        meta['alignment'] = G.crop_recipe
    if extra:
        meta.update(extra)
    tensors = {k: v.detach().to('cpu', torch.float32).contiguous().clone() for k, v in G.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
    return path


def _sidecar_config(path: Path) -> Optional[dict]:
    for candidate in (path.with_suffix('.json'), path.parent / 'config.json'):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except (OSError, ValueError) as e:
                raise BadCheckpointError(f'{candidate} is not valid JSON: {e}') from None
    return None


def load_native(path, device='cpu') -> Generator:
    from safetensors import SafetensorError, safe_open
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob('*.safetensors'))
        if len(files) != 1:
            raise BadCheckpointError(f'{path} should hold exactly one .safetensors file, found {len(files)}')
        path = files[0]
    try:
        with safe_open(str(path), framework='pt', device='cpu') as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise BadCheckpointError(f'{path} is not a readable safetensors file: {e}') from None
    if META_KEY in metadata:
        try:
            meta = json.loads(metadata[META_KEY])
        except ValueError as e:
            raise BadCheckpointError(f'{path}: its photodrag metadata is not JSON ({e})') from None
    else:
        meta = _sidecar_config(path)
        if meta is None:
            raise BadCheckpointError(f'{path} is a safetensors file without a photodrag generator config '
                                     '(neither in its metadata nor in a .json beside it)')
    if 'config' not in meta and 'img_resolution' in meta:
        meta = {'format': FORMAT, 'version': VERSION, 'config': meta}
    if meta.get('format') != FORMAT or not isinstance(meta.get('config'), dict):
        raise BadCheckpointError(f'{path} is not a photodrag generator (format {meta.get("format")!r})')
    if int(meta.get('version', 0)) > VERSION:
        raise BadCheckpointError(f'{path} was written by a newer photodrag (format version {meta["version"]}); '
                                 'upgrade photodrag to read it')
    try:
        G = Generator(**meta['config'])
    except (TypeError, ValueError) as e:
        raise BadCheckpointError(f'{path}: its config does not describe a generator: {e}') from None
    load_state_strict(G, tensors, str(path))
    # The crop its training images follow (e.g. the demo generator's), for the alignment stage.
    G.crop_recipe = meta.get('alignment') if isinstance(meta.get('alignment'), dict) else None
    return G.to(device)
