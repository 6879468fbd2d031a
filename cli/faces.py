"""`photodrag faces`: the faces of a photo, numbered as --face takes them, with their expressions."""

import click

from .common import check_outputs, print_table

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
              help='Search the photo enlarged 2^N times, for tiny faces (0-4).')
@click.option('--people', is_flag=True,
              help="Also print each face's whole person, head to feet: the box `edit --recipe body` crops "
                   '(full-body generators), or a starting point for --box.')
def faces_command(photo, preview, landmarks, upsample, people):
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
    print_table(rows)
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
    if people:
        for f, box in zip(faces, alignment.detect_people(image, faces)):
            click.echo(f'person {f.index}: box {",".join(f"{v:.0f}" for v in box)}')
    if preview:
        click.echo(f'preview: {report.save_image(preview, report.draw_faces(image.pixels, faces))}')
