"""NVIDIA network pickles (stylegan2-ada-pytorch, the stylegan3 repository's StyleGAN2 and
StyleGAN3, DragGAN's models) -> our Generator or AliasFreeGenerator, rebuilt from the pickled
constructor keywords and state; no code from the file runs.
"""

from typing import Any, Dict, Mapping

import torch

from photodrag.errors import BadCheckpointError
from photodrag.stylegan.networks import MAPPING_DEFAULTS, OPTIONAL_SYNTHESIS, SYNTHESIS_DEFAULTS, Generator

from photodrag.restricted import PersistentObject, finite_or_raise, module_tensors, short

_GENERATOR_ARGS = ('z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'mapping_kwargs', 'synthesis_kwargs')


def find_generator(data: Any, source: str) -> PersistentObject:
    """The generator to use from a loaded pickle: G_ema (the weights NVIDIA samples from),
    or a bare pickled Generator."""
    if isinstance(data, PersistentObject):
        candidate, where = data, 'the pickle'
    elif isinstance(data, Mapping):
        if 'G_ema' not in data:
            from photodrag.restricted import some_keys
            raise BadCheckpointError(f'{source} holds no generator: it has {some_keys(data)}, and photodrag '
                                     'needs G_ema')
        candidate, where = data['G_ema'], 'G_ema'
    else:
        raise BadCheckpointError(f'{source} is a pickle of {type(data).__name__}, not a network pickle')
    if not isinstance(candidate, PersistentObject):
        raise BadCheckpointError(f'{where} in {source} is {type(candidate).__name__}, not a network')
    if candidate.class_name != 'Generator':
        raise BadCheckpointError(f'{where} in {source} is a {candidate.class_name}, not a Generator')
    children = candidate.children
    synthesis = children.get('synthesis')
    if 'mapping' not in children or not isinstance(synthesis, PersistentObject):
        raise BadCheckpointError(f'{where} in {source} lacks a mapping or synthesis network')
    if synthesis.class_name != 'SynthesisNetwork':
        raise BadCheckpointError(f'{where} in {source} has a {synthesis.class_name}, not a SynthesisNetwork')
    return candidate


def is_stylegan3(G: PersistentObject) -> bool:
    """Whether a pickled Generator is NVIDIA's StyleGAN3 (its synthesis starts from Fourier features)."""
    synthesis = G.children.get('synthesis')
    return isinstance(synthesis, PersistentObject) and 'input' in synthesis.children


def _first_layer_attr(net: PersistentObject, attr: str):
    for block_name in sorted(net.children, key=lambda n: int(n[1:]) if n[1:].isdigit() else 0):
        block = net.children[block_name]
        for layer_name in ('conv0', 'conv1'):
            layer = block.children.get(layer_name) if isinstance(block, PersistentObject) else None
            if isinstance(layer, PersistentObject) and attr in layer.state:
                return True, layer.state[attr]
    return False, None


def generator_kwargs(G: PersistentObject) -> Dict[str, Any]:
    """Our Generator's keywords for a pickled NVIDIA Generator.

    Explicit pickled keywords win; what the pickle leaves to its code's defaults (which
    differ between the two NVIDIA generations: conv_clamp, num_fp16_res) is read from the
    attributes the constructed modules stored in their state.
    """
    args = G.init_args
    if len(args) > len(_GENERATOR_ARGS):
        raise BadCheckpointError(f'Generator was built with {len(args)} positional arguments; expected at most 7')
    kwargs = dict(zip(_GENERATOR_ARGS, args))
    kwargs.update(G.init_kwargs)
    mapping = dict(kwargs.pop('mapping_kwargs', None) or {})
    synthesis = dict(kwargs.pop('synthesis_kwargs', None) or {})
    for key in list(kwargs):
        if key in SYNTHESIS_DEFAULTS or key == 'fused_modconv_default':
            synthesis[key] = kwargs.pop(key)
    kwargs.pop('epochs', None)  # a training counter some forks add
    _dimensions(G, kwargs)

    net = G.children['synthesis']
    if 'conv_clamp' not in synthesis:
        found, value = _first_layer_attr(net, 'conv_clamp')
        if found:
            synthesis['conv_clamp'] = value
    if 'num_fp16_res' not in synthesis:
        blocks = [b for b in net.children.values() if isinstance(b, PersistentObject)]
        synthesis['num_fp16_res'] = sum(bool(b.state.get('use_fp16')) for b in blocks)
    b4 = net.children.get('b4')
    if 'architecture' not in synthesis:
        if isinstance(b4, PersistentObject) and 'architecture' in b4.state:
            synthesis['architecture'] = b4.state['architecture']
    if 'square' not in synthesis and isinstance(b4, PersistentObject):
        # StyleGAN-Human's generators (512x256, 1024x512) record no keyword for it (DragGAN passes
        # square=False itself): their learned constant is 4x2
        const = (b4.state.get('_parameters') or {}).get('const')
        if isinstance(const, torch.Tensor) and const.ndim == 3 and tuple(const.shape[1:]) == (4, 2):
            synthesis['square'] = False
    mapping_net = G.children['mapping']
    if isinstance(mapping_net, PersistentObject):
        for key in ('num_layers', 'w_avg_beta'):
            if key not in mapping and key in mapping_net.state:
                mapping[key] = mapping_net.state[key]
        fc0 = mapping_net.children.get('fc0')
        if isinstance(fc0, PersistentObject):
            if 'lr_multiplier' not in mapping and 'bias_gain' in fc0.state:
                mapping['lr_multiplier'] = float(fc0.state['bias_gain'])
            if 'activation' not in mapping and 'activation' in fc0.state:
                mapping['activation'] = fc0.state['activation']
    unknown = sorted(map(str, set(synthesis) - set(SYNTHESIS_DEFAULTS) - set(OPTIONAL_SYNTHESIS)
                         - {'fused_modconv_default'}))
    unknown += sorted(map(str, set(mapping) - set(MAPPING_DEFAULTS) - {'freeze_layers', 'freeze_embed'}))
    if unknown:
        raise BadCheckpointError('the pickled Generator uses options photodrag does not implement: '
                                 f'{[short(k, 40) for k in unknown[:8]]}')
    kwargs['mapping_kwargs'] = mapping
    kwargs['synthesis_kwargs'] = synthesis
    return kwargs


def build_generator(G: PersistentObject, source: str):
    """Construct our Generator (StyleGAN2) or AliasFreeGenerator (StyleGAN3) from a pickled one
    and copy its parameters and buffers."""
    if is_stylegan3(G):
        return build_stylegan3(G, source)
    kwargs = generator_kwargs(G)
    try:
        ours = Generator(**kwargs)
    except (TypeError, ValueError) as e:
        raise BadCheckpointError(f'{source}: cannot build a generator from its settings: {short(e, 200)}') from None
    load_state_strict(ours, module_tensors(G), source)
    return ours


def stylegan3_kwargs(G: PersistentObject) -> Dict[str, Any]:
    """AliasFreeGenerator's keywords for a pickled StyleGAN3 Generator: its constructor's, the
    synthesis keywords flat as the stylegan3 repository passes them."""
    args = G.init_args
    if len(args) > 5:
        raise BadCheckpointError(f'Generator was built with {len(args)} positional arguments; expected at most 5')
    kwargs = dict(zip(_GENERATOR_ARGS[:5], args))
    kwargs.update(G.init_kwargs)
    mapping = kwargs.get('mapping_kwargs') or {}
    if not isinstance(mapping, Mapping):
        raise BadCheckpointError(f'the pickled Generator\'s mapping_kwargs is {type(mapping).__name__}, not a mapping')
    kwargs['mapping_kwargs'] = dict(mapping)
    _dimensions(G, kwargs)
    return kwargs


def _dimensions(G: PersistentObject, kwargs: Dict[str, Any]) -> None:
    """Fill the generator's dimensions its constructor keywords lack from its pickled attributes."""
    for key in _GENERATOR_ARGS[:5]:
        if key not in kwargs and key in G.state:
            kwargs[key] = G.state[key]
    missing = [k for k in _GENERATOR_ARGS[:5] if k not in kwargs]
    if missing:
        raise BadCheckpointError(f'the pickled Generator does not record {missing}')


def build_stylegan3(G: PersistentObject, source: str):
    """Our AliasFreeGenerator from a pickled StyleGAN3 Generator: the layer plan from its
    keywords, checked against the geometry each pickled layer recorded, then every weight,
    filter and buffer copied (the filters are the checkpoint's, not designed again)."""
    from photodrag.stylegan.alias_free import AliasFreeGenerator
    kwargs = stylegan3_kwargs(G)
    try:
        ours = AliasFreeGenerator(**kwargs, design_filters=False)
    except (TypeError, ValueError) as e:
        raise BadCheckpointError(f'{source}: cannot build a StyleGAN3 generator from its settings: '
                                 f'{short(e, 200)}') from None
    synthesis = G.children['synthesis']
    for lp in ours.synthesis.plan.layers:
        layer = synthesis.children.get(lp.name)
        if not isinstance(layer, PersistentObject):
            raise BadCheckpointError(f'{source}: the StyleGAN3 synthesis network has no layer {lp.name} (it has '
                                     f'{_some(sorted(synthesis.children))})')
        for attr, want in (('up_factor', lp.up), ('down_factor', lp.down), ('padding', list(lp.padding)),
                           ('conv_kernel', lp.conv_kernel), ('is_torgb', lp.is_torgb)):
            got = layer.state.get(attr, want)
            if _plain(got) != _plain(want):
                raise BadCheckpointError(f'{source}: layer {lp.name} records {attr} = {short(got, 40)}, its settings '
                                         f'give {want}: a StyleGAN3 variant photodrag does not implement')
    load_state_strict(ours, module_tensors(G), source)
    return ours


def _plain(v):
    """Numbers, lists and numpy values compared as plain Python values."""
    if hasattr(v, 'tolist'):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def load_state_strict(G, tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy `tensors` into G; every name and shape must match exactly."""
    finite_or_raise(tensors, source)
    own = G.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f'missing {_some(missing)}')
        if unexpected:
            parts.append(f'unexpected {_some(unexpected)}')
        family = 'StyleGAN3' if getattr(G, 'family', None) == 'stylegan3' else 'StyleGAN2'
        raise BadCheckpointError(f'{source}: weights do not fit a {family} generator: ' + '; '.join(parts))
    for name, value in tensors.items():
        if tuple(value.shape) != tuple(own[name].shape):
            raise BadCheckpointError(f'{source}: {name} has shape {tuple(value.shape)}, expected '
                                     f'{tuple(own[name].shape)}')
    with torch.no_grad():
        for name, value in G.state_dict(keep_vars=True).items():
            value.copy_(tensors[name].to(value.dtype))


def _some(names, limit=6):
    shown = ', '.join(names[:limit])
    return shown + (f' and {len(names) - limit} more' if len(names) > limit else '')
