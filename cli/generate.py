"""`photodrag drag` (DragGAN on a generated image) and `photodrag invert` (an aligned crop)."""

import sys
from pathlib import Path

import click

from photodrag.drag.config import LATENT_SPACES, MODES, PRECISIONS
from photodrag.inversion.config import PRESETS

from .common import ByteProgress, StageBars, check_outputs, checkpoint_option, device_option, fmt_points, \
    parse_drag, progress_bar


@click.command('drag')
@checkpoint_option(required=True)
@click.option('--seed', type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True,
              help="Which generated image (as NVIDIA's scripts number them).")
@click.option('--truncation', type=click.FloatRange(0, 2), default=0.7, show_default=True,
              help='Truncation psi of the start latent.')
@click.option('--drag', 'drags', multiple=True, required=True, metavar='X1,Y1:X2,Y2',
              help='Move the content at (X1,Y1) to (X2,Y2), in image pixels; repeat for more points.')
@click.option('--mask', type=click.Path(exists=True, dir_okay=False), help='Grayscale image, RxR: white = may change.')
@click.option('--steps', type=click.IntRange(min=0), default=300, show_default=True, help='Step cap.')
@click.option('--out', type=click.Path(dir_okay=False), default='drag.png', show_default=True,
              help='Final image; its settings and result go to the same name with .json.')
@click.option('--video', type=click.Path(dir_okay=False),
              help='Also write the trajectory with the points drawn (.mp4, .webm, .avi).')
@click.option('--fps', type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help='Frames per second of --video.')
@click.option('--lr', type=float, default=None, help='Adam learning rate (default 2e-3).')
@click.option('--latent-space', type=click.Choice(LATENT_SPACES), default='w+', show_default=True)
@click.option('--precision', type=click.Choice(PRECISIONS), default='fp32', show_default=True,
              help='bf16 is about twice as fast on CPUs with bf16 instructions; fp16 needs CUDA.')
@click.option('--mode', type=click.Choice(MODES), default='fast', show_default=True,
              help="reference = what DragGAN's code does (slower, for comparison).")
