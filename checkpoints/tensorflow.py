"""Original TensorFlow StyleGAN2 pickles (DragGAN's car and cat models) -> our Generator.

The pickle is a tuple (G, D, Gs) of dnnlib.tflib Network objects holding numpy variables;
we read Gs without TensorFlow. Variable layouts: dense weights [in, out]; conv weights
[kh, kw, in, out]; the upsampling convolution's kernel is stored flipped relative to
NVIDIA's PyTorch convention; modulation biases are stored minus one.
"""

import re
from typing import Any, Dict

import numpy as np
import torch

from photodrag.errors import BadCheckpointError
from photodrag.stylegan.networks import Generator

from .nvidia import load_state_strict
from photodrag.restricted import TFNetwork, short

# TF keyword -> (our keyword, default); None = the TF default.
_SYNTHESIS_KEYS = {
    'fmap_max': ('channel_max', 512), 'num_fp16_res': ('num_fp16_res', 0), 'conv_clamp': ('conv_clamp', None),
    'architecture': ('architecture', 'skip'), 'resample_kernel': ('resample_filter', [1, 3, 3, 1]),
    'use_noise': ('use_noise', True), 'nonlinearity': ('activation', 'lrelu'),
}
_MAPPING_KEYS = {
    'mapping_layers': ('num_layers', 8), 'label_fmaps': ('embed_features', None),
    'mapping_fmaps': ('layer_features', None), 'mapping_nonlinearity': ('activation', 'lrelu'),
    'mapping_lrmul': ('lr_multiplier', 0.01), 'w_avg_beta': ('w_avg_beta', 0.995),
}
# Keywords that only steer TensorFlow graph building, sampling or training.
_IGNORED = {'truncation_psi', 'truncation_cutoff', 'truncation_psi_val', 'truncation_cutoff_val',
            'dlatent_avg_beta', 'style_mixing_prob', 'structure', 'conditioning', 'fused_modconv',
            'randomize_noise', 'is_training', 'is_validation', 'is_template_graph', 'components', 'dtype',
            'return_dlatents', 'force_clean_graph', 'func_name', 'mapping_func', 'synthesis_func',
            'fmap_min', 'fmap_decay', 'normalize_latents', 'use_wscale', 'dlatent_broadcast'}


def is_tf_pickle(data: Any) -> bool:
    return isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetwork) for n in data)


def _variables(net: TFNetwork, prefix: str = '') -> Dict[str, np.ndarray]:
    """Every variable of the network and its components, each component once (no recursion:
    a crafted pickle whose components share or contain each other is refused at once)."""
    from photodrag.restricted import MAX_DEPTH, MAX_MODULES, short
    out = {}
    seen = set()
    todo = [(net, prefix, 0)]
    while todo:
        node, where, depth = todo.pop()
        if id(node) in seen or len(seen) >= MAX_MODULES or depth > MAX_DEPTH:
            raise BadCheckpointError(f'the TensorFlow network is not a tree of components ({short(where)}: shared, '
                                     'cyclic or nested too deep; a crafted file?)')
        seen.add(id(node))
        variables = node.state.get('variables') or []
        if not isinstance(variables, (list, tuple)):
            raise BadCheckpointError('malformed variable list in TensorFlow pickle')
        for item in variables:
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str) and
                    isinstance(item[1], (np.ndarray, np.generic))):
                raise BadCheckpointError('malformed variable list in TensorFlow pickle')
            out[where + str(item[0])] = np.asarray(item[1])
        components = node.state.get('components') or {}
        if not isinstance(components, dict):
            raise BadCheckpointError('malformed component list in TensorFlow pickle')
        for name, comp in components.items():
            if not isinstance(comp, TFNetwork):
                raise BadCheckpointError(f'component {short(name)} of the TensorFlow network is not a network')
            todo.append((comp, f'{where}{name}/', depth + 1))
    return out


def generator_kwargs(static_kwargs: Dict[str, Any]) -> Dict[str, Any]:
    fmap_decay, fmap_min = static_kwargs.get('fmap_decay', 1.0), static_kwargs.get('fmap_min', 1)
    if not isinstance(fmap_min, (int, type(None))) or not isinstance(fmap_decay, (int, float, type(None))):
        raise BadCheckpointError('TensorFlow generator has a non-numeric fmap_min or fmap_decay')
    if fmap_decay not in (None, 1, 1.0) or (fmap_min or 1) > 1:
        raise BadCheckpointError(f'TensorFlow generator uses fmap_decay={fmap_decay}, fmap_min={fmap_min}; '
                                 'only the StyleGAN2 defaults (1.0, 1) are supported')
    known = set(_SYNTHESIS_KEYS) | set(_MAPPING_KEYS) | _IGNORED | {
        'latent_size', 'label_size', 'dlatent_size', 'resolution', 'num_channels', 'fmap_base'}
    unknown = sorted(short(k, 40) for k in set(static_kwargs) - known)
    if unknown:
        raise BadCheckpointError(f'TensorFlow generator uses options photodrag does not know: {unknown[:8]}')

    def get(key, default):
        value = static_kwargs.get(key, default)
        return default if value is None else value

    synthesis = {ours: static_kwargs.get(tf, default) if tf in static_kwargs else default
                 for tf, (ours, default) in _SYNTHESIS_KEYS.items()}
    fmap_base = get('fmap_base', 16384)
    if isinstance(fmap_base, bool) or not isinstance(fmap_base, int):
        raise BadCheckpointError(f'TensorFlow generator has fmap_base {short(fmap_base, 30)!r}, not a whole number')
    synthesis['channel_base'] = fmap_base * 2   # TF counts channels from stage 1
    mapping = {ours: static_kwargs.get(tf, default) if tf in static_kwargs else default
               for tf, (ours, default) in _MAPPING_KEYS.items()}
    if mapping['w_avg_beta'] is None:
        mapping['w_avg_beta'] = 1
    return dict(z_dim=get('latent_size', 512), c_dim=get('label_size', 0), w_dim=get('dlatent_size', 512),
                img_resolution=get('resolution', 1024), img_channels=get('num_channels', 3),
                mapping_kwargs=mapping, synthesis_kwargs=synthesis)


