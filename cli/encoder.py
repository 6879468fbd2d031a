"""`photodrag encoder train`: an encoder for a generator, trained on its own samples."""

import json
from pathlib import Path

import click

from photodrag.errors import PhotodragError

from .common import Group, checkpoint_option, check_outputs, device_option, progress_bar


@click.group('encoder', cls=Group)
def encoder_group():
    """Encoders: a crop to the generator's latents in one pass (the start of inversion)."""


def train_paths(out: Path):
    """The files a training run keeps beside the encoder: its state (to resume), record, plots."""
    stem = out.with_suffix('')
    return {'state': Path(f'{stem}.train-state.pt'), 'record': Path(f'{stem}.training.json'),
            'loss': Path(f'{stem}.loss.png'), 'samples': Path(f'{stem}.samples.png')}


@encoder_group.command('train')
@checkpoint_option(required=True)
@click.option('--out', type=click.Path(dir_okay=False), required=True, help='The encoder file (.safetensors).')
@click.option('--steps', type=click.IntRange(1, 10_000_000), default=6000, show_default=True,
              help='Length of the schedule (the learning rate decays over it).')
@click.option('--minutes', type=click.FloatRange(0.01, None), default=None,
              help='Stop after this long (resume later with --resume).')
@click.option('--batch', type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option('--lr', type=click.FloatRange(1e-6, 1.0), default=1e-3, show_default=True)
@click.option('--resolution', type=click.Choice(['16', '32', '64', '128', '256']), default=None,
              help="The encoder's input size (default: the generator's, at most 128).")
@click.option('--pool', type=click.IntRange(0, 1_000_000), default=0, show_default=True,
              help='Keep this many recent samples and draw only --fresh new ones a step (for CPUs, where '
                   "drawing samples is the slow part); 0: every step's batch is new.")
@click.option('--fresh', type=click.IntRange(1, 1024), default=None,
              help='With --pool: new samples a step (default: half the batch).')
@click.option('--resume', is_flag=True, help='Continue the run whose state is beside --out.')
@device_option
def encoder_train(checkpoint, out, steps, minutes, batch, lr, resolution, pool, fresh, resume, device):
    """Train an encoder for CHECKPOINT on images the generator draws itself (no dataset).

    Beside --out it keeps the run's state (OUT.train-state.pt; --resume continues it), a
    training record (OUT.training.json), the loss curve and a grid of samples with the
    encoder's reconstructions. The encoder file is written at every checkpoint, so an
    interrupted run leaves a usable one."""
    import torch
    from photodrag import checkpoints
    from photodrag.inversion import encoder as encoders
    from photodrag.io import atomic_write
    from photodrag.pipeline.device import pick_device
    from photodrag.pipeline.report import loss_plot, save_image

    out = Path(out)
    paths = train_paths(out)
    check_outputs([out] + list(paths.values()), [])
    if out.exists() and not resume:
        raise PhotodragError(f'{out} already exists; add --resume to continue its run, or choose another --out')
    device = pick_device(device)
    G = checkpoints.load_generator(checkpoint, device=device)
    if fresh is not None and not pool:
        raise PhotodragError('--fresh needs --pool (without a pool every sample is new)')
    cfg = encoders.TrainConfig(steps=steps, batch=batch, lr=lr, resolution=int(resolution or 0), pool=pool,
                               fresh=min(fresh or 0, batch))
    state = None
    if resume:
        if not paths['state'].is_file():
            raise PhotodragError(f'no run to resume: {paths["state"]} does not exist')
        state = _load_state(paths['state'], G, cfg, device)
    bar = progress_bar(desc='encoder', total=steps, initial=state['step'] if state else 0, unit='step')

    def on_step(step, total, record):
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix({k: f'{v:.3f}' for k, v in record.items() if k != 'step'}, refresh=False)

    def keep(st):
        enc = st['encoder']
        info = {'checkpoint': checkpoint, 'steps': st['step'], 'schedule_steps': steps, 'minutes':
                round(st['seconds'] / 60, 2), 'device': str(device), 'config': st['config'],
                'final': _recent(st['history'])}
        with atomic_write(paths['state']) as tmp:
            torch.save({'encoder': enc.state_dict(), 'encoder_kwargs': enc.init_kwargs,
                        'optimizer': st['optimizer'].state_dict(), 'step': st['step'], 'history': st['history'],
                        'generator_hash': st['generator_hash'], 'rng': st['rng'], 'seconds': st['seconds'],
                        'config': st['config'], **({'pool': st['pool']} if 'pool' in st else {})}, tmp)
        encoders.save(enc, out, st['generator_hash'], info)
        with atomic_write(paths['record']) as tmp:
            tmp.write_text(json.dumps({**info, 'history': st['history'][::10]}, indent=1) + '\n')
        loss_plot(st['history'], ('latent', 'l2', 'lpips'), paths['loss'], title='encoder')
        save_image(paths['samples'], _samples(G, enc, device))

    try:
        state = encoders.train(G, cfg, device=device, state=state, callback=on_step, checkpoint=keep,
                               seconds=minutes * 60 if minutes else None)
    finally:
        bar.close()
    click.echo(f'encoder: {out} ({state["step"]} of {steps} steps, {state["seconds"] / 60:.1f} min)')
    click.echo(f'state: {paths["state"]}; record: {paths["record"]}; plots: {paths["loss"]}, {paths["samples"]}')


def _recent(history, n: int = 50):
    keys = {k for e in history[-n:] for k in e if k != 'step'}
    return {k: round(sum(e[k] for e in history[-n:] if k in e) / max(1, sum(k in e for e in history[-n:])), 4)
            for k in sorted(keys)}


def _load_state(path: Path, G, cfg, device):
    import torch
    from photodrag.inversion import encoder as encoders
    from photodrag.inversion.saved import generator_hash
    try:
        raw = torch.load(str(path), map_location='cpu', weights_only=True)
    except Exception as e:      # torch raises many kinds for a damaged file
        raise PhotodragError(f'{path} is not a readable training state ({str(e)[:120]})') from None
    if raw.get('generator_hash') != generator_hash(G):
        raise PhotodragError(f'{path} is a run for another generator; resume it with the checkpoint it started with')
    if raw['config'].get('pool', 0) != cfg.pool or raw['config'].get('resolution', 0) != cfg.resolution:
        raise PhotodragError(f'{path} was started with --pool {raw["config"].get("pool", 0)} and --resolution '
                             f'{raw["config"].get("resolution", 0) or "(default)"}; resume it with the same')
    enc = encoders.Encoder(**raw['encoder_kwargs']).to(device)
    enc.load_state_dict(raw['encoder'])
    opt = torch.optim.Adam(enc.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    opt.load_state_dict(raw['optimizer'])
    return {'encoder': enc, 'optimizer': opt, 'step': raw['step'], 'history': raw['history'],
            'generator_hash': raw['generator_hash'], 'rng': raw['rng'], 'seconds': raw['seconds'],
            'config': raw['config'], **({'pool': raw['pool']} if 'pool' in raw else {})}


def _samples(G, enc, device):
    """Rows: generated faces (not seen in training) and the encoder's reconstructions of them."""
    import torch
    from photodrag import stylegan
    gen = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        ws = G.mapping(torch.randn((6, G.z_dim), generator=gen).to(device), None)
        images = G.synthesis(ws, noise_mode='const')
        recon = G.synthesis(enc(images), noise_mode='const')
    top, bottom = (stylegan.to_uint8(x) for x in (images, recon))
    import numpy as np
    return np.concatenate([np.concatenate(list(top), 1), np.concatenate(list(bottom), 1)], 0)
