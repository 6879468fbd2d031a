"""Writers for checkpoint files in other projects' layouts, built from our own generators.

Nothing here imports NVIDIA's, TensorFlow's or rosinality's code: stand-in modules are put
into sys.modules just long enough for `pickle` to record the same global names those
projects' pickles record, and the objects reduce to the same structures.
"""

import argparse
import contextlib
import math
import pickle
import sys
import types
from collections import OrderedDict

import numpy as np
import torch

# What NVIDIA's persistence machinery would exec() on load; creates `marker` if it ever runs.
PAYLOAD = "import pathlib\npathlib.Path({marker!r}).write_text('the embedded source ran')\n"


@contextlib.contextmanager
def fake_modules(**modules):
    """Install stand-in modules (dotted name -> dict of attributes) for the duration."""
    saved = {}
    try:
        for name, attrs in modules.items():
            saved[name] = sys.modules.get(name)
            mod = types.ModuleType(name)
            for key, value in attrs.items():
                setattr(mod, key, value)
                if isinstance(value, type) or callable(value):
                    try:
                        value.__module__ = name
                    except (AttributeError, TypeError):
                        pass
            sys.modules[name] = mod
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


class EasyDict(dict):
    pass


def _reconstruct_persistent_obj(meta):
    """What NVIDIA's loader does, reduced to the dangerous part: exec the module source."""
    exec(meta['module_src'], {})
    return meta


class Persistent:
    """Reduces like an object of a @persistence.persistent_class."""

    def __init__(self, class_name, state, module_src):
        self.meta = dict(type='class', version=6, module_src=module_src, class_name=class_name, state=state)

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def _module_state(module, init_kwargs, module_src, attrs=()):
    state = {
        'training': False,
        '_parameters': OrderedDict((k, torch.nn.Parameter(v.detach().clone(), requires_grad=False))
                                   for k, v in module._parameters.items() if v is not None),
        '_buffers': OrderedDict((k, v.detach().clone()) for k, v in module._buffers.items() if v is not None),
        '_non_persistent_buffers_set': set(),
        '_backward_hooks': OrderedDict(), '_forward_hooks': OrderedDict(), '_forward_pre_hooks': OrderedDict(),
        '_state_dict_hooks': OrderedDict(), '_load_state_dict_pre_hooks': OrderedDict(),
        '_modules': OrderedDict(),
        '_init_args': (),
        '_init_kwargs': init_kwargs,
    }
    for a in attrs:
        if hasattr(module, a):
            state[a] = getattr(module, a)
    return state


_ATTRS = ('z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'num_ws', 'num_layers', 'w_avg_beta',
          'activation', 'weight_gain', 'bias_gain', 'in_features', 'out_features', 'resolution', 'up',
          'use_noise', 'conv_clamp', 'padding', 'act_gain', 'in_channels', 'is_last', 'architecture',
          'use_fp16', 'channels_last', 'num_conv', 'num_torgb', 'block_resolutions', 'num_fp16_res')


def nvidia_stub(module, module_src, top_kwargs=None, class_name=None):
    """A Persistent stand-in for `module` and all its children."""
    state = _module_state(module, EasyDict(top_kwargs or {}), module_src, _ATTRS)
    for name, child in module._modules.items():
        if child is not None:
            state['_modules'][name] = nvidia_stub(child, module_src)
    return Persistent(class_name or type(module).__name__, state, module_src)


def nvidia_generator_kwargs(G, generation):
    k = G.init_kwargs
    base = dict(z_dim=G.z_dim, c_dim=G.c_dim, w_dim=G.w_dim, img_resolution=G.img_resolution,
                img_channels=G.img_channels, mapping_kwargs=EasyDict(num_layers=k['mapping_kwargs']['num_layers']))
    s = k['synthesis_kwargs']
    if generation == 'ada':
        base['synthesis_kwargs'] = EasyDict(channel_base=s['channel_base'], channel_max=s['channel_max'],
                                            num_fp16_res=s['num_fp16_res'], conv_clamp=s['conv_clamp'])
    else:   # stylegan3 repository: flattened, and conv_clamp / num_fp16_res left to its defaults
        base.update(channel_base=s['channel_base'], channel_max=s['channel_max'],
                    fused_modconv_default='inference_only')
    return base


