"""The `photodrag` command line. It parses, calls the library, and prints; nothing more.

Any `PhotodragError` (a problem the user can fix) becomes one line on stderr and exit status 2,
as click's own usage errors do; a traceback means a bug.
"""

import os
import sys
from pathlib import Path

import click

from photodrag.errors import PhotodragError


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


def _progress_bar(**kwargs):
    """A tqdm bar on stderr: redrawn up to ten times a second on a terminal, at most every 10 s
    when stderr is a log file or a pipe (a 40 s edit used to write ~1000 redraws into a log)."""
    from tqdm import tqdm
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(file=sys.stderr, leave=False, mininterval=interval, **kwargs)


class _ByteProgress:
    """A tqdm bar fed by byte-count callbacks, opened on the first byte (on stderr)."""

    def __init__(self, desc):
        self.desc, self.bar = desc, None

    def __call__(self, done, total):
        if self.bar is None:
            self.bar = _progress_bar(desc=self.desc, total=total, unit='B', unit_scale=True)
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
    from photodrag import checkpoints
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
    from photodrag import checkpoints
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
    from photodrag import checkpoints
    result = checkpoints.verify(name_or_path)
    if result.status == 'mismatch':
        raise PhotodragError(f'{result.path} has sha256 {result.sha256}, expected {result.expected}: the file is '
                             f'damaged or not the published one; download it again with --force')
    G = checkpoints.load_generator(name_or_path, download=False)       # a name builds its entry (grown ones grow)
    click.echo(f'{result.path}: ok, {checkpoints.describe(G)}')
    note = {'recorded': ' (no published hash: recorded locally)', 'ok': ''}[result.status]
    click.echo(f'sha256 {result.sha256}{note}')


@checkpoints_group.command('convert')
@click.argument('source')
@click.argument('dest', type=click.Path(dir_okay=False, path_type=Path))
@click.option('--overwrite', is_flag=True, help='Replace DEST if it exists (never the source).')
def checkpoints_convert(source, dest, overwrite):
    """Convert SOURCE (any supported format or a registry name) to photodrag's .safetensors DEST."""
    from photodrag import checkpoints
    src_path = checkpoints.resolve_path(source)
    if dest.exists() and os.path.samefile(dest, src_path):
        raise PhotodragError(f'{dest} is the source file; photodrag never writes over an input')
    if dest.suffix != '.safetensors':
        raise PhotodragError(f'{dest}: the output format is safetensors; name it *.safetensors')
    G = checkpoints.load_generator(source, download=False)             # a name builds its entry (grown ones grow)
    from_name = checkpoints.named_entry(source) is not None
    checkpoints.save_generator(G, dest, extra={'converted_from': source if from_name else Path(src_path).name},
                               overwrite=overwrite)
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
    from photodrag.errors import InvalidMaskError, UnreadableImageError
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
    from photodrag import checkpoints
    from photodrag import stylegan
    from photodrag.drag import DragConfig, DragSession
    from photodrag.pipeline import report

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

    bar = _progress_bar(total=steps, desc='drag', unit='step')
    interrupted = False
    started = time.perf_counter()
    try:
        if writer:
            writer.write(frame())
        while not session.done:
            result = session.step()
            for trail, h in zip(trails, result.handles):
                trail.append(h)
            bar.set_postfix(distance=f'{max(result.distances):.1f}px', refresh=False)
            bar.update(result.step - bar.n)
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
    from photodrag import checkpoints
    from photodrag import stylegan
    from photodrag.inversion import InversionConfig, invert
    from photodrag.errors import UnreadableImageError
    from photodrag.pipeline import report

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
            bar = bars[stage] = _progress_bar(total=total, desc=stage, unit='step')
        bar.set_postfix(lpips=f"{metrics['lpips']:.3f}", refresh=False)
        bar.update(step - bar.n)

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



#----------------------------------------------------------------------------
# edit, demo, faces (real photos)


def parse_face(text):
    """'N' -> face index, 'X,Y' -> a point on the face, 'all' -> each drag picks its face."""
    if text is None or text == 'all':
        return text
    try:
        if ',' in text:
            x, y = (float(v) for v in text.split(','))
            return (x, y)
        return int(text)
    except ValueError:
        raise click.BadParameter(f'{text!r}: expected a face number (0 = leftmost), X,Y on the face, or all',
                                 param_hint='--face') from None


