"""`photodrag batch`: one recipe over many photos, resumable."""

import sys

import click


@click.command('batch')
@click.argument('recipe', type=click.Path(dir_okay=False))
@click.option('--resume', is_flag=True, help='Go on with the batch of the output folder: only what is unfinished '
                                             'is done.')
@click.option('--dry-run', is_flag=True, help='List the photos, the faces found and the edits; invert nothing, '
                                              'write nothing.')
@click.option('--engine', type=click.Choice(['local', 'ray']), default='local', show_default=True,
              help='local: this process; ray: Ray actors (the ray extra), one per GPU when the cluster has them.')
@click.option('--address', default=None, metavar='ADDR', help='Join this Ray cluster (else a local Ray starts).')
@click.option('--workers', type=click.IntRange(1, 10_000), default=None,
              help='Ray actors.  [default: one per GPU, else one per torch thread-set of the CPUs]')
@click.option('--cache/--no-cache', default=True, show_default=True,
              help='Reuse inversions of the same crop ($PHOTODRAG_CACHE/inversions).')
def batch_command(recipe, resume, dry_run, engine, address, workers, cache):
    """Run a batch recipe (YAML or JSON, docs/batch.md) over folders of photos.

    \b
    photodrag batch retouch.yaml --dry-run
    photodrag batch retouch.yaml
    photodrag batch retouch.yaml --resume      # after a crash, a kill or Ctrl-C
    photodrag batch retouch.yaml --engine ray --address ray://head:10001

    Exit status: 0 when every photo is done or skipped, 1 when some failed (the manifest
    says why), 2 for a bad recipe or a busy output folder, 130 on Ctrl-C.
    """
    from photodrag import batches

    if engine == 'local' and (address or workers not in (None, 1)):
        raise click.UsageError('--address and --workers are for --engine ray')
    rec = batches.load_recipe(recipe)
    if dry_run:
        show_plan(batches.batch(rec, dry_run=True))
        return
    bars = BatchBars(len(rec.photos()))
    try:
        result = batches.batch(rec, resume=resume, callback=bars.item, progress=bars.stage, cache=cache,
                               engine=engine, address=address, workers=workers)
    except KeyboardInterrupt:
        bars.close()
        click.echo(f'interrupted: {bars.done_now} photo(s) done this run; `photodrag batch {recipe} --resume` goes '
                   'on from here', err=True)
        sys.exit(130)
    bars.close()
    click.echo(summary(result))
    if result.counts.get('failed'):
        sys.exit(1)


def show_plan(result) -> None:
    """A dry run's plan: each photo's faces and edits, or why it would be skipped or fail."""
    for it in result.items:
        if it.status == 'planned':
            faces = '; '.join(f"face {f['face']} at {','.join(map(str, f['box']))}: "
                              + ', '.join(f['presets'] + [f"{len(f['drags'])} drag(s)"] * bool(f['drags']))
                              for f in it.faces)
            click.echo(f'{it.photo}: {faces}')
        else:
            click.echo(f'{it.photo}: {it.status}: {it.error}')
    counts = result.counts
    click.echo(f"{len(result.items)} photo(s): {counts.get('planned', 0)} to edit, "
               f"{counts.get('skipped', 0)} to skip, {counts.get('failed', 0)} that would fail; nothing written")


class BatchBars:
    """Progress on stderr: a bar of photos (done, faces, failed, skipped so far) and, under it,
    one of the stage the current photo's face is in ("photo 3/10, face 2/7: tuning"), so a
    photo of many faces shows its faces go by."""

    def __init__(self, total: int):
        from tqdm import tqdm
        from .common import StageBars
        self.total = total
        self.bar = tqdm(total=total, unit='photo', file=sys.stderr, dynamic_ncols=True, desc='batch')
        self.stage = StageBars(label=self.label)
        self.tally = {'done': 0, 'failed': 0, 'skipped': 0, 'faces': 0}
        self.done_now = 0                   # photos done by this run (not an earlier one's)

    def label(self, stage: str, info) -> str:
        where = f'photo {self.bar.n + 1}/{self.total}'
        if info.get('face') is not None:
            where += f", face {info['face'] + 1}/{info['faces']}"
        return f'{where}: {stage}'

    def item(self, item, position: int, count: int) -> None:
        self.stage.close()
        self.tally[item.status] = self.tally.get(item.status, 0) + 1
        self.tally['faces'] += len(item.faces) if item.status == 'done' else 0
        self.done_now += item.status == 'done' and not item.earlier
        self.bar.set_postfix(done=self.tally['done'], faces=self.tally['faces'], failed=self.tally['failed'],
                             skipped=self.tally['skipped'])
        if item.status == 'failed' and not item.earlier:
            self.bar.write(f'failed: {item.photo}: {item.error}', file=sys.stderr)
        self.bar.update(1)

    def close(self) -> None:
        self.stage.close()
        self.bar.close()


def _tally(counts) -> str:
    return ', '.join(f'{counts.get(k, 0)} {k}' for k in ('done', 'skipped', 'failed'))


def summary(result) -> str:
    """The last line: what this run did and, on resume, what an earlier run had finished
    (those photos are not redone, and not counted as this run's)."""
    now = result.counts_this_run
    if not result.skipped_done:
        return f'{len(result.items)} photo(s): {_tally(now)}; manifest {result.manifest}'
    before = {k: v - now.get(k, 0) for k, v in result.counts.items()}
    earlier = ', '.join(f'{v} {k}' for k, v in before.items() if v)
    if not sum(now.values()):
        return (f'nothing left to do: all {len(result.items)} photo(s) were finished by an earlier run ({earlier}); '
                f'manifest {result.manifest}')
    return (f'{len(result.items)} photo(s): {_tally(now)} this run; {result.skipped_done} finished by an earlier run '
            f'({earlier}) and not redone; manifest {result.manifest}')
