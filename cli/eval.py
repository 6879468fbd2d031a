"""`photodrag eval landmarks|content|dragbench`: measure how well edits land (evaluation/protocols.py)."""

from pathlib import Path

import click

from .common import Group, StageBars, check_outputs, drag_options, drag_settings, edit_options, parse_box, parse_drag, parse_face, progress_bar


def _eval_options(f):
    """The edit settings an evaluation runs with; --quality defaults to fast to keep runs short."""
    f = click.option('--mask', 'region', type=click.Choice(['local', 'none']), default='local', show_default=True,
                     help="Where a face without a mask may change: 'local' (around the drags) or 'none' "
                          "(the whole face, DragGAN's behaviour).")(f)
    f = click.option('--steps', type=click.IntRange(0, 100_000), default=None, help='Drag step cap.  [default: 300]')(f)
    return drag_options(edit_options(quality='fast')(f))


def _config(checkpoint, quality, projection_steps, tuning_steps, device, encoder, steps, region, *, drag_mode=None,
            tracking=None, supervision=None, content_check=None, patience=None, **fields):
    """The EditConfig of an evaluation's edits (checked before anything loads)."""
    from photodrag.pipeline import EditConfig
    drag = drag_settings(drag_mode, tracking, supervision, content_check, patience)
    return EditConfig.from_options(checkpoint=checkpoint, quality=quality, projection_steps=projection_steps,
                                   tuning_steps=tuning_steps, device=device, encoder=encoder, max_steps=steps,
                                   region='whole' if region == 'none' else 'local', drag=drag, **fields)


def _finish(report, out):
    from photodrag.evaluation.protocols import write_report
    written = write_report(report, out)
    means = {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    click.echo('  '.join(f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}' for k, v in means.items()))
    for what, path in written.items():
        click.echo(f'{what}: {path}')


class _SampleBar:
    def __init__(self, desc):
        self.bar, self.desc = None, desc

    def __call__(self, done, total, sample):
        if self.bar is None:
            self.bar = progress_bar(total=total, desc=self.desc, unit='sample')
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@click.group('eval', cls=Group)
def eval_group():
    """Measure edits the way the papers do: landmarks, where the content went, DragBench.

    Each writes OUT/report.json (means at the top, one entry per sample under "samples")
    and OUT/contact_sheet.png (before | after, handles red, targets blue, found green).
    """


@eval_group.command('landmarks')
@click.argument('photos_dir', type=click.Path(file_okay=False), required=False)
@click.option('--on', 'on', type=click.Choice(['photos', 'samples']), default='photos', show_default=True,
              help="photos: faces of the photos in PHOTOS_DIR, through the whole pipeline; samples: the "
                   "generator's own faces, the drag alone (DragGAN's Table 1 protocol; no PHOTOS_DIR).")
@click.option('--points', type=click.Choice(['1', '5', '68']), default='5', show_default=True,
              help="How many of face A's landmarks are dragged to face B's (DragGAN's Table 1).")
@click.option('--pairs', type=click.IntRange(1, 10_000), default=4, show_default=True,
              help='Pairs of faces (photos: each face with the next, in file and left-to-right order).')
@click.option('--seed', type=click.IntRange(0, 2 ** 31 - 1), default=0, show_default=True,
              help='--on samples: pair k draws seeds SEED + 2k and SEED + 2k + 1.')
@click.option('--out', type=click.Path(file_okay=False), required=True, help='Report folder.')
@_eval_options
def eval_landmarks_command(photos_dir, on, points, pairs, seed, out, steps, region, checkpoint, quality,
                           projection_steps, tuning_steps, encoder, device, video, fps, cache, **drag):
    """Drag face A's landmarks to face B's (in PHOTOS_DIR's photos, or in the generator's own
    samples with --on samples); report the mean distance to the targets."""
    from photodrag.evaluation.protocols import eval_landmark_samples, eval_landmarks
    if on == 'photos' and photos_dir is None:
        raise click.UsageError('give PHOTOS_DIR, or --on samples to measure on the generator\'s own faces')
    if on == 'samples' and photos_dir is not None:
        raise click.UsageError('--on samples draws its faces from the generator; give no PHOTOS_DIR')
    check_outputs([Path(out) / 'report.json'], [], folder=out)
    config = _config(checkpoint, quality, projection_steps, tuning_steps, device, encoder, steps, region, **drag)
    bar = _SampleBar('pairs')
    try:
        if on == 'samples':
            report = eval_landmark_samples(int(points), pairs, config, seed=seed, progress=bar)
        else:
            report = eval_landmarks(photos_dir, int(points), pairs, config, cache=cache, progress=bar)
    finally:
        bar.close()
    _finish(report, out)


@eval_group.command('content')
@click.argument('photo', type=click.Path(dir_okay=False))
@click.option('--drag', 'drags', multiple=True, required=True, metavar='X1,Y1:X2,Y2',
              help='A drag in photo pixels, as `photodrag edit` takes it; repeat for more.')
@click.option('--face', default=None, metavar='N|X,Y|all', help='Which face (as `photodrag edit --face`).')
@click.option('--box', metavar='X0,Y0,X1,Y1', help='A face or object box instead of detection.')
@click.option('--recipe', default=None, metavar='NAME', help="Crop recipe.  [default: the checkpoint's]")
@click.option('--out', type=click.Path(file_okay=False), required=True, help='Report folder.')
@_eval_options
def eval_content_command(photo, drags, face, box, recipe, out, steps, region, checkpoint, quality, projection_steps,
                         tuning_steps, encoder, device, video, fps, cache, **drag):
    """Edit PHOTO with the drags and report where the content under each handle went."""
    from photodrag.evaluation.protocols import eval_content
    pairs = [parse_drag(d, 'photo') for d in drags]
    face_sel, box = parse_face(face), parse_box(box)
    check_outputs([Path(out) / 'report.json'], [photo], folder=out)
    config = _config(checkpoint, quality, projection_steps, tuning_steps, device, encoder, steps, region,
                     recipe=recipe, **drag)
    bars = StageBars(stages=('projection', 'tuning', 'drag'))
    try:
        report = eval_content(photo, pairs, config, face=face_sel, cache=cache, callback=bars,
                              **({'box': box} if box else {}))
    finally:
        bars.close()
    _finish(report, out)


@eval_group.command('dragbench')
@click.argument('dragbench_dir', type=click.Path(file_okay=False))
@click.option('--limit', type=click.IntRange(1, 100_000), default=None, help='At most this many samples.')
@click.option('--out', type=click.Path(file_okay=False), required=True,
              help='Results (OUT/<category>/<sample>/dragged_image.png) and the report.')
@_eval_options
def eval_dragbench_command(dragbench_dir, limit, out, steps, region, checkpoint, quality, projection_steps,
                           tuning_steps, encoder, device, video, fps, cache, **drag):
    """Run DragBench's samples through the pipeline: image fidelity and content distance."""
    from photodrag.evaluation.protocols import eval_dragbench
    if Path(out).resolve() == Path(dragbench_dir).resolve():
        from photodrag.errors import PhotodragError
        raise PhotodragError('--out is the benchmark folder; write the results somewhere else')
    config = _config(checkpoint, quality, projection_steps, tuning_steps, device, encoder, steps, region, **drag)
    bar = _SampleBar('samples')
    try:
        report = eval_dragbench(dragbench_dir, out, config, limit=limit, cache=cache, progress=bar)
    finally:
        bar.close()
    _finish(report, out)


__all__ = ['eval_group']
