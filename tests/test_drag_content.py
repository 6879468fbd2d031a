"""Dragging moves content: on a generator fitted to draw a movable blob, the blob goes
where the handle is dragged, in every direction, in both modes alike."""

import numpy as np
import pytest
import torch

from blobs import BlobWorld
from photodrag.drag import DragConfig, DragSession

pytestmark = pytest.mark.slow

# Radii are given at 512 px: 48 -> 3 px and 96 -> 6 px at 32 px. Block 3 = 16x16 features.
CONFIG = DragConfig(feature_block=3, r1=48, r2=96, latent_space='w', lr=0.02, max_steps=100, stop_distance=1,
                    tracking='features', supervision='shift', content_check=False, patience=0)


@pytest.fixture(scope='module')
def world():
    world = BlobWorld(seed=0)
    assert world.final_loss < 0.02, 'the blob generator did not fit'
    return world


@pytest.mark.parametrize('start,move', [((-0.3, -0.2), (8, 4)), ((0.3, 0.2), (-8, -4)),
                                        ((0.0, 0.0), (0, 8)), ((0.2, -0.3), (-6, 6))])
def test_dragging_moves_the_blob_to_the_target(world, start, move):
    w = world.latent(torch.tensor([start]))
    before = world.locate(world.G.synthesis(w, noise_mode='const'))
    target = before + torch.tensor(move, dtype=torch.float32)
    session = DragSession(world.G, w, [tuple(before.round().tolist())], [tuple(target.round().tolist())],
                          config=CONFIG)
    result = session.run()
    assert result.done and result.reason == 'converged'
    after = world.locate(session.render())
    wanted = target - before
    moved = after - before
    along = float(moved @ wanted / wanted.norm())
    across = float(abs(moved[0] * wanted[1] - moved[1] * wanted[0]) / wanted.norm())
    assert along > 0.6 * float(wanted.norm()), f'blob moved {moved.tolist()} for {wanted.tolist()}'
    assert across < 2.5
    assert float((after - target).norm()) < 0.45 * float(wanted.norm())


def test_fast_and_reference_agree_on_meaningful_features(world):
    w = world.latent(torch.tensor([[-0.3, -0.2]]))
    tracks = {}
    for mode in ('reference', 'fast'):
        config = CONFIG.replace(mode=mode, stop_distance=0, max_steps=20, lr=0.01)
        session = DragSession(world.G, w, [(12, 13), (20, 20)], [(20, 17), (16, 26)], config=config)
        tracks[mode] = np.array([session.step().handles for _ in range(21)])
    assert np.abs(tracks['reference'] - tracks['fast']).max() <= 0.5
    assert np.abs(tracks['fast'][-1] - tracks['fast'][0]).max() >= 3      # the handles travelled


# ---------------------------------------------------------------- following the content
# DragGAN's tracker declares arrival as soon as the nearest feature is at the target; on the
# blob that happens while the blob itself is still 1-2 px short (18 % of an 8 px drag). The
# handle options (docs/algorithms.md, "Following the content") keep pulling until the blob is there.

DRAGGAN = {'tracking': 'features', 'supervision': 'shift', 'content_check': False, 'patience': 0}


def drag_blob(world, start, offset, move, **options):
    """Drag the point `offset` from the blob's centre by `move`; (share of the way the blob went
    along the drag, the session's last step)."""
    w = world.latent(torch.tensor([start]))
    centre = world.locate(world.G.synthesis(w, noise_mode='const'))
    handle = centre + torch.tensor(offset, dtype=torch.float32)
    target = handle + torch.tensor(move, dtype=torch.float32)
    session = DragSession(world.G, w, [tuple(handle.tolist())], [tuple(target.tolist())],
                          config=CONFIG.replace(**options))
    result = session.run()
    wanted = torch.tensor(move, dtype=torch.float32)
    share = float((world.locate(session.render()) - centre) @ wanted / wanted.norm() ** 2)
    return share, result


# drags of a point 3 px off the blob's centre, away from the direction of the drag
CASES = [((-0.3, 0.0), (-3, 0), (8, 0)), ((0.0, -0.3), (0, -3), (0, 8)), ((-0.3, 0.0), (-4, 0), (10, 0))]


