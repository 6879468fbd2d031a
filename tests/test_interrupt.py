"""An edit interrupted at several moments, as a user's Ctrl-C or the OOM killer would do it,
in a real subprocess: nothing partial at any final path, no debris once the next run has
written beside it, and a cache that the next run uses (or rebuilds when it was cut short)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import interruptible

from photodrag.pipeline.demo import DEMO_PHOTO

pytestmark = pytest.mark.slow

OUTPUTS = ('out.jpg', 'rec.json', 'v.mp4')


class Edit:
    """`photodrag edit` in a subprocess, its stderr watched for progress."""

    def __init__(self, folder: Path, steps: int = 60):
        self.err = ''
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'photodrag', 'edit', 'photo.png', '--preset', 'smile', '--out', 'out.jpg',
             '--record', 'rec.json', '--video', 'v.mp4', '--projection-steps', '8', '--tuning-steps', '8',
             '--steps', str(steps)],
            cwd=folder, env={**os.environ, 'PHOTODRAG_CACHE': str(folder / 'cache')},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while True:
            chunk = self.proc.stderr.read(1)
            if not chunk:
                return
            self.err += chunk

    def wait_for(self, text: str, timeout: float = 120):
        end = time.monotonic() + timeout
        while text not in self.err:
            assert self.proc.poll() is None, f'the edit ended before {text!r}: {self.err[-2000:]}'
            assert time.monotonic() < end, f'no {text!r} within {timeout} s: {self.err[-2000:]}'
            time.sleep(0.05)

    def stop(self, sig) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=120)
        self._reader.join(timeout=10)
        return code


def _debris(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*') if re.search(r'\.(tmp|part)(\.|$)', p.name))


def _cache_entries(folder: Path):
    return sorted((folder / 'cache').rglob('*.safetensors'))


def test_an_edit_killed_or_interrupted_at_any_moment_leaves_nothing_partial(tmp_path):
    shutil.copy(DEMO_PHOTO, tmp_path / 'photo.png')
    before = (tmp_path / 'photo.png').read_bytes()

    # SIGKILL while inverting: nothing written, nothing cached
    run = Edit(tmp_path)
    run.wait_for('projection:')
    time.sleep(1.0)
    assert run.stop(signal.SIGKILL) == -signal.SIGKILL
    assert not any((tmp_path / name).exists() for name in OUTPUTS)
    assert not [p for p in _cache_entries(tmp_path) if not p.name.startswith('.')]

    # Ctrl-C while dragging: exit 130 with one line; the finished inversion is cached; no output
    run = Edit(tmp_path)
    run.wait_for('drag:')
    time.sleep(1.0)
    assert run.stop(signal.SIGINT) == 130, run.err[-2000:]
    last = run.err.strip().splitlines()[-1]
    assert last.startswith('interrupted:') and 'Traceback' not in run.err
    assert not any((tmp_path / name).exists() for name in OUTPUTS)
    assert not _debris(tmp_path), _debris(tmp_path)          # Ctrl-C cleans up after itself
    cached = [p for p in _cache_entries(tmp_path) if not p.name.startswith('.')]
    assert len(cached) == 1

    # SIGKILL while dragging (the video is being streamed to a temporary file): only debris
    run = Edit(tmp_path)
    run.wait_for('drag:')
    time.sleep(1.0)
    assert run.stop(signal.SIGKILL) == -signal.SIGKILL
    assert not any((tmp_path / name).exists() for name in OUTPUTS)
    left = _debris(tmp_path)
    assert any(name.endswith('.mp4') for name in left), left   # what a kill leaves; the next run removes it

    # the next run: uses the cached inversion, writes every output, removes the dead run's debris
    run = Edit(tmp_path, steps=20)
    assert run.proc.wait(timeout=300) == 0, run.err[-3000:]
    run._reader.join(timeout=10)
    assert all((tmp_path / name).stat().st_size > 0 for name in OUTPUTS)
    assert not _debris(tmp_path), _debris(tmp_path)
    import json
    record = json.loads((tmp_path / 'rec.json').read_text())
    assert record['faces'][0]['inversion']['from_cache'] is True
    assert (tmp_path / 'photo.png').read_bytes() == before
    umask = os.umask(0)
    os.umask(umask)
    for name in OUTPUTS:                        # outputs get the usual mode, not a temporary file's 0600
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
