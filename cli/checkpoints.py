"""`photodrag checkpoints list|download|verify|convert`: the model zoo."""

import os
from pathlib import Path

import click

from photodrag.errors import PhotodragError

from .common import ByteProgress, Group


@click.group('checkpoints', cls=Group)
def checkpoints_group():
    """The model zoo: list, download, verify and convert generator checkpoints.

    Files are cached in $PHOTODRAG_CACHE (default ~/.cache/photodrag).
    """


@checkpoints_group.command('list')
def checkpoints_list():
    """Known checkpoints, and whether each is in the cache."""
    from photodrag import checkpoints
    rows = [('name', 'px', 'domain', 'format', 'cached', 'licence')]
    for e in checkpoints.list_checkpoints():
        cached = 'yes' if checkpoints.local_path(e).is_file() else ('n/a' if not e.supported else 'no')
        rows.append((e.name, str(e.resolution), e.domain, e.format, cached, e.licence))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo('  '.join(c.ljust(w) for c, w in zip(r[:5], widths)) + '  ' + r[5])
    click.echo(f'\ncache: {checkpoints.checkpoint_dir()}')


@checkpoints_group.command('download')
@click.argument('name')
@click.option('--force', is_flag=True, help='Download again even if the file is cached.')
def checkpoints_download(name, force):
    """Download checkpoint NAME into the cache, verified."""
    from photodrag import checkpoints
    progress = ByteProgress(name)
    try:
        result = checkpoints.download(name, force=force, progress=progress)
    finally:
        progress.close()
    click.echo(f'{name}: {result.path}')
    click.echo(f'sha256 {result.sha256}' + (' (no published hash: recorded locally; later downloads are '
                                            'checked against it)' if result.newly_recorded else ''))


@checkpoints_group.command('verify')
@click.argument('name_or_path')
def checkpoints_verify(name_or_path):
    """Check a cached checkpoint's sha256 (by NAME) and that it loads as a generator."""
    from photodrag import checkpoints
    result = checkpoints.verify(name_or_path)
    if result.status == 'mismatch':
        raise PhotodragError(f'{result.path} has sha256 {result.sha256}, expected {result.expected}: the file is '
                             f'damaged or not the published one; download it again with --force')
    G = checkpoints.load_generator(name_or_path, download=False)       # a name builds its entry (grown ones grow)
    click.echo(f'{result.path}: ok, {checkpoints.describe(G)}')
    note = {'recorded': ' (no published hash: recorded locally)', 'ok': ''}[result.status]
    click.echo(f'sha256 {result.sha256}{note}')


@checkpoints_group.command('convert')
@click.argument('source')
@click.argument('dest', type=click.Path(dir_okay=False, path_type=Path))
@click.option('--overwrite', is_flag=True, help='Replace DEST if it exists (never the source).')
def checkpoints_convert(source, dest, overwrite):
    """Convert SOURCE (any supported format or a registry name) to photodrag's .safetensors DEST."""
    from photodrag import checkpoints
    src_path = checkpoints.resolve_path(source)
    if dest.exists() and os.path.samefile(dest, src_path):
        raise PhotodragError(f'{dest} is the source file; photodrag never writes over an input')
    if dest.suffix != '.safetensors':
        raise PhotodragError(f'{dest}: the output format is safetensors; name it *.safetensors')
    G = checkpoints.load_generator(source, download=False)             # a name builds its entry (grown ones grow)
    from_name = checkpoints.named_entry(source) is not None
    checkpoints.save_generator(G, dest, extra={'converted_from': source if from_name else Path(src_path).name},
                               overwrite=overwrite)
    click.echo(f'{dest}: {checkpoints.describe(G)}')
