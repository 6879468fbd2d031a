"""`photodrag edit`, `photodrag demo` and `photodrag faces`: real photos."""

from pathlib import Path

import click

from photodrag.errors import PhotodragError
from photodrag.inversion.config import PRESETS

from .common import StageBars, check_outputs, checkpoint_option, default_output, device_option, parse_box, \
    parse_drag, parse_face

QUALITIES = [p for p in PRESETS if p != 'reference']


def _edit_options(f):
    for option in reversed([
        checkpoint_option(help_default='  [default: demo-faces]'),
        click.option('--quality', type=click.Choice(QUALITIES), default=None,
                     help='Inversion preset.  [default: balanced; demo: fast]'),
        click.option('--projection-steps', type=click.IntRange(0, 100_000), default=None, help='Override the preset.'),
        click.option('--tuning-steps', type=click.IntRange(0, 100_000), default=None, help='Override the preset.'),
        click.option('--encoder', default='auto', show_default=True, metavar='FILE|auto|none',
                     help="Where inversions start: an encoder file's w, the checkpoint's own encoder (auto: "
                          'NAME.encoder.safetensors beside it, if any), or none (w_avg).'),
        device_option,
        click.option('--video', type=click.Path(dir_okay=False),
                     help="Also write each face's drag, points drawn (.mp4, .webm, .avi)."),
        click.option('--fps', type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
                     help='Frames per second of --video.'),
        click.option('--cache/--no-cache', default=True, show_default=True,
                     help='Reuse earlier inversions of the same crop ($PHOTODRAG_CACHE/inversions).'),
    ]):
        f = option(f)
    return f


def _edit_config(checkpoint, quality, projection_steps, tuning_steps, device, encoder='auto', **more):
    """The EditConfig the options describe (checked before anything loads)."""
    if encoder not in ('auto', 'none') and not Path(encoder).is_file():
        raise PhotodragError(f'--encoder {encoder}: no such file (or use auto or none)')
    from photodrag.inversion import InversionConfig
    from photodrag.pipeline import EditConfig
    from photodrag.pipeline.device import pick_device
    inversion = None
    if projection_steps is not None or tuning_steps is not None:
        changes = {k: v for k, v in (('projection_steps', projection_steps), ('tuning_steps', tuning_steps))
                   if v is not None}
        inversion = InversionConfig.preset(quality, **changes)
    config = EditConfig(checkpoint=checkpoint or 'demo-faces', quality=None if inversion else quality,
                        inversion=inversion, encoder=encoder, **more)
    device = pick_device(device or 'auto')
    config.inversion_config().check_device(device)
    config.drag_config().check_device(device)
    return config.replace(device=device)


class _EditProgress(StageBars):
    """Bars for the slow stages of pipeline.edit (on stderr), plus the optional drag video."""

    def __init__(self, video=None, fps: float = 10.0):
        super().__init__(stages=('projection', 'tuning', 'drag'),
                         label=lambda stage, info: f'edit {info.get("face", 0)}: {stage}')
        self.writer = None
        if video:
            from photodrag.pipeline import report
            self.writer = report.VideoWriter(video, fps=fps)

    def __call__(self, stage, step, total, info):
        super().__call__(stage, step, total, info)
        if self.writer is not None:
            self.writer.drag_frames(stage, step, total, info)

    def abort(self):
        self.close()
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
    progress.close()
    return result, progress.writer


def _write_edit_outputs(result, out, record, before_after, writer):
    from photodrag.pipeline.outputs import write_outputs
    return write_outputs(result, out, record=record, before_after=before_after, video=writer)


def _summary(result, written):
    """The table printed after an edit: per face, then stage times, then where the files are."""
    rec = result.record
    rows = [('face', 'box', 'LPIPS', 'PSNR', 'drag', 'handle distance (photo px)')]
    for f in rec.faces:
        inv = f.inversion
        name = str(f.index) if f.index is not None else ('box' if f.landmarks is not None else 'object')
        if f.presets:
            from photodrag.expressions.presets import label
            name += ' (' + ', '.join(label(p['name'], p['strength']) for p in f.presets) + ')'
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


