"""Our generator against NVIDIA's arithmetic, restated in `stylegan.reference`."""

import numpy as np
import pytest
import torch

from photodrag import stylegan
import stylegan_reference as reference
from conftest import make_generator

TOL = 1e-4  # the bound on |ours - NVIDIA| in fp32


@pytest.mark.parametrize('architecture', ['skip', 'orig', 'resnet'])
@pytest.mark.parametrize('conv_clamp', [None, 256, 0.5])
def test_matches_nvidia_reference(architecture, conv_clamp):
    G = make_generator(architecture=architecture, conv_clamp=conv_clamp)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1))
    for psi, cutoff in [(1, None), (0.7, None), (0.7, 4)]:
        ws = G.mapping(z, None, truncation_psi=psi, truncation_cutoff=cutoff)
        assert (ws - reference.mapping(G, z, None, psi, cutoff)).abs().max() <= 1e-6
        for noise_mode in ['const', 'none']:
            want = reference.synthesis(G, ws, noise_mode=noise_mode, path='official')
            for fused in [None, True, False]:
                got = G.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused)
                assert got.shape == (2, 3, 32, 32)
                assert (got - want).abs().max() <= TOL * max(1.0, want.abs().max().item() / 4)


def test_official_route_equals_generic_route():
    # NVIDIA's fast upsampling route (transposed conv + FIR) and its generic route (zero
    # insertion + FIR + conv) are the same function; this pins our reading of both.
    G = make_generator(img_resolution=16)
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    a = reference.synthesis(G, ws, path='official')
    b = reference.synthesis(G, ws, path='generic')
    assert (a - b).abs().max() < 1e-5


def test_noise_modes_and_truncation_behave():
    G = make_generator()
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    const1, const2 = G.synthesis(ws, noise_mode='const'), G.synthesis(ws, noise_mode='const')
    assert torch.equal(const1, const2)
    torch.manual_seed(0)
    rand1 = G.synthesis(ws, noise_mode='random')
    rand2 = G.synthesis(ws, noise_mode='random')
    assert not torch.equal(rand1, rand2)
    assert not torch.equal(G.synthesis(ws, noise_mode='none'), const1)
    # psi = 0 puts every layer at w_avg; a cutoff leaves the later layers alone.
    z = torch.randn(1, G.z_dim)
    w0 = G.mapping(z, None, truncation_psi=0)
    assert torch.allclose(w0, G.mapping.w_avg.expand_as(w0))
    wc = G.mapping(z, None, truncation_psi=0, truncation_cutoff=3)
    assert torch.allclose(wc[:, :3], G.mapping.w_avg.expand(1, 3, -1))
    assert torch.allclose(wc[:, 3:], G.mapping(z, None)[:, 3:])
    with pytest.raises(ValueError, match='noise_mode'):
        G.synthesis(ws, noise_mode='sometimes')


@pytest.mark.parametrize('resolution', [4, 8, 64])
def test_any_square_resolution(resolution):
    G = make_generator(img_resolution=resolution, channel_base=256, channel_max=16)
    assert G.num_ws == 2 * int(np.log2(resolution)) - 2
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    img = G.synthesis(ws, noise_mode='const')
    assert img.shape == (1, 3, resolution, resolution)
    assert (img - reference.synthesis(G, ws)).abs().max() < TOL
    with pytest.raises(ValueError, match='power of two'):
        stylegan.Generator(img_resolution=resolution + 3)


def test_features_stop_early_without_computing_higher_blocks(monkeypatch):
    G = make_generator(img_resolution=64, channel_base=1024, channel_max=32)
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    full = G.synthesis.features(ws, noise_mode='const', return_image=True)
    assert sorted(full.features) == [4, 8, 16, 32, 64]
    assert torch.allclose(full.image, G.synthesis(ws, noise_mode='const'), atol=1e-6)
    # The higher blocks must not run at all.
    calls = []
    for res in (32, 64):
        block = getattr(G.synthesis, f'b{res}')
        monkeypatch.setattr(block, 'forward', lambda *a, res=res, **k: calls.append(res))
    early = G.synthesis.features(ws, stop_after=16, noise_mode='const')
    assert calls == [] and early.image is None and sorted(early.features) == [4, 8, 16]
    assert torch.allclose(early.features[16], full.features[16], atol=1e-6)
    monkeypatch.undo()
    # the image so far, finished by the blocks above, is the full image
    part = G.synthesis.features(ws, stop_after=16, noise_mode='const', return_image=True)
    assert part.image.shape[-1] == 16
    done = G.synthesis.finish(ws, part.features[16], part.image, 16, noise_mode='const')
    assert torch.allclose(done, full.image, atol=1e-5)
    with pytest.raises(ValueError, match='block resolutions'):
        G.synthesis.finish(ws, part.features[16], part.image, 12)
    with pytest.raises(ValueError, match='block resolutions'):
        G.synthesis.features(ws, stop_after=12)


