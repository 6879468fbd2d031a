"""`photodrag drag`: DragGAN on a generated image."""

import sys
from pathlib import Path

import click

from photodrag.drag.config import LATENT_SPACES, MODES, PRECISIONS

from .common import ByteProgress, check_outputs, checkpoint_option, device_option, fmt_points, parse_drag, \
    progress_bar


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