@click.command('edit')
@click.argument('photo', required=False, type=click.Path(dir_okay=False))
@click.option('--drag', 'drags', multiple=True, metavar='X1,Y1:X2,Y2',
              help='Move the content at (X1,Y1) to (X2,Y2), in photo pixels; repeat for more points '
                   '(`photodrag faces PHOTO --landmarks` prints the mouth corners and eye centres).')
@click.option('--preset', 'preset_specs', multiple=True, metavar='NAME[:STRENGTH]',
              help='An expression preset (photodrag presets lists them): smile, relax, open-eyes, close-eyes, '
                   'close-mouth, open-mouth, raise-brows, lower-brows; smile:0.5 is half the motion. Repeatable, '
                   'mixable with --drag.')
@click.option('--presets', 'preset_files', multiple=True, type=click.Path(dir_okay=False), metavar='FILE',
              help='A presets file (YAML or JSON) adding to the built-in presets.')
@click.option('--face', default=None, metavar='N|X,Y|all',
              help='Which face: its number (faces are numbered from 0, left to right; see `photodrag faces`), '
                   'a point on it, or all (default: each drag edits the face under its handle; presets need '
                   '--face unless the photo has one face).')
@click.option('--mask', metavar='FILE|none',
              help="Grayscale image of the photo's size: white = may change, black = keep; 'none' lets the "
                   "whole face change (DragGAN's behaviour).  [default: a local region around the drags]")
@click.option('--box', metavar='X0,Y0,X1,Y1', help='The face (or, for object checkpoints, the object) box '
                                                   'instead of detection; objects default to the whole photo.')
@click.option('--recipe', default=None, metavar='NAME',
              help="Crop recipe: ffhq, digiface, afhq, car, object, ...  [default: the checkpoint's; ffhq for files]")
@click.option('--steps', type=click.IntRange(0, 100_000), default=None, help='Drag step cap.  [default: 300]')
@click.option('--seed', type=click.IntRange(0, 2 ** 32 - 1), default=None, help='Seed of the inversion.  [default: 0]')
@click.option('--upsample', type=click.IntRange(0, 4), default=None,
              help='Face detector upsampling, for small faces (0-4).')
@click.option('--out', type=click.Path(dir_okay=False),
              help='Edited photo.  [default: PHOTO_edited.EXT beside the input photo]')
@click.option('--before-after', type=click.Path(dir_okay=False), help='Also write input | output side by side.')
@click.option('--record', type=click.Path(dir_okay=False),
              help='The edit record (JSON) that reproduces the edit.  [default: OUT with .json]')
@click.option('--from-record', type=click.Path(dir_okay=False),
              help='Re-run the edit a record describes (PHOTO, if given, replaces the recorded file).')
