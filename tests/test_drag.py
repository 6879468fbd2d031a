"""DragSession: DragGAN's algorithm, the fast path's equality with the reference, and the
interactive API (points, masks, learning rate, undo, callbacks)."""

import numpy as np
import pytest
import torch

from photodrag import checkpoints
from photodrag import stylegan
from photodrag.drag import DragConfig, DragSession, FullResFeatures, LowResFeatures
from photodrag.errors import InvalidMaskError, InvalidPointsError


@pytest.fixture(scope='module')
def G():
    # FFHQ's layout (feature block 6 = 128x128) at 256 px, with few channels so tests are quick.
    return checkpoints.random_generator(256, channel_base=4096, channel_max=128).eval().requires_grad_(False)


@pytest.fixture(scope='module')
def w(G):
    return stylegan.w_from_seed(G, 1, truncation_psi=0.7)


HANDLES, TARGETS = [(100, 120), (170, 60)], [(130, 100), (150, 90)]
# DragGAN's own handle options: the fast path must then compute exactly what the reference does
DRAGGAN = {'tracking': 'features', 'supervision': 'shift', 'content_check': False, 'patience': 0}


def session(G, w, handles=HANDLES, targets=TARGETS, **config):
    config.setdefault('stop_distance', 0)
    return DragSession(G, w, handles, targets, config=DragConfig(**{**DRAGGAN, **config}))


#----------------------------------------------------------------------------
# The fast path against DragGAN's reference computation


def test_low_res_sampling_equals_resized_map():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(1, 6, 32, 32, generator=g)
    fast, full = LowResFeatures(feat, 128), FullResFeatures(feat, 128)
    pixels = torch.randint(0, 128, (400, 2), generator=g).float()
    pixels[:4] = torch.tensor([[0, 0], [127, 127], [0, 127], [127, 0]])
    assert (fast.at(pixels) - full.at(pixels)).abs().max() < 1e-5
    anywhere = torch.rand(400, 2, generator=g) * 130 - 1.5       # also just outside the image
    assert (fast.bilinear(anywhere) - full.bilinear(anywhere)).abs().max() < 1e-4
    # The keep-still term is the one approximation: evaluated at feature resolution. On
    # smooth features (as a generator's are) it stays close to the full-size value.
    def smooth(seed):
        coarse = torch.randn(1, 6, 8, 8, generator=torch.Generator().manual_seed(seed))
        return torch.nn.functional.interpolate(coarse, size=(32, 32), mode='bilinear', align_corners=False)
    keep = torch.zeros(128, 128)
    keep[:, 40:] = 1
    a = LowResFeatures(smooth(1), 128).masked_l1(LowResFeatures(smooth(2), 128), keep)
    b = FullResFeatures(smooth(1), 128).masked_l1(FullResFeatures(smooth(2), 128), keep)
    assert abs(float(a) - float(b)) < 0.05 * float(b)


def test_fast_mode_tracks_exactly_like_the_reference(G, w):
    runs = {}
    for mode in ('reference', 'fast'):
        s = session(G, w, mode=mode, max_steps=20)
        runs[mode] = ([s.step().handles for _ in range(21)], s.latent, s.render())
    (ref_tracks, ref_latent, ref_img), (fast_tracks, fast_latent, fast_img) = runs['reference'], runs['fast']
    assert len(ref_tracks) == 21 and ref_tracks[-1] != ref_tracks[0]          # the handles did move
    diff = np.abs(np.array(ref_tracks) - np.array(fast_tracks)).max()
    assert diff <= 0.5, f'trajectories differ by {diff} px'
    assert (ref_latent - fast_latent).abs().max() < 1e-3
    assert (ref_img - fast_img).abs().max() < 1e-2


def test_fast_mode_never_runs_the_blocks_above_the_features(G, w, monkeypatch):
    for res in (256,):
        block = getattr(G.synthesis, f'b{res}')
        monkeypatch.setattr(block, 'forward', lambda *a, **k: pytest.fail('block above the features ran'))
    s = session(G, w, max_steps=3)
    s.run()
    assert s.step_count == 3
    monkeypatch.undo()
    assert s.render().shape == (1, 3, 256, 256)


