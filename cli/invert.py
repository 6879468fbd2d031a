"""`photodrag invert`: an aligned crop into a checkpoint (projection + pivotal tuning)."""

from pathlib import Path

import click

from .common import ByteProgress, StageBars, check_outputs, checkpoint_option, device_option, quality_option


@click.command('invert')
@click.argument('crop', type=click.Path(exists=True, dir_okay=False))
@checkpoint_option(required=True)
@quality_option('balanced', help='Inversion preset (step counts: see inversion.PRESETS).')
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
                  [crop, checkpoint], folder=out_dir)
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