def build_generator(data: tuple, source: str) -> Generator:
    Gs = data[2]
    state = Gs.state
    version = state.get('version')
    if isinstance(version, bool) or not isinstance(version, int):
        raise BadCheckpointError(f'{source}: TensorFlow pickle version {short(version, 30)!r} is not a whole number')
    if version < 4:
        raise BadCheckpointError(f'{source}: TensorFlow pickle version {version} is too old '
                                 '(StyleGAN2 pickles are version 4)')
    static = state.get('static_kwargs') or {}
    if not isinstance(static, dict) or not all(isinstance(k, str) for k in static):
        raise BadCheckpointError(f'{source}: the TensorFlow generator\'s static_kwargs are not a dict of names')
    static = dict(static)
    tf = _variables(Gs)
    if any(re.fullmatch(r'ToRGB_lod\d+/.*', k) for k in tf) or 'mapping/Dense0/weight' not in tf:
        raise BadCheckpointError(f'{source}: this TensorFlow network is not a StyleGAN2 generator '
                                 '(StyleGAN1 / progressive-GAN pickles are not supported)')
    try:
        G = Generator(**generator_kwargs(static))
    except (TypeError, ValueError) as e:
        raise BadCheckpointError(f'{source}: cannot build a generator from its settings: {short(e, 200)}') from None
    try:
        tensors = _convert(G, tf, source)
    except (IndexError, ValueError, TypeError) as e:
        raise BadCheckpointError(f'{source}: a TensorFlow variable has the wrong shape or type ({short(e, 120)})') \
            from None
    load_state_strict(G, tensors, source)
    return G


def _convert(G: Generator, tf: Dict[str, np.ndarray], source: str) -> Dict[str, torch.Tensor]:
    def var(name):
        if name not in tf:
            raise BadCheckpointError(f'{source}: TensorFlow variable {name} is missing')
        return tf[name]

    def conv(name, flip=False):
        w = var(name)
        if flip:
            w = w[::-1, ::-1]
        return w.transpose(3, 2, 0, 1)

    def layer(ours: str, theirs: str, noise_index: int, flip: bool = False):
        out[f'{ours}.weight'] = conv(f'{theirs}/weight', flip)
        out[f'{ours}.bias'] = var(f'{theirs}/bias')
        out[f'{ours}.affine.weight'] = var(f'{theirs}/mod_weight').T
        out[f'{ours}.affine.bias'] = var(f'{theirs}/mod_bias') + 1
        if f'{theirs}/noise_strength' in tf:
            out[f'{ours}.noise_strength'] = var(f'{theirs}/noise_strength')
            out[f'{ours}.noise_const'] = var(f'synthesis/noise{noise_index}')[0, 0]

    out: Dict[str, Any] = {}
    m = G.mapping
    out['mapping.w_avg'] = var('dlatent_avg')
    if m.c_dim:
        out['mapping.embed.weight'] = var('mapping/LabelEmbed/weight').T
        out['mapping.embed.bias'] = var('mapping/LabelEmbed/bias')
    for i in range(m.num_layers):
        out[f'mapping.fc{i}.weight'] = var(f'mapping/Dense{i}/weight').T
        out[f'mapping.fc{i}.bias'] = var(f'mapping/Dense{i}/bias')
    for res in G.synthesis.block_resolutions:
        r = f'synthesis/{res}x{res}'
        b = f'synthesis.b{res}'
        log2 = int(np.log2(res))
        if res == 4:
            out[f'{b}.const'] = var(f'{r}/Const/const')[0]
            layer(f'{b}.conv1', f'{r}/Conv', 0)
        else:
            layer(f'{b}.conv0', f'{r}/Conv0_up', 2 * log2 - 5, flip=True)
            layer(f'{b}.conv1', f'{r}/Conv1', 2 * log2 - 4)
            if f'{r}/Skip/weight' in tf:
                out[f'{b}.skip.weight'] = conv(f'{r}/Skip/weight', flip=True)
        if f'{r}/ToRGB/weight' in tf:
            out[f'{b}.torgb.weight'] = conv(f'{r}/ToRGB/weight')
            out[f'{b}.torgb.bias'] = var(f'{r}/ToRGB/bias')
            out[f'{b}.torgb.affine.weight'] = var(f'{r}/ToRGB/mod_weight').T
            out[f'{b}.torgb.affine.bias'] = var(f'{r}/ToRGB/mod_bias') + 1
    tensors = {k: torch.tensor(np.array(v, dtype=np.float32)) for k, v in out.items()}
    # Filters are not variables in TF; they follow from resample_kernel.
    tensors.update({k: b for k, b in G.named_buffers() if k.endswith('resample_filter')})
    return tensors
