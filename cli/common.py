"""What several `photodrag` commands share: the error-to-one-line group, the options of every
command that edits photos, argument parsers, output checks, progress bars, running an edit
with its bars, and the tables printed after it."""

import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import click

from photodrag.errors import PhotodragError, one_line
from photodrag.inversion.config import PRESETS

QUALITIES = [p for p in PRESETS if p != 'reference']      # 'reference' is for comparing with DragGAN, not offered
AUTO_HELP = 'Inversion preset; auto: fast on a CPU (about 30 s a face on 2 cores), balanced on a GPU.'


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
    """--checkpoint NAME|PATH; help_default is appended to the help (the default, where there is one)."""
    # no default=None: click 8.3+ counts an explicit None default as a value for a required option
    return click.option('--checkpoint', required=required, metavar='NAME|PATH',
                        help='A registry name (photodrag checkpoints list), a checkpoint file, or random:RES[:SEED].'
                             + help_default)


device_option = click.option('--device', default=None, metavar='auto|cpu|cuda|mps',
                             help='Where to run.  [default: auto: cuda, else mps, else cpu]')


presets_files_option = click.option(
    '--presets', 'preset_files', multiple=True, type=click.Path(dir_okay=False), metavar='FILE',
    help='A presets file (YAML or JSON) adding to the built-in ones.')


def quality_option(default: str, help: str = 'Inversion preset.'):
    """--quality: an inversion preset, with the command's own default shown in its help; a
    default of 'auto' (fast on a CPU, balanced on a GPU) is offered as a choice too."""
    choices = QUALITIES + ['auto'] if default == 'auto' else QUALITIES
    if default == 'auto':
        help = AUTO_HELP
    return click.option('--quality', type=click.Choice(choices), default=default, show_default=True, help=help)


def edit_options(quality: str):
    """The options of every command that edits photos (edit, demo, fix, eval): generator, inversion,
    device, drag video and cache; `quality` is the command's default inversion preset. The command
    takes checkpoint, quality, projection_steps, tuning_steps, encoder, device, video, fps, cache."""
    options = [
        checkpoint_option(help_default='  [default: demo-faces]'),
        quality_option(quality),
        click.option('--projection-steps', type=click.IntRange(0, 100_000), default=None, help='Override the preset.'),
        click.option('--tuning-steps', type=click.IntRange(0, 100_000), default=None, help='Override the preset.'),
        click.option('--encoder', default='auto', show_default=True, metavar='FILE|auto|none',
                     help="Where inversions start: an encoder file's w, the checkpoint's own encoder (auto: "
                          'NAME.encoder.safetensors beside it, if any), or none (w_avg).'),
        device_option,
        click.option('--video', type=click.Path(dir_okay=False),
                     help="Also write each face's drag, points drawn (.mp4, .webm, .avi)."),
        click.option('--fps', type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
                     help='Frames per second of --video.'),
        click.option('--cache/--no-cache', default=True, show_default=True,
                     help='Reuse earlier inversions of the same crop ($PHOTODRAG_CACHE/inversions).'),
    ]

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