@pytest.fixture(scope='module')
def draggan(world):
    """How far DragGAN's own tracking brings the blob in each case (it says 'converged' in all)."""
    runs = [drag_blob(world, *case, **DRAGGAN) for case in CASES]
    assert all(last.reason == 'converged' for _, last in runs)
    return np.array([share for share, _ in runs])


def test_image_tracking_brings_the_blob_all_the_way(world, draggan):
    shares = np.array([drag_blob(world, *case, tracking='image', content_check=True)[0] for case in CASES])
    assert shares.min() > 0.9 and shares.mean() > draggan.mean() + 0.06, (shares, draggan)


@pytest.mark.parametrize('name,options', [('content check', {'content_check': True}), ('template', {'tracking': 'template'})])
def test_the_other_options_bring_the_blob_further_where_draggans_tracker_stops_short(world, draggan, name, options):
    """The content check alone, and FreeDrag-style template tracking, each beat DragGAN's tracker
    by 8 % of the way in a case where it stops short (the template also loses the blob in another:
    docs/algorithms.md says why it is not the default)."""
    shares = np.array([drag_blob(world, *case, **{**DRAGGAN, **options})[0] for case in CASES])
    assert (shares - draggan).max() > 0.08 and shares.max() > 0.9, (name, shares, draggan)


def test_a_match_below_the_confidence_leaves_the_handle_where_it_was(world):
    w = world.latent(torch.tensor([[-0.3, 0.0]]))
    session = DragSession(world.G, w, [(10.0, 15.0)], [(18.0, 15.0)],
                          config=CONFIG.replace(**{**DRAGGAN, 'confidence': 0.999999, 'max_steps': 6}))
    handles = [session.step().handles[0] for _ in range(6)]
    assert all(h == (10.0, 15.0) for h in handles)      # nothing is that similar once the latent moved
    free = DragSession(world.G, w, [(10.0, 15.0)], [(18.0, 15.0)], config=CONFIG.replace(**DRAGGAN, max_steps=6))
    assert [free.step().handles[0] for _ in range(6)][-1] != (10.0, 15.0)


def test_original_supervision_moves_the_blob_towards_the_target(world):
    share, _ = drag_blob(world, (-0.3, 0.0), (0, 0), (8, 0), **{**DRAGGAN, 'supervision': 'original'})
    assert share > 0.5


def test_a_drag_that_gets_no_nearer_ends_stalled_at_its_nearest_step(world):
    """With lr this small nothing moves: after `patience` steps without progress the drag ends
    'stalled' and is back at its best step, instead of running on to the cap."""
    w = world.latent(torch.tensor([[-0.3, 0.0]]))
    session = DragSession(world.G, w, [(10.0, 15.0)], [(18.0, 15.0)],
                          config=CONFIG.replace(lr=1e-7, max_steps=100, patience=10, tracking='image'))
    last = session.run()
    assert last.done and last.reason == 'stalled' and session.step_count == 0
    assert torch.equal(session.latent, w)


def test_a_drag_begun_on_a_rough_generator_lands_on_the_tuned_one(world):
    """The web editor's progressive start: the drag begins on a rough copy of the face (a
    generator and latent off the mark, as before pivotal tuning) and goes on on the true one;
    the blob the true generator draws ends where it was dragged."""
    import copy
    start, move = (-0.3, -0.2), (8, 4)
    w = world.latent(torch.tensor([start]))
    rough = copy.deepcopy(world.G)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in rough.synthesis.parameters():
            p.mul_(1 + 0.05 * torch.randn_like(p))
    w_rough = w + 0.02 * torch.randn_like(w)
    before = world.locate(world.G.synthesis(w, noise_mode='const'))
    target = before + torch.tensor(move, dtype=torch.float32)
    session = DragSession(rough, w_rough, [tuple(before.round().tolist())], [tuple(target.round().tolist())],
                          config=CONFIG)
    for _ in range(8):
        session.step()
    assert world.locate(rough.synthesis(session.latent, noise_mode='const')).sub(before).norm() > 1
    session.switch_generator(world.G, w)
    result = session.run()
    assert result.done and result.reason == 'converged'
    after = world.locate(session.render())
    assert float((after - target).norm()) < 0.45 * float(torch.tensor(move, dtype=torch.float32).norm()), after
