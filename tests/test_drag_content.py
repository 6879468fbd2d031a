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
                    tracking='features', supervision='shift', content_check=False)


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
