"""StyleGAN3 (alias-free, configs T and R): our network against a plain restatement of NVIDIA's
computation, loading its pickles safely, saving and reloading, and dragging on it."""

import numpy as np
import pytest
import torch

import formats
import stylegan3_reference as reference
from photodrag import checkpoints
from photodrag.drag import DragConfig, DragSession
from photodrag.errors import BadCheckpointError
from photodrag.stylegan.alias_free import AliasFreeGenerator, filtered_lrelu

CONFIGS = {
    # FFHQ's T and R layouts (14 layers, 2 critical, margin 10), few channels so tests are quick
    't': dict(z_dim=64, w_dim=64, img_resolution=64, channel_base=2048, channel_max=64),
    'r': dict(z_dim=64, w_dim=64, img_resolution=64, channel_base=4096, channel_max=128, conv_kernel=1,
              use_radial_filters=True),
}


def trained_looking(G):
    """Random weights with the state training leaves: each layer's magnitude_ema is the mean square
    of its input (as NVIDIA's update_emas tracks it), so activations keep unit scale and the image
    spans about [-1, 1]; w_avg is the mean w."""
    from photodrag.stylegan.alias_free import AliasFreeLayer
    gen = torch.Generator().manual_seed(5)
    G.eval().requires_grad_(False)

    def track(layer, inputs):
        layer.magnitude_ema.copy_(inputs[0].square().mean())

    hooks = [m.register_forward_pre_hook(track) for m in G.modules() if isinstance(m, AliasFreeLayer)]
    with torch.no_grad():
        ws = G.mapping(torch.randn(8, G.z_dim, generator=gen), None)
        G.mapping.w_avg.copy_(ws[:, 0].mean(0))
        G.synthesis(ws)
    for h in hooks:
        h.remove()
    return G


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def G(request):
    torch.manual_seed(1)
    return trained_looking(AliasFreeGenerator(**CONFIGS[request.param]))


def ws_for(G, seed, psi):
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    return G.mapping(z, None, truncation_psi=psi)


def test_the_fast_path_draws_what_nvidias_computation_draws(G):
    for seed, psi in ((0, 1.0), (1, 0.7), (2, 0.5)):
        ws = ws_for(G, seed, psi)
        ours, theirs = G.synthesis(ws), reference.synthesis(G, ws)
        assert 0.3 < float(theirs.abs().max()) < 5        # an image's range: the tolerance means something
        assert float((ours - theirs).abs().max()) < 1e-3, (seed, psi)


@pytest.mark.parametrize('up, down, radial', [(2, 2, False), (4, 2, False), (2, 4, True), (1, 2, False), (2, 1, False)])
def test_the_filtered_leaky_relu_equals_upsampling_by_zero_insertion(up, down, radial):
    gen = torch.Generator().manual_seed(up * 10 + down)
    x = torch.randn(2, 3, 19, 23, generator=gen)
    b = torch.randn(3, generator=gen)
    fu = torch.rand(6 * up, generator=gen) if up > 1 else None
    fd = (torch.rand(6 * down, 6 * down, generator=gen) if radial else torch.rand(6 * down, generator=gen)) \
        if down > 1 else None
    padding = [7, 4, 5, 6]
    ours = filtered_lrelu(x, fu, fd, b, up, down, padding, gain=1.4, slope=0.2, clamp=0.8)
    y = reference.upfirdn2d(x + b[None, :, None, None], fu, up=up, pad=padding, gain=up ** 2)
    y = (torch.nn.functional.leaky_relu(y, 0.2) * 1.4).clamp(-0.8, 0.8)
    theirs = reference.upfirdn2d(y, fd, down=down)
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-5)


def test_stopping_at_a_block_and_finishing_gives_the_same_image(G):
    ws = ws_for(G, 3, 0.7)
    full = G.synthesis(ws)
    out = G.synthesis.features(ws, stop_after=6, collect=[6], return_image=True)
    assert out.image is None and 6 in out.features
    assert torch.equal(G.synthesis.finish(ws, out.features[6], None, 6), full)
    area = G.synthesis.image_area(out.features[6], 6)
    plan = G.synthesis.plan.layers[5]
    assert area.shape[-1] == plan.out_rate and out.features[6].shape[-1] == plan.out_size


