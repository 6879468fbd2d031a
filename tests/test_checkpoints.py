"""Loading every checkpoint format, refusing unsafe and broken files, the registry and cache."""

import io
import os
import random
import pickle
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from photodrag import checkpoints
import formats
from photodrag.checkpoints import cache
from conftest import make_generator
from photodrag.errors import (BadCheckpointError, CheckpointNotFoundError, DownloadError, PhotodragError,
                             UnsafeCheckpointError)


@pytest.fixture
def G():
    return make_generator(conv_clamp=256)


#----------------------------------------------------------------------------
# Formats


@pytest.mark.parametrize('generation', ['ada', 'sg3'])
def test_nvidia_pickle_loads_identically(G, tmp_path, generation):
    path = tmp_path / 'network-snapshot.pkl'
    formats.write_nvidia_pickle(G, path, tmp_path / 'marker', generation=generation)
    loaded = checkpoints.load_generator(path)
    assert formats.outputs_match(G, loaded, tol=0)
    # the stylegan3 layout leaves conv_clamp to its code's defaults; it is read from the state
    assert loaded.init_kwargs['synthesis_kwargs']['conv_clamp'] == 256
    assert not any(p.requires_grad for p in loaded.parameters())
    assert not (tmp_path / 'marker').exists()


def test_nvidia_fp16_blocks_are_recovered_from_state(tmp_path):
    G = make_generator(num_fp16_res=2, conv_clamp=256)
    path = tmp_path / 'sg3.pkl'
    formats.write_nvidia_pickle(G, path, tmp_path / 'marker', generation='sg3')
    loaded = checkpoints.load_generator(path)
    assert loaded.init_kwargs['synthesis_kwargs']['num_fp16_res'] == 2
    assert [getattr(loaded.synthesis, f'b{r}').use_fp16 for r in (4, 8, 16, 32)] == [False, False, True, True]
    assert formats.outputs_match(G, loaded, tol=0)   # fp16 only on CUDA: same fp32 image here


def test_embedded_source_is_live_but_never_runs(G, tmp_path):
    path, marker = tmp_path / 'snap.pkl', tmp_path / 'marker'
    formats.write_nvidia_pickle(G, path, marker)
    checkpoints.load_generator(path)
    assert not marker.exists()
    formats.load_like_nvidia(path)      # what a plain pickle.load with NVIDIA's code does
    assert marker.exists(), 'the fixture payload should be real'


class _Evil:
    def __init__(self, call, arg):
        self.call, self.arg = call, arg

    def __reduce__(self):
        return (self.call, (self.arg,))


@pytest.mark.parametrize('call', [os.system, eval, exec, __import__])
def test_pickle_that_runs_code_is_refused(G, tmp_path, call):
    marker = tmp_path / 'pwned'
    arg = {os.system: f'touch {marker}', eval: f"open({str(marker)!r}, 'w')",
           exec: f"open({str(marker)!r}, 'w')", __import__: 'antigravity'}[call]
    path = tmp_path / 'evil.pkl'
    # hidden deep inside an otherwise valid network pickle
    formats.write_nvidia_pickle(G, path, tmp_path / 'marker', extra={'progress': {'x': [_Evil(call, arg)]}})
    with pytest.raises(UnsafeCheckpointError, match=r'asks to use .*(system|eval|exec|__import__).*nothing in the file ran'):
        checkpoints.load_generator(path)
    assert not marker.exists()


