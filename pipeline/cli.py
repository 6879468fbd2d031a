"""The `photodrag` command line. It parses, calls the library, and prints; nothing more.

Any `PhotodragError` (a problem the user can fix) becomes one line on stderr and exit status 2,
as click's own usage errors do; a traceback means a bug.
"""

import os
import sys
from pathlib import Path

import click

from stylegan.errors import PhotodragError


class _Group(click.Group):
    """A click group that turns photodrag's own errors into one clear line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PhotodragError as e:
            click.echo(f'error: {e}', err=True)
            ctx.exit(2)


def pick_device(requested: str = 'auto') -> str:
    """cuda -> mps -> cpu, unless told."""
    import torch
    if requested != 'auto':
        if requested.startswith('cuda') and not torch.cuda.is_available():
            raise PhotodragError('--device cuda was asked for, but no CUDA GPU is available')
        if requested == 'mps' and not torch.backends.mps.is_available():
            raise PhotodragError('--device mps was asked for, but MPS is not available')
        return requested
    if torch.cuda.is_available():
        return 'cuda'
    if torch.backends.mps.is_available():
        return 'mps'
    return 'cpu'


class _ByteProgress:
    """A tqdm bar fed by byte-count callbacks, opened on the first byte (on stderr)."""

    def __init__(self, desc):
        self.desc, self.bar = desc, None

    def __call__(self, done, total):
        from tqdm import tqdm
        if self.bar is None:
            self.bar = tqdm(desc=self.desc, total=total, unit='B', unit_scale=True, file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@click.group(cls=_Group, context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(package_name='photodrag')
def main():
    """photodrag: edit real photographs by dragging points (DragGAN on real photos)."""


#----------------------------------------------------------------------------
# checkpoints


@main.group('checkpoints', cls=_Group)
def checkpoints_group():
    """The model zoo: list, download, verify and convert generator checkpoints.

    Files are cached in $PHOTODRAG_CACHE (default ~/.cache/photodrag).
    """


@checkpoints_group.command('list')
def checkpoints_list():
    """Known checkpoints, and whether each is in the cache."""
    import checkpoints
    rows = [('name', 'px', 'domain', 'format', 'cached', 'licence')]
    for e in checkpoints.list_checkpoints():
        cached = 'yes' if checkpoints.local_path(e).is_file() else ('n/a' if not e.supported else 'no')
        rows.append((e.name, str(e.resolution), e.domain, e.format, cached, e.licence))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo('  '.join(c.ljust(w) for c, w in zip(r[:5], widths)) + '  ' + r[5])
    click.echo(f'\ncache: {checkpoints.checkpoint_dir()}')


@checkpoints_group.command('download')
@click.argument('name')
@click.option('--force', is_flag=True, help='Download again even if the file is cached.')
def checkpoints_download(name, force):
    """Download checkpoint NAME into the cache, verified."""
    import checkpoints
    progress = _ByteProgress(name)
    try:
        result = checkpoints.download(name, force=force, progress=progress)
    finally:
        progress.close()
    click.echo(f'{name}: {result.path}')
    click.echo(f'sha256 {result.sha256}' + (' (no published hash: recorded locally; later downloads are '
                                            'checked against it)' if result.newly_recorded else ''))


@checkpoints_group.command('verify')
@click.argument('name_or_path')
def checkpoints_verify(name_or_path):
    """Check a cached checkpoint's sha256 (by NAME) and that it loads as a generator."""
    import checkpoints
    result = checkpoints.verify(name_or_path)
    if result.status == 'mismatch':
        raise PhotodragError(f'{result.path} has sha256 {result.sha256}, expected {result.expected}: the file is '
                             f'damaged or not the published one; download it again with --force')
    G = checkpoints.load_generator(result.path)
    click.echo(f'{result.path}: ok, {checkpoints.describe(G)}')
    note = {'recorded': ' (no published hash: recorded locally)', 'ok': ''}[result.status]
    click.echo(f'sha256 {result.sha256}{note}')


