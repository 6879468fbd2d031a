"""rosinality/stylegan2-pytorch `.pt` files (used by e4e, ReStyle, HyperStyle) -> our Generator.

The file is a torch.save dict with the generator's state under 'g_ema' (and often
'latent_avg'). rosinality scales the convolution weights by 1/sqrt(fan_in) at run time
instead of storing them scaled; demodulation cancels that factor except inside its 1e-8
epsilon, so we fold it into the stored weights and get the same image.
"""

import math
import re
from typing import Any, Dict, Mapping, Optional

import torch

from photodrag.errors import BadCheckpointError
from photodrag.stylegan.networks import Generator

from photodrag.restricted import check_tensors, short

from .nvidia import load_state_strict


def looks_like_rosinality(data: Any) -> bool:
    return isinstance(data, Mapping) and isinstance(data.get('g_ema'), Mapping) and \
        'conv1.conv.weight' in data['g_ema']


def _channel_spec(channels: Dict[int, int]) -> Dict[str, int]:
    """channel_base/channel_max that reproduce rosinality's per-resolution channel counts."""
    cmax = max(channels.values())
    below = [res for res in sorted(channels) if channels[res] < cmax]
    base = channels[below[0]] * below[0] if below else cmax * max(channels)
    if any(min(base // res, cmax) != ch for res, ch in channels.items()):
        raise BadCheckpointError(f'channel counts {short(channels)} do not follow a channel_base/channel_max rule')
    return dict(channel_base=base, channel_max=cmax)


def build_generator(data: Mapping[str, Any], source: str) -> Generator:
    sd: Mapping[str, torch.Tensor] = check_tensors(data['g_ema'], source, 'g_ema')
    try:
        style_ids = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r'style\.(\d+)\.weight', k)))
        n_mlp = len(style_ids)
        w_dim, z_dim = sd[f'style.{style_ids[-1]}.weight'].shape[0], sd[f'style.{style_ids[0]}.weight'].shape[1]
        n_rgbs = len({k.split('.')[1] for k in sd if k.startswith('to_rgbs.')})
        resolution = 4 * 2 ** n_rgbs
        channels = {4: sd['conv1.conv.weight'].shape[1]}
        for i in range(n_rgbs):
            channels[8 * 2 ** i] = sd[f'convs.{2 * i}.conv.weight'].shape[1]
        lr_mlp = _lr_multiplier(data)
    except (KeyError, IndexError, ValueError) as e:
        raise BadCheckpointError(f'{source}: not a complete rosinality generator state ({e})') from None
    try:
        G = Generator(z_dim=z_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=3,
                      mapping_kwargs=dict(num_layers=n_mlp, lr_multiplier=lr_mlp),
                      synthesis_kwargs=_channel_spec(channels))
    except (TypeError, ValueError) as e:
        raise BadCheckpointError(f'{source}: its weights do not describe a usable generator: {e}') from None
    try:
        tensors = _convert(G, sd, source)
    except (IndexError, RuntimeError, ValueError) as e:
        raise BadCheckpointError(f'{source}: a g_ema tensor has the wrong shape ({short(e, 120)})') from None
    tensors['mapping.w_avg'] = _w_avg(G, data, tensors, source)
    load_state_strict(G, tensors, source)
    return G


def _lr_multiplier(data: Mapping[str, Any]) -> float:
    args = data.get('args')
    value = getattr(args, 'lr_mlp', None) if args is not None else None
    if value is None:
        return 0.01
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e3:
        raise ValueError(f"args.lr_mlp is {type(value).__name__} {str(value)[:30]}, not a learning-rate multiplier")
    return float(value)


def _convert(G: Generator, sd: Mapping[str, torch.Tensor], source: str) -> Dict[str, torch.Tensor]:
    out: Dict[str, torch.Tensor] = {}

    def get(name):
        if name not in sd:
            raise BadCheckpointError(f'{source}: {name} is missing from g_ema')
        return sd[name].float()

    def styled(ours: str, theirs: str, noise: Optional[str]):
        w = get(f'{theirs}.conv.weight')[0]
        out[f'{ours}.weight'] = w / math.sqrt(w[0].numel())
        out[f'{ours}.affine.weight'] = get(f'{theirs}.conv.modulation.weight')
        out[f'{ours}.affine.bias'] = get(f'{theirs}.conv.modulation.bias')
        out[f'{ours}.bias'] = get(f'{theirs}.activate.bias')
        out[f'{ours}.noise_strength'] = get(f'{theirs}.noise.weight').reshape([])
        out[f'{ours}.noise_const'] = get(noise)[0, 0]

    def to_rgb(ours: str, theirs: str):
        out[f'{ours}.weight'] = get(f'{theirs}.conv.weight')[0]
        out[f'{ours}.affine.weight'] = get(f'{theirs}.conv.modulation.weight')
        out[f'{ours}.affine.bias'] = get(f'{theirs}.conv.modulation.bias')
        out[f'{ours}.bias'] = get(f'{theirs}.bias').reshape(-1)

    for i in range(G.mapping.num_layers):
        out[f'mapping.fc{i}.weight'] = get(f'style.{i + 1}.weight')
        out[f'mapping.fc{i}.bias'] = get(f'style.{i + 1}.bias')
    out['synthesis.b4.const'] = get('input.input')[0]
    styled('synthesis.b4.conv1', 'conv1', 'noises.noise_0')
    to_rgb('synthesis.b4.torgb', 'to_rgb1')
    for i, res in enumerate(G.synthesis.block_resolutions[1:]):
        styled(f'synthesis.b{res}.conv0', f'convs.{2 * i}', f'noises.noise_{2 * i + 1}')
        styled(f'synthesis.b{res}.conv1', f'convs.{2 * i + 1}', f'noises.noise_{2 * i + 2}')
        to_rgb(f'synthesis.b{res}.torgb', f'to_rgbs.{i}')
    for name, buf in G.named_buffers():
        if name.endswith('resample_filter'):
            out[name] = buf
    return out


def _w_avg(G: Generator, data: Mapping[str, Any], tensors: Dict[str, torch.Tensor], source: str) -> torch.Tensor:
    latent_avg = data.get('latent_avg')
    if latent_avg is not None:
        latent_avg = check_tensors({'latent_avg': latent_avg}, source, 'the file')['latent_avg']
        if latent_avg.numel() == 0 or latent_avg.numel() % G.w_dim:
            raise BadCheckpointError(f'{source}: latent_avg has shape {tuple(latent_avg.shape)[:4]}, which does '
                                     f'not hold {G.w_dim}-d latents')
        return latent_avg.float().reshape(-1, G.w_dim)[0]
    # No stored average: estimate it as NVIDIA's tools do, from mapped random z (seeded).
    load_state_strict(G, {**tensors, 'mapping.w_avg': torch.zeros(G.w_dim)}, source)
    z = torch.randn(10000, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return G.mapping(z, None)[:, 0].mean(0)
