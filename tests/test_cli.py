"""The photodrag command line: help, checkpoint commands, one-line errors."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from photodrag import checkpoints
import formats
from conftest import interruptible, make_generator
from photodrag.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_help_pages():
    assert run('--help').exit_code == 0
    out = run('checkpoints', '--help')
    assert out.exit_code == 0 and 'download' in out.output and 'convert' in out.output


def help_pages():
    """Every command's --help, by command path (a wide terminal: no option wraps)."""
    import click

    def walk(command, path):
        yield path
        for name, sub in sorted(getattr(command, 'commands', {}).items()):
            yield from walk(sub, path + [name])
    pages = {}
    for path in walk(main, []):
        result = CliRunner().invoke(main, path + ['--help'], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        pages[' '.join(path)] = click.unstyle(result.output)
    return pages


def test_help_examples_name_checkpoints_the_registry_knows():
    """A `--checkpoint NAME` in any help text is a name `photodrag checkpoints list` shows
    (serve's example once said ffhq-512, which no command accepts). Names have a hyphen, prose
    such as "unless --checkpoint says otherwise" does not."""
    import re
    known = {e.name for e in checkpoints.list_checkpoints()}
    named = {(where, name) for where, page in help_pages().items()
             for name in re.findall(r'--checkpoint[ =]([a-z0-9]+-[\w.-]+)', page)}
    assert ('serve', 'stylegan2-ffhq-512') in named
    assert {(where, name) for where, name in named if name not in known} == set()


def test_each_command_shows_and_uses_its_own_quality_default(tmp_path, monkeypatch):
    """--quality's help says the command's own default, and that default is what the edit runs with."""
    import re
    from photodrag import errors, pipeline
    from photodrag.evaluation import protocols
    pages = help_pages()
    expected = {'edit': 'auto', 'fix': 'auto', 'demo': 'fast', 'eval landmarks': 'fast',
                'eval content': 'fast', 'eval dragbench': 'fast', 'serve': 'fast', 'invert': 'balanced'}
    shown = {where: re.search(r'--quality \[[a-z|]+\]\s.*?\[default: ([^]]*)\]', page, re.S).group(1)
             for where, page in pages.items() if '--quality' in page}
    assert shown == expected

    used = []

    def stop(*args, **kwargs):
        used.append(next(a for a in args if isinstance(a, pipeline.EditConfig)))
        raise errors.PhotodragError('stopped before any work')
    monkeypatch.setattr(pipeline, 'edit', stop)
    monkeypatch.setattr(protocols, 'eval_content', stop)
    for args in (['edit', tmp_path / 'p.jpg'], ['eval', 'content', tmp_path / 'p.jpg', '--out', tmp_path / 'r']):
        result = run(*args, '--drag', '1,1:2,2', '--device', 'cpu')
        assert result.exit_code == 2 and 'stopped before any work' in result.output, result.output
    assert [c.quality for c in used] == ['fast', 'fast']          # edit's auto on a CPU: fast
    assert [c.inversion_config().projection_steps for c in used] == \
        [pipeline.EditConfig(quality=q).inversion_config().projection_steps for q in ('fast', 'fast')]
    from photodrag.pipeline.config import auto_quality
    assert auto_quality('cpu') == 'fast' and auto_quality('cuda:0') == 'balanced'


def test_from_record_refuses_a_setting_given_even_at_its_default(tmp_path):
    result = run('edit', '--from-record', tmp_path / 'r.json', '--quality', 'balanced', '--seed', 0)
    assert result.exit_code == 2 and 'drop --seed, --quality' in result.output


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, '-m', 'photodrag', '--help'], capture_output=True, text=True)
    assert done.returncode == 0 and 'checkpoints' in done.stdout


def test_list_shows_registry(tmp_path, monkeypatch):
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path))
    out = run('checkpoints', 'list')
    assert out.exit_code == 0
    assert 'stylegan2-ffhq-512' in out.output and 'tf-pickle' in out.output and str(tmp_path) in out.output


