"""`photodrag fix`: open closed eyes and close open mouths in a group photo, face by face."""

from pathlib import Path

import click

from .common import check_outputs, default_output, edit_options, presets_files_option, print_summary, run_edit


@click.command('fix')
@click.argument('photo', type=click.Path(dir_okay=False), required=False)
@click.option('--reference', 'references', multiple=True, type=click.Path(dir_okay=False), metavar='SHOT',
              help='Another shot of the same people (repeatable): a face that needs a fix takes its eyes (mouth) '
                   'from the same person there; faces no shot helps get the preset fix.')
@click.option('--face', 'only_faces', multiple=True, type=click.IntRange(0), metavar='N',
              help='Fix only this face (repeatable).')
@click.option('--from-record', 'from_record', type=click.Path(dir_okay=False),
              help='Make a --reference fix again from its record (the same files give the same pixels).')
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
def fix_command(photo, references, only_faces, from_record, closed_eyes, open_mouth, preview, eyes_below, mouth_above,
                strength, preset_files, steps, upsample, out, before_after, record, checkpoint, quality, projection_steps,
                tuning_steps, encoder, device, video, fps, cache):
    """Fix the faces of a group PHOTO that need it: closed eyes opened, open mouths closed.

    Reads each face's expression from its landmarks (as `photodrag faces` prints it), picks the
    faces whose state needs a fix, and applies the matching preset to those faces only, in one
    edit: one output photo, one record. Faces that need nothing keep every pixel.

    With --reference, a face that needs a fix takes the eyes (or mouth) of the same person in
    another shot of the burst (found by face recognition, checked to be open there), aligned,
    colour-matched and blended in; the rest of the photo keeps every pixel.

    \b
    photodrag fix group.jpg --closed-eyes --preview
    photodrag fix group.jpg --closed-eyes --open-mouth --out group_fixed.jpg
    photodrag fix group.jpg --closed-eyes --reference group_2.jpg --reference group_3.jpg
    photodrag fix --from-record group_fixed.json
    """
    if from_record or references:
        return _fix_from_shots(photo, references, only_faces, from_record, closed_eyes, open_mouth, preview,
                               eyes_below, mouth_above, strength, preset_files, steps, upsample, out, before_after,
                               record, checkpoint, quality, projection_steps, tuning_steps, encoder, device, video,
                               cache)
    if photo is None:
        raise click.UsageError('give the PHOTO to fix (or --from-record)')
    if only_faces:
        raise click.UsageError('--face goes with --reference (without it, every face that needs a fix is fixed)')
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
    # what each face shows now, read with a margin: a preset that left the eyes shut says so
    from photodrag.pipeline.fixes import check_generator_fixes
    needs = {f.index: (f, [fx for fx in fixes if expression.needs_fix(expression.read(f.landmarks), fx, thresholds)])
             for f in faces if f.index in plan}
    for line in check_generator_fixes(result.pixels, needs, thresholds)[1]:
        click.echo(line)


def _fix_from_shots(photo, references, only_faces, from_record, closed_eyes, open_mouth, preview, eyes_below,
                    mouth_above, strength, preset_files, steps, upsample, out, before_after, record, checkpoint,
                    quality, projection_steps, tuning_steps, encoder, device, video, cache):
    """`fix --reference` and `fix --from-record`: parts taken from other shots of the same people."""
    from photodrag import pipeline
    from photodrag.expressions import readout as expression
    from photodrag.pipeline import fixes as fixes_mod
    if preview or video or preset_files:
        raise click.UsageError('--preview, --video and --presets do not go with --reference or --from-record')
    if from_record:
        if references or closed_eyes or open_mouth or only_faces:
            raise click.UsageError('--from-record takes everything from the record; drop the other choices')
        rec = fixes_mod.load_fix_record(from_record)
        source = photo or rec['input'].get('path')
        if not source:
            raise click.UsageError('the record does not say where its photo is; give PHOTO')
    else:
        if photo is None:
            raise click.UsageError('give the PHOTO to fix')
        source = photo
    fixes = [name for name, on in (('closed-eyes', closed_eyes), ('open-mouth', open_mouth)) if on]
    if not from_record and not fixes:
        raise click.UsageError('say what to fix: --closed-eyes and/or --open-mouth')
    out = out or default_output(source, 'fixed')
    record = record or Path(out).with_suffix('.json')
    config = pipeline.EditConfig.from_options(
        checkpoint=checkpoint, quality=quality, projection_steps=projection_steps, tuning_steps=tuning_steps,
        device=device, encoder=encoder, upsample=upsample, max_steps=steps)
    check_outputs([out, record, before_after], [source, *references, config.checkpoint] +
                  ([from_record] if from_record else []))
    if from_record:
        result = fixes_mod.fix_from_record(rec, photo=photo, cache=cache)
    else:
        result = fixes_mod.fix_with_references(
            source, references, fixes, faces=list(only_faces) or None, config=config, strength=strength,
            thresholds=expression.check_thresholds(eyes_closed_below=eyes_below, mouth_open_above=mouth_above),
            upsample=upsample, cache=cache)
    for line in result.lines:
        click.echo(line)
    if not result.record['transfers'] and result.edit is None:
        click.echo('no face needs a fix; nothing written')
        return
    for what, path in fixes_mod.write_fix_outputs(result, out, record=record, before_after=before_after):
        click.echo(f'{what}: {path}')