def test_torch_file_that_runs_code_is_refused(G, tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pt'
    formats.write_rosinality_pt(G, path, extra={'hook': _Evil(os.system, f'touch {marker}')})
    with pytest.raises(UnsafeCheckpointError, match='system'):
        checkpoints.load_generator(path)
    assert not marker.exists()


def test_tensorflow_pickle_converts(G, tmp_path):
    path = tmp_path / 'stylegan2-car-config-f.pkl'
    formats.write_tf_pickle(G, path)
    assert formats.outputs_match(G, checkpoints.load_generator(path), tol=1e-5)


def test_tensorflow_pickle_with_unknown_option_is_refused(G, tmp_path):
    path = tmp_path / 'tf.pkl'
    formats.write_tf_pickle(G, path, static_overrides={'fmap_decay': 0.5})
    with pytest.raises(BadCheckpointError, match='fmap_decay'):
        checkpoints.load_generator(path)


def test_rosinality_checkpoint_converts(G, tmp_path):
    path = tmp_path / '550000.pt'
    formats.write_rosinality_pt(G, path)
    loaded = checkpoints.load_generator(path)
    assert formats.outputs_match(G, loaded, tol=1e-5)
    assert torch.allclose(loaded.mapping.w_avg, G.mapping.w_avg)


def test_rosinality_without_latent_avg_estimates_it(G, tmp_path):
    path = tmp_path / 'no_avg.pt'
    formats.write_rosinality_pt(G, path, with_latent_avg=False)
    loaded = checkpoints.load_generator(path)
    z = torch.randn(4000, G.z_dim, generator=torch.Generator().manual_seed(5))
    mean = G.mapping(z, None)[:, 0].mean(0)
    assert (loaded.mapping.w_avg - mean).norm() < 0.1 * mean.norm()


def test_native_round_trip_and_config(G, tmp_path):
    path = checkpoints.save_generator(G, tmp_path / 'g.safetensors')
    loaded = checkpoints.load_generator(path)
    assert formats.outputs_match(G, loaded, tol=0)
    assert loaded.init_kwargs == G.init_kwargs
    with pytest.raises(PhotodragError, match='already exists'):
        checkpoints.save_generator(G, path)


def test_native_sidecar_json_config(G, tmp_path):
    from safetensors.torch import save_file
    import json
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(tmp_path / 'g.safetensors'))
    with pytest.raises(BadCheckpointError, match='without a photodrag generator config'):
        checkpoints.load_generator(tmp_path / 'g.safetensors')
    (tmp_path / 'g.json').write_text(json.dumps(G.init_kwargs))
    assert formats.outputs_match(G, checkpoints.load_generator(tmp_path / 'g.safetensors'), tol=0)


#----------------------------------------------------------------------------
# Broken and wrong files


@pytest.mark.parametrize('kind', ['nvidia', 'tf', 'rosinality', 'native'])
def test_truncated_files_are_reported(G, tmp_path, kind):
    path = tmp_path / f'full.{kind}'
    {'nvidia': lambda: formats.write_nvidia_pickle(G, path, tmp_path / 'm'),
     'tf': lambda: formats.write_tf_pickle(G, path),
     'rosinality': lambda: formats.write_rosinality_pt(G, path),
     'native': lambda: checkpoints.save_generator(G, path)}[kind]()
    data = path.read_bytes()
    cut = tmp_path / f'cut.{kind}'
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(BadCheckpointError, match='corrupt|truncated|not a readable|not a checkpoint'):
        checkpoints.load_generator(cut)


def test_flipped_bytes_in_a_tensor_layout_are_caught(G, tmp_path):
    # A storage that claims fewer elements than a tensor needs must not read out of bounds.
    storage = torch.TypedStorage(4, dtype=torch.float32)
    from photodrag.restricted import _rebuild_tensor
    with pytest.raises(BadCheckpointError, match='reaches past its storage'):
        _rebuild_tensor(storage, 2, (3,), (1,))
    with pytest.raises(BadCheckpointError, match='claims 100 elements in a storage of 4'):
        _rebuild_tensor(storage, 0, (100,), (1,))
    with pytest.raises(BadCheckpointError, match='claims'):        # stride 0: one number posing as many
        _rebuild_tensor(storage, 0, (10 ** 6, 10 ** 6), (0, 0))


@pytest.mark.parametrize('content,message', [
    (b'', 'is empty'),
    (b'\x89PNG\r\n\x1a\n' + b'\0' * 64, 'PNG image'),
    (b'\xff\xd8\xff\xe0' + b'\0' * 64, 'JPEG image'),
    (b'hello, I am a text file', 'not a checkpoint'),
    (random.Random(0).randbytes(4096), 'not a checkpoint|corrupt'),
])
def test_wrong_files_get_specific_errors(tmp_path, content, message):
    path = tmp_path / 'model.pkl'
    path.write_bytes(content)
    with pytest.raises(BadCheckpointError, match=message):
        checkpoints.load_generator(path)


