"""The `photodrag` command line. It parses, calls the library, and prints; nothing more.

Any `PhotodragError` becomes one line on stderr and exit status 1; a traceback means a bug.
"""

import os
import sys
from pathlib import Path

import click

from stylegan.errors import PhotodragError


class _Group(click.Group):
    """A click group that turns photodrag's own errors into one clear line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PhotodragError as e:
            click.echo(f'error: {e}', err=True)
            ctx.exit(1)


def pick_device(requested: str = 'auto') -> str:
    """cuda -> mps -> cpu, unless told."""
    import torch
    if requested != 'auto':
        if requested.startswith('cuda') and not torch.cuda.is_available():
            raise PhotodragError('--device cuda was asked for, but no CUDA GPU is available')
        if requested == 'mps' and not torch.backends.mps.is_available():
            raise PhotodragError('--device mps was asked for, but MPS is not available')
        return requested
    if torch.cuda.is_available():
        return 'cuda'
    if torch.backends.mps.is_available():
        return 'mps'
    return 'cpu'


class _ByteProgress:
    """A tqdm bar fed by byte-count callbacks, opened on the first byte (on stderr)."""

    def __init__(self, desc):
        self.desc, self.bar = desc, None

    def __call__(self, done, total):
        from tqdm import tqdm
        if self.bar is None:
            self.bar = tqdm(desc=self.desc, total=total, unit='B', unit_scale=True, file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@click.group(cls=_Group, context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(package_name='photodrag')
def main():
    """photodrag: edit real photographs by dragging points (DragGAN on real photos)."""


#----------------------------------------------------------------------------
# checkpoints


@main.group('checkpoints', cls=_Group)
def checkpoints_group():
    """The model zoo: list, download, verify and convert generator checkpoints.

    Files are cached in $PHOTODRAG_CACHE (default ~/.cache/photodrag).
    """


@checkpoints_group.command('list')
def checkpoints_list():
    """Known checkpoints, and whether each is in the cache."""
    import checkpoints
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
    import checkpoints
    progress = _ByteProgress(name)
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
    import checkpoints
    result = checkpoints.verify(name_or_path)
    if result.status == 'mismatch':
        raise PhotodragError(f'{result.path} has sha256 {result.sha256}, expected {result.expected}: the file is '
                             f'damaged or not the published one; download it again with --force')
    G = checkpoints.load_generator(result.path)
    click.echo(f'{result.path}: ok, {checkpoints.describe(G)}')
    note = {'recorded': ' (no published hash: recorded locally)', 'ok': ''}[result.status]
    click.echo(f'sha256 {result.sha256}{note}')


@checkpoints_group.command('convert')
@click.argument('source')
@click.argument('dest', type=click.Path(dir_okay=False, path_type=Path))
@click.option('--overwrite', is_flag=True, help='Replace DEST if it exists (never the source).')
def checkpoints_convert(source, dest, overwrite):
    """Convert SOURCE (any supported format or a registry name) to photodrag's .safetensors DEST."""
    import checkpoints
    src_path = checkpoints.resolve_path(source)
    if dest.exists() and os.path.samefile(dest, src_path):
        raise PhotodragError(f'{dest} is the source file; photodrag never writes over an input')
    if dest.suffix != '.safetensors':
        raise PhotodragError(f'{dest}: the output format is safetensors; name it *.safetensors')
    G = checkpoints.load_file(src_path)
    checkpoints.save_generator(G, dest, extra={'converted_from': Path(src_path).name}, overwrite=overwrite)
    click.echo(f'{dest}: {checkpoints.describe(G)}')


if __name__ == '__main__':
    main()
