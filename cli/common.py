"""What every `photodrag` command shares: the error-to-one-line group, argument parsers,
output checks and progress bars."""

import os
import sys
import tempfile
from pathlib import Path

import click

from photodrag.errors import PhotodragError, one_line


class Group(click.Group):
    """A click group that turns photodrag's own errors, and click's errors in a sub-command's
    arguments, into one clear line on stderr and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PhotodragError as e:
            click.echo(f'error: {one_line(e)}', err=True)
            ctx.exit(2)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else ctx.command_path
            click.echo(f'error: {one_line(e.format_message())} (see `{where} --help`)', err=True)
            ctx.exit(2)
        except (KeyboardInterrupt, click.exceptions.Abort):
            # outputs are written atomically and only once complete: nothing half-written stays
            click.echo('\ninterrupted: no output of the unfinished work was written (files already complete and '
                       'cached inversions are kept)', err=True)
            ctx.exit(130)


def checkpoint_option(required=False, help_default=''):
    # no default=None: click 8.3+ counts an explicit None default as a value for a required option
    return click.option('--checkpoint', required=required, metavar='NAME|PATH',
                        help='A registry name (photodrag checkpoints list), a checkpoint file, or random:RES[:SEED].'
                             + help_default)


device_option = click.option('--device', default=None, metavar='auto|cpu|cuda|mps',
                             help='Where to run.  [default: auto: cuda, else mps, else cpu]')


# ---------------------------------------------------------------- parsing

def parse_drag(text: str, where: str = 'image'):
    """'x1,y1:x2,y2' -> ((x1, y1), (x2, y2))."""
    try:
        start, end = text.split(':')
        handle = tuple(float(v) for v in start.split(','))
        target = tuple(float(v) for v in end.split(','))
        if len(handle) != 2 or len(target) != 2:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f'{text!r}: expected X1,Y1:X2,Y2, e.g. 120,200:150,190 '
                                 f'(handle, then target, in {where} pixels)', param_hint='--drag') from None
    return handle, target


def parse_face(text):
    """'N' -> face index, 'X,Y' -> a point on the face, 'all' -> each drag picks its face."""
    if text is None or text == 'all':
        return text
    try:
        if ',' in text:
            x, y = (float(v) for v in text.split(','))
            return (x, y)
        return int(text)
    except ValueError:
        raise click.BadParameter(f'{text!r}: expected a face number (0 = leftmost), X,Y on the face, or all',
                                 param_hint='--face') from None


def parse_box(text):
    """'x0,y0,x1,y1' -> a box in photo pixels (checked by photodrag.io.check_box)."""
    if text is None:
        return None
    from photodrag.io import check_box
    try:
        return check_box(text.split(','), 'a box')
    except PhotodragError as e:
        raise click.BadParameter(f'{text!r}: expected X0,Y0,X1,Y1 in photo pixels with X1 > X0 and Y1 > Y0',
                                 param_hint='--box') from e


def default_output(photo, tag: str = 'edited') -> Path:
    """NAME_edited.EXT next to the input (never the input itself)."""
    photo = Path(photo)
    return photo.with_name(f'{photo.stem}_{tag}{photo.suffix or ".png"}')


def check_outputs(outputs, inputs) -> None:
    """No output may be an input, and no two outputs may be the same file."""
    given = [Path(o) for o in outputs if o is not None]
    for out in given:
        for inp in inputs:
            if inp and Path(inp).exists() and out.exists() and os.path.samefile(out, inp):
                raise PhotodragError(f'{out} is also an input; photodrag never writes over an input')
    if len({str(p.resolve()) for p in given}) != len(given):
        raise PhotodragError('two outputs have the same path; give each output its own file')
    for out in given:                   # checked now, not after minutes of work
        if out.is_dir():
            raise PhotodragError(f'{out} is a folder; give a file name for the output')
        folder = out.resolve().parent
        while not folder.exists():          # written into a folder made on the way
            folder = folder.parent
        if not folder.is_dir():
            raise PhotodragError(f'cannot write {out}: {folder} is a file, not a folder')
        try:                                # a real try: access() says yes to root even where nothing can be made
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as e:
            raise PhotodragError(f'cannot write {out}: the folder {folder} is not writable ({e.strerror or e})') \
                from None


# ---------------------------------------------------------------- progress

def progress_bar(**kwargs):
    """A tqdm bar on stderr: redrawn up to ten times a second on a terminal, at most every 10 s
    when stderr is a log file or a pipe (a 40 s edit used to write ~1000 redraws into a log)."""
    from tqdm import tqdm
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(file=sys.stderr, leave=False, mininterval=interval, **kwargs)


class ByteProgress:
    """A tqdm bar fed by byte-count callbacks, opened on the first byte (on stderr)."""

    def __init__(self, desc):
        self.desc, self.bar = desc, None

    def __call__(self, done, total):
        if self.bar is None:
            self.bar = progress_bar(desc=self.desc, total=total, unit='B', unit_scale=True)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class StageBars:
    """One tqdm bar per stage of a callback(stage, step, total, info) stream, with the LPIPS or
    handle distance as its postfix; `stages` limits which stages get a bar."""

    def __init__(self, stages=None, label=lambda stage, info: stage):
        self.stages, self.label = stages, label
        self.bar = self.key = None

    def __call__(self, stage, step, total, info):
        if self.stages is not None and stage not in self.stages:
            return
        key = (stage, info.get('face'))
        if key != self.key:
            self.close()
            self.key = key
            self.bar = progress_bar(total=total, desc=self.label(stage, info), unit='step')
        if 'lpips' in info:
            self.bar.set_postfix(lpips=f"{info['lpips']:.3f}", refresh=False)
        if 'distance' in info:
            self.bar.set_postfix(distance=f"{info['distance']:.1f}px", refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def fmt_points(points) -> str:
    return ' '.join(f'({x:g},{y:g})' for x, y in points)
