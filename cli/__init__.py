"""The `photodrag` command line. It parses, calls the library, and prints; nothing more.

Any `PhotodragError` (a problem the user can fix) becomes one line on stderr and exit status 2,
as click's own usage errors do; a traceback means a bug. One module per group of commands:
`checkpoints` (the model zoo), `generate` (drag on a generated image, invert a crop),
`photos` (edit, demo, faces), `expressions` (presets, fix), `evaluate` (eval), `serve` (the web
editor), `batch` (recipes), `encoder` (train one); `common` holds the parsers and progress bars they share.
"""

import click

from .batch import batch_command
from .checkpoints import checkpoints_group
from .common import Group
from .encoder import encoder_group
from .evaluate import eval_group
from .expressions import fix_command, presets_command
from .generate import drag_command, invert_command
from .photos import demo_command, edit_command, faces_command
from .serve import serve_command


@click.group(cls=Group, context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(package_name='photodrag')
def main():
    """photodrag: edit real photographs by dragging points (DragGAN on real photos)."""


for command in (checkpoints_group, drag_command, invert_command, edit_command, demo_command, faces_command,
                presets_command, fix_command, eval_group, serve_command, batch_command, encoder_group):
    main.add_command(command)

__all__ = ['main']