@_edit_options
def edit_command(photo, drags, preset_specs, preset_files, face, mask, box, recipe, steps, seed, upsample, out,
                 before_after, record, from_record, checkpoint, quality, projection_steps, tuning_steps, encoder,
                 device, video, fps, cache):
    """Edit a real PHOTO by dragging points: detect, align, invert, drag, paste back.

    Writes PHOTO_edited.EXT and PHOTO_edited.json beside the input unless --out says
    otherwise; the input is never written over.

    \b
    photodrag edit group.jpg --drag 410,300:418,290 --drag 455,298:447,290
    photodrag edit group.jpg --face 1 --drag 410,300:418,290 --video drag.mp4
    photodrag edit group.jpg --face 2 --preset smile:0.6
    photodrag edit --from-record group_edited.json --out again.jpg
    """
    from photodrag import pipeline
    from photodrag.pipeline.device import pick_device

    if from_record:
        given = [name for name, value in (('--drag', drags), ('--preset', preset_specs),
                                          ('--presets', preset_files), ('--face', face), ('--mask', mask), ('--box', box),
                                          ('--recipe', recipe), ('--steps', steps), ('--seed', seed),
                                          ('--upsample', upsample), ('--quality', quality),
                                          ('--projection-steps', projection_steps),
                                          ('--tuning-steps', tuning_steps)) if value is not None and value != ()]
        if given:
            raise click.UsageError(f'--from-record takes every setting from the record; drop {", ".join(given)}')
        rec = pipeline.EditRecord.load(from_record)
        source = photo or rec.input.get('path')
        if not source:
            raise PhotodragError(f'{from_record} was made from pixels, not a file: give the PHOTO')
        out = out or default_output(source, 'reproduced')
        check_outputs([out, record, video, before_after], [source, from_record, checkpoint])
        device = pick_device(device or rec.device)
        result, writer = _run_edit(lambda cb: pipeline.edit_from_record(rec, photo=source, checkpoint=checkpoint,
                                                                        device=device, callback=cb, cache=cache),
                                   video, fps)
        written = _write_edit_outputs(result, out, record, before_after, writer)
        _summary(result, written)
        same = result.record.output['pixels_sha256'] == rec.output['pixels_sha256']
        click.echo('reproduced: identical to the recorded output' if same else
                   'reproduced, but the pixels differ from the recorded output (another machine, device or '
                   'library version?)')
        return

    if not photo:
        raise click.UsageError('give a PHOTO and at least one --drag or --preset (or --from-record REC.json)')
    if not drags and not preset_specs:
        raise click.UsageError('give at least one --drag X1,Y1:X2,Y2 (handle, then target, in photo pixels) or a '
                               '--preset (photodrag presets lists them)')
    from photodrag.expressions import presets as presets_mod
    uses = presets_mod.uses(list(preset_specs), preset_files)        # unknown names fail before anything loads
    pairs = [parse_drag(d, 'photo') for d in drags]
    face_sel, box = parse_face(face), parse_box(box)
    out = out or default_output(photo)
    record = record or Path(out).with_suffix('.json')
    region = 'whole' if mask == 'none' else 'local'
    mask = None if mask == 'none' else mask
    changes = {'recipe': recipe, 'upsample': upsample, 'max_steps': steps, 'seed': 0 if seed is None else seed,
               'region': region}
    config = _edit_config(checkpoint, quality or 'balanced', projection_steps, tuning_steps, device, encoder=encoder,
                          **changes)
    check_outputs([out, record, video, before_after], [photo, mask, config.checkpoint, *preset_files])
    result, writer = _run_edit(lambda cb: pipeline.edit(photo, pairs, config, face=face_sel, presets=uses, mask=mask,
                                                        box=box, callback=cb, cache=cache), video, fps)
    _summary(result, _write_edit_outputs(result, out, record, before_after, writer))


@click.command('demo')
@click.option('--out', type=click.Path(file_okay=False), default='photodrag-demo', show_default=True,
              help='Output folder (created in the current directory unless a path is given).')
@click.option('--steps', type=click.IntRange(0, 100_000), default=300, show_default=True, help='Drag step cap.')
@click.option('--expression', type=click.Choice(['smile', 'relax']), default=None,
              help="'smile': mouth corners out and up; 'relax': in and down, closing her smile. "
                   "Default: relax with the demo generator (demo-faces, demo-faces-256: it learned few "
                   "smiles wider than hers), smile with any other checkpoint.")
@click.option('--mask', type=click.Choice(['local', 'none']), default='local', show_default=True,
              help="'local': only a region around the drags may change; 'none': the whole face may (DragGAN's "
                   "behaviour).")
