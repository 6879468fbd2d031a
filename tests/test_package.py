"""The package as a user installs it: one `photodrag` namespace, a public API in one place,
shared helpers without torch, and a CLI that answers every bad option with one line."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import ROOT

import photodrag
from photodrag.cli import main

STAGES = ('pipeline', 'checkpoints', 'alignment', 'drag', 'inversion', 'stylegan', 'expressions', 'batches', 'evaluation',
          'cli', 'web')


def python(code, cwd):
    return subprocess.run([sys.executable, '-c', code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_no_generic_top_level_modules_are_installed(tmp_path):
    done = python('import importlib.util, json; '
                  f'print(json.dumps({{n: importlib.util.find_spec(n) is not None for n in {STAGES!r}}}))', tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{' + ', '.join(f'"{n}": false' for n in STAGES) + '}'
    done = python('import pipeline', tmp_path)
    assert done.returncode != 0 and "No module named 'pipeline'" in done.stderr


def test_every_room_is_found_and_installed():
    """A folder of the package at the repository top is linked into photodrag/ and found by
    setuptools (packages are found, not listed: a new room cannot silently not install)."""
    import configparser
    from setuptools import find_packages
    rooms = {d.name for d in Path(ROOT).iterdir() if (d / '__init__.py').is_file() and d.name != 'photodrag'}
    assert set(STAGES) <= rooms
    for room in rooms - {'tests', 'benchmarks', 'training'}:
        link = Path(ROOT) / 'photodrag' / room
        assert link.is_symlink() and link.resolve() == (Path(ROOT) / room).resolve(), room
    cfg = configparser.ConfigParser()
    cfg.read(Path(ROOT) / 'setup.cfg')
    assert cfg['options']['packages'].strip() == 'find:' and 'package_dir' not in cfg['options']
    found = set(find_packages(ROOT, include=['photodrag', 'photodrag.*']))
    assert {f'photodrag.{room}' for room in rooms - {'tests', 'benchmarks', 'training'}} <= found


def test_the_public_api_is_in_one_place():
    for name in photodrag.__all__:
        assert getattr(photodrag, name) is not None, name
    assert photodrag.edit is photodrag.pipeline.edit and callable(photodrag.edit)
    assert photodrag.DragSession is photodrag.drag.DragSession
    assert photodrag.load_generator is photodrag.checkpoints.load_generator
    assert photodrag.invert is photodrag.inversion.invert
    assert issubclass(photodrag.InvalidSettingsError, photodrag.PhotodragError)
    with pytest.raises(AttributeError, match='no attribute'):
        photodrag.no_such_thing


def test_errors_io_and_the_photo_stage_do_not_load_torch(tmp_path):
    done = python('import sys, photodrag, photodrag.errors, photodrag.io, photodrag.alignment; '
                  'print("torch" in sys.modules)', tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'False'


def test_a_users_own_modules_named_like_stages_do_not_break_photodrag(tmp_path):
    from photodrag.pipeline.demo import DEMO_PHOTO
    for name in STAGES:
        (tmp_path / f'{name}.py').write_text(f'raise RuntimeError("the user\'s own {name}.py was imported")\n')
    done = subprocess.run([sys.executable, '-m', 'photodrag', 'faces', str(DEMO_PHOTO), '--landmarks'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    if 'needs dlib' in done.stderr:
        pytest.skip('dlib (photodrag[faces]) is not installed')
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith('0 ') and 'left mouth corner' in done.stdout
    assert 'weak detection' not in done.stdout and len(done.stdout.splitlines()) == 3      # one face: not the badge on her suit
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f'{n}.py' for n in STAGES)


# ---------------------------------------------------------------- bad options: one line, exit 2

DRAG = ['drag', '--checkpoint', 'random:32', '--drag', '10,10:14,12']
EDIT = ['edit', 'photo.png', '--drag', '10,10:14,12', '--checkpoint', 'random:32']
BAD_OPTIONS = [
    DRAG + ['--lr', '0'], DRAG + ['--lr', '-1e-3'], DRAG + ['--lr', 'nan'], DRAG + ['--lr', 'fast'],
    DRAG + ['--precision', 'fp16'], DRAG + ['--precision', 'fp8'], DRAG + ['--stop-distance', '-1'],
    DRAG + ['--steps', '-1'], DRAG + ['--mode', 'turbo'], DRAG + ['--latent-space', 'z'], DRAG + ['--fps', '0'],
    DRAG + ['--truncation', '9'], DRAG + ['--seed', '-1'], DRAG + ['--device', 'quantum'], DRAG + ['--device', 'cuda:7'],
    DRAG[:4] + ['--drag', '10,10'], DRAG + ['--mask', 'no-such-mask.png'], DRAG + ['--checkpoint', 'no-such.pkl'],
    ['drag', '--drag', '1,1:2,2'],
    EDIT + ['--quality', 'perfect'], EDIT + ['--steps', '-3'], EDIT + ['--upsample', '9'], EDIT + ['--face', 'left'],
    EDIT + ['--box', '1,2,3'], EDIT + ['--box', '5,5,1,1'], EDIT + ['--projection-steps', '-1'],
    EDIT + ['--seed', '1e30'], EDIT + ['--device', 'cuda'], EDIT + ['--fps', '-2'], EDIT + ['--recipe', 'pizza'],
    ['edit', 'photo.png', '--drag', '1,1:2'], ['edit', 'photo.png'], ['edit', 'missing.png', '--drag', '1,1:2,2'],
    ['edit', '--from-record', 'photo.png'],
    ['invert', 'photo.png', '--checkpoint', 'random:32', '--quality', 'slow'],
    ['invert', 'photo.png', '--checkpoint', 'random:32', '--tuning-steps', '-5'],
    ['demo', '--expression', 'frown'], ['demo', '--steps', '-1'], ['demo', '--device', 'mps'],
    ['faces', 'photo.png', '--upsample', '6'],
    ['checkpoints', 'verify', 'no-such-checkpoint'], ['checkpoints', 'convert', 'random:32', 'out.bin'],
    ['checkpoints', 'download', 'no-such-name'], ['no-such-command'],
]


@pytest.mark.parametrize('args', BAD_OPTIONS, ids=lambda a: ' '.join(a[:1] + a[-2:]))
def test_every_bad_option_is_one_line_and_exit_2_and_writes_nothing(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('PHOTODRAG_OFFLINE', '1')
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save('photo.png')
    before = sorted(os.listdir(tmp_path))
    result = CliRunner().invoke(main, args)
    lines = [line for line in result.output.replace('\r', '\n').splitlines() if line.strip()]
    lines = [line for line in lines if not line.lstrip().startswith(('drag:', 'edit ', 'projection', 'tuning'))]
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith('error: '), (args, result.output)
    assert 'Traceback' not in result.output and not isinstance(result.exception, (TypeError, KeyError, AttributeError))
    assert sorted(os.listdir(tmp_path)) == before, args
    assert not Path('cache').exists() or not any(Path('cache').rglob('*.*'))
