"""`photodrag edit`: drag points (or apply presets) on a real photo, or re-run an edit record."""

from pathlib import Path

import click
from click.core import ParameterSource

from photodrag.errors import PhotodragError

from .common import check_outputs, default_output, edit_options, parse_box, parse_drag, parse_face, print_summary, \
    run_edit

# the settings a record holds: with --from-record none of them may be given
_RECORDED = (('--drag', 'drags'), ('--preset', 'preset_specs'), ('--presets', 'preset_files'), ('--face', 'face'),
             ('--mask', 'mask'), ('--box', 'box'), ('--recipe', 'recipe'), ('--steps', 'steps'), ('--seed', 'seed'),
             ('--upsample', 'upsample'), ('--quality', 'quality'), ('--projection-steps', 'projection_steps'),
             ('--tuning-steps', 'tuning_steps'))


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
              help='Search the photo enlarged 2^N times, for tiny faces (0-4).')
@click.option('--out', type=click.Path(dir_okay=False),
              help='Edited photo.  [default: PHOTO_edited.EXT beside the input photo]')
@click.option('--before-after', type=click.Path(dir_okay=False), help='Also write input | output side by side.')
@click.option('--record', type=click.Path(dir_okay=False),
              help='The edit record (JSON) that reproduces the edit.  [default: OUT with .json]')
@click.option('--from-record', type=click.Path(dir_okay=False),
              help='Re-run the edit a record describes (PHOTO, if given, replaces the recorded file).')
@edit_options(quality='auto')
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
    from photodrag.pipeline.outputs import write_outputs

    if from_record:
        ctx = click.get_current_context()
        given = [flag for flag, name in _RECORDED if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f'--from-record takes every setting from the record; drop {", ".join(given)}')
        _reproduce(from_record, photo, out, record, before_after, checkpoint, device, video, fps, cache)
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
    config = pipeline.EditConfig.from_options(
        checkpoint=checkpoint, quality=quality, projection_steps=projection_steps, tuning_steps=tuning_steps,
        device=device, encoder=encoder, recipe=recipe, upsample=upsample, max_steps=steps,
        seed=0 if seed is None else seed, region='whole' if mask == 'none' else 'local')
    mask = None if mask == 'none' else mask
    check_outputs([out, record, video, before_after], [photo, mask, config.checkpoint, *preset_files])
    result, writer = run_edit(lambda cb: pipeline.edit(photo, pairs, config, face=face_sel, presets=uses, mask=mask,
                                                       box=box, callback=cb, cache=cache), video, fps)
    print_summary(result, write_outputs(result, out, record=record, before_after=before_after, video=writer))


def _reproduce(from_record, photo, out, record, before_after, checkpoint, device, video, fps, cache):
    """`edit --from-record`: run the recorded edit again and say whether the pixels are the same."""
    from photodrag import pipeline
    from photodrag.pipeline.device import pick_device
    from photodrag.pipeline.outputs import write_outputs
    rec = pipeline.EditRecord.load(from_record)
    source = photo or rec.input.get('path')
    if not source:
        raise PhotodragError(f'{from_record} was made from pixels, not a file: give the PHOTO')
    out = out or default_output(source, 'reproduced')
    check_outputs([out, record, video, before_after], [source, from_record, checkpoint])
    device = pick_device(device or rec.device)
    result, writer = run_edit(lambda cb: pipeline.edit_from_record(rec, photo=source, checkpoint=checkpoint,
                                                                   device=device, callback=cb, cache=cache),
                              video, fps)
    print_summary(result, write_outputs(result, out, record=record, before_after=before_after, video=writer))
    same = result.record.output['pixels_sha256'] == rec.output['pixels_sha256']
    click.echo('reproduced: identical to the recorded output' if same else
               'reproduced, but the pixels differ from the recorded output (another machine, device or '
               'library version?)')
