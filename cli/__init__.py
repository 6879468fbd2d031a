"""The `photodrag` command line. It parses, calls the library, and prints; nothing more.

Any `PhotodragError` (a problem the user can fix) becomes one line on stderr and exit status 2,
as click's own usage errors do; a traceback means a bug. One module per command, named after
it: `checkpoints` (the model zoo), `drag` (on a generated image), `invert` (a crop), `edit`,
`demo`, `faces`, `presets`, `fix`, `eval`, `serve` (the web editor), `batch` (recipes) and
`encoder` (train one); `common` holds what several share: the edit options, parsers, progress
bars, running an edit and the summary after it.
"""

import click

from .batch import batch_command
from .checkpoints import checkpoints_group
from .common import Group
from .demo import demo_command
from .drag import drag_command
from .edit import edit_command
from .encoder import encoder_group
from .eval import eval_group
from .faces import faces_command
from .fix import fix_command
from .invert import invert_command
from .presets import presets_command
from .serve import serve_command


@click.group(cls=Group, context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(package_name='photodrag')
def main():
    """photodrag: edit real photographs by dragging points (DragGAN on real photos)."""


for command in (checkpoints_group, drag_command, invert_command, edit_command, demo_command, faces_command,
                presets_command, fix_command, eval_group, serve_command, batch_command, encoder_group):
    main.add_command(command)

__all__ = ['main']