@checkpoints_group.command('convert')
@click.argument('source')
@click.argument('dest', type=click.Path(dir_okay=False, path_type=Path))
@click.option('--overwrite', is_flag=True, help='Replace DEST if it exists (never the source).')
def checkpoints_convert(source, dest, overwrite):
    """Convert SOURCE (any supported format or a registry name) to photodrag's .safetensors DEST."""
    import checkpoints
    src_path = checkpoints.resolve_path(source)
    if dest.exists() and os.path.samefile(dest, src_path):
        raise PhotodragError(f'{dest} is the source file; photodrag never writes over an input')
    if dest.suffix != '.safetensors':
        raise PhotodragError(f'{dest}: the output format is safetensors; name it *.safetensors')
    G = checkpoints.load_file(src_path)
    checkpoints.save_generator(G, dest, extra={'converted_from': Path(src_path).name}, overwrite=overwrite)
    click.echo(f'{dest}: {checkpoints.describe(G)}')


#----------------------------------------------------------------------------
# drag (on a generated image)


def parse_drag(text: str):
    """'x1,y1:x2,y2' -> ((x1, y1), (x2, y2))."""
    try:
        start, end = text.split(':')
        handle = tuple(float(v) for v in start.split(','))
        target = tuple(float(v) for v in end.split(','))
        if len(handle) != 2 or len(target) != 2:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f'{text!r}: expected X1,Y1:X2,Y2, e.g. 120,200:150,190 '
                                 '(handle, then target, in image pixels)', param_hint='--drag') from None
    return handle, target