def test_bf16_follows_fp32_closely(G, w):
    tracks = {}
    for precision in ('fp32', 'bf16'):
        s = session(G, w, precision=precision, max_steps=10)
        tracks[precision] = np.array([s.step().handles for _ in range(11)])
    gap = np.hypot(*(tracks['fp32'] - tracks['bf16']).transpose(2, 0, 1))      # [steps, points] px
    moved = np.hypot(*(tracks['fp32'][-1] - tracks['fp32'][0]).T)             # how far fp32 took each handle
    # bf16 rounding sends the two runs down slightly different paths (by up to 4 px after 10
    # steps on some CPUs), but they must go the same way: the gap stays a small part of the motion
    assert gap.mean() <= 2 and (gap[-1] <= 0.25 * moved).all(), (gap, moved)
    with pytest.raises(ValueError, match='CUDA'):
        session(G, w, precision='fp16')


#----------------------------------------------------------------------------
# What a step does


def test_step_reports_and_optimises_only_the_leading_ws(G, w):
    s = session(G, w, max_steps=5)
    first = s.step()
    assert first.step == 1 and not first.done and first.loss > 0
    assert first.handles == ((100.0, 120.0), (170.0, 60.0))    # tracked at the start latent: unmoved
    assert first.distances == pytest.approx([np.hypot(30, 20), np.hypot(20, 30)])
    for _ in range(3):
        s.step()
    moved = (s.latent - w).abs().amax(dim=2)[0]
    assert (moved[:6] > 0).all() and (moved[6:] == 0).all()


def test_w_space_moves_one_shared_vector(G, w):
    s = session(G, w, latent_space='w', optimized_ws=4, max_steps=3)
    s.run()
    delta = (s.latent - w)[0]
    assert torch.allclose(delta[:4], delta[:1].expand(4, -1)) and delta[0].abs().max() > 0
    assert (delta[4:] == 0).all()


def test_stops_when_handles_reach_targets_and_at_the_cap(G, w):
    s = DragSession(G, w, [(50, 50)], [(50, 50)])                 # handle on its target: done at once
    result = s.step()
    assert result.done and result.reason == 'converged' and result.step == 0
    assert torch.equal(s.latent, w.expand_as(s.latent)) and s.step() is result
    s = session(G, w, max_steps=2)
    last = s.run()
    assert last.done and last.reason == 'max_steps' and s.step_count == 2
    s = DragSession(G, w, [(50, 50)], [(51, 50)])                 # within the default 2 px tolerance
    assert s.step().reason == 'converged'


def test_same_inputs_same_drag(G, w):
    a, b = session(G, w, max_steps=4), session(G, w, max_steps=4)
    a.run(), b.run()
    assert a.handles == b.handles and torch.equal(a.latent, b.latent)


def test_callback_sees_every_step(G, w):
    seen = []
    s = DragSession(G, w, HANDLES, TARGETS, config=DragConfig(max_steps=3, stop_distance=0, **DRAGGAN),
                    callback=lambda sess, r: seen.append(r.step))
    more = []
    s.run(callback=lambda sess, r: more.append(r.handles))
    assert seen == [1, 2, 3, 3] and len(more) == 4


def test_render_is_the_image_at_the_current_latent(G, w):
    s = session(G, w, max_steps=2)
    s.run()
    assert torch.allclose(s.render(), G.synthesis(s.latent, noise_mode='const'), atol=1e-5)


@pytest.mark.parametrize('mode', ['fast', 'reference'])
def test_preview_is_the_tracked_image_and_changes_nothing(G, w, mode):
    """An editor's frames: step(preview=True) keeps the forward pass, preview() is the image
    at the latent the handles were tracked on, and the drag is bit-identical to one without."""
    plain, watched = session(G, w, max_steps=4, mode=mode), session(G, w, max_steps=4, mode=mode)
    for _ in range(3):
        plain.step()
        before = watched.latent
        watched.step(preview=True)
        frame = watched.preview()
        assert torch.allclose(frame, G.synthesis(before, noise_mode='const'), atol=1e-4)
        assert watched.preview() is None            # one preview per step
    assert torch.equal(plain.latent, watched.latent) and plain.handles == watched.handles
    watched.step()
    assert watched.preview() is None


def test_trajectory_replays_the_steps_kept(G, w):
    s = session(G, w, max_steps=5)
    latents = [s.latent]
    for _ in range(4):
        s.step()
        latents.append(s.latent)
    s.undo(2)
    steps = list(s.trajectory())
    assert [k for k, *_ in steps] == [0, 1, 2]
    assert all(torch.equal(ws, latents[k]) for k, ws, _, _ in steps)
    assert steps[0][2] == [tuple(map(float, p)) for p in HANDLES] and steps[-1][2] == s.handles


#----------------------------------------------------------------------------
# Interaction