def drag_options(f):
    """How a drag follows and pulls its handles (`DragConfig`; docs/algorithms.md); the command
    takes drag_mode, tracking, supervision, content_check and patience (None: the default)."""
    options = [
        click.option('--drag-mode', type=click.Choice(['fast', 'reference']), default=None,
                     help="fast (photodrag's drag) or reference (DragGAN's algorithm as its code runs it).  "
                          "[default: fast]"),
        click.option('--tracking', type=click.Choice(['features', 'template', 'image']), default=None,
                     help="How handles are found again: features (DragGAN), template (FreeDrag-style) or image "
                          "(features checked against the rendered pixels).  [default: the mode's]"),
        click.option('--supervision', type=click.Choice(['shift', 'original']), default=None,
                     help="What the motion term pulls: shift (DragGAN) or original (the handle's first "
                          "features, GoodDrag).  [default: the mode's]"),
        click.option('--content-check/--no-content-check', default=None,
                     help="Stop only when the rendered image shows the content at the targets.  "
                          "[default: the mode's]"),
        click.option('--patience', type=click.IntRange(0, 100_000), default=None,
                     help="Steps without the content getting nearer before the drag ends, back at its nearest "
                          "step; 0 = never.  [default: the mode's: 0 in both]"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def drag_settings(drag_mode=None, tracking=None, supervision=None, content_check=None, patience=None):
    """The DragConfig fields `drag_options` set (only those given)."""
    given = {'mode': drag_mode, 'tracking': tracking, 'supervision': supervision, 'content_check': content_check,
             'patience': patience}
    return {k: v for k, v in given.items() if v is not None}


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


def check_outputs(outputs, inputs, folder: Optional[os.PathLike] = None) -> None:
    """No output may be an input, no two outputs may be the same file, and each can be written:
    its folder exists, or is the output folder the command was given (`folder`, made if its
    own parent exists). No other folder is made: a mistyped path leaves nothing behind."""
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
        where = out.resolve().parent
        if not where.exists() and folder is not None and where == Path(folder).resolve():
            where = where.parent            # the named output folder, made when the work starts
        if not where.exists():              # a mistyped path must not leave folders behind (at / even)
            raise PhotodragError(f'cannot write {out}: the folder {where} does not exist (photodrag makes no '
                                 'folder you did not name; create it first)')
        if not where.is_dir():
            raise PhotodragError(f'cannot write {out}: {where} is a file, not a folder')
        try:                                # a real try: access() says yes to root even where nothing can be made
            tempfile.TemporaryFile(dir=where).close()
        except OSError as e:
            raise PhotodragError(f'cannot write {out}: the folder {where} is not writable ({e.strerror or e})') \
                from None


# ---------------------------------------------------------------- progress

def progress_bar(**kwargs):
    """A tqdm bar on stderr: redrawn up to ten times a second on a terminal, at most every 10 s
    when stderr is a log file or a pipe (a 40 s edit used to write ~1000 redraws into a log)."""
    from tqdm import tqdm
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(file=sys.stderr, leave=False, mininterval=interval, **kwargs)


def duration(seconds: float) -> str:
    """'40 s', '3 min', '1 h 5 min': a time to wait, rounded as a person reads it."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f'{max(1, round(seconds))} s'
    minutes = round(seconds / 60)
    return f'{minutes} min' if minutes < 90 else f'{minutes // 60} h {minutes % 60} min'


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


class EditProgress(StageBars):
    """Bars for the slow stages of pipeline.edit (on stderr), plus the optional drag video."""

    def __init__(self, video=None, fps: float = 10.0):
        super().__init__(stages=('projection', 'tuning', 'drag'),
                         label=lambda stage, info: f'edit {info.get("face", 0)}: {stage}')
        self.writer = None
        self.announced = set()
        if video:
            from photodrag.pipeline import report
            self.writer = report.VideoWriter(video, fps=fps)

    def __call__(self, stage, step, total, info):
        super().__call__(stage, step, total, info)
        face = info.get('face', 0)
        if 'remaining_s' in info and face not in self.announced:
            self.announced.add(face)        # at its first step: the whole inversion's time, before it runs
            from tqdm import tqdm
            tqdm.write(f'edit {face}: the inversion needs at most about {duration(info["remaining_s"])} on this '
                       'machine', file=sys.stderr)
        if self.writer is not None:
            self.writer.drag_frames(stage, step, total, info)

    def abort(self):
        """Close the bars and remove the video's temporary file."""
        self.close()
        if self.writer is not None:
            self.writer.abort()


def run_edit(run, video=None, fps: float = 10.0):
    """run(callback) -> EditResult, with progress bars and the optional drag video. Returns
    (result, video writer or None); the writer goes to pipeline.outputs.write_outputs, which
    closes it with the other files. On failure the video's temporary file is removed."""
    progress = EditProgress(video, fps)
    try:
        result = run(progress)
    except BaseException:
        progress.abort()
        raise
    progress.close()
    return result, progress.writer


# ---------------------------------------------------------------- printing

def print_table(rows) -> None:
    """Rows of strings as left-aligned columns (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo('  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


SHORT = 0.5     # a handle whose content went less than this share of the way is called out after the table


def _reason(drag) -> str:
    """How a face's drag ended, in words that never claim more than the images show: 'content
    at the targets' only when the record says the content measured in the photo reached them."""
    if drag.get('reached'):
        return 'content at the targets'
    return {'converged': 'the tracker stopped at the targets, the content short of them',
            'max_steps': 'stopped at the step limit',
            'stalled': 'stopped: the content came no nearer'}.get(drag['reason'], str(drag['reason']))


def _ended(drag) -> str:
    """How a drag ended, as the end of a sentence that starts 'and the drag ...'."""
    return {'converged': 'ended with the tracker at the targets and the content short of them',
            'max_steps': 'stopped at the step limit',
            'stalled': 'stopped when the content came no nearer'}.get(drag['reason'], f"ended: {drag['reason']}")


def print_summary(result, written) -> None:
    """The table printed after an edit: per face, then stage times, then where the files are
    (`written`: the [(what, path)] of pipeline.outputs.write_outputs)."""
    rec = result.record
    rows = [('face', 'box', 'LPIPS', 'PSNR', 'drag', 'content moved (share of the way, measured in the photo)')]
    for f in rec.faces:
        inv = f.inversion
        name = str(f.index) if f.index is not None else ('box' if f.landmarks is not None else 'object')
        if f.presets:
            from photodrag.expressions.presets import label
            name += ' (' + ', '.join(label(p['name'], p['strength']) for p in f.presets) + ')'
        box = ','.join(f'{v:.0f}' for v in f.box)
        cached = ' (cache)' if inv['from_cache'] else ''
        dists = ' '.join(f'{d:.2f}' for d in f.drag.get('content_progress', ()))
        rows.append((name, box, f"{inv['lpips']:.3f} {inv['lpips_net']}{cached}", f"{inv['psnr']:.1f} dB",
                     f"{f.drag['steps']} steps, {_reason(f.drag)}", dists))
    print_table(rows)
    for f in rec.faces:
        shares = f.drag.get('content_progress') or []
        if shares and min(shares) < SHORT:
            name = str(f.index) if f.index is not None else 'the box'
            click.echo(f'face {name}: the content went {", ".join(f"{p:.0%}" for p in shares)} of the way '
                       f'(measured in the photo), and the drag {_ended(f.drag)}; this generator did not draw more '
                       'of that motion')
    t = rec.timings
    stages = ('load', 'detect', 'align', 'invert', 'drag', 'paste')
    click.echo('time: ' + ', '.join(f'{s} {t[s]:.1f}s' for s in stages if s in t) + f'; total {t["total"]:.1f}s'
               + f' on {rec.device}')
    for what, path in written:
        click.echo(f'{what}: {path}')


def fmt_points(points) -> str:
    """Points as (x,y) (x,y) ..., for messages."""
    return ' '.join(f'({x:g},{y:g})' for x, y in points)
