"""The encoder: trained on a generator's own samples, it recovers that generator's w (on a tiny
generator fitted here, whose w means something), starts the projection at its w (recorded in
the inversion's settings), resumes, and refuses generators it was not trained for."""

import os

import pytest
import torch
import torch.nn.functional as F

from conftest import make_generator
from photodrag.errors import InvalidSettingsError, PhotodragError
from photodrag.inversion import InversionConfig, invert
from photodrag.inversion import encoder as encoders


class _L2:
    """A stand-in LPIPS (the tests' generator is random: perceptual features mean nothing here)."""

    def features(self, x):
        return [x]

    def compare(self, a, b):
        return ((a[0] - b[0]) ** 2).mean(dim=(1, 2, 3))


def _discs(z: torch.Tensor, size: int = 16) -> torch.Tensor:
    """A family of images with six parameters: a soft disc's centre, radius and colour."""
    t = torch.tanh(z)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing='ij')
    cx, cy, radius = (0.5 * t[:, 0, None, None], 0.5 * t[:, 1, None, None], 0.45 + 0.2 * t[:, 2, None, None])
    inside = torch.sigmoid((radius - ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt()) / 0.08)[:, None]
    return inside * 0.8 * t[:, 3:6, None, None] + (1 - inside) * -0.6


def test_on_a_fitted_generator_the_encoder_recovers_w_far_better_than_w_avg():
    # a generator fitted to the discs: its six z dimensions, hence its w, decide the image
    from photodrag import stylegan
    with torch.random.fork_rng():
        torch.manual_seed(0)
        G = stylegan.Generator(z_dim=6, w_dim=16, img_resolution=16, channel_base=256, channel_max=32,
                               mapping_kwargs=dict(num_layers=2))
    opt = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.0, 0.99))
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        z = torch.randn((32, 6), generator=gen)
        loss = F.mse_loss(G(z, None, noise_mode='const'), _discs(z))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.08                   # it draws discs
    G.eval().requires_grad_(False)

    cfg = encoders.TrainConfig(steps=200, batch=32, lr=2e-3, resolution=16, mix_prob=0.0, image_batch=8,
                               pool=256, fresh=16)
    enc = encoders.train(G, cfg, lpips=_L2())['encoder']
    with torch.no_grad():                       # samples it never saw
        ws = G.mapping(torch.randn((256, 6), generator=torch.Generator().manual_seed(99)), None)
        images = G.synthesis(ws, noise_mode='const')
        mean = enc.w_avg.expand_as(ws).contiguous()
        found = encoders.encode(enc, images)
        latent = [((w - ws) ** 2).mean().item() for w in (found, mean)]
        image = [F.mse_loss(G.synthesis(w, noise_mode='const'), images).item() for w in (found, mean)]
    assert latent[0] < 0.4 * latent[1], latent
    assert image[0] < 0.5 * image[1], image


@pytest.fixture(scope='module')
def trained():
    # a few steps: these tests are about the mechanics (the start point, files, refusals, resuming);
    # whether it learns is measured on a real generator (benchmarks/inversion.py --encoder)
    G = make_generator(img_resolution=32, channel_base=512, channel_max=32, randomize=False)
    state = encoders.train(G, encoders.TrainConfig(steps=8, batch=8, image_loss_every=4, image_batch=4), lpips=_L2())
    assert state['step'] == 8 and 'lpips' in state['history'][0] and 'lpips' not in state['history'][1]
    return G, state


def test_a_saved_encoder_starts_the_projection_and_is_refused_by_another_generator(trained, tmp_path):
    from photodrag.inversion.saved import generator_hash
    G, state = trained
    path = encoders.save(state['encoder'], tmp_path / 'enc.safetensors', generator_hash(G),
                         {'steps': state['step']})
    enc = encoders.load(path, G)
    with torch.no_grad():
        image = G.synthesis(G.mapping(torch.randn((1, G.z_dim), generator=torch.Generator().manual_seed(5)), None),
                            noise_mode='const')
    cfg = InversionConfig(projection_steps=0, tuning_steps=0, allow_random_lpips=True, w_avg_samples=100)
    from_mean = invert(G, image, cfg)
    from_enc = invert(G, image, cfg.replace(init='encoder'), encoder=enc)
    assert from_enc.config.init == 'encoder' and from_mean.config.init == 'mean'
    assert from_enc.encoder == {'path': str(path), 'weights_hash': generator_hash(enc)} and from_mean.encoder is None
    expected = state['encoder'](image.float()).mean(dim=1, keepdim=True).expand(-1, G.num_ws, -1)
    assert torch.allclose(from_enc.ws, expected, atol=1e-5)          # projection starts at the encoder's w
    assert torch.allclose(from_mean.ws[0, 0], from_mean.ws[0, -1]) and not torch.allclose(from_enc.ws, from_mean.ws)
    with pytest.raises(InvalidSettingsError, match='needs an encoder'):
        invert(G, image, cfg.replace(init='encoder'))
    other = make_generator(seed=1, img_resolution=32, channel_base=512, channel_max=32)
    with pytest.raises(PhotodragError, match='trained for generator'):
        encoders.load(path, other)
    with pytest.raises(PhotodragError, match='trained for generator'):
        invert(other, image, cfg.replace(init='encoder'), encoder=enc)
    (tmp_path / 'junk.safetensors').write_bytes(b'not an encoder')
    with pytest.raises(PhotodragError, match='not a readable encoder'):
        encoders.load(tmp_path / 'junk.safetensors')