def test_checkpoints_that_are_not_generators(G, tmp_path):
    path = tmp_path / 'd_only.pkl'
    with open(path, 'wb') as f:
        pickle.dump({'D': 1, 'augment_pipe': None}, f)
    with pytest.raises(BadCheckpointError, match='holds no generator'):
        checkpoints.load_generator(path)

    src = formats.PAYLOAD.format(marker=str(tmp_path / 'm'))
    disc = formats.nvidia_stub(G, src, class_name='Discriminator')
    path = tmp_path / 'wrong_class.pkl'
    formats.write_nvidia_pickle(G, path, tmp_path / 'm', G_ema=disc)
    with pytest.raises(BadCheckpointError, match='is a Discriminator, not a Generator'):
        checkpoints.load_generator(path)

    # a StyleGAN2 with a Fourier input grafted on is read as a StyleGAN3, whose settings it lacks
    sg3 = formats.nvidia_stub(G, src, formats.nvidia_generator_kwargs(G, 'sg3'))
    sg3.meta['state']['_modules']['synthesis'].meta['state']['_modules']['input'] = formats.Persistent(
        'SynthesisInput', formats._module_state(torch.nn.Module(), {}, src), src)
    path = tmp_path / 'sg3.pkl'
    formats.write_nvidia_pickle(G, path, tmp_path / 'm', G_ema=sg3)
    with pytest.raises(BadCheckpointError, match='cannot build a StyleGAN3 generator'):
        checkpoints.load_generator(path)

    path = tmp_path / 'state.pt'
    torch.save({'model': {'w': torch.zeros(2)}}, path)
    with pytest.raises(BadCheckpointError, match='not a generator photodrag knows'):
        checkpoints.load_generator(path)

    path = tmp_path / 'list.pkl'
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(BadCheckpointError, match='pickle of list'):
        checkpoints.load_generator(path)


def test_weights_with_nan_are_refused(G, tmp_path):
    bad = make_generator(conv_clamp=256)
    with torch.no_grad():
        bad.synthesis.b8.conv1.weight[0, 0, 0, 0] = float('nan')
    path = tmp_path / 'nan.pkl'
    formats.write_nvidia_pickle(bad, path, tmp_path / 'm')
    with pytest.raises(BadCheckpointError, match='NaN'):
        checkpoints.load_generator(path)


def test_missing_and_mismatched_weights_are_named(G, tmp_path):
    src = formats.PAYLOAD.format(marker=str(tmp_path / 'm'))
    stub = formats.nvidia_stub(G, src, formats.nvidia_generator_kwargs(G, 'ada'))
    b8 = stub.meta['state']['_modules']['synthesis'].meta['state']['_modules']['b8']
    del b8.meta['state']['_modules']['conv1'].meta['state']['_parameters']['weight']
    path = tmp_path / 'partial.pkl'
    formats.write_nvidia_pickle(G, path, tmp_path / 'm', G_ema=stub)
    with pytest.raises(BadCheckpointError, match=r'missing synthesis\.b8\.conv1\.weight'):
        checkpoints.load_generator(path)


#----------------------------------------------------------------------------
# Registry and cache


def test_registry_entries_are_complete():
    entries = checkpoints.list_checkpoints()
    assert len({e.name for e in entries}) == len(entries) >= 8
    for e in entries:
        assert e.filename and e.licence and e.domain
        if e.bundled:       # ships with the package (the demo generator), never downloaded
            assert not e.url and e.format == 'photodrag' and e.resolution >= 128
        else:
            assert e.url.startswith(('http://', 'https://'))
            assert e.resolution in (256, 512, 1024) and e.format in ('nvidia-pickle', 'tf-pickle')
        assert e.alignment in ('ffhq', 'afhq', 'car', 'none', 'digiface', 'body')
    assert checkpoints.get_entry('stylegan2-ffhq-512').alignment == 'ffhq'
    with pytest.raises(CheckpointNotFoundError, match='no known checkpoint'):
        checkpoints.get_entry('stylegan9-unicorns')


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


