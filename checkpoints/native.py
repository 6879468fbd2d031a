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

from photodrag.errors import BadCheckpointError, PhotodragError, is_number
from photodrag.io import atomic_write
from photodrag.restricted import short
from photodrag.stylegan.networks import Generator

from .nvidia import load_state_strict

FORMAT = 'photodrag-generator'
VERSION = 1
META_KEY = 'photodrag'
# crop recipes a checkpoint may ask for (registry `alignment` names and alignment.RECIPES names)
CROP_RECIPES = ('ffhq', 'afhq', 'car', 'none', 'object', 'digiface', 'body')


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


MAX_CONFIG_BYTES = 1 << 20     # a generator's config is a few hundred bytes


def _json(text: str, where: str):
    if len(text) > MAX_CONFIG_BYTES:
        raise BadCheckpointError(f'{where} is {len(text):,} characters; a generator config is a few hundred')
    try:
        return json.loads(text)
    except RecursionError:
        raise BadCheckpointError(f'{where} nests too deeply to be a generator config') from None
    except ValueError as e:
        raise BadCheckpointError(f'{where} is not valid JSON: {short(e, 120)}') from None


def _sidecar_config(path: Path) -> Optional[dict]:
    for candidate in (path.with_suffix('.json'), path.parent / 'config.json'):
        if candidate.is_file():
            try:
                text = candidate.read_text(encoding='utf-8')
            except (OSError, UnicodeDecodeError) as e:
                raise BadCheckpointError(f'cannot read {candidate}: {short(e, 120)}') from None
            return _json(text, str(candidate))
    return None


def read_meta(meta: Any, where: str) -> Dict[str, Any]:
    """The checked photodrag metadata of a checkpoint: a dict with format, version and a
    config dict (a bare config, as some sidecars hold, is accepted), or a one-line error."""
    if not isinstance(meta, dict):
        raise BadCheckpointError(f'{where}: the generator config is {type(meta).__name__}, not a JSON object')
    if 'config' not in meta and 'img_resolution' in meta:
        meta = {'format': FORMAT, 'version': VERSION, 'config': meta}
    if meta.get('format') != FORMAT or not isinstance(meta.get('config'), dict):
        raise BadCheckpointError(f'{where} is not a photodrag generator (format {short(meta.get("format"), 40)!r})')
    version = meta.get('version', VERSION)
    if not is_number(version, 1, whole=True):
        raise BadCheckpointError(f'{where}: format version {short(version, 30)!r} is not a whole number >= 1')
    if version > VERSION:
        raise BadCheckpointError(f'{where} was written by a newer photodrag (format version {version}); '
                                 'upgrade photodrag to read it')
    alignment = meta.get('alignment')
    if alignment is not None:
        try:
            check_crop_meta(alignment)
        except PhotodragError as e:
            raise BadCheckpointError(f'{where}: its crop recipe is unusable: {e}') from None
    return meta


def check_crop_meta(info: Any) -> Dict[str, Any]:
    """The crop recipe a checkpoint file records, checked: {'recipe': name[, 'quad_scale': s,
    'quad_shift': [dx, dy]]} as `training/train_demo.py` writes it. The names are this file
    format's vocabulary; `alignment.recipe_from_metadata` turns them into crops."""
    name = info.get('recipe') if isinstance(info, dict) else None
    if name not in CROP_RECIPES:
        raise PhotodragError(f'the checkpoint asks for crop recipe {short(name, 40)!r}, which photodrag does not know; '
                             f'known: {", ".join(CROP_RECIPES)}')
    scale, shift = info.get('quad_scale', 1.0), info.get('quad_shift', (0.0, 0.0))
    if not (is_number(scale, 0.1, 10) and isinstance(shift, (list, tuple)) and len(shift) == 2
            and all(is_number(v, -1, 1) for v in shift)):
        raise PhotodragError(f'the checkpoint\'s crop recipe {name!r} needs quad_scale in 0.1..10 and quad_shift '
                             f'[dx, dy] within +-1, not {str(scale)[:30]} and {str(shift)[:40]}')
    return info


def build_from_config(config: Any):
    """The generator a saved config describes: StyleGAN3 (`architecture: 'stylegan3'`, its
    filters then come with the weights) or StyleGAN2."""
    if isinstance(config, dict) and config.get('architecture') == 'stylegan3':
        from photodrag.stylegan.alias_free import AliasFreeGenerator
        return AliasFreeGenerator(**{k: v for k, v in config.items() if k != 'architecture'}, design_filters=False)
    if not isinstance(config, dict):
        raise ValueError(f'the config must be an object, not {type(config).__name__}')
    return Generator(**config)


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
            raw = metadata.get(META_KEY)
            meta = _json(raw, f'{path}: its photodrag metadata') if raw is not None else _sidecar_config(path)
            if meta is None and raw is None:
                raise BadCheckpointError(f'{path} is a safetensors file without a photodrag generator config '
                                         '(neither in its metadata nor in a .json beside it)')
            meta = read_meta(meta, str(path))
            try:                            # the config is checked before any weight is read
                G = build_from_config(meta['config'])
            except (TypeError, ValueError) as e:
                raise BadCheckpointError(f'{path}: its config does not describe a generator: {short(e, 200)}') \
                    from None
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise BadCheckpointError(f'{path} is not a readable safetensors file: {short(e, 160)}') from None
    load_state_strict(G, tensors, str(path))
    # The crop its training images follow (e.g. the demo generator's), for the alignment stage.
    G.crop_recipe = meta.get('alignment') if isinstance(meta.get('alignment'), dict) else None
    return G.to(device)
