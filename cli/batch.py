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
    from tqdm import tqdm
    from photodrag import batches

    if engine == 'local' and (address or workers not in (None, 1)):
        raise click.UsageError('--address and --workers are for --engine ray')
    rec = batches.load_recipe(recipe)
    if dry_run:
        result = batches.batch(rec, dry_run=True)
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
        return
    total = len(rec.photos())
    bar = tqdm(total=total, unit='photo', file=sys.stderr, dynamic_ncols=True, desc='batch')
    tally = {'done': 0, 'failed': 0, 'skipped': 0, 'faces': 0}

    def on_item(item, position, count):
        tally[item.status] = tally.get(item.status, 0) + 1
        tally['faces'] += len(item.faces) if item.status == 'done' else 0
        bar.set_postfix(done=tally['done'], faces=tally['faces'], failed=tally['failed'], skipped=tally['skipped'])
        if item.status == 'failed':
            bar.write(f'failed: {item.photo}: {item.error}', file=sys.stderr)
        bar.update(1)

    try:
        result = batches.batch(rec, resume=resume, callback=on_item, cache=cache, engine=engine, address=address,
                                workers=workers)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f'interrupted: {tally["done"]} photo(s) done this run; `photodrag batch {recipe} --resume` goes on '
                   'from here', err=True)
        sys.exit(130)
    bar.close()
    c = result.counts
    again = f', {result.skipped_done} done before' if result.skipped_done else ''
    click.echo(f"{len(result.items)} photo(s): {c.get('done', 0)} done{again}, {c.get('skipped', 0)} skipped, "
               f"{c.get('failed', 0)} failed; manifest {result.manifest}")
    if c.get('failed'):
        sys.exit(1)