def test_cache_dir_follows_environment(cache_home):
    assert checkpoints.cache_dir() == cache_home
    assert checkpoints.local_path(checkpoints.get_entry('stylegan2-cat-256')).parent == cache_home / 'checkpoints'


def test_offline_download_fails_fast_and_says_how_to_place_the_file(cache_home, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError(-2, 'Name or service not known'))
    monkeypatch.setattr(urllib.request, 'urlopen', offline)
    with pytest.raises(DownloadError) as info:
        checkpoints.download('stylegan2-lions-512')
    message = str(info.value)
    assert 'Name or service not known' in message and 'by hand' in message
    assert str(cache_home / 'checkpoints' / 'stylegan2_lions_512_pytorch.pkl') in message
    leftovers = list((cache_home / 'checkpoints').glob('*')) if (cache_home / 'checkpoints').exists() else []
    assert leftovers == []


class _FakeResponse(io.BytesIO):
    def __init__(self, data, length=None):
        super().__init__(data)
        self.headers = {'Content-Length': str(len(data) if length is None else length)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_records_hash_then_holds_later_downloads_to_it(G, cache_home, tmp_path, monkeypatch):
    formats.write_nvidia_pickle(G, tmp_path / 'src.pkl', tmp_path / 'm')
    payload = (tmp_path / 'src.pkl').read_bytes()
    served = {'data': payload}
    monkeypatch.setattr(urllib.request, 'urlopen', lambda req, timeout=None: _FakeResponse(served['data']))
    seen = []
    result = checkpoints.download('stylegan2-horses-256', progress=lambda done, total: seen.append((done, total)))
    assert result.newly_recorded and result.path.read_bytes() == payload and seen[-1] == (len(payload), len(payload))
    assert cache.recorded_hashes()['stylegan2-horses-256'] == result.sha256
    assert checkpoints.verify('stylegan2-horses-256').status == 'ok'
    # by name, from the cache, without downloading again
    assert formats.outputs_match(G, checkpoints.load_generator('stylegan2-horses-256', download=False), tol=0)
    # a different file under the same name is rejected and the good copy is kept
    served['data'] = payload[:-10] + b'0123456789'
    with pytest.raises(DownloadError, match='expected'):
        checkpoints.download('stylegan2-horses-256', force=True)
    assert result.path.read_bytes() == payload
    assert [p.name for p in result.path.parent.iterdir() if p.name.endswith('.part')] == []
    # a tampered cache file is reported by verify
    result.path.write_bytes(served['data'])
    assert checkpoints.verify('stylegan2-horses-256').status == 'mismatch'


def test_interrupted_download_leaves_nothing(cache_home, monkeypatch):
    monkeypatch.setattr(urllib.request, 'urlopen', lambda req, timeout=None: _FakeResponse(b'abc', length=1000))
    with pytest.raises(DownloadError, match='connection closed'):
        checkpoints.download('stylegan2-cat-256')
    assert list((cache_home / 'checkpoints').iterdir()) == []


def test_names_need_a_download_or_a_clear_error(cache_home):
    with pytest.raises(CheckpointNotFoundError, match='photodrag checkpoints download stylegan2-ffhq-512'):
        checkpoints.load_generator('stylegan2-ffhq-512', download=False)
    with pytest.raises(CheckpointNotFoundError, match='photodrag checkpoints download stylegan-human-v2-512'):
        checkpoints.load_generator('stylegan-human-v2-512', download=False)
    with pytest.raises(CheckpointNotFoundError, match='neither a file nor a known checkpoint'):
        checkpoints.load_generator('no/such/file.pkl')


def test_random_generator_names():
    G = checkpoints.load_generator('random:16:3')
    assert G.img_resolution == 16 and G.init_kwargs['synthesis_kwargs']['channel_base'] == 32768
    again = checkpoints.load_generator('random:16:3')
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), again.state_dict().values()))
    assert checkpoints.describe(G).startswith('16px StyleGAN2')


