"""The README's quick start and Python example run as written (with a random generator)."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
README = open(os.path.join(ROOT, 'README.md')).read()


def quick_start():
    """The two one-line commands at the top of the README: (demo line, test line)."""
    section = README.split('## Quick start', 1)[1].split('\n## ', 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.startswith('    ') and line.strip()]
    assert len(lines) == 2, lines
    return lines


def test_ci_runs_the_readmes_test_command_verbatim():
    demo, tests = quick_start()
    assert demo.endswith('&& photodrag demo') and tests.endswith('&& python3 -m pytest -q')
    ci = [line.strip() for line in open(os.path.join(ROOT, '.ci', 'run')).read().splitlines()]
    assert tests in ci
    # the test line installs everything the demo line does (same torch, extras that include faces)
    assert demo.split(' -e ')[0] == tests.split(' -e ')[0]
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, 'setup.cfg'))
    extras = {k: set(v.split()) for k, v in cfg['options.extras_require'].items()}
    assert extras['faces'] <= extras['dev']


def test_python_example_runs():
    code = re.search(r'```python\n(.*?)```', README, re.S).group(1)
    code = code.replace("'stylegan2-ffhq-512'", "'random:512'")          # no download in tests
    code = code.replace("DragConfig(precision='bf16')", "DragConfig(precision='bf16', max_steps=6)")
    code = code.replace("checkpoints.save_generator(G, 'ffhq512.safetensors')", '')
    namespace = {}
    exec(compile(code, 'README.md', 'exec'), namespace)
    assert namespace['image'].shape == (1, 3, 512, 512)
    assert namespace['session'].step_count <= 6


def test_quick_start_drag_command(tmp_path):
    line = next(l.strip() for l in README.splitlines() if l.strip().startswith('photodrag drag --checkpoint random'))
    args = shlex.split(line)[1:]
    done = subprocess.run([sys.executable, '-m', 'photodrag', *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for name in ('drag.png', 'drag.json', 'drag.mp4'):
        assert (tmp_path / name).stat().st_size > 0
    assert 'drag.png:' in done.stdout


def test_quick_start_demo_command(tmp_path):
    """`photodrag demo` as the README gives it: offline, bundled generator and photo."""
    line = quick_start()[0].rsplit('&&', 1)[1].strip()
    assert line == 'photodrag demo'
    env = dict(os.environ, PHOTODRAG_CACHE=str(tmp_path / 'cache'), PHOTODRAG_OFFLINE='1')
    done = subprocess.run([sys.executable, '-m', 'photodrag', *shlex.split(line)[1:]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr
    out = tmp_path / 'photodrag-demo'
    for name in ('astronaut_edited.png', 'astronaut_before_after.png', 'astronaut_edited.json'):
        assert (out / name).stat().st_size > 0, name
    assert 'astronaut_edited.png' in done.stdout
