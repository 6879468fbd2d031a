"""`photodrag presets`: the expression presets, listed or drawn on a face."""

import click

from .common import check_outputs, default_output, presets_files_option, print_table


@click.command('presets')
@presets_files_option
@click.option('--show', 'photo', type=click.Path(dir_okay=False), metavar='PHOTO',
              help="Draw each preset's handles (red), targets (blue) and editable region (yellow) on a face of "
                   'PHOTO, without editing anything.')
@click.option('--face', type=int, default=None, metavar='N', help='Which face of PHOTO.  [default: the largest]')
@click.option('--strength', type=click.FloatRange(0, 3, min_open=True), default=1.0, show_default=True,
              help='The strength to draw the presets at.')
@click.option('--out', type=click.Path(dir_okay=False), help='The drawing.  [default: PHOTO_presets.png]')
@click.option('--upsample', type=click.IntRange(0, 4), default=None, help='Search the photo enlarged 2^N times, for tiny faces.')
def presets_command(preset_files, photo, face, strength, out, upsample):
    """List the expression presets (built in, and those of --presets files).

    \b
    photodrag presets
    photodrag presets --show portrait.jpg --out what-presets-do.png
    photodrag presets --presets my.yaml --show group.jpg --face 2
    """
    from photodrag.expressions import presets as presets_mod
    known = presets_mod.available(preset_files)
    rows = [('preset', 'moves', 'region', 'from', 'what it does')]
    for name, p in known.items():
        rows.append((name, f'{len(p.moved_points())} landmarks', f'{len(p.regions)} part(s)', p.source,
                     p.description))
    print_table(rows)
    if photo is None:
        if face is not None or out is not None or upsample is not None or strength != 1.0:
            raise click.UsageError('--face, --out, --strength and --upsample go with --show PHOTO')
        return
    from photodrag import alignment
    from photodrag.pipeline import report
    out = out or default_output(photo, 'presets').with_suffix('.png')
    check_outputs([out], [photo, *preset_files])
    image = alignment.read_photo(photo)
    faces = alignment.detect_faces(image, upsample=upsample)
    if not faces:
        raise alignment.no_face_error(0, str(photo), upsample)
    chosen = alignment.select_face(faces, index=face)
    uses = [presets_mod.PresetUse(p, presets_mod.check_strength(strength)) for p in known.values()]
    path = report.save_image(out, report.draw_presets(image.pixels, chosen, uses))
    click.echo(f'drawing of face {chosen.index}: {path}')
