"""The README and docs/ say true things: the quick start is what CI runs, every command is in the
README's table and every option in docs/cli.md, every link and path resolves, and the examples
run as written (with a random generator or short settings where they would download or take
minutes)."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from conftest import ROOT

README = open(os.path.join(ROOT, 'README.md')).read()
DOCS = Path(ROOT) / 'docs'
CLI_MD = (DOCS / 'cli.md').read_text()
PAGES = [Path(ROOT) / 'README.md', *sorted(DOCS.glob('*.md'))]
SHARED_OPTIONS = 'options-the-edit-commands-share'       # docs/cli.md's anchor for the shared options


def quick_start():
    """The two one-line commands at the top of the README: (demo line, test line)."""
    section = README.split('## Quick start', 1)[1].split('\n## ', 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.startswith('    ') and line.strip()]
    assert len(lines) == 2, lines
    return lines


def without_code_blocks(text):
    return re.sub(r'^(```|~~~).*?^\1', '', text, flags=re.S | re.M)


def sections(text):
    """{heading title: the text under it, up to the next heading of any level}."""
    parts = re.split(r'^#{1,6} (.+)$', without_code_blocks(text), flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def slug(title):
    """The anchor GitHub gives a heading."""
    title = re.sub(r'[`*_]', '', title.strip().lower())
    return re.sub(r'[^\w\- ]', '', title).replace(' ', '-')


def commands():
    """{'photodrag edit': click command, 'photodrag eval landmarks': ..., ...}: every leaf command."""
    from photodrag.cli import main
    found = {}

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f'{path} {name}')
        else:
            found[path] = cmd
    walk(main, 'photodrag')
    return found


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


def test_the_first_screen_shows_a_picture_and_the_quick_start():
    lines = README.splitlines()
    quick = lines.index('## Quick start')
    image = re.search(r'!\[[^\]]*\]\(([^)]+)\)', '\n'.join(lines[:quick]))
    assert image, 'no picture above the quick start'
    assert (Path(ROOT) / image.group(1)).stat().st_size < 300_000, 'keep the README picture small'
    assert quick < 20 and lines.index('    ' + quick_start()[1]) < 30, 'the quick start is not on the first screen'


def test_the_readme_table_lists_every_command():
    from photodrag.cli import main
    table = README.split('## Command line', 1)[1].split('\n## ', 1)[0]
    rows = [line for line in table.splitlines() if line.startswith('| `photodrag ')]
    for name, cmd in main.commands.items():
        row = next((r for r in rows if r.startswith(f'| `photodrag {name}')), None)
        assert row, f'the README command table has no row for photodrag {name}'
        for sub in getattr(cmd, 'commands', {}):
            command = re.split(r'(?<!\\)\|', row)[1]          # the first cell (escaped pipes are its own)
            assert re.search(rf'[ |]{sub}\b', command.replace('\\|', '|')), f'the README table lacks {name} {sub}'
        link = re.search(r'\]\(([^)#]+)', row)
        assert link and (Path(ROOT) / link.group(1)).is_file(), row
    named = {re.match(r'\| `photodrag ([\w-]+)', r).group(1) for r in rows}
    assert named <= set(main.commands), f'the README lists commands that do not exist: {named - set(main.commands)}'


def test_cli_md_documents_every_command_and_option():
    """Each command has its own heading in docs/cli.md (a group's subcommands may share the
    group's), and each of its options is named there, or under the shared options when the
    section points to them."""
    docs = sections(CLI_MD)
    shared = next(body for title, body in docs.items() if slug(title) == SHARED_OPTIONS)
    found = commands()
    for path, cmd in found.items():
        words = path.split()
        own = [docs[' '.join(words[:n])] for n in range(2, len(words) + 1) if ' '.join(words[:n]) in docs]
        assert own, f'docs/cli.md has no section for {path}'
        text = ''.join(own)
        if SHARED_OPTIONS in text:
            text += shared
        for param in cmd.params:
            for opt in (*param.opts, *param.secondary_opts):
                if opt.startswith('--'):
                    assert re.search(re.escape(opt) + r'(?![\w-])', text), f'docs/cli.md: {path} does not mention {opt}'
    documented = {t for t in docs if t.startswith('photodrag ')}
    real = {' '.join(p.split()[:n]) for p in found for n in range(2, len(p.split()) + 1)}
    assert documented <= real, f'docs/cli.md documents commands that do not exist: {documented - real}'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: p.name)
def test_links_and_anchors_resolve(page):
    text = without_code_blocks(page.read_text())
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target):
            continue                                        # http(s), mailto: not checked offline
        path, _, anchor = target.partition('#')
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f'{page.name}: link to {target}: no such file'
        if anchor:
            assert dest.suffix == '.md', f'{page.name}: anchor into a non-Markdown file: {target}'
            anchors = {slug(t) for t in sections(dest.read_text())}
            assert anchor in anchors, f'{page.name}: link to {target}: no such heading in {dest.name}'


REPO_PATH = re.compile(r'`((?:stylegan|checkpoints|alignment|inversion|drag|pipeline|expressions|batches|evaluation'
                       r'|cli|web|photodrag|tests|benchmarks|training|docs)/[\w./-]*)')


@pytest.mark.parametrize('page', [p for p in PAGES if p.name != 'changelog.md'], ids=lambda p: p.name)
def test_paths_named_in_the_docs_exist(page):
    """A file or folder named in backticks (`expressions/presets.py`) is where the page says
    (the changelog keeps the paths of its day)."""
    for path in REPO_PATH.findall(page.read_text()):
        assert (Path(ROOT) / path).exists(), f'{page.name} names {path}, which does not exist'


def python_blocks(text):
    return re.findall(r'```python\n(.*?)```', text, re.S)


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch):
    code = python_blocks(README)[0]
    assert "quality='fast'" in code
    # the same call, with no inversion steps and a 2-step drag, so it takes seconds
    code = code.replace("quality='fast'", "quality=None, max_steps=2, inversion=photodrag.InversionConfig"
                                          ".preset('fast').replace(projection_steps=0, tuning_steps=0)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    namespace = {}
    exec(compile(code, 'README.md', 'exec'), namespace)
    from PIL import Image
    assert Image.open(tmp_path / 'astronaut_edited.png').size == (512, 512)
    record = json.loads((tmp_path / 'astronaut_edited.json').read_text())
    assert len(record['faces']) == 1 and record['config']['drag']['max_steps'] == 2


@pytest.mark.slow
def test_api_generator_example_runs():
    code = python_blocks((DOCS / 'api.md').read_text())[0]
    code = code.replace("'stylegan2-ffhq-512'", "'random:512'")          # no download in tests
    code = code.replace("DragConfig(precision='bf16')", "DragConfig(precision='bf16', max_steps=6)")
    code = code.replace("checkpoints.save_generator(G, 'ffhq512.safetensors')", '')
    namespace = {}
    exec(compile(code, 'docs/api.md', 'exec'), namespace)
    assert namespace['image'].shape == (1, 3, 512, 512)
    assert namespace['session'].step_count <= 6


@pytest.mark.slow
def test_cli_md_drag_example(tmp_path):
    line = next(l.strip() for l in CLI_MD.splitlines() if l.strip().startswith('photodrag drag --checkpoint random'))
    args = shlex.split(line)[1:]
    done = subprocess.run([sys.executable, '-m', 'photodrag', *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for name in ('drag.png', 'drag.json', 'drag.mp4'):
        assert (tmp_path / name).stat().st_size > 0
    assert 'drag.png:' in done.stdout


@pytest.mark.slow
@pytest.mark.spread
def test_quick_start_demo_command(tmp_path, shared_inversions):
    """`photodrag demo` as the README gives it: offline, bundled generator and photo."""
    line = quick_start()[0].rsplit('&&', 1)[1].strip()
    assert line == 'photodrag demo'
    env = dict(os.environ, PHOTODRAG_CACHE=str(shared_inversions), PHOTODRAG_OFFLINE='1')
    done = subprocess.run([sys.executable, '-m', 'photodrag', *shlex.split(line)[1:]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr
    out = tmp_path / 'photodrag-demo'
    for name in ('astronaut_edited.png', 'astronaut_before_after.png', 'astronaut_edited.json'):
        assert (out / name).stat().st_size > 0, name
    assert 'astronaut_edited.png' in done.stdout