@pytest.mark.parametrize('pool', [0, 24])
def test_training_resumes_where_it_stopped(pool):
    G = make_generator(img_resolution=32, channel_base=512, channel_max=32)
    cfg = encoders.TrainConfig(steps=20, batch=8, image_loss_every=0, pool=pool, fresh=3, resolution=16)
    whole = encoders.train(G, cfg, lpips=_L2())
    saved = []
    first = encoders.train(G, cfg, lpips=_L2(), until=10, checkpoint=lambda st: saved.append(st['step']),
                           checkpoint_every=4)
    assert first['step'] == 10 and saved == [4, 8, 10]
    resumed = encoders.train(G, cfg, state=first, lpips=_L2())
    assert resumed['step'] == 20 and len(resumed['history']) == 20
    assert resumed['encoder'].resolution == 16
    if pool:                                    # 3 new samples a step filled the pool, which then wrapped
        assert resumed['pool']['filled'] == pool and resumed['pool']['next'] == 20 * 3 % pool
    for k, v in whole['encoder'].state_dict().items():
        assert torch.allclose(v, resumed['encoder'].state_dict()[k], atol=1e-5), k


def test_the_train_command_writes_a_usable_encoder_and_resumes(tmp_path):
    from click.testing import CliRunner
    from photodrag import checkpoints
    from photodrag.cli import main
    out = tmp_path / 'enc.safetensors'
    args = ['encoder', 'train', '--checkpoint', 'random:32', '--out', str(out), '--steps', '40', '--batch', '4',
            '--device', 'cpu']
    first = CliRunner().invoke(main, args + ['--minutes', '0.01'])
    assert first.exit_code == 0, first.output
    assert out.is_file() and (tmp_path / 'enc.train-state.pt').is_file() and (tmp_path / 'enc.training.json').is_file()
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask     # not the temp file's 0600
    done_first = encoders.load(out).record['steps']
    assert 1 <= done_first < 40                 # stopped by --minutes
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and 'already exists' in again.output
    resumed = CliRunner().invoke(main, args + ['--resume'])
    assert resumed.exit_code == 0, resumed.output
    enc = encoders.load(out, checkpoints.load_generator('random:32'))
    assert enc.record['steps'] == 40 and (tmp_path / 'enc.samples.png').is_file()
    other = CliRunner().invoke(main, ['encoder', 'train', '--checkpoint', 'random:32:1', '--out', str(out),
                                      '--steps', '40', '--resume'])
    assert other.exit_code == 2 and 'another generator' in other.output


def test_the_demo_generator_ships_an_encoder_that_finds_its_w():
    from photodrag import checkpoints
    G = checkpoints.load_generator('demo-faces')
    enc = encoders.for_generator(G, 'demo-faces')       # found beside the checkpoint, fits it
    assert enc is not None and enc.record['steps'] >= 1000 and enc.record['checkpoint'] == 'demo-faces'
    with torch.no_grad():                               # faces it never saw
        ws = G.mapping(torch.randn((8, G.z_dim), generator=torch.Generator().manual_seed(2024)), None)
        images = G.synthesis(ws, noise_mode='const')
        found = encoders.encode(enc, images)
        mean = enc.w_avg.expand_as(ws).contiguous()
        latent = [((w - ws) ** 2).mean().item() for w in (found, mean)]
        image = [F.mse_loss(G.synthesis(w, noise_mode='const'), images).item() for w in (found, mean)]
    assert latent[0] < 0.6 * latent[1], latent
    assert image[0] < 0.6 * image[1], image


def test_edits_name_a_missing_encoder_file_before_any_work(tmp_path):
    from click.testing import CliRunner
    from photodrag.cli import main
    result = CliRunner().invoke(main, ['demo', '--out', str(tmp_path / 'out'), '--encoder', str(tmp_path / 'e.st')])
    assert result.exit_code == 2 and 'no such file' in result.output and not (tmp_path / 'out').exists()


def test_a_new_projection_step_count_holds_whatever_the_start():
    preset = InversionConfig.preset('fast')
    assert preset.encoder_projection_steps is not None                 # the preset's own, with an encoder
    assert InversionConfig.preset('fast', projection_steps=20).encoder_projection_steps is None
    assert preset.replace(projection_steps=20).encoder_projection_steps is None
    assert preset.replace(tuning_steps=5).encoder_projection_steps == preset.encoder_projection_steps