def test_nvidia_pickles_load_exactly_and_run_nothing(G, tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'network-snapshot.pkl'
    formats.write_stylegan3_pickle(G, path, marker)
    loaded = checkpoints.load_generator(path)
    assert not marker.exists()
    assert type(loaded) is AliasFreeGenerator and loaded.init_kwargs == G.init_kwargs
    mine, theirs = G.state_dict(), loaded.state_dict()
    assert set(mine) == set(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert 'synthesis.input.freqs' in theirs and any(k.endswith('.down_filter') for k in theirs)
    for seed, psi in ((0, 1.0), (1, 0.7)):
        ws = ws_for(loaded, seed, psi)
        assert torch.allclose(loaded.synthesis(ws), reference.synthesis(G, ws), atol=1e-3)
    formats.load_like_nvidia(path)      # the payload is live: NVIDIA's own loader would have run it
    assert marker.exists()


def test_saved_and_reloaded_in_photodrags_format(G, tmp_path):
    path = checkpoints.save_generator(G, tmp_path / 'g3.safetensors')
    loaded = checkpoints.load_generator(path)
    ws = ws_for(G, 4, 0.7)
    assert type(loaded) is AliasFreeGenerator and torch.equal(loaded.synthesis(ws), G.synthesis(ws))


def _stub(G, tmp_path):
    src = formats.PAYLOAD.format(marker=str(tmp_path / 'ran'))
    return formats.stylegan3_stub(G, src, formats.stylegan3_kwargs(G))


def _write(G, tmp_path, stub, name):
    path = tmp_path / name
    formats.write_stylegan3_pickle(G, path, tmp_path / 'ran', G_ema=stub)
    return path


@pytest.mark.parametrize('change, message', [
    (lambda s: s.meta['state']['_init_kwargs'].update(num_layers=10 ** 6), 'num_layers'),
    (lambda s: s.meta['state']['_init_kwargs'].update(channel_base=1 << 40), 'channel_base'),
    (lambda s: s.meta['state']['_init_kwargs'].update(margin_size=10 ** 5), 'margin_size'),
    (lambda s: s.meta['state']['_init_kwargs'].update(img_resolution=96), 'power of two'),
    (lambda s: s.meta['state']['_init_kwargs'].update(use_radial_filters='yes'), 'use_radial_filters'),
    (lambda s: s.meta['state']['_init_kwargs'].update(custom_op=True), 'custom_op'),
    (lambda s: s.meta['state']['_modules']['synthesis'].meta['state']['_modules']['L3_36_64'].meta['state']
     .update(padding=[1, 2, 3, 4]), 'records padding'),
    (lambda s: s.meta['state']['_modules']['synthesis'].meta['state']['_modules'].pop('L3_36_64'), 'no layer L3_36_64'),
    (lambda s: s.meta['state']['_modules']['synthesis'].meta['state']['_modules']['L2_36_64'].meta['state']
     ['_buffers'].pop('up_filter'), r'missing synthesis\.L2_36_64\.up_filter'),
])
def test_crafted_stylegan3_pickles_are_refused_before_anything_is_built(tmp_path, change, message):
    torch.manual_seed(2)
    G = AliasFreeGenerator(**CONFIGS['t'])
    stub = _stub(G, tmp_path)
    change(stub)
    with pytest.raises(BadCheckpointError, match=message):
        checkpoints.load_generator(_write(G, tmp_path, stub, 'crafted.pkl'))
    assert not (tmp_path / 'ran').exists()


def test_the_drag_layer_follows_the_content_moved_through_the_input(G):
    """StyleGAN3's promise, kept by our implementation: move the content by a sub-pixel
    translation (and, for R, a rotation) through the Fourier input's transform, and the
    drag's point tracking on the default layer (L5) finds every point where its content went,
    to the pixel (benchmarks/stylegan3_features.py measures every layer at 256 px)."""
    import math
    from photodrag.drag.features import FullResFeatures
    from photodrag.drag.tracking import track
    res, block = G.img_resolution, DragConfig().block_index(G.num_blocks)
    assert block == 6
    ws = ws_for(G, 3, 0.7)
    rotation = 4.0 if G.synthesis.plan.layers[0].down_radial else 0.0
    a = math.radians(rotation)
    m = np.array([[math.cos(a), -math.sin(a), 1.3 / res], [math.sin(a), math.cos(a), -0.6 / res], [0, 0, 1]])

    def layer(transform):
        G.synthesis.input.transform.copy_(torch.from_numpy(transform).float())
        x = G.synthesis.features(ws, stop_after=block, collect=[block]).features[block]
        return FullResFeatures(G.synthesis.image_area(x, block), res)

    try:
        before, after = layer(np.eye(3)), layer(np.linalg.inv(m))
    finally:
        G.synthesis.input.transform.copy_(torch.eye(3))
    points = torch.from_numpy(np.random.RandomState(0).randint(16, 48, size=(32, 2))).float()
    centred = (points.numpy() + 0.5) / res - 0.5
    expected = (centred @ m[:2, :2].T + m[:2, 2] + 0.5) * res - 0.5
    found = track(after, points, before.at(points), DragConfig().search_radius(res) + 1)
    assert np.hypot(*(found.numpy() - expected).T).max() <= 1.0


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_a_drag_on_stylegan3_moves_its_handle_and_changes_the_image(config):
    torch.manual_seed(3)
    G = trained_looking(AliasFreeGenerator(**CONFIGS[config]))
    ws = ws_for(G, 0, 0.7)
    before = G.synthesis(ws)
    session = DragSession(G, ws, [(30.0, 34.0)], [(40.0, 30.0)],
                          config=DragConfig(max_steps=20, stop_distance=0, lr=0.01))
    assert session.feature_resolution == 6          # DragGAN's feature index 5: layer L5
    steps = [session.step() for _ in range(20)]
    assert steps[-1].step == 20
    moved = np.hypot(*np.subtract(steps[-1].handles[0], (30.0, 34.0)))
    assert moved >= 1.0
    assert float((session.render() - before).abs().mean()) > 1e-3
    again = DragSession(G, ws, [(30.0, 34.0)], [(40.0, 30.0)], config=DragConfig(max_steps=20, stop_distance=0,
                                                                                 lr=0.01, mode='reference'))
    ref_steps = [again.step() for _ in range(3)]
    assert np.allclose(ref_steps[-1].handles, steps[2].handles, atol=1.0)      # the fast path tracks as the full render


def test_a_photo_is_edited_on_a_stylegan3_and_replays_from_its_record(tmp_path):
    """The whole pipeline on a StyleGAN3 file: align, invert (no noise maps to optimise), drag,
    paste; the record names the checkpoint and replays to the same pixels. (Random weights: the
    generator's image changes, its content does not move, so the paste may leave the photo as it is.)"""
    from photodrag import pipeline
    from photodrag.alignment import detect_faces, read_photo
    from photodrag.inversion import InversionConfig
    from photodrag.pipeline.demo import DEMO_PHOTO
    torch.manual_seed(4)
    G = trained_looking(AliasFreeGenerator(**CONFIGS['t']))
    path = checkpoints.save_generator(G, tmp_path / 'sg3.safetensors')
    photo = read_photo(DEMO_PHOTO)
    face = detect_faces(photo)[0]
    x, y = face.centre
    inversion = InversionConfig.preset('fast', projection_steps=4, tuning_steps=3).replace(init='mean')
    result = pipeline.edit(photo, [((x, y + 20), (x + 10, y + 20))], checkpoint=str(path), inversion=inversion,
                           max_steps=5, cache=False, face=0)
    record = result.record
    assert record.faces[0].drag['steps'] == 5 and record.checkpoint['sha256']
    face_result = result.faces[0]
    assert face_result.edited.shape == (64, 64, 3)
    assert np.abs(face_result.edited.astype(int) - face_result.reconstruction).mean() > 0.5     # the drag drew
    again = pipeline.edit_from_record(record, photo=photo, cache=False)
    assert np.array_equal(again.pixels, result.pixels)