def test_undo_restores_exact_state_and_replays_identically(G, w):
    s = session(G, w, max_steps=10)
    states = []
    for _ in range(6):
        s.step()
        states.append((s.latent, s.handles))
    restored = s.undo(3)
    assert restored.step == 3 and s.step_count == 3
    assert torch.equal(s.latent, states[2][0]) and s.handles == states[2][1]
    for k in range(3):
        s.step()
        assert torch.equal(s.latent, states[3 + k][0]) and s.handles == states[3 + k][1]
    s.undo(to_step=0)
    assert torch.equal(s.latent, w.expand_as(s.latent)) and s.handles == [tuple(map(float, p)) for p in HANDLES]
    with pytest.raises(ValueError, match='undo'):
        s.undo(1)


def test_points_can_be_added_moved_and_removed_mid_drag(G, w):
    s = session(G, w, handles=[(100, 120)], targets=[(130, 100)], max_steps=20)
    s.step(), s.step()
    index = s.add_point((60, 200), (60, 180))
    assert index == 1 and len(s.step().handles) == 2
    s.move_point(1, target=(70, 170))
    assert s.targets[1] == (70.0, 170.0)
    s.move_point(0, handle=(110, 118))
    assert s.handles[0] == (110.0, 118.0)
    s.step()
    s.remove_point(0)
    assert len(s.handles) == 1 and s.targets == [(70.0, 170.0)]
    with pytest.raises(InvalidPointsError, match='last point'):
        s.remove_point(0)
    with pytest.raises(InvalidPointsError, match='no point 5'):
        s.move_point(5, target=(1, 1))


def test_learning_rate_and_mask_change_keep_tracking_state(G, w):
    s = session(G, w, max_steps=20)
    s.step(), s.step()
    handles, step = s.handles, s.step_count
    s.set_lr(5e-3)
    mask = np.zeros((256, 256), np.float32)
    mask[30:220, 40:220] = 1
    s.set_mask(mask)
    assert s.lr == 5e-3 and s.handles == handles and s.step_count == step
    assert s.step().step == step + 1
    with pytest.raises(ValueError):
        s.set_lr(0)


def test_mask_keeps_the_rest_of_the_image_still(G, w):
    start = G.synthesis(w, noise_mode='const')
    mask = torch.zeros(256, 256)
    mask[60:180, 60:200] = 1
    outside = {}
    for name, m in (('free', None), ('masked', mask)):
        s = DragSession(G, w, [(100, 120)], [(130, 100)], mask=m, config=DragConfig(max_steps=15, stop_distance=0, **DRAGGAN))
        s.run()
        outside[name] = float((s.render() - start).abs()[0].mean(0)[mask == 0].mean())
    assert outside['masked'] < 0.4 * outside['free']


def test_soft_and_boolean_masks(G, w):
    soft = torch.full((256, 256), 0.5)
    s = DragSession(G, w, HANDLES, TARGETS, mask=soft)
    assert torch.equal(s.mask, soft)
    assert DragSession(G, w, HANDLES, TARGETS, mask=np.ones((256, 256), bool)).mask is None   # constrains nothing


@pytest.mark.parametrize('mask,message', [
    (np.ones((128, 128)), 'must be 256x256'),
    (np.full((256, 256), 255.0), r'\[0, 1\].*divided by 255'),
    (np.full((256, 256), np.nan), 'NaN'),
    (np.array([['a'] * 256] * 256), 'numeric'),
])
def test_bad_masks_are_rejected(G, w, mask, message):
    with pytest.raises(InvalidMaskError, match=message):
        DragSession(G, w, HANDLES, TARGETS, mask=mask)


def test_points_in_the_frozen_area_are_rejected(G, w):
    mask = np.zeros((256, 256))
    mask[:, 128:] = 1
    with pytest.raises(InvalidMaskError, match=r'handle 1 at \(100, 120\) lies in the masked \(frozen\)'):
        DragSession(G, w, [(100, 120)], [(150, 100)], mask=mask)


@pytest.mark.parametrize('handles,targets,message', [
    ([], [], 'at least one'),
    ([(1, 1)], [(2, 2), (3, 3)], '1 handles but 2 targets'),
    ([(256, 10)], [(10, 10)], r'handle 1 \(256, 10\) is outside the 256x256 image'),
    ([(10, 10)], [(-1, 10)], 'target 1 .* outside'),
    ([(float('nan'), 10)], [(10, 10)], 'not a finite'),
    ([(10,)], [(10, 10)], r'\(x, y\) pair'),
    ([('a', 'b')], [(10, 10)], r'\(x, y\) pair'),
])
def test_bad_points_are_rejected(G, w, handles, targets, message):
    with pytest.raises(InvalidPointsError, match=message):
        DragSession(G, w, handles, targets)