def test_block_index_and_channels():
    G = make_generator(img_resolution=64, channel_base=1024, channel_max=32)
    assert [G.block_resolution(i) for i in range(1, 6)] == [4, 8, 16, 32, 64]
    assert G.synthesis.block_channels(64) == 16
    with pytest.raises(ValueError, match='blocks 1..5'):
        G.block_resolution(6)


def test_bf16_autocast_is_close_and_float32_out():
    G = make_generator(img_resolution=32, conv_clamp=256)
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    a = G.synthesis(ws, noise_mode='const')
    b = G.synthesis(ws, noise_mode='const', autocast=torch.bfloat16)
    assert b.dtype == torch.float32
    assert (a - b).abs().mean() < 0.05 * a.abs().mean()
    with pytest.raises(ValueError, match='fp16 autocast is for CUDA'):
        G.synthesis(ws, autocast=torch.float16)


def test_batch_and_gradients_match_between_fused_and_unfused():
    G = make_generator()
    ws = G.mapping(torch.randn(3, G.z_dim), None)
    a = G.synthesis(ws, noise_mode='const', fused_modconv=True)
    b = G.synthesis(ws, noise_mode='const', fused_modconv=False)
    assert (a - b).abs().max() < 1e-4
    grads = []
    for fused in (True, False):
        w = ws[:1].clone().requires_grad_(True)
        G.synthesis(w, noise_mode='const', fused_modconv=fused).square().mean().backward()
        grads.append(w.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-3, atol=1e-6)


def test_float64_gradcheck_of_modulated_conv():
    from photodrag.stylegan import ops
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=g)
    s = torch.randn(1, 3, dtype=torch.float64, generator=g, requires_grad=True)
    f = ops.setup_filter().double()
    for fused in (True, False):
        assert torch.autograd.gradcheck(
            lambda x, s: ops.modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f, fused=fused), (x, s))


def test_to_uint8_round_trip():
    img = torch.tensor([[-1.0, 0.0], [1.0, 0.5]]).expand(3, 2, 2)[None]
    u8 = stylegan.to_uint8(img)
    assert u8.shape == (1, 2, 2, 3) and u8.dtype == np.uint8
    assert u8[0, 0, 0, 0] == 0 and u8[0, 1, 0, 0] == 255
    assert torch.allclose(stylegan.from_uint8(u8[0]), img, atol=1 / 127)


@pytest.mark.parametrize('conv_clamp', [None, 0.8])
@pytest.mark.parametrize('architecture', ['skip', 'resnet'])
def test_memory_lean_autograd_gives_plain_gradients(conv_clamp, architecture):
    # With frozen weights, the lean functions keep one activation per layer; the gradient
    # with respect to the latent must be the one plain PyTorch ops give.
    from photodrag.stylegan import ops
    G = make_generator(conv_clamp=conv_clamp, architecture=architecture)
    ws0 = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(3)), None)
    grads = {}
    for lean in (True, False):
        for fused in (True, False):
            ws = ws0.clone().requires_grad_(True)
            with ops.lean_autograd(lean):
                out = G.synthesis.features(ws, noise_mode='const', fused_modconv=fused, collect=[16])
                out.features[16].square().mean().backward()
            grads[lean, fused] = ws.grad
    reference_grad = grads[False, True]
    for key, g in grads.items():
        assert torch.allclose(g, reference_grad, rtol=1e-4, atol=1e-7), key


def test_float64_gradcheck_of_lean_functions():
    from photodrag.stylegan import ops
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 6, 7, dtype=torch.float64, generator=g, requires_grad=True)
    for transpose, stride, pad, groups in [(False, 1, 1, 1), (False, 2, 0, 1), (False, 1, (1, 2), 3),
                                           (True, 2, 0, 1), (True, 1, 1, 1)]:
        w = torch.randn(3, 3 // groups, 3, 3, dtype=torch.float64, generator=g)
        assert torch.autograd.gradcheck(lambda x: ops._ConstWeightConv.apply(x, w, transpose, stride, pad, groups), (x,))
    for act in ('lrelu', 'relu', 'linear'):
        for clamp in (None, 0.7):
            z = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
            dc = (torch.rand(2, 3, 1, 1, dtype=torch.float64, generator=g) + 0.5).requires_grad_(True)
            b = torch.randn(3, dtype=torch.float64, generator=g, requires_grad=True)
            noise = torch.randn(4, 5, dtype=torch.float64, generator=g, requires_grad=True)
            assert torch.autograd.gradcheck(
                lambda z, dc, b, n: ops.modulated_tail(z, dc, n, b, act=act, gain=1.3, clamp=clamp), (z, dc, b, noise))


def test_both_nvidia_constructor_styles_build_the_same_network():
    ada = stylegan.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3,
                             mapping_kwargs={'num_layers': 2},
                             synthesis_kwargs={'channel_base': 1024, 'channel_max': 64, 'num_fp16_res': 2,
                                               'conv_clamp': 256})
    sg3 = stylegan.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3,
                             mapping_kwargs={'num_layers': 2, 'freeze_layers': 0}, channel_base=1024,
                             channel_max=64, num_fp16_res=2, conv_clamp=256, fused_modconv_default='inference_only')
    assert ada.init_kwargs == sg3.init_kwargs
    assert {k: v.shape for k, v in ada.state_dict().items()} == {k: v.shape for k, v in sg3.state_dict().items()}
    sg3.load_state_dict(ada.state_dict())                        # NVIDIA names: loads one to one
    with pytest.raises(ValueError, match="unsupported synthesis keyword.*'warp_speed'"):
        stylegan.Generator(img_resolution=64, warp_speed=9)
    with pytest.raises(ValueError, match='given twice'):
        stylegan.Generator(img_resolution=64, synthesis_kwargs={'channel_max': 64}, channel_max=32)


