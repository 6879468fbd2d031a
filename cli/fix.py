"""`photodrag fix`: open closed eyes and close open mouths in a group photo, face by face."""

from pathlib import Path

import click

from .common import check_outputs, default_output, edit_options, presets_files_option, print_summary, run_edit


@click.command('fix')
@click.argument('photo', type=click.Path(dir_okay=False))
@click.option('--closed-eyes', is_flag=True, help='Open the eyes of faces whose eyes read as closed (preset open-eyes).')
@click.option('--open-mouth', is_flag=True,
              help='Close the mouths of faces caught mid-word (preset close-mouth).')
@click.option('--preview', is_flag=True, help='Only report and draw what would be done; edit nothing.')
@click.option('--eyes-below', type=click.FloatRange(0, 1), default=None, metavar='EAR',
              help='Eyes count as closed below this eye aspect ratio.  [default: 0.18]')
@click.option('--mouth-above', type=click.FloatRange(0, 5), default=None, metavar='RATIO',
              help='A mouth counts as open above this inner-lip gap / width.  [default: 0.35]')
@click.option('--strength', type=click.FloatRange(0, 3, min_open=True), default=1.0, show_default=True,
              help="The presets' strength.")
@presets_files_option
@click.option('--steps', type=click.IntRange(0, 100_000), default=None, help='Drag step cap.  [default: 300]')
@click.option('--upsample', type=click.IntRange(0, 4), default=None, help='Search the photo enlarged 2^N times, for tiny faces.')
@click.option('--out', type=click.Path(dir_okay=False),
              help='The fixed photo (with --preview: the drawing).  [default: PHOTO_fixed.EXT, PHOTO_fix_preview.png]')
@click.option('--before-after', type=click.Path(dir_okay=False), help='Also write input | output side by side.')
@click.option('--record', type=click.Path(dir_okay=False), help='The edit record.  [default: OUT with .json]')
@edit_options(quality='auto')
def fix_command(photo, closed_eyes, open_mouth, preview, eyes_below, mouth_above, strength, preset_files, steps,
                upsample, out, before_after, record, checkpoint, quality, projection_steps, tuning_steps, encoder,
                device, video, fps, cache):
    """Fix the faces of a group PHOTO that need it: closed eyes opened, open mouths closed.

    Reads each face's expression from its landmarks (as `photodrag faces` prints it), picks the
    faces whose state needs a fix, and applies the matching preset to those faces only, in one
    edit: one output photo, one record. Faces that need nothing keep every pixel.

    \b
    photodrag fix group.jpg --closed-eyes --preview
    photodrag fix group.jpg --closed-eyes --open-mouth --out group_fixed.jpg
    """
    from photodrag import alignment, pipeline
    from photodrag.expressions import presets as presets_mod, readout as expression
    from photodrag.pipeline.outputs import write_outputs
    fixes = [name for name, on in (('closed-eyes', closed_eyes), ('open-mouth', open_mouth)) if on]
    if not fixes:
        raise click.UsageError('say what to fix: --closed-eyes and/or --open-mouth')
    thresholds = expression.check_thresholds(eyes_closed_below=eyes_below, mouth_open_above=mouth_above)
    known = presets_mod.available(preset_files)
    if preview:
        if before_after or record or video:
            raise click.UsageError('--preview edits nothing; drop --before-after, --record and --video')
        out = out or default_output(photo, 'fix_preview').with_suffix('.png')
        check_outputs([out], [photo, *preset_files])
    else:
        config = pipeline.EditConfig.from_options(
            checkpoint=checkpoint, quality=quality, projection_steps=projection_steps, tuning_steps=tuning_steps,
            device=device, encoder=encoder, upsample=upsample, max_steps=steps)
        out = out or default_output(photo, 'fixed')
        record = record or Path(out).with_suffix('.json')
        check_outputs([out, record, video, before_after], [photo, config.checkpoint, *preset_files])

    image = alignment.read_photo(photo)
    faces = alignment.detect_faces(image, upsample=upsample)
    if not faces:
        raise alignment.no_face_error(0, str(photo), upsample)
    plan = {}
    for f in faces:
        r = expression.read(f.landmarks)
        todo = expression.fixes_for(r, fixes, known, thresholds)
        if todo:
            plan[f.index] = [presets_mod.PresetUse(p, presets_mod.check_strength(strength)) for p in todo]
        action = ', '.join(p.name for p in todo) if todo else 'nothing to do'
        if 'closed-eyes' in fixes and r.states(**thresholds)['eyes'] == 'uncertain':
            action += f' (eyes too small to read: {r.eye_width:.0f} px wide)'
        click.echo(f'face {f.index}: {r.describe(**thresholds)} -> {action}')
    if preview:
        from photodrag.pipeline import report
        path = report.save_image(out, report.draw_plan(image.pixels, faces, plan))
        click.echo(f'preview: {path} ({len(plan)} of {len(faces)} face(s) would be edited)')
        return
    if not plan:
        click.echo('no face needs a fix; nothing written')
        return
    edits = [pipeline.FaceEdit(face=index, presets=uses) for index, uses in plan.items()]
    result, writer = run_edit(lambda cb: pipeline.edit(image, edits, config, callback=cb, cache=cache), video, fps)
    print_summary(result, write_outputs(result, out, record=record, before_after=before_after, video=writer))