def write_nvidia_pickle(G, path, marker, generation='ada', extra=None, G_ema=None):
    """A network pickle laid out as NVIDIA's training loop writes it."""
    src = PAYLOAD.format(marker=str(marker))
    g = G_ema if G_ema is not None else nvidia_stub(G, src, nvidia_generator_kwargs(G, generation))
    data = {'G': g, 'D': Persistent('Discriminator', _module_state(torch.nn.Module(), EasyDict(), src), src),
            'G_ema': g, 'augment_pipe': None,
            'training_set_kwargs': EasyDict(path='~/datasets/ffhq.zip', resolution=G.img_resolution)}
    if extra:
        data.update(extra)
    with fake_modules(**{'torch_utils': {}, 'torch_utils.persistence': {'_reconstruct_persistent_obj': _reconstruct_persistent_obj},
                         'dnnlib': {'EasyDict': EasyDict}, 'dnnlib.util': {'EasyDict': EasyDict}}):
        with open(path, 'wb') as f:
            pickle.dump(data, f, protocol=4)


# our StyleGAN3 modules -> the class names of the stylegan3 repository's
_SG3_CLASSES = {'AliasFreeGenerator': 'Generator', 'AliasFreeSynthesis': 'SynthesisNetwork',
                'AliasFreeLayer': 'SynthesisLayer', 'SynthesisInput': 'SynthesisInput',
                'MappingNetwork': 'MappingNetwork', 'FullyConnectedLayer': 'FullyConnectedLayer'}


def _sg3_attrs(module):
    """The plain attributes NVIDIA's StyleGAN3 modules keep in their state (numpy values as theirs are)."""
    name = type(module).__name__
    if name == 'AliasFreeLayer':
        p = module.plan
        tmp = p.in_rate * p.up
        return dict(w_dim=module.affine.in_features, is_torgb=p.is_torgb, is_critically_sampled=p.critically_sampled,
                    use_fp16=False, in_channels=p.in_channels, out_channels=p.out_channels,
                    in_size=np.broadcast_to(np.asarray(p.in_size), [2]), out_size=np.broadcast_to(np.asarray(p.out_size), [2]),
                    in_sampling_rate=p.in_rate, out_sampling_rate=p.out_rate, tmp_sampling_rate=np.float64(tmp),
                    in_cutoff=np.float64(p.in_cutoff), out_cutoff=np.float64(p.out_cutoff),
                    in_half_width=np.float64(p.in_half_width), out_half_width=np.float64(p.out_half_width),
                    conv_kernel=p.conv_kernel, conv_clamp=module.conv_clamp, magnitude_ema_beta=0.999,
                    up_factor=p.up, up_taps=p.up_taps, down_factor=p.down, down_taps=p.down_taps,
                    down_radial=p.down_radial, padding=list(p.padding))
    if name == 'SynthesisInput':
        return dict(w_dim=module.w_dim, channels=module.channels, size=np.broadcast_to(np.asarray(module.size), [2]),
                    sampling_rate=np.float64(module.sampling_rate), bandwidth=np.float64(module.bandwidth))
    if name == 'AliasFreeSynthesis':
        return dict(w_dim=module.w_dim, num_ws=module.num_ws, img_resolution=module.img_resolution,
                    img_channels=module.img_channels, num_layers=module.num_layers, margin_size=module.margin_size,
                    output_scale=module.output_scale, layer_names=list(module.layer_names))
    return {a: getattr(module, a) for a in _ATTRS if hasattr(module, a)}


def stylegan3_stub(module, module_src, top_kwargs=None):
    """A Persistent stand-in for our AliasFreeGenerator (or one of its parts) laid out as the
    stylegan3 repository's pickles are: its class names, attributes and state."""
    state = _module_state(module, EasyDict(top_kwargs or {}), module_src)
    state.update(_sg3_attrs(module))
    for name, child in module._modules.items():
        state['_modules'][name] = None if child is None else stylegan3_stub(child, module_src)
    if type(module).__name__ == 'MappingNetwork' and 'embed' not in state['_modules']:
        state['_modules']['embed'] = None
    return Persistent(_SG3_CLASSES.get(type(module).__name__, type(module).__name__), state, module_src)