def test_conditional_generator_matches_reference():
    G = make_generator(c_dim=4)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(4))
    c = torch.eye(4)[:2]
    ws = G.mapping(z, c, truncation_psi=0.5)
    assert torch.allclose(ws, reference.mapping(G, z, c, 0.5), atol=1e-6)
    assert (G.synthesis(ws, noise_mode='const') - reference.synthesis(G, ws)).abs().max() < TOL * 4
    with pytest.raises(ValueError, match='conditional'):
        G.mapping(z, None)
    assert stylegan.w_from_seed(G, 0).shape == (1, G.num_ws, G.w_dim)


def test_a_grown_generator_draws_the_upsampled_image_until_trained():
    from photodrag.stylegan import ops
    G = make_generator(seed=3, img_resolution=32)
    G.crop_recipe = {'recipe': 'ffhq'}
    B = stylegan.grow(G, 128)
    assert B.img_resolution == 128 and B.num_ws == G.num_ws + 4 and B.crop_recipe == G.crop_recipe
    assert not B.training and not any(p.requires_grad for p in B.parameters())
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        w = G.mapping(z, None)[:, :1]
        assert torch.equal(B.mapping(z, None)[:, :1], w)                  # the same W space
        small = G.synthesis(w.repeat(1, G.num_ws, 1), noise_mode='const')
        big = B.synthesis(w.repeat(1, B.num_ws, 1), noise_mode='const')
    f = B.synthesis.b64.resample_filter
    assert torch.allclose(big, ops.upsample2d(ops.upsample2d(small, f), f), atol=1e-6)
    assert big.std() > 0.1
    again = stylegan.grow(G, 128)                                         # deterministic
    assert all(torch.equal(a, b) for a, b in zip(B.state_dict().values(), again.state_dict().values()))
    with torch.no_grad():
        B.synthesis.b128.torgb.weight.normal_()                           # once the new block draws, it shows
        assert not torch.allclose(B.synthesis(w.repeat(1, B.num_ws, 1), noise_mode='const'), big, atol=1e-3)
    for bad in (32, 16, 96):
        with pytest.raises(ValueError, match='larger power of two'):
            stylegan.grow(G, bad)
    with pytest.raises(ValueError, match="only a 'skip' generator"):
        stylegan.grow(make_generator(architecture='resnet'), 64)


# ---------------------------------------------------------------- StyleGAN-Human's layout

@pytest.mark.parametrize('architecture', ['skip', 'resnet'])
def test_a_non_square_generator_draws_the_official_image_on_a_white_square_canvas(architecture):
    """StyleGAN-Human's generators (`square=False`) draw R x R/2; photodrag shows that in the
    middle of a white R x R canvas (DragGAN's `padding=True`) and lays each feature map over it
    the same way, padded with zeros."""
    G = make_generator(architecture=architecture, conv_clamp=256, img_resolution=64, square=False)
    assert G.synthesis.b4.const.shape[1:] == (4, 2) and G.synthesis.b64.conv1.noise_const.shape == (64, 32)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(3))
    ws = G.mapping(z, None, truncation_psi=0.7)
    want = reference.synthesis(G, ws, noise_mode='const', path='official')
    assert want.shape == (2, 3, 64, 32)
    for fused in (True, False):
        got = G.synthesis(ws, noise_mode='const', fused_modconv=fused)
        assert got.shape == (2, 3, 64, 64)
        assert (got[..., 16:48] - want).abs().max() <= TOL * max(1.0, want.abs().max().item() / 4)
        assert torch.equal(got[..., :16], torch.ones_like(got[..., :16]))
        assert torch.equal(got[..., 48:], torch.ones_like(got[..., 48:]))
    out = G.synthesis.features(ws, stop_after=16, collect=[16], return_image=True, noise_mode='const')
    assert out.features[16].shape[2:] == (16, 8)
    laid = G.synthesis.image_area(out.features[16], 16)
    assert laid.shape[2:] == (16, 16) and torch.equal(laid[..., 4:12], out.features[16]) and not laid[..., :4].any()
    assert torch.equal(G.synthesis.finish(ws, out.features[16], out.image, 16, noise_mode='const'),
                       G.synthesis(ws, noise_mode='const'))
    G.synthesis(ws, noise_mode='random')            # random noise of the right shape