def test_convert_verify_and_never_overwrite_input(tmp_path):
    G = make_generator()
    src = tmp_path / 'snap.pkl'
    formats.write_nvidia_pickle(G, src, tmp_path / 'marker')
    before = src.read_bytes()
    out = run('checkpoints', 'convert', src, tmp_path / 'g.safetensors')
    assert out.exit_code == 0, out.output
    assert formats.outputs_match(G, checkpoints.load_generator(tmp_path / 'g.safetensors'), tol=0)
    again = run('checkpoints', 'convert', src, tmp_path / 'g.safetensors')
    assert again.exit_code == 2 and 'already exists' in again.output
    same = run('checkpoints', 'convert', tmp_path / 'g.safetensors', tmp_path / 'g.safetensors')
    assert same.exit_code == 2 and 'never writes over an input' in same.output
    assert src.read_bytes() == before
    verified = run('checkpoints', 'verify', tmp_path / 'g.safetensors')
    assert verified.exit_code == 0 and '32px StyleGAN2' in verified.output and 'sha256' in verified.output


@pytest.mark.parametrize('args,message', [
    (('checkpoints', 'download', 'no-such-model'), 'no known checkpoint'),
    (('checkpoints', 'verify', 'stylegan2-ffhq-512'), 'not in the cache'),
])
def test_errors_are_one_line_without_traceback(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path))
    out = run(*args)
    assert out.exit_code == 2
    assert message in out.output and 'Traceback' not in out.output
    assert out.output.strip().startswith('error:') and out.output.strip().count('\n') == 0


def test_corrupt_file_error_from_real_process(tmp_path):
    bad = tmp_path / 'broken.pkl'
    bad.write_bytes(b'\x80\x04garbage')
    done = subprocess.run([sys.executable, '-m', 'photodrag', 'checkpoints', 'verify', str(bad)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert 'truncated or corrupt' in done.stderr and 'Traceback' not in done.stderr


#----------------------------------------------------------------------------
# drag


@pytest.fixture(scope='module')
def small_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'g64.safetensors'
    checkpoints.save_generator(make_generator(img_resolution=64, channel_base=1024, channel_max=64), path)
    return path


def test_drag_writes_image_settings_and_video(small_checkpoint, tmp_path):
    import cv2
    import json
    from PIL import Image
    out, video = tmp_path / 'res' / 'edit.png', tmp_path / 'res' / 'edit.mp4'
    (tmp_path / 'res').mkdir()          # photodrag makes no folder for a file it writes
    result = run('drag', '--checkpoint', small_checkpoint, '--seed', 2, '--drag', '20,24:30,20', '--drag', '40,40:40,50',
                 '--steps', 5, '--out', out, '--video', video)
    assert result.exit_code == 0, result.output
    assert 'max_steps after 5 steps' in result.output or 'converged' in result.output
    assert Image.open(out).size == (64, 64)
    settings = json.loads(out.with_suffix('.json').read_text())
    assert settings['seed'] == 2 and settings['targets'] == [[30.0, 20.0], [40.0, 50.0]]
    assert settings['config']['max_steps'] == 5 and settings['result']['steps'] <= 5
    capture = cv2.VideoCapture(str(video))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    assert frames == settings['result']['steps'] + 2          # the start, every step, the final check
    ok, frame = capture.read()
    assert ok and frame.shape[:2] == (512, 512)                  # small images are shown enlarged
    assert not list((tmp_path / 'res').glob('.*tmp*'))


def test_progress_bars_do_not_flood_a_log(small_checkpoint, tmp_path):
    """With stderr going to a file or a pipe (here, the test runner), a bar redraws at most every
    10 s: a 40-step drag writes a handful of bar lines, not one or two per step."""
    result = run('drag', '--checkpoint', small_checkpoint, '--drag', '20,24:60,60', '--steps', 40,
                 '--stop-distance', 0, '--out', tmp_path / 'o.png')
    assert result.exit_code == 0, result.output
    assert 'after 40 steps' in result.output
    assert 1 <= result.stderr.count('drag:') <= 4, result.stderr


def test_drag_with_a_mask_image(small_checkpoint, tmp_path):
    import numpy as np
    from PIL import Image
    mask = np.zeros((64, 64), np.uint8)
    mask[10:50, 10:50] = 255
    Image.fromarray(mask).save(tmp_path / 'mask.png')
    result = run('drag', '--checkpoint', small_checkpoint, '--drag', '20,24:30,20', '--mask', tmp_path / 'mask.png',
                 '--steps', 2, '--out', tmp_path / 'o.png')
    assert result.exit_code == 0, result.output
    Image.fromarray(mask[:32, :32]).save(tmp_path / 'small.png')
    bad = run('drag', '--checkpoint', small_checkpoint, '--drag', '20,24:30,20', '--mask', tmp_path / 'small.png',
              '--out', tmp_path / 'o.png')
    assert bad.exit_code == 2 and "must be the generator's size" in bad.output
    same = run('drag', '--checkpoint', small_checkpoint, '--drag', '20,24:30,20', '--mask', tmp_path / 'mask.png',
               '--out', tmp_path / 'mask.png')
    assert same.exit_code == 2 and 'never writes over an input' in same.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'mask.png')), mask)