def stylegan3_kwargs(G):
    """The Generator keywords NVIDIA's train.py records for a config T or R run."""
    k = G.init_kwargs
    out = dict(z_dim=G.z_dim, c_dim=G.c_dim, w_dim=G.w_dim, img_resolution=G.img_resolution,
               img_channels=G.img_channels, mapping_kwargs=EasyDict(num_layers=k['mapping_kwargs']['num_layers']),
               channel_base=k['channel_base'], channel_max=k['channel_max'],
               magnitude_ema_beta=k['magnitude_ema_beta'])
    if k['conv_kernel'] != 3 or k['use_radial_filters']:
        out.update(conv_kernel=k['conv_kernel'], use_radial_filters=k['use_radial_filters'])
    for key in ('num_layers', 'margin_size', 'num_critical'):
        if k[key] != {'num_layers': 14, 'margin_size': 10, 'num_critical': 2}[key]:
            out[key] = k[key]
    return out


def write_stylegan3_pickle(G, path, marker, G_ema=None):
    """A StyleGAN3 network pickle as NVIDIA's training loop writes it (our AliasFreeGenerator's weights)."""
    src = PAYLOAD.format(marker=str(marker))
    g = G_ema if G_ema is not None else stylegan3_stub(G, src, stylegan3_kwargs(G))
    write_nvidia_pickle(G, path, marker, G_ema=g)


def load_like_nvidia(path):
    """Unpickle as NVIDIA's code would (running the embedded source), to prove the payload is live."""
    with fake_modules(**{'torch_utils': {}, 'torch_utils.persistence': {'_reconstruct_persistent_obj': _reconstruct_persistent_obj},
                         'dnnlib': {'EasyDict': EasyDict}, 'dnnlib.util': {'EasyDict': EasyDict}}):
        with open(path, 'rb') as f:
            return pickle.load(f)


#----------------------------------------------------------------------------
# TensorFlow StyleGAN2


class Network:
    """Pickles like dnnlib.tflib.network.Network (state via __getstate__)."""

    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state


def _tf_variables(G):
    """Our weights in the TF StyleGAN2 layout (the inverse of the conversion)."""
    mapping, synthesis = [], []
    for i in range(G.mapping.num_layers):
        fc = getattr(G.mapping, f'fc{i}')
        mapping += [(f'Dense{i}/weight', fc.weight.numpy().T.copy()), (f'Dense{i}/bias', fc.bias.numpy().copy())]

    def layer(prefix, lay, flip=False):
        w = lay.weight.numpy().transpose(2, 3, 1, 0)
        if flip:
            w = w[::-1, ::-1]
        out = [(f'{prefix}/weight', np.ascontiguousarray(w)), (f'{prefix}/bias', lay.bias.numpy().copy()),
               (f'{prefix}/mod_weight', lay.affine.weight.numpy().T.copy()),
               (f'{prefix}/mod_bias', lay.affine.bias.numpy() - 1)]
        if hasattr(lay, 'noise_strength'):
            out.append((f'{prefix}/noise_strength', lay.noise_strength.numpy().copy()))
        return out

    noises = []
    for res in G.synthesis.block_resolutions:
        b = getattr(G.synthesis, f'b{res}')
        r = f'{res}x{res}'
        if res == 4:
            synthesis.append((f'{r}/Const/const', b.const.numpy()[None].copy()))
            synthesis += layer(f'{r}/Conv', b.conv1)
            noises.append(b.conv1.noise_const)
        else:
            synthesis += layer(f'{r}/Conv0_up', b.conv0, flip=True)
            synthesis += layer(f'{r}/Conv1', b.conv1)
            noises += [b.conv0.noise_const, b.conv1.noise_const]
        t = b.torgb
        synthesis += [(f'{r}/ToRGB/weight', t.weight.numpy().transpose(2, 3, 1, 0).copy()),
                      (f'{r}/ToRGB/bias', t.bias.numpy().copy()),
                      (f'{r}/ToRGB/mod_weight', t.affine.weight.numpy().T.copy()),
                      (f'{r}/ToRGB/mod_bias', t.affine.bias.numpy() - 1)]
    synthesis += [(f'noise{i}', n.numpy()[None, None].copy()) for i, n in enumerate(noises)]
    return mapping, synthesis


