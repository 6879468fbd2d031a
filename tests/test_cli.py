"""The photodrag command line: help, checkpoint commands, one-line errors."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

import checkpoints
import formats
from conftest import make_generator
from pipeline.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_help_pages():
    assert run('--help').exit_code == 0
    out = run('checkpoints', '--help')
    assert out.exit_code == 0 and 'download' in out.output and 'convert' in out.output


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, '-m', 'pipeline.cli', '--help'], capture_output=True, text=True)
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
    assert again.exit_code == 1 and 'already exists' in again.output
    same = run('checkpoints', 'convert', tmp_path / 'g.safetensors', tmp_path / 'g.safetensors')
    assert same.exit_code == 1 and 'never writes over an input' in same.output
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
    assert out.exit_code == 1
    assert message in out.output and 'Traceback' not in out.output
    assert out.output.strip().startswith('error:') and out.output.strip().count('\n') == 0


def test_corrupt_file_error_from_real_process(tmp_path):
    bad = tmp_path / 'broken.pkl'
    bad.write_bytes(b'\x80\x04garbage')
    done = subprocess.run([sys.executable, '-m', 'pipeline.cli', 'checkpoints', 'verify', str(bad)],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert 'truncated or corrupt' in done.stderr and 'Traceback' not in done.stderr