def parse_box(text):
    """'x0,y0,x1,y1' -> a box in photo pixels."""
    if text is None:
        return None
    try:
        box = tuple(float(v) for v in text.split(','))
        if len(box) != 4:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f'{text!r}: expected X0,Y0,X1,Y1 in photo pixels', param_hint='--box') from None
    return box


def default_output(photo, tag: str = 'edited') -> Path:
    """NAME_edited.EXT next to the input (never the input itself)."""
    photo = Path(photo)
    return photo.with_name(f'{photo.stem}_{tag}{photo.suffix or ".png"}')


class _EditProgress:
    """tqdm bars for the slow stages of pipeline.edit (on stderr), plus optional video frames."""

    _SLOW = ('projection', 'tuning', 'drag')

    def __init__(self, video=None, fps: float = 10.0):
        self.bar = self.key = None
        self.writer = None
        if video:
            from photodrag.pipeline import report
            self.writer = report.VideoWriter(video, fps=fps)

    def __call__(self, stage, step, total, info):
        if stage not in self._SLOW:
            return
        key = (stage, info.get('face'))
        if key != self.key:
            self.close_bar()
            self.key = key
            self.bar = _progress_bar(total=total, desc=f'edit {info.get("face", 0)}: {stage}', unit='step')
        if 'lpips' in info:
            self.bar.set_postfix(lpips=f"{info['lpips']:.3f}", refresh=False)
        if 'distance' in info:
            self.bar.set_postfix(distance=f"{info['distance']:.1f}px", refresh=False)
        self.bar.update(step - self.bar.n)
        if stage == 'drag' and self.writer is not None:
            self.frame(info['session'])

    def frame(self, session):
        from photodrag import stylegan
        from photodrag.pipeline import report
        image = stylegan.to_uint8(session.render())[0]
        scale = max(1, 512 // session.resolution)
        self.writer.write(report.draw_points(image, session.handles, session.targets, scale=scale))

    def close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def abort(self):
        self.close_bar()
        if self.writer is not None:
            self.writer.abort()


def _run_edit(run, video, fps):
    """run(callback) -> EditResult, with progress bars; the video's temporary file is removed on failure."""
    progress = _EditProgress(video, fps)
    try:
        result = run(progress)
    except BaseException:
        progress.abort()
        raise
    progress.close_bar()
    return result, progress.writer


def _write_edit_outputs(result, out, record, before_after, writer):
    """Write every output of an edit (each atomically); nothing is written before the edit succeeded."""
    from photodrag.pipeline import report
    written = [('edited photo', result.save(out))]
    if before_after:
        written.append(('before/after', report.save_image(before_after, result.before_after())))
    if writer is not None:
        writer.close()
        written.append(('drag video', writer.path))
    if record:
        written.append(('record', result.record.save(record)))
    return written


def _summary(result, written):
    """The table printed after an edit: per face, then stage times, then where the files are."""
    rec = result.record
    rows = [('face', 'box', 'LPIPS', 'PSNR', 'drag', 'handle distance (photo px)')]
    for k, f in enumerate(rec.faces):
        inv = f.inversion
        name = str(f.index) if f.index is not None else ('box' if f.landmarks is not None else 'object')
        box = ','.join(f'{v:.0f}' for v in f.box)
        cached = ' (cache)' if inv['from_cache'] else ''
        dists = ' '.join(f'{d:.1f}' for d in f.drag['distances_photo'])
        rows.append((name, box, f"{inv['lpips']:.3f} {inv['lpips_net']}{cached}", f"{inv['psnr']:.1f} dB",
                     f"{f.drag['steps']} steps, {f.drag['reason']}", dists))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    t = rec.timings
    stages = ('load', 'detect', 'align', 'invert', 'drag', 'paste')
    click.echo('time: ' + ', '.join(f'{s} {t[s]:.1f}s' for s in stages if s in t) + f'; total {t["total"]:.1f}s'
               + f' on {rec.device}')
    for what, path in written:
        click.echo(f'{what}: {path}')


def _edit_options(f):
    for option in reversed([
        click.option('--checkpoint', default=None, metavar='NAME|PATH',
                     help='Registry name, checkpoint file, or random:RES[:SEED].  [default: demo-faces]'),
        click.option('--quality', type=click.Choice(['fast', 'balanced', 'best']), default=None,
                     help='Inversion preset.  [default: balanced; demo: fast]'),
        click.option('--projection-steps', type=click.IntRange(min=0), default=None, help='Override the preset.'),
        click.option('--tuning-steps', type=click.IntRange(min=0), default=None, help='Override the preset.'),
        click.option('--device', default=None, help='auto, cuda, mps or cpu.  [default: auto]'),
        click.option('--video', type=click.Path(dir_okay=False),
                     help="Also write each face's drag, points drawn (.mp4, .webm, .avi)."),
        click.option('--fps', type=float, default=10.0, show_default=True, help='Frames per second of --video.'),
        click.option('--cache/--no-cache', default=True, show_default=True,
                     help='Reuse earlier inversions of the same crop ($PHOTODRAG_CACHE/inversions).'),
    ]):
        f = option(f)
    return f


def _inversion_quality(quality, projection_steps, tuning_steps):
    """A preset name, or the preset with step overrides as an InversionConfig."""
    if projection_steps is None and tuning_steps is None:
        return quality
    from photodrag.inversion import InversionConfig
    changes = {k: v for k, v in (('projection_steps', projection_steps), ('tuning_steps', tuning_steps))
               if v is not None}
    return InversionConfig.preset(quality, **changes)


@main.command('edit')
@click.argument('photo', required=False, type=click.Path(dir_okay=False))
@click.option('--drag', 'drags', multiple=True, metavar='X1,Y1:X2,Y2',
              help='Move the content at (X1,Y1) to (X2,Y2), in photo pixels; repeat for more points.')
@click.option('--face', default=None, metavar='N|X,Y|all',
              help='Which face: its number (0 = leftmost; see `photodrag faces`), a point on it, or all '
                   '(default: each drag edits the face under its handle).')
@click.option('--mask', type=click.Path(dir_okay=False),
              help='Grayscale image of the photo\'s size: white = may change, black = keep.')
@click.option('--box', metavar='X0,Y0,X1,Y1', help='The face (or, for object checkpoints, the object) box '
                                                   'instead of detection; objects default to the whole photo.')
@click.option('--recipe', default=None, metavar='NAME',
              help='Crop recipe: ffhq, afhq, car, object, ...  [default: the checkpoint\'s; ffhq for files]')
@click.option('--steps', type=click.IntRange(min=0), default=None, help='Drag step cap.  [default: 300]')
@click.option('--seed', type=int, default=None, help='Seed of the inversion.  [default: 0]')
@click.option('--upsample', type=click.IntRange(min=0), default=None, help='Face detector upsampling (small faces).')
@click.option('--out', type=click.Path(dir_okay=False), help='Edited photo.  [default: PHOTO_edited.EXT]')
@click.option('--before-after', type=click.Path(dir_okay=False), help='Also write input | output side by side.')
@click.option('--record', type=click.Path(dir_okay=False),
              help='The edit record (JSON) that reproduces the edit.  [default: OUT with .json]')
@click.option('--from-record', type=click.Path(dir_okay=False),
              help='Re-run the edit a record describes (PHOTO, if given, replaces the recorded file).')
@_edit_options
def edit_command(photo, drags, face, mask, box, recipe, steps, seed, upsample, out, before_after, record, from_record,
                 checkpoint, quality, projection_steps, tuning_steps, device, video, fps, cache):
    """Edit a real PHOTO by dragging points: detect, align, invert, drag, paste back.

    \b
    photodrag edit group.jpg --drag 410,300:418,290 --drag 455,298:447,290
    photodrag edit group.jpg --face 1 --drag 410,300:418,290 --video drag.mp4
    photodrag edit --from-record group_edited.json --out again.jpg
    """
    from photodrag import pipeline

    if from_record:
        given = [name for name, value in (('--drag', drags), ('--face', face), ('--mask', mask), ('--box', box),
                                          ('--recipe', recipe), ('--steps', steps), ('--seed', seed),
                                          ('--upsample', upsample), ('--quality', quality),
                                          ('--projection-steps', projection_steps),
                                          ('--tuning-steps', tuning_steps)) if value]
        if given:
            raise click.UsageError(f'--from-record takes every setting from the record; drop {", ".join(given)}')
        rec = pipeline.EditRecord.load(from_record)
        source = photo or rec.input.get('path')
        if not source:
            raise PhotodragError(f'{from_record} was made from pixels, not a file: give the PHOTO')
        out = out or default_output(source, 'reproduced')
        record_out = record
        _check_outputs([out, record_out, video, before_after], [source, from_record, checkpoint])
        device = pick_device(device or rec.device)
        result, writer = _run_edit(lambda cb: pipeline.edit_from_record(rec, photo=source, checkpoint=checkpoint,
                                                                        device=device, callback=cb, cache=cache),
                                   video, fps)
        written = _write_edit_outputs(result, out, record_out, before_after, writer)
        _summary(result, written)
        same = result.record.output['pixels_sha256'] == rec.output['pixels_sha256']
        click.echo('reproduced: identical to the recorded output' if same else
                   'reproduced, but the pixels differ from the recorded output (another machine, device or '
                   'library version?)')
        return

    if not photo:
        raise click.UsageError('give a PHOTO and at least one --drag (or --from-record REC.json)')
    if not drags:
        raise click.UsageError('give at least one --drag X1,Y1:X2,Y2 (handle, then target, in photo pixels)')
    pairs = [parse_drag(d) for d in drags]
    face_sel, box = parse_face(face), parse_box(box)
    out = out or default_output(photo)
    record = record or Path(out).with_suffix('.json')
    checkpoint = checkpoint or 'demo-faces'
    _check_outputs([out, record, video, before_after], [photo, mask, checkpoint])
    if len({str(Path(p).resolve()) for p in (out, record, video, before_after) if p}) != \
            len([p for p in (out, record, video, before_after) if p]):
        raise PhotodragError('two outputs have the same path; give each of --out, --record, --video and '
                             '--before-after its own file')
    device = pick_device(device or 'auto')
    inv_quality = _inversion_quality(quality or 'balanced', projection_steps, tuning_steps)
    result, writer = _run_edit(lambda cb: pipeline.edit(
        photo, pairs, checkpoint=checkpoint, face=face_sel, quality=inv_quality, device=device, callback=cb,
        seed=0 if seed is None else seed, mask=mask, box=box, max_steps=steps, recipe=recipe, cache=cache,
        upsample=upsample), video, fps)
    _summary(result, _write_edit_outputs(result, out, record, before_after, writer))


DEMO_PHOTO = Path(__file__).parent.parent / 'assets' / 'astronaut.png'


EXPRESSIONS = ('smile', 'relax')


def demo_drags(face, amount: float = 0.08, expression: str = 'smile'):
    """Both mouth corners (landmarks 48, 54) of `face` moved together by `amount` x the face's
    width (jaw landmarks 0 to 16), along the face's own axes: 'smile' moves them outward and
    up, 'relax' inward and down (a smiling mouth closes towards a neutral one)."""
    import numpy as np
    if expression not in EXPRESSIONS:
        raise ValueError(f'expression must be one of {EXPRESSIONS}, got {expression!r}')
    lm = np.asarray(face.landmarks, np.float64)
    across = lm[42:48].mean(axis=0) - lm[36:42].mean(axis=0)        # left eye -> right eye (image left -> right)
    across /= np.hypot(*across)
    up = np.array([across[1], -across[0]])                          # perpendicular, towards the forehead
    width = float(np.hypot(*(lm[16] - lm[0])))
    step = amount * width / np.hypot(0.6, 0.8)
    sign = 1.0 if expression == 'smile' else -1.0
    drags = []
    for index, outward in ((48, -across), (54, across)):
        handle = lm[index]
        target = handle + sign * step * (0.6 * outward + 0.8 * up)
        drags.append((tuple(float(v) for v in handle), tuple(float(v) for v in target)))
    return drags


def default_demo_expression(checkpoint) -> str:
    """'relax' for the demo generator and its grown forms (they learned few smiles wider than
    the astronaut's), 'smile' for any other checkpoint."""
    from photodrag import checkpoints
    entry = checkpoints.named_entry(checkpoint)
    return 'relax' if entry is not None and 'demo-faces' in (entry.name, entry.grown_from) else 'smile'


@main.command('demo')
@click.option('--out', type=click.Path(file_okay=False), default='photodrag-demo', show_default=True,
              help='Output folder.')
@click.option('--steps', type=click.IntRange(min=0), default=300, show_default=True, help='Drag step cap.')
@click.option('--expression', type=click.Choice(EXPRESSIONS), default=None,
              help="'smile': mouth corners out and up; 'relax': in and down, closing her smile. "
                   "Default: relax with the demo generator (demo-faces, demo-faces-256: it learned few "
                   "smiles wider than hers), smile with any other checkpoint.")
@_edit_options
def demo_command(out, steps, expression, checkpoint, quality, projection_steps, tuning_steps, device, video, fps,
                 cache):
    """Edit a bundled photo offline: drag the astronaut's mouth corners (NASA, public domain).

    Uses the bundled demo generator (demo-faces) unless --checkpoint says otherwise.
    """
    from photodrag import alignment
    from photodrag import pipeline

    out_dir = Path(out)
    edited, before_after, record = out_dir / 'astronaut_edited.png', out_dir / 'astronaut_before_after.png', \
        out_dir / 'astronaut_edited.json'
    checkpoint = checkpoint or 'demo-faces'
    _check_outputs([edited, before_after, record, video], [DEMO_PHOTO, checkpoint])
    photo = alignment.read_photo(DEMO_PHOTO)
    faces = alignment.detect_faces(photo)
    if not faces:
        raise alignment.no_face_error(0, str(DEMO_PHOTO))
    face = max(faces, key=lambda f: f.score)       # the helmet's badge can pass for a weak face
    expression = expression or default_demo_expression(checkpoint)
    drags = demo_drags(face, expression=expression)
    device = pick_device(device or 'auto')
    inv_quality = _inversion_quality(quality or 'fast', projection_steps, tuning_steps)
    result, writer = _run_edit(lambda cb: pipeline.edit(
        photo, pipeline.FaceEdit(face=face.index, drags=drags), checkpoint=checkpoint,
        quality=inv_quality, device=device, callback=cb, max_steps=steps, cache=cache), video, fps)
    click.echo(f'demo: {DEMO_PHOTO.name} (NASA, public domain), face {face.index}, {expression}: mouth corners '
               + ' and '.join(f'({h[0]:.0f},{h[1]:.0f})->({t[0]:.0f},{t[1]:.0f})' for h, t in drags))
    _summary(result, _write_edit_outputs(result, edited, record, before_after, writer))


@main.command('faces')
@click.argument('photo', type=click.Path(dir_okay=False))
@click.option('--preview', type=click.Path(dir_okay=False), help='Write the photo with numbered face boxes.')
@click.option('--upsample', type=click.IntRange(min=0), default=None, help='Detector upsampling (small faces).')
def faces_command(photo, preview, upsample):
    """List the faces found in PHOTO (numbered left to right, as --face takes them)."""
    from photodrag import alignment
    from photodrag.pipeline import report

    _check_outputs([preview], [photo])
    image = alignment.read_photo(photo)
    faces = alignment.detect_faces(image, upsample=upsample)
    if not faces:
        raise alignment.no_face_error(0, str(photo), upsample)
    rows = [('face', 'box (x0,y0,x1,y1)', 'size', 'score')]
    for f in faces:
        rows.append((str(f.index), ','.join(f'{v:.0f}' for v in f.box), f'{f.width:.0f}px', f'{f.score:.2f}'))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if preview:
        click.echo(f'preview: {report.save_image(preview, draw_faces(image.pixels, faces))}')


def draw_faces(pixels, faces):
    """A copy of `pixels` with each face's box and number drawn."""
    import cv2
    out = pixels.copy()
    thick = max(2, round(max(out.shape[:2]) / 300))
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (255, 220, 0), thick)
        scale = max(0.6, f.width / 120)
        label = str(f.index)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y0 - base - 2 if y0 - th - base - 2 >= 0 else y0 + th + 2
        cv2.rectangle(out, (x0, ty - th - 2), (x0 + tw + 4, ty + base), (255, 220, 0), -1)
        cv2.putText(out, label, (x0 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out


if __name__ == '__main__':
    main()