def write_tf_pickle(G, path, static_overrides=None, state_overrides=None):
    mapping_vars, synthesis_vars = _tf_variables(G)
    s = G.init_kwargs['synthesis_kwargs']
    static = dict(num_channels=3, resolution=G.img_resolution, label_size=0, fmap_base=s['channel_base'] // 2,
                  fmap_max=s['channel_max'], latent_size=G.z_dim, dlatent_size=G.w_dim,
                  mapping_layers=G.mapping.num_layers, truncation_psi=0.5, randomize_noise=True)
    static.update(static_overrides or {})

    def net(name, variables, components=None, kwargs=None):
        return Network(dict(version=4, name=name, static_kwargs=kwargs or {}, components=components or {},
                            build_module_src="raise SystemExit('TF build code must never run')\n",
                            build_func_name='G_main', variables=variables))

    Gs = net('G', [('dlatent_avg', G.mapping.w_avg.numpy().copy())],
             {'mapping': net('G_mapping', mapping_vars), 'synthesis': net('G_synthesis', synthesis_vars)}, static)
    Gs._state.update(state_overrides or {})
    D = net('D', [('Output/weight', np.zeros((4, 1), np.float32))])
    with fake_modules(**{'dnnlib': {}, 'dnnlib.tflib': {}, 'dnnlib.tflib.network': {'Network': Network}}):
        with open(path, 'wb') as f:
            pickle.dump((Gs, D, Gs), f, protocol=3)


#----------------------------------------------------------------------------
# rosinality stylegan2-pytorch


def rosinality_state(G):
    sd = {}
    for i in range(G.mapping.num_layers):
        fc = getattr(G.mapping, f'fc{i}')
        sd[f'style.{i + 1}.weight'] = fc.weight.clone()
        sd[f'style.{i + 1}.bias'] = fc.bias.clone()

    def styled(prefix, lay):
        w = lay.weight
        sd[f'{prefix}.conv.weight'] = (w * math.sqrt(w[0].numel()))[None].clone()
        sd[f'{prefix}.conv.modulation.weight'] = lay.affine.weight.clone()
        sd[f'{prefix}.conv.modulation.bias'] = lay.affine.bias.clone()
        sd[f'{prefix}.noise.weight'] = lay.noise_strength.reshape(1).clone()
        sd[f'{prefix}.activate.bias'] = lay.bias.clone()

    def to_rgb(prefix, t):
        sd[f'{prefix}.conv.weight'] = t.weight[None].clone()
        sd[f'{prefix}.conv.modulation.weight'] = t.affine.weight.clone()
        sd[f'{prefix}.conv.modulation.bias'] = t.affine.bias.clone()
        sd[f'{prefix}.bias'] = t.bias.reshape(1, -1, 1, 1).clone()

    b4 = G.synthesis.b4
    sd['input.input'] = b4.const[None].clone()
    styled('conv1', b4.conv1)
    to_rgb('to_rgb1', b4.torgb)
    noises = [b4.conv1.noise_const]
    for i, res in enumerate(G.synthesis.block_resolutions[1:]):
        b = getattr(G.synthesis, f'b{res}')
        styled(f'convs.{2 * i}', b.conv0)
        styled(f'convs.{2 * i + 1}', b.conv1)
        to_rgb(f'to_rgbs.{i}', b.torgb)
        noises += [b.conv0.noise_const, b.conv1.noise_const]
    for i, n in enumerate(noises):
        sd[f'noises.noise_{i}'] = n[None, None].clone()
    return sd


def write_rosinality_pt(G, path, with_latent_avg=True, extra=None):
    data = {'g_ema': rosinality_state(G), 'g': rosinality_state(G),
            'args': argparse.Namespace(size=G.img_resolution, latent=G.w_dim, n_mlp=G.mapping.num_layers,
                                       channel_multiplier=2, lr_mlp=0.01)}
    if with_latent_avg:
        data['latent_avg'] = G.mapping.w_avg.clone()
    data.update(extra or {})
    torch.save(data, path)


def outputs_match(G1, G2, seed=0, tol=1e-5):
    """Same image from both generators for a few latents (const noise), within tol."""
    z = torch.randn(2, G1.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a = G1(z, None, truncation_psi=0.7, noise_mode='const')
        b = G2(z, None, truncation_psi=0.7, noise_mode='const')
    return float((a - b).abs().max()) <= tol

