"""`photodrag demo`: edit the bundled photo offline."""

from pathlib import Path

import click

from .common import check_outputs, edit_options, print_summary, run_edit


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
@edit_options(quality='fast')
def demo_command(out, steps, expression, mask, checkpoint, quality, projection_steps, tuning_steps, encoder, device,
                 video, fps, cache):
    """Edit a bundled photo offline: drag the astronaut's mouth corners (NASA, public domain).

    Uses the bundled demo generator (demo-faces) unless --checkpoint says otherwise, and
    writes into ./photodrag-demo/ unless --out says otherwise.
    """
    from photodrag import pipeline
    from photodrag.pipeline import demo
    from photodrag.pipeline.outputs import write_outputs

    out_dir = Path(out)
    edited, before_after, record = out_dir / 'astronaut_edited.png', out_dir / 'astronaut_before_after.png', \
        out_dir / 'astronaut_edited.json'
    config = pipeline.EditConfig.from_options(
        checkpoint=checkpoint, quality=quality, projection_steps=projection_steps, tuning_steps=tuning_steps,
        device=device, encoder=encoder, max_steps=steps, region='whole' if mask == 'none' else 'local')
    check_outputs([edited, before_after, record, video], [demo.DEMO_PHOTO, config.checkpoint], folder=out_dir)
    photo, face = demo.demo_face()
    expression = expression or demo.default_demo_expression(config.checkpoint)
    drags = demo.demo_drags(face, expression=expression)
    result, writer = run_edit(lambda cb: pipeline.edit(
        photo, pipeline.FaceEdit(face=face.index, drags=drags), config, callback=cb, cache=cache), video, fps)
    click.echo(f'demo: {demo.DEMO_PHOTO.name} (NASA, public domain), face {face.index}, {expression}: mouth corners '
               + ' and '.join(f'({h[0]:.0f},{h[1]:.0f})->({t[0]:.0f},{t[1]:.0f})' for h, t in drags))
    print_summary(result, write_outputs(result, edited, record=record, before_after=before_after, video=writer))