def test_a_file_named_like_a_registry_checkpoint_does_not_replace_it(G, tmp_path, monkeypatch):
    """Planting: `demo-faces` (or `random:64`) in the working directory is not loaded for the
    name; as a path (./demo-faces) it is, and the record says which was loaded."""
    from photodrag.inversion import generator_hash
    from photodrag.pipeline.record import checkpoint_info
    monkeypatch.chdir(tmp_path)
    checkpoints.save_generator(G, tmp_path / 'planted.safetensors')
    (tmp_path / 'planted.safetensors').rename(tmp_path / 'demo-faces')
    (tmp_path / 'random:64').write_bytes(b'not a generator')
    bundled = checkpoints.load_generator('demo-faces')
    assert bundled.img_resolution == 128 and generator_hash(bundled) != generator_hash(G)
    assert checkpoints.resolve_path('demo-faces') == checkpoints.get_entry('demo-faces').bundled_path
    assert checkpoint_info('demo-faces', bundled)['source'] == 'registry'
    planted = checkpoints.load_generator('./demo-faces')
    assert generator_hash(planted) == generator_hash(G)
    assert checkpoint_info('./demo-faces', planted)['source'] == 'file'
    assert checkpoints.load_generator('random:64').img_resolution == 64
    assert checkpoints.verify('demo-faces').path == checkpoints.get_entry('demo-faces').bundled_path
    assert checkpoints.verify('./demo-faces').path == tmp_path / 'demo-faces' or \
        checkpoints.verify('./demo-faces').path == Path('./demo-faces')


def test_crafted_module_graphs_are_refused_at_once():
    """A pickle's modules sharing children (a DAG: 2**40 paths for a naive walk), containing
    themselves, or nested absurdly deep; and an error that would quote huge keys."""
    import time
    from photodrag.restricted import PersistentObject, module_tensors
    from photodrag.checkpoints.nvidia import find_generator
    node = PersistentObject('Leaf', {'_parameters': {'w': torch.zeros(1)}})
    for _ in range(40):
        node = PersistentObject('Node', {'_modules': {'a': node, 'b': node}})
    loop = PersistentObject('Loop', {'_modules': {}})
    loop.state['_modules']['self'] = loop
    deep = PersistentObject('Leaf', {})
    for _ in range(5000):
        deep = PersistentObject('Node', {'_modules': {'x': deep}})
    for crafted, message in ((node, 'not a tree'), (loop, 'not a tree'), (deep, 'nested over')):
        t = time.perf_counter()
        with pytest.raises(BadCheckpointError, match=message) as e:
            module_tensors(crafted)
        assert time.perf_counter() - t < 1.0 and len(str(e.value)) < 300
    with pytest.raises(BadCheckpointError) as e:
        find_generator({('k' * 10_000 + str(i)): 0 for i in range(1000)}, 'x.pkl')
    assert 'holds no generator' in str(e.value) and len(str(e.value)) < 600


def test_stylegan_human_pickles_load_with_their_non_square_layout(tmp_path):
    """StyleGAN-Human's pickles (512x256, 1024x512) record no keyword for the layout; it is read
    from the 4x2 learned constant, and the payload never runs."""
    G = make_generator(img_resolution=64, square=False, conv_clamp=256)
    path = tmp_path / 'stylegan_human_v2_64.pkl'
    formats.write_nvidia_pickle(G, path, tmp_path / 'ran')
    loaded = checkpoints.load_generator(path)
    assert not (tmp_path / 'ran').exists()
    assert loaded.synthesis.square is False and loaded.init_kwargs['synthesis_kwargs']['square'] is False
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None, truncation_psi=0.7)
    assert torch.equal(loaded.synthesis(ws, noise_mode='const'), G.synthesis(ws, noise_mode='const'))
    saved = checkpoints.load_generator(checkpoints.save_generator(loaded, tmp_path / 'human.safetensors'))
    assert saved.synthesis.square is False