@pytest.mark.parametrize('drag,code,message', [
    ('20,24-30,20', 2, 'expected X1,Y1:X2,Y2'),
    ('20,24:90,20', 2, r'target 1 \(90, 20\) is outside the 64x64 image'),
])
def test_drag_bad_points(small_checkpoint, tmp_path, drag, code, message):
    import re
    result = run('drag', '--checkpoint', small_checkpoint, '--drag', drag, '--out', tmp_path / 'o.png')
    assert result.exit_code == code and re.search(message, result.output) and 'Traceback' not in result.output


def test_drag_without_a_downloadable_checkpoint(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path))
    monkeypatch.setattr(urllib.request, 'urlopen', lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError('offline')))
    result = run('drag', '--checkpoint', 'stylegan2-ffhq-512', '--drag', '1,1:2,2', '--out', tmp_path / 'o.png')
    assert result.exit_code == 2 and 'by hand' in result.output and not (tmp_path / 'o.png').exists()


@pytest.mark.slow
def test_ctrl_c_exits_130_and_leaves_no_output(tmp_path):
    import os
    import signal
    import time
    env = {**os.environ, 'PHOTODRAG_CACHE': str(tmp_path / 'cache')}
    out = tmp_path / 'demo'
    proc = subprocess.Popen([sys.executable, '-m', 'photodrag', 'demo', '--out', str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    time.sleep(8)                           # loading, detection, alignment done; inverting
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert 'interrupted' in err and 'Traceback' not in err
    assert not out.exists() or not [p for p in out.iterdir()]


def test_the_summary_says_content_at_the_targets_only_when_the_photo_shows_it(capsys):
    """A drag whose tracker arrived while the content went a quarter of the way is reported
    as that, in a sentence; one whose content reached the targets says so, and nothing more."""
    from types import SimpleNamespace
    from photodrag.cli.common import print_summary
    inversion = {'lpips': 0.1, 'lpips_net': 'vgg', 'psnr': 25.0, 'from_cache': False}

    def summary(drag):
        face = SimpleNamespace(index=0, presets=[], box=[1, 2, 30, 40], landmarks=None, inversion=inversion, drag=drag)
        record = SimpleNamespace(faces=[face], timings={'invert': 30.0, 'drag': 10.0, 'total': 41.0}, device='cpu')
        print_summary(SimpleNamespace(record=record), [('edited photo', 'out.png')])
        return capsys.readouterr().out

    short = summary({'steps': 297, 'reason': 'converged', 'content_progress': [0.26, 0.63], 'reached': False})
    assert 'the tracker stopped at the targets, the content short of them' in short and '0.26 0.63' in short
    assert ('face 0: the content went 26%, 63% of the way (measured in the photo), and the drag ended with the '
            'tracker at the targets and the content short of them; this generator did not draw more of that motion'
            in short)
    there = summary({'steps': 120, 'reason': 'converged', 'content_progress': [0.95, 0.92], 'reached': True})
    assert 'content at the targets' in there and 'did not draw' not in there and 'short' not in there