def load_mask(path, resolution: int):
    """A mask image (white = may change, black = keep) as float [R, R] in [0, 1]."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    from stylegan.errors import InvalidMaskError, UnreadableImageError
    try:
        with Image.open(path) as im:
            im.load()
            gray = im.convert('L')
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UnreadableImageError(f'cannot read mask {path}: {e}') from None
    if gray.size != (resolution, resolution):
        raise InvalidMaskError(f'mask {path} is {gray.size[0]}x{gray.size[1]}; the generator draws '
                               f'{resolution}x{resolution} images, so the mask must be that size')
    return np.asarray(gray, dtype=np.float32) / 255.0


def _check_outputs(outputs, inputs):
    for out in outputs:
        if out is None:
            continue
        for inp in inputs:
            if inp and Path(inp).exists() and Path(out).exists() and os.path.samefile(out, inp):
                raise PhotodragError(f'{out} is also an input; photodrag never writes over an input')


@main.command('drag')
@click.option('--checkpoint', required=True, metavar='PATH_OR_NAME',
              help='A checkpoint file, a registry name (photodrag checkpoints list), or random:RES[:SEED].')
@click.option('--seed', type=int, default=0, show_default=True, help='Which generated image (as NVIDIA\'s scripts number them).')
@click.option('--truncation', type=float, default=0.7, show_default=True, help='Truncation psi of the start latent.')
@click.option('--drag', 'drags', multiple=True, required=True, metavar='X1,Y1:X2,Y2',
              help='Move the content at (X1,Y1) to (X2,Y2), in image pixels; repeat for more points.')
@click.option('--mask', type=click.Path(exists=True, dir_okay=False), help='Grayscale image, RxR: white = may change.')
@click.option('--steps', type=click.IntRange(min=0), default=300, show_default=True, help='Step cap.')
@click.option('--out', type=click.Path(dir_okay=False), default='drag.png', show_default=True,
              help='Final image; its settings and result go to the same name with .json.')
@click.option('--video', type=click.Path(dir_okay=False), help='Also write the trajectory with the points drawn (.mp4, .webm, .avi).')
@click.option('--fps', type=float, default=10.0, show_default=True, help='Frames per second of --video.')
@click.option('--lr', type=float, default=None, help='Adam learning rate (default 2e-3).')
@click.option('--latent-space', type=click.Choice(['w', 'w+']), default='w+', show_default=True)
@click.option('--precision', type=click.Choice(['fp32', 'bf16', 'fp16']), default='fp32', show_default=True,
              help='bf16 is about twice as fast on CPUs with bf16 instructions; fp16 needs CUDA.')
@click.option('--mode', type=click.Choice(['fast', 'reference']), default='fast', show_default=True,
              help='reference = what DragGAN\'s code does (slower, for comparison).')
@click.option('--stop-distance', type=float, default=None, help='Done when every handle is this close (px).')
@click.option('--device', default='auto', show_default=True, help='cuda, mps, cpu or auto.')
def drag_command(checkpoint, seed, truncation, drags, mask, steps, out, video, fps, lr, latent_space,
                 precision, mode, stop_distance, device):
    """Drag points on a generated image (DragGAN), and save the result."""
    import dataclasses
    import time
    from tqdm import tqdm
    import checkpoints
    import stylegan
    from drag import DragConfig, DragSession
    from . import report

    pairs = [parse_drag(d) for d in drags]
    _check_outputs([out, video], [checkpoint, mask])
    device = pick_device(device)
    G = checkpoints.load_generator(checkpoint, device=device, progress=_ByteProgress(checkpoint))
    w = stylegan.w_from_seed(G, seed, truncation_psi=truncation)
    mask_array = load_mask(mask, G.img_resolution) if mask else None
    changes = dict(max_steps=steps, latent_space=latent_space, precision=precision, mode=mode,
                   stop_distance=stop_distance)
    if lr is not None:
        changes['lr'] = lr
    config = DragConfig(**changes)
    session = DragSession(G, w, [h for h, _ in pairs], [t for _, t in pairs], mask=mask_array, config=config)

    scale = max(1, 512 // G.img_resolution)
    trails = [[h] for h, _ in pairs]
    writer = report.VideoWriter(video, fps=fps) if video else None

    def frame():
        image = stylegan.to_uint8(session.render())[0]
        return report.draw_points(image, session.handles, session.targets, mask=mask_array, trails=trails, scale=scale)

    bar = tqdm(total=steps, desc='drag', unit='step', file=sys.stderr, leave=False)
    interrupted = False
    started = time.perf_counter()
    try:
        if writer:
            writer.write(frame())
        while not session.done:
            result = session.step()
            for trail, h in zip(trails, result.handles):
                trail.append(h)
            bar.update(result.step - bar.n)
            bar.set_postfix(distance=f'{max(result.distances):.1f}px')
            if writer:
                writer.write(frame())
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        if writer:
            writer.abort()
        raise
    finally:
        bar.close()
    result = session.state()
    image = stylegan.to_uint8(session.render())[0]
    report.save_image(out, image)
    if writer:
        writer.close()
    settings = {
        'command': 'drag', 'checkpoint': str(checkpoint), 'generator': checkpoints.describe(G), 'seed': seed,
        'truncation': truncation, 'handles': [list(h) for h, _ in pairs], 'targets': [list(t) for _, t in pairs],
        'mask': mask, 'device': device, 'config': dataclasses.asdict(config),
        'result': {'steps': result.step, 'reason': 'interrupted' if interrupted else result.reason,
                   'handles': [list(h) for h in result.handles], 'distances': list(result.distances),
                   'seconds': round(time.perf_counter() - started, 2)},
    }
    report.save_json(Path(out).with_suffix('.json'), settings)
    state = 'interrupted' if interrupted else (result.reason or 'stopped')
    click.echo(f'{out}: {state} after {result.step} steps, handles {_fmt_points(result.handles)}, '
               f'max distance to target {max(result.distances):.1f}px' + (f'; video {video}' if video else ''))
    if interrupted:
        sys.exit(130)


def _fmt_points(points):
    return ' '.join(f'({x:g},{y:g})' for x, y in points)


#----------------------------------------------------------------------------
# invert (an aligned crop into a generator)


@main.command('invert')
@click.argument('crop', type=click.Path(exists=True, dir_okay=False))
@click.option('--checkpoint', required=True, metavar='PATH_OR_NAME',
              help='A checkpoint file, a registry name (photodrag checkpoints list), or random:RES[:SEED].')
@click.option('--quality', type=click.Choice(['fast', 'balanced', 'best']), default='balanced', show_default=True,
              help='Inversion preset (step counts: see inversion.PRESETS).')
@click.option('--seed', type=int, default=0, show_default=True, help='Seed of the start noise and samples.')
@click.option('--projection-steps', type=click.IntRange(min=0), default=None, help='Override the preset.')
@click.option('--tuning-steps', type=click.IntRange(min=0), default=None, help='Override the preset.')
@click.option('--cache/--no-cache', default=True, show_default=True,
              help='Reuse an earlier inversion of the same crop, checkpoint and settings ($PHOTODRAG_CACHE/inversions).')
@click.option('--device', default='auto', show_default=True, help='cuda, mps, cpu or auto.')
@click.option('--out', type=click.Path(file_okay=False), default='inversion', show_default=True,
              help='Output folder: inversion.safetensors, inversion.json, compare.png (target | reconstruction).')
def invert_command(crop, checkpoint, quality, seed, projection_steps, tuning_steps, cache, device, out):
    """Invert an aligned CROP (the generator's size, RGB) into a checkpoint: projection + pivotal tuning."""
    import dataclasses
    import time
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm
    import checkpoints
    import stylegan
    from inversion import InversionConfig, invert
    from stylegan.errors import UnreadableImageError
    from . import report

    out_dir = Path(out)
    _check_outputs([out_dir / 'inversion.safetensors', out_dir / 'compare.png', out_dir / 'inversion.json'],
                   [crop, checkpoint])
    try:
        with Image.open(crop) as im:
            im.load()
            image = np.asarray(im.convert('RGB') if im.mode in ('L', 'P', 'I;16') else im)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UnreadableImageError(f'cannot read {crop}: {e}') from None
    device = pick_device(device)
    G = checkpoints.load_generator(checkpoint, device=device, progress=_ByteProgress(checkpoint))
    changes = {'seed': seed}
    if projection_steps is not None:
        changes['projection_steps'] = projection_steps
    if tuning_steps is not None:
        changes['tuning_steps'] = tuning_steps
    config = InversionConfig.preset(quality, **changes)
    bars = {}

    def progress(stage, step, total, metrics):
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[stage] = tqdm(total=total, desc=stage, unit='step', file=sys.stderr, leave=False)
        bar.update(step - bar.n)
        bar.set_postfix(lpips=f"{metrics['lpips']:.3f}")

    started = time.perf_counter()
    try:
        inv = invert(G, image, config, callback=progress, device=device, cache=cache)
    finally:
        for bar in bars.values():
            bar.close()
    target = stylegan.from_uint8(image)
    recon = stylegan.to_uint8(inv.render(G))[0]
    inv.save(out_dir / 'inversion.safetensors')
    report.save_image(out_dir / 'compare.png', np.concatenate([stylegan.to_uint8(target)[0], recon], axis=1))
    report.save_json(out_dir / 'inversion.json', {
        'command': 'invert', 'crop': str(crop), 'checkpoint': str(checkpoint), 'generator': checkpoints.describe(G),
        'quality': quality, 'device': device, 'from_cache': inv.from_cache, 'config': dataclasses.asdict(config),
        'metrics': {k: dataclasses.asdict(v) for k, v in inv.metrics.items()}, 'base_hash': inv.base_hash,
        'seconds': round(time.perf_counter() - started, 2)})
    m = inv.metrics.get('tuning') or inv.metrics.get('projection')
    click.echo(f'{out_dir}: LPIPS({m.lpips_net}) {m.lpips:.4f}, PSNR {m.psnr:.2f} dB'
               + (' (from cache)' if inv.from_cache else ''))


if __name__ == '__main__':
    main()