@click.option('--stop-distance', type=float, default=None, help='Done when every handle is this close (px).')
@device_option
def drag_command(checkpoint, seed, truncation, drags, mask, steps, out, video, fps, lr, latent_space,
                 precision, mode, stop_distance, device):
    """Drag points on a generated image (DragGAN), and save the result."""
    from photodrag import checkpoints, stylegan
    from photodrag.drag import DragConfig
    from photodrag.io import write_json
    from photodrag.pipeline import report
    from photodrag.pipeline.device import pick_device
    from photodrag.pipeline.generated import drag_generated

    pairs = [parse_drag(d) for d in drags]
    check_outputs([out, Path(out).with_suffix('.json'), video], [checkpoint, mask])
    changes = dict(max_steps=steps, latent_space=latent_space, precision=precision, mode=mode,
                   stop_distance=stop_distance)
    if lr is not None:
        changes['lr'] = lr
    config = DragConfig(**changes)              # bad values fail here, before anything loads
    device = pick_device(device or 'auto')
    config.check_device(device)
    G = checkpoints.load_generator(checkpoint, device=device, progress=ByteProgress(checkpoint))
    writer = report.VideoWriter(video, fps=fps) if video else None
    bar = progress_bar(total=steps, desc='drag', unit='step')
    scale = max(1, 512 // G.img_resolution)

    def on_step(session, step, trails):
        if step is not None:
            bar.set_postfix(distance=f'{max(step.distances):.1f}px', refresh=False)
            bar.update(step.step - bar.n)
        if writer:
            image = stylegan.to_uint8(session.render())[0]
            mask_now = None if session.mask is None else session.mask.cpu().numpy()
            writer.write(report.draw_points(image, session.handles, session.targets, mask=mask_now, trails=trails,
                                            scale=scale))

    try:
        result = drag_generated(G, seed, pairs, truncation=truncation, mask=mask, config=config, device=device,
                                callback=on_step, checkpoint=checkpoint)
    except BaseException:
        if writer:
            writer.abort()
        raise
    finally:
        bar.close()
    report.save_image(out, result.image)
    if writer:
        writer.close()
    write_json(Path(out).with_suffix('.json'), result.settings)
    state = result.state
    status = 'interrupted' if result.interrupted else (state.reason or 'stopped')
    click.echo(f'{out}: {status} after {state.step} steps, handles {fmt_points(state.handles)}, '
               f'max distance to target {max(state.distances):.1f}px' + (f'; video {video}' if video else ''))
    if result.interrupted:
        sys.exit(130)


@click.command('invert')
@click.argument('crop', type=click.Path(exists=True, dir_okay=False))
@checkpoint_option(required=True)
@click.option('--quality', type=click.Choice([p for p in PRESETS if p != 'reference']), default='balanced',
              show_default=True, help='Inversion preset (step counts: see inversion.PRESETS).')
@click.option('--seed', type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True,
              help='Seed of the start noise and samples.')
@click.option('--projection-steps', type=click.IntRange(0, 100_000), default=None, help='Override the preset.')
@click.option('--tuning-steps', type=click.IntRange(0, 100_000), default=None, help='Override the preset.')
@click.option('--cache/--no-cache', default=True, show_default=True,
              help='Reuse an earlier inversion of the same crop, checkpoint and settings '
                   '($PHOTODRAG_CACHE/inversions).')
@device_option
@click.option('--out', type=click.Path(file_okay=False), default='inversion', show_default=True,
              help='Output folder: inversion.safetensors, inversion.json, compare.png (target | reconstruction).')
def invert_command(crop, checkpoint, quality, seed, projection_steps, tuning_steps, cache, device, out):
    """Invert an aligned CROP (the generator's size, RGB) into a checkpoint: projection + pivotal tuning."""
    import dataclasses
    import time
    import numpy as np
    from photodrag import alignment, checkpoints, stylegan
    from photodrag.inversion import InversionConfig, invert
    from photodrag.io import write_json
    from photodrag.pipeline import report
    from photodrag.pipeline.device import pick_device

    out_dir = Path(out)
    check_outputs([out_dir / 'inversion.safetensors', out_dir / 'compare.png', out_dir / 'inversion.json'],
                  [crop, checkpoint])
    changes = {'seed': seed}
    if projection_steps is not None:
        changes['projection_steps'] = projection_steps
    if tuning_steps is not None:
        changes['tuning_steps'] = tuning_steps
    config = InversionConfig.preset(quality, **changes)
    image = alignment.read_photo(crop).pixels
    device = pick_device(device or 'auto')
    G = checkpoints.load_generator(checkpoint, device=device, progress=ByteProgress(checkpoint))
    bars = StageBars()
    started = time.perf_counter()
    try:
        inv = invert(G, image, config, callback=bars, device=device, cache=cache)
    finally:
        bars.close()
    recon = stylegan.to_uint8(inv.render(G))[0]
    inv.save(out_dir / 'inversion.safetensors')
    report.save_image(out_dir / 'compare.png', np.concatenate([image, recon], axis=1))
    write_json(out_dir / 'inversion.json', {
        'command': 'invert', 'crop': str(crop), 'checkpoint': str(checkpoint), 'generator': checkpoints.describe(G),
        'quality': quality, 'device': device, 'from_cache': inv.from_cache, 'config': dataclasses.asdict(config),
        'metrics': {k: dataclasses.asdict(v) for k, v in inv.metrics.items()}, 'base_hash': inv.base_hash,
        'seconds': round(time.perf_counter() - started, 2)})
    m = inv.metrics.get('tuning') or inv.metrics.get('projection')
    click.echo(f'{out_dir}: LPIPS({m.lpips_net}) {m.lpips:.4f}, PSNR {m.psnr:.2f} dB'
               + (' (from cache)' if inv.from_cache else ''))