def test_bad_latents_and_configs(G, w):
    with pytest.raises(ValueError, match=r'w must be \[1, 14, 512\]'):
        DragSession(G, w[:, :3], HANDLES, TARGETS)
    single = DragSession(G, w[:, 0], HANDLES, TARGETS)
    assert single.latent.shape == (1, G.num_ws, G.w_dim)
    with pytest.raises(ValueError, match='mode'):
        DragConfig(mode='turbo')
    with pytest.raises(ValueError, match='blocks 1..7'):
        DragSession(G, w, HANDLES, TARGETS, config=DragConfig(feature_block=9))


def test_generator_weights_stay_frozen_and_untouched(G, w):
    G.synthesis.b8.conv1.weight.requires_grad_(True)
    try:
        before = {k: v.clone() for k, v in G.state_dict().items()}
        s = session(G, w, max_steps=2)
        s.run()
        assert G.synthesis.b8.conv1.weight.requires_grad and G.synthesis.b8.conv1.weight.grad is None
        assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    finally:
        G.synthesis.b8.conv1.weight.requires_grad_(False)


#----------------------------------------------------------------------------
# Going on on another generator (the web editor's progressive start)


def test_switching_to_the_same_generator_changes_nothing(G, w):
    """The switch keeps the edit (the offset in W and Adam's state) and reads the anchors as they
    were: onto an identical generator at the same start, the drag goes on exactly as it would have."""
    import copy
    straight = session(G, w, max_steps=12)
    for _ in range(10):
        straight.step()
    switched = session(G, w, max_steps=12)
    for _ in range(5):
        switched.step()
    state = switched.switch_generator(copy.deepcopy(G), w)
    assert state.step == 5 and not state.done
    for _ in range(5):
        switched.step()
    assert torch.equal(switched.latent, straight.latent) and switched.handles == straight.handles


def test_switching_generator_keeps_the_offset_and_undo(G, w):
    import copy
    G2 = copy.deepcopy(G)
    with torch.no_grad():
        for p in G2.synthesis.parameters():
            p.add_(0.01 * torch.randn_like(p))
    w2 = w + 0.05 * torch.randn_like(w)
    s = session(G, w, max_steps=20)
    for _ in range(4):
        s.step()
    offset = s.latent - w.expand_as(s.latent)
    handles = s.handles
    s.switch_generator(G2, w2)
    assert s.G is G2 and s.handles == handles
    assert torch.allclose(s.latent, w2.expand_as(s.latent) + offset, atol=1e-6)
    s.step(), s.step()
    assert s.step_count == 6
    s.undo(to_step=2)               # a step from before the switch: its offset, on the new generator
    assert s.G is G2 and s.step_count == 2
    s.step()
    assert s.step_count == 3 and torch.isfinite(s.latent).all()
    with pytest.raises(ValueError, match='same layout'):
        s.switch_generator(checkpoints.random_generator(128, channel_base=4096, channel_max=128), w2)


def test_a_drag_that_arrived_goes_on_after_a_switch(G, w):
    s = session(G, w, max_steps=3)
    last = s.run()
    assert last.done
    assert not s.switch_generator(G, w).done
    # the step cap counts from the switch: a drag that used its budget on the rough copy gets it again
    assert s.run().step == 6 and s.state().reason == 'max_steps'


def test_a_drag_on_a_non_square_generator_moves_its_handle():
    """StyleGAN-Human's layout: the drag works on the square canvas (features padded with zeros)."""
    Gh = checkpoints.random_generator(128, channel_base=4096, channel_max=64).eval().requires_grad_(False)
    import copy
    kwargs = copy.deepcopy(Gh.init_kwargs)
    kwargs['synthesis_kwargs']['square'] = False
    torch.manual_seed(0)
    Gh = stylegan.Generator(**kwargs).eval().requires_grad_(False)
    ws = stylegan.w_from_seed(Gh, 2, truncation_psi=0.7)
    s = DragSession(Gh, ws, [(60.0, 70.0)], [(70.0, 60.0)], config=DragConfig(**DRAGGAN, max_steps=20, stop_distance=0))
    before = s.render()
    assert before.shape[-2:] == (128, 128)
    last = [s.step() for _ in range(20)][-1]
    assert last.step == 20 and np.hypot(last.handles[0][0] - 60, last.handles[0][1] - 70) >= 1
    after = s.render()
    assert float((after - before).abs().mean()) > 1e-3 and torch.equal(after[..., :32], before[..., :32])