@_edit_options
def demo_command(out, steps, expression, mask, checkpoint, quality, projection_steps, tuning_steps, encoder, device,
                 video, fps, cache):
    """Edit a bundled photo offline: drag the astronaut's mouth corners (NASA, public domain).

    Uses the bundled demo generator (demo-faces) unless --checkpoint says otherwise, and
    writes into ./photodrag-demo/ unless --out says otherwise.
    """
    from photodrag import pipeline
    from photodrag.pipeline import demo

    out_dir = Path(out)
    edited, before_after, record = out_dir / 'astronaut_edited.png', out_dir / 'astronaut_before_after.png', \
        out_dir / 'astronaut_edited.json'
    config = _edit_config(checkpoint, quality or 'fast', projection_steps, tuning_steps, device, encoder=encoder,
                          max_steps=steps, region='whole' if mask == 'none' else 'local')
    check_outputs([edited, before_after, record, video], [demo.DEMO_PHOTO, config.checkpoint])
    photo, face = demo.demo_face()
    expression = expression or demo.default_demo_expression(config.checkpoint)
    drags = demo.demo_drags(face, expression=expression)
    result, writer = _run_edit(lambda cb: pipeline.edit(
        photo, pipeline.FaceEdit(face=face.index, drags=drags), config, callback=cb, cache=cache), video, fps)
    click.echo(f'demo: {demo.DEMO_PHOTO.name} (NASA, public domain), face {face.index}, {expression}: mouth corners '
               + ' and '.join(f'({h[0]:.0f},{h[1]:.0f})->({t[0]:.0f},{t[1]:.0f})' for h, t in drags))
    _summary(result, _write_edit_outputs(result, edited, record, before_after, writer))


# the points `faces --landmarks` prints: iBUG 68-point indices (eye centres are means of 6)
_NAMED_POINTS = (('left eye centre', range(36, 42)), ('right eye centre', range(42, 48)),
                 ('left mouth corner', (48,)), ('right mouth corner', (54,)), ('nose tip', (30,)),
                 ('chin', (8,)))


@click.command('faces')
@click.argument('photo', type=click.Path(dir_okay=False))
@click.option('--preview', type=click.Path(dir_okay=False), help='Write the photo with numbered face boxes.')
@click.option('--landmarks', is_flag=True,
              help='Also print points to drag: eye centres, mouth corners, nose tip and chin (photo pixels).')
@click.option('--upsample', type=click.IntRange(0, 4), default=None,
              help='Detector upsampling, for small faces (0-4).')
def faces_command(photo, preview, landmarks, upsample):
    """List the faces found in PHOTO, numbered from 0 left to right, as --face takes them.

    Each face's expression is read from its landmarks: eye aspect ratio per eye (closed below
    0.18; 'uncertain' when the eyes are under 12 px wide), mouth openness (inner-lip gap over
    width; open above 0.35) and smile width (mouth corners over eye distance; smiling above
    1.1). `photodrag fix` acts on them; docs/presets.md says where the thresholds come from."""
    from photodrag import alignment
    from photodrag.pipeline import report

    check_outputs([preview], [photo])
    image = alignment.read_photo(photo)
    faces, weak = alignment.detect_faces(image, upsample=upsample, with_weak=True)
    if not faces:
        raise alignment.no_face_error(len(weak), str(photo), upsample)
    from photodrag.expressions import readout as expression
    rows = [('face', 'box (x0,y0,x1,y1)', 'size', 'score', 'eyes (L/R EAR)', 'mouth', 'smile')]
    for f in faces:
        r = expression.read(f.landmarks)
        state = r.states()
        rows.append((str(f.index), ','.join(f'{v:.0f}' for v in f.box), f'{f.width:.0f}px', f'{f.score:.2f}',
                     f'{r.left_eye:.2f}/{r.right_eye:.2f} {state["eyes"]}', f'{r.mouth:.2f} {state["mouth"]}',
                     f'{r.smile:.2f} {state["smile"]}'))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    for f in weak:
        click.echo(f'not numbered: a weak detection at {",".join(f"{v:.0f}" for v in f.box)} (score {f.score:.2f}) '
                   'whose eyes are not darker than its cheeks: not a face')
    if landmarks:
        import numpy as np
        for f in faces:
            lm = np.asarray(f.landmarks)
            points = ', '.join(f'{name} {lm[list(idx)].mean(axis=0)[0]:.0f},{lm[list(idx)].mean(axis=0)[1]:.0f}'
                               for name, idx in _NAMED_POINTS)
            click.echo(f'face {f.index}: {points}')
    if preview:
        click.echo(f'preview: {report.save_image(preview, report.draw_faces(image.pixels, faces))}')
