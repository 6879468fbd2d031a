"""Batches (photodrag.batch, `photodrag batch`): recipes checked with their lines, a batch that
completes, failures that stop nothing, kill -9 and Ctrl-C then --resume giving the same files."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import interruptible

import photodrag
from photodrag import pipeline
from photodrag.errors import PhotodragError
from photodrag.batches import BatchLock, RecipeError
from photodrag.batches.run import LOCK, MANIFEST
from photodrag.pipeline.demo import DEMO_PHOTO

TINY = {'inversion': {'projection_steps': 20, 'tuning_steps': 10}}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def recipe_text(**over):
    base = {'inputs': ['photos/*.png', 'photos/*.jpg'], 'faces': 'all',
            'edits': [{'preset': 'smile', 'strength': 0.5}], 'checkpoint': 'demo-faces', 'quality': 'fast',
            'drag': {'max_steps': 8}, 'output': {'folder': 'out', 'records': True}, **TINY}
    base.update(over)
    return json.dumps(base)


@pytest.fixture
def studio(tmp_path, monkeypatch):
    """A folder of photos: three copies of the astronaut (one inversion, cached), a corrupt
    file and a photo without a face."""
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in ('a.png', 'b.png', 'c.png'):
        shutil.copy(DEMO_PHOTO, photos / name)
    return tmp_path


def add_bad_photos(folder: Path):
    from PIL import Image
    (folder / 'photos' / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(folder / 'photos' / 'wall.png')


# ---------------------------------------------------------------- recipes

@pytest.mark.parametrize('text, message', [
    ('inputs: photos/*.png\nedits: []\noutput: {folder: out}\n', 'line 2: edits: nothing to do'),
    ('inputs: [photos/*.png]\nedits:\n  - preset: frown\noutput: {folder: out}\n',
     "line 3: edits[0].preset: unknown preset 'frown'"),
    ('inputs: [photos/*.png]\nedits:\n  - preset: smile\n    strength: 9\noutput: {folder: out}\n',
     'line 4: edits[0].strength: the strength of smile must be in'),
    ('inputs: [x.png]\nfaces: tallest\nedits: [{preset: smile}]\noutput: {folder: out}\n', 'line 2: faces: expected'),
    ('inputs: [x.png]\nedits: [{drags: [[[1, 2], [3]]]}]\noutput: {folder: out}\n', 'edits[0].drags[0]: expected'),
    ('inputs: [x.png]\nedits: [{preset: smile}]\noutput: {folder: out, name: "../{stem}{ext}"}\n',
     'output.name: expected a file name pattern'),
    ('inputs: [x.png]\nedits: [{preset: smile}]\ndrag: {max_step: 5}\noutput: {folder: out}\n',
     'line 3: drag.max_step: unknown drag setting'),
    ('inputs: [x.png]\nedits: [{preset: smile}]\ncheckpoint: nowhere.pt\noutput: {folder: out}\n',
     "line 3: checkpoint: 'nowhere.pt' is neither a registry name"),
    ('inputs: [x.png]\nedits: [{preset: smile}]\nencoder: enc.safetensors\noutput: {folder: out}\n',
     'line 3: encoder: enc.safetensors: no such file'),
    ('inputs: [x.png]\nedits: [{preset: smile}]\n', 'output: expected a mapping with folder'),
    ('inputs: [x.png]\nedits: [{preset: smile}]\noutput: {folder: out}\ncolour: red\n', 'line 4: colour: unknown key'),
    ('inputs: [x.png\n', 'not valid YAML or JSON'),
    ('a: &a [*a, *a]\n', 'recipe.yaml'),
    ('inputs: [x.png]\nfaces: closed-eyes\nedits: [{drags: [[[1, 2], [3, 4]]]}]\noutput: {folder: out}\n',
     'faces: closed-eyes picks faces by their expression; give a preset'),
    # the edit settings are EditConfig.from_options' rules, each error at its own key and line
    ('inputs: [x.png]\nedits: [{preset: smile}]\noutput: {folder: out}\ndrag:\n  max_steps: 9\n  lr: -1\n',
     'line 6: drag.lr: lr must be positive'),
    ('inputs: [x.png]\nedits: [{preset: smile}]\ndrag: {max_steps: 2.5}\noutput: {folder: out}\n',
     'line 3: drag.max_steps: must be an integer in 0..100000'),
    ('inputs: [x.png]\nedits: [{preset: smile}]\ninversion: {tuning_steps: -1}\noutput: {folder: out}\n',
     'line 3: inversion.tuning_steps: step counts must be whole numbers'),
    ('inputs: [x.png]\nedits: [{preset: smile}]\nseed: -1\noutput: {folder: out}\n', 'line 3: seed: must be an'),
    ('inputs: [x.png]\nedits: [{preset: smile}]\ndevice: tpu\noutput: {folder: out}\n',
     "line 3: device: must be 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu' (or auto"),
])
def test_bad_recipes_name_the_line_and_key(tmp_path, text, message):
    path = write(tmp_path / 'recipe.yaml', text)
    with pytest.raises(RecipeError) as e:
        photodrag.batch(path)
    assert message in str(e.value) and 'recipe.yaml' in str(e.value)
    assert not (tmp_path / 'out').exists()


def test_a_recipe_for_a_gpu_reads_anywhere_and_fails_when_run_without_one(studio):
    """The device is picked when the batch runs, not when the recipe is read: a recipe for a
    GPU machine can be checked on a laptop, and running it there says why it cannot."""
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    path = write(studio / 'r.json', recipe_text(device='cuda', drag={'max_steps': 8, 'precision': 'fp16'}))
    assert photodrag.load_recipe(path).device == 'cuda'
    with pytest.raises(PhotodragError, match='no CUDA GPU is available'):
        photodrag.batch(path, dry_run=True)
    assert not (studio / 'out').exists()


def test_inputs_matching_nothing_and_outputs_colliding_are_errors(studio):
    path = write(studio / 'r.json', recipe_text(inputs=['nothing/*.jpg']))
    with pytest.raises(RecipeError, match='match no files'):
        photodrag.batch(path)
    path = write(studio / 'r.json', recipe_text(output={'folder': 'out', 'name': 'same{ext}'}))
    with pytest.raises(RecipeError, match='would both be written to same.png'):
        photodrag.batch(path)
    path = write(studio / 'r.json', recipe_text(output={'folder': 'photos', 'name': '{name}'}))
    with pytest.raises(RecipeError, match='would overwrite the input'):
        photodrag.batch(path)


# ---------------------------------------------------------------- running

@pytest.mark.slow
@pytest.mark.spread
def test_the_issue_example_runs_as_written(tmp_path, monkeypatch, shared_inversions):
    # the astronaut inverted with the fast preset, as test_region.py and the README's demo
    # invert her: computed once for the three (a run that finds it being computed waits for it)
    monkeypatch.setenv('PHOTODRAG_CACHE', str(shared_inversions))
    (tmp_path / 'photos').mkdir()
    shutil.copy(DEMO_PHOTO, tmp_path / 'photos' / 'astronaut.png')
    path = write(tmp_path / 'retouch.yaml', '''\
inputs: [photos/*.jpg, photos/*.png]
faces: all                  # all | largest | [0, 2] | closed-eyes (with presets)
edits:
  - preset: smile           # presets once they exist; drags in photo pixels always work:
    strength: 0.5           # - drags: [[[410, 300], [418, 290]]]
checkpoint: demo-faces
quality: fast
drag: {max_steps: 50}
output: {folder: out, name: "{stem}_edited{ext}", records: true, before_after: false}
''')
    result = photodrag.batch(path)
    assert result.counts == {'done': 1}
    out = tmp_path / 'out'
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK, MANIFEST, 'astronaut_edited.png',
                                                            'astronaut_edited.json'])
    record = pipeline.EditRecord.load(out / 'astronaut_edited.json')
    assert record.faces[0].presets[0]['name'] == 'smile' and record.faces[0].presets[0]['strength'] == 0.5
    assert record.input['path'] == 'photos/astronaut.png'


@pytest.mark.slow
def test_failures_are_reported_and_stop_nothing(studio):
    add_bad_photos(studio)
    path = write(studio / 'r.json', recipe_text(output={'folder': 'out', 'before_after': True}))
    plan = photodrag.batch(path, dry_run=True)
    assert not (studio / 'out').exists()                         # a dry run writes nothing
    assert {it.photo: it.status for it in plan.items} == {
        'photos/a.png': 'planned', 'photos/b.png': 'planned', 'photos/c.png': 'planned',
        'photos/wall.png': 'skipped', 'photos/corrupt.jpg': 'failed'}
    seen = []
    result = photodrag.batch(path, callback=lambda item, n, total: seen.append((item.photo, n, total)))
    assert [s[1:] for s in seen] == [(k, 5) for k in range(1, 6)]
    by = {it.photo: it for it in result.items}
    assert by['photos/corrupt.jpg'].status == 'failed' and 'corrupt.jpg' in by['photos/corrupt.jpg'].error
    assert by['photos/wall.png'].status == 'skipped' and 'no face' in by['photos/wall.png'].error.lower()
    for name in 'abc':
        item = by[f'photos/{name}.png']
        assert item.status == 'done' and item.faces[0]['presets'] == ['smile:0.5']
        for f in (item.output, item.record, item.extras['before_after']):
            assert (studio / 'out' / f).is_file()
    lines = [json.loads(line) for line in (studio / 'out' / MANIFEST).read_text().splitlines()]
    assert len(lines) == 5 and {line['status'] for line in lines} == {'done', 'failed', 'skipped'}
    # the same photo, the same pixels: b and c came from the inversion cache
    a, b = (np.asarray(__import__('PIL.Image', fromlist=['Image']).open(studio / 'out' / f'{n}_edited.png'))
            for n in 'ab')
    assert np.array_equal(a, b) and by['photos/b.png'].faces[0]['from_cache']

    # a second run is refused without --resume; with it, nothing is redone
    with pytest.raises(PhotodragError, match='--resume'):
        photodrag.batch(path)
    again = photodrag.batch(path, resume=True)
    assert again.skipped_done == 5 and len((studio / 'out' / MANIFEST).read_text().splitlines()) == 5
    assert again.counts_this_run == {} and again.counts == {'done': 3, 'failed': 1, 'skipped': 1}


@pytest.mark.slow
def test_an_output_it_did_not_write_is_never_overwritten(studio):
    out = studio / 'out'
    out.mkdir()
    (out / 'a_edited.png').write_bytes(b'the studio\'s own file')
    result = photodrag.batch(write(studio / 'r.json', recipe_text(inputs=['photos/a.png', 'photos/b.png'])))
    by = {it.photo: it for it in result.items}
    assert by['photos/a.png'].status == 'failed' and 'refusing to overwrite' in by['photos/a.png'].error
    assert (out / 'a_edited.png').read_bytes() == b'the studio\'s own file'
    assert by['photos/b.png'].status == 'done'


def test_two_batches_cannot_share_an_output_folder(studio):
    path = write(studio / 'r.json', recipe_text())
    (studio / 'out').mkdir()
    with BatchLock(studio / 'out'):
        with pytest.raises(PhotodragError, match='another batch is writing to'):
            photodrag.batch(path)
    assert not (studio / 'out' / MANIFEST).exists()


GROUP = 'group2_codeformer_06.png'       # two faces


@pytest.mark.slow
def test_progress_moves_per_face_and_a_resume_says_what_was_done_before(tmp_path, monkeypatch):
    """A photo of many faces shows each face's stages go by (not one tick per photo), and a
    --resume that finds everything finished says so rather than "1 done, 1 done before"."""
    from click.testing import CliRunner
    from conftest import shared_photo
    from photodrag.cli import main
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    (tmp_path / 'photos').mkdir()
    shutil.copy(shared_photo(GROUP), tmp_path / 'photos' / GROUP)
    quick = dict(inputs=['photos/*.png'], encoder='none', device='cpu', drag={'max_steps': 1},
                 inversion={'projection_steps': 0, 'tuning_steps': 0})
    path = write(tmp_path / 'r.json', recipe_text(**quick))
    events = []
    result = photodrag.batch(path, callback=lambda item, n, total: events.append(('done', item.photo)),
                             progress=lambda stage, step, total, info: events.append(
                                 (stage, info.get('face'), info['faces'], info['photo'])))
    assert result.counts == {'done': 1} and len(result.items[0].faces) == 2
    finished = events.index(('done', f'photos/{GROUP}'))
    drags = [e for e in events[:finished] if e[0] == 'drag']
    assert {e[1:] for e in drags} == {(0, 2, f'photos/{GROUP}'), (1, 2, f'photos/{GROUP}')}
    assert [e[1] for e in drags] == sorted(e[1] for e in drags)          # face 1, then face 2
    # the CLI shows it (the inversion comes from the cache now); then a resume with nothing left
    r = CliRunner().invoke(main, ['batch', str(write(tmp_path / 'r2.json', recipe_text(
        **quick, output={'folder': 'out2'})))])
    assert r.exit_code == 0, r.output
    assert 'photo 1/1, face 1/2: drag' in r.stderr and 'photo 1/1, face 2/2: drag' in r.stderr
    assert '1 photo(s): 1 done, 0 skipped, 0 failed; manifest' in r.stdout
    r = CliRunner().invoke(main, ['batch', str(path), '--resume'])
    assert r.exit_code == 0, r.output
    assert 'nothing left to do: all 1 photo(s) were finished by an earlier run (1 done)' in r.stdout
    assert 'done before' not in r.stdout


def test_the_summary_tells_this_run_from_an_earlier_one():
    from photodrag.batches.items import Item
    from photodrag.batches.run import BatchResult
    from photodrag.cli.batch import summary
    before = [Item(f'p{i}.png', 'done', earlier=True) for i in range(5)]
    assert summary(BatchResult(before, Path('m.jsonl'), 5)) == \
        'nothing left to do: all 5 photo(s) were finished by an earlier run (5 done); manifest m.jsonl'
    mixed = BatchResult(before[:3] + [Item('p3.png', 'done'), Item('p4.png', 'failed')], Path('m.jsonl'), 3)
    assert summary(mixed) == ('5 photo(s): 1 done, 0 skipped, 1 failed this run; 3 finished by an earlier run '
                              '(3 done) and not redone; manifest m.jsonl')
    assert summary(BatchResult([Item('a.png', 'done')], Path('m.jsonl'))) == \
        '1 photo(s): 1 done, 0 skipped, 0 failed; manifest m.jsonl'


def run_cli(args, cwd, env, **kw):
    return subprocess.Popen([sys.executable, '-m', 'photodrag', 'batch', *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible, **kw)


def wait_for_lines(manifest: Path, n: int, proc, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f'the batch ended early: {proc.communicate()}')
        time.sleep(0.05)
    raise AssertionError('the batch made no progress')


@pytest.mark.slow
@pytest.mark.spread
@pytest.mark.parametrize('how, code', [('kill', -signal.SIGKILL), ('ctrl-c', 130)])
def test_killed_halfway_then_resumed_gives_the_same_files(studio, how, code):
    """kill -9 (or Ctrl-C) after the first photo, --resume: the outputs are byte for byte those
    of an uninterrupted batch, each photo once in the manifest's done lines."""
    env = {**os.environ, 'PHOTODRAG_CACHE': str(studio / 'cache')}
    whole = write(studio / 'whole.json', recipe_text(output={'folder': 'whole'}))
    done = subprocess.run([sys.executable, '-m', 'photodrag', 'batch', str(whole)], cwd=studio, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    cut = write(studio / 'cut.json', recipe_text(output={'folder': 'cut'}, drag={'max_steps': 60}))
    cut_full = write(studio / 'cut_full.json', recipe_text(output={'folder': 'cut_full'}, drag={'max_steps': 60}))
    proc = run_cli([str(cut)], studio, env)
    wait_for_lines(studio / 'cut' / MANIFEST, 1, proc)
    proc.send_signal(signal.SIGKILL if how == 'kill' else signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    if how == 'ctrl-c':
        assert '--resume' in err
    lines = (studio / 'cut' / MANIFEST).read_text().splitlines()
    assert 1 <= len(lines) < 3
    resumed = subprocess.run([sys.executable, '-m', 'photodrag', 'batch', str(cut), '--resume'], cwd=studio, env=env,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    full = subprocess.run([sys.executable, '-m', 'photodrag', 'batch', str(cut_full)], cwd=studio, env=env,
                          capture_output=True, text=True, timeout=900)
    assert full.returncode == 0, full.stderr
    entries = [json.loads(line) for line in (studio / 'cut' / MANIFEST).read_text().splitlines()]
    done_photos = [e['photo'] for e in entries if e['status'] == 'done']
    assert sorted(done_photos) == ['photos/a.png', 'photos/b.png', 'photos/c.png']     # each once
    for name in 'abc':
        assert (studio / 'cut' / f'{name}_edited.png').read_bytes() == \
            (studio / 'cut_full' / f'{name}_edited.png').read_bytes()
    assert not [p for p in (studio / 'cut').iterdir() if '.tmp' in p.name or p.name.startswith('.') and
                p.name != LOCK]


@pytest.mark.slow
@pytest.mark.spread
def test_the_ray_engine_gives_the_local_engines_files(studio):
    pytest.importorskip('ray')
    local = write(studio / 'local.json', recipe_text(inputs=['photos/a.png', 'photos/b.png'],
                                                     output={'folder': 'local'}))
    distributed = write(studio / 'ray.json', recipe_text(inputs=['photos/a.png', 'photos/b.png'],
                                                         output={'folder': 'ray'}))
    assert photodrag.batch(local).counts == {'done': 2}
    seen = []
    result = photodrag.batch(distributed, engine='ray', callback=lambda item, n, total: seen.append(n))
    assert result.counts == {'done': 2} and sorted(seen) == [1, 2]
    for name in 'ab':
        assert (studio / 'ray' / f'{name}_edited.png').read_bytes() == \
            (studio / 'local' / f'{name}_edited.png').read_bytes()
    lines = (studio / 'ray' / MANIFEST).read_text().splitlines()
    assert sorted(json.loads(line)['photo'] for line in lines) == ['photos/a.png', 'photos/b.png']
    with pytest.raises(PhotodragError, match='engine'):
        photodrag.batch(local, engine='spark')
    with pytest.raises(PhotodragError, match='one process'):
        photodrag.batch(local, workers=2)


def test_cli_dry_run_points_file_and_exit_codes(studio):
    from click.testing import CliRunner
    from photodrag.cli import main
    add_bad_photos(studio)
    write(studio / 'points.csv', 'photo,x1,y1,x2,y2\na.png,220,150,214,146\n')
    path = write(studio / 'r.json', recipe_text(edits=[], points='points.csv', faces='largest'))
    r = CliRunner().invoke(main, ['batch', str(path), '--dry-run'])
    assert r.exit_code == 0, r.output
    assert 'photos/a.png: face 0 at' in r.output and '1 drag(s)' in r.output
    assert 'photos/wall.png: skipped' in r.output and 'photos/corrupt.jpg: failed' in r.output
    assert '1 to edit' in r.output and 'nothing written' in r.output and not (studio / 'out').exists()
    write(studio / 'bad.csv', 'a.png,1,2,3\n')
    bad = write(studio / 'bad.json', recipe_text(edits=[], points='bad.csv'))
    r = CliRunner().invoke(main, ['batch', str(bad), '--dry-run'])
    assert r.exit_code == 2 and 'bad.csv line 1: expected photo,x1,y1,x2,y2' in r.output
    r = CliRunner().invoke(main, ['batch', str(path), '--workers', '2'])
    assert r.exit_code == 2 and '--engine ray' in r.output


# ---------------------------------------------------------------- hostile recipes, points and manifests

@pytest.mark.parametrize('name', ['{stem.__class__.__mro__[1].__subclasses__}{ext}', '{index:>999999999}{ext}',
                                  '{stem!r}{ext}', '{0}{ext}', '{stem[0]}{ext}'])
def test_output_names_take_only_their_documented_fields(tmp_path, name):
    with pytest.raises(RecipeError, match='output.name: expected a file name pattern'):
        photodrag.load_recipe({'inputs': ['x.png'], 'edits': [{'preset': 'smile'}],
                               'output': {'folder': 'out', 'name': name}}, base=tmp_path)
    ok = photodrag.load_recipe({'inputs': ['x.png'], 'edits': [{'preset': 'smile'}],
                                'output': {'folder': 'out', 'name': '{index:04d}_{stem}{ext}'}}, base=tmp_path)
    assert ok.output_name(Path('a.png'), 7) == '0007_a.png'


def test_points_files_are_regular_and_bounded(tmp_path):
    recipe = {'inputs': ['x.png'], 'edits': [], 'output': {'folder': 'out'}}
    os.symlink('/dev/zero', tmp_path / 'zero.csv')
    with pytest.raises(RecipeError, match='zero.csv is not a regular file'):
        photodrag.load_recipe({**recipe, 'points': 'zero.csv'}, base=tmp_path)
    rows = tmp_path / 'rows.csv'
    with open(rows, 'w') as f:                      # 3 million rows would take a minute and gigabytes
        for i in range(150_000):
            f.write(f'p{i % 1000}.png,1,2,3,4\n')
    from photodrag.batches.recipe import read_points
    t = time.perf_counter()
    with pytest.raises(RecipeError, match='more than'):
        read_points(rows)
    assert time.perf_counter() - t < 10


def test_a_hand_edited_manifest_never_makes_a_photo_done(studio):
    """Lines pointing outside the output folder, at junk files or with another photo's hash, a
    line nested 100 000 deep: none counts as done before; the photos are done for real."""
    path = write(studio / 'r.json', recipe_text(inputs=['photos/a.png', 'photos/b.png', 'photos/c.png']))
    out = studio / 'out'
    out.mkdir()
    (out / 'junk.png').write_bytes(b'not an output')
    (studio / 'elsewhere.png').write_bytes(b'x')
    from photodrag.io import sha256_file
    sha = sha256_file(studio / 'photos' / 'a.png')
    lines = [{'photo': 'photos/a.png', 'status': 'done', 'output': str(studio / 'elsewhere.png'), 'record': None,
              'input_sha256': sha},
             {'photo': 'photos/b.png', 'status': 'done', 'output': '../elsewhere.png', 'record': None,
              'input_sha256': sha},
             {'photo': 'photos/c.png', 'status': 'done', 'output': 'c_edited.png', 'record': 'junk.png',
              'input_sha256': '0' * 64}]
    (out / MANIFEST).write_text('\n'.join(json.dumps(x) for x in lines) + '\n' + '[' * 100_000 + ']' * 100_000 + '\n')
    (out / 'c_edited.png').write_bytes(b'junk')
    result = photodrag.batch(path, resume=True)
    assert result.skipped_done == 0 and not any(it.earlier for it in result.items)
    done = {it.photo: it for it in result.items}
    assert done['photos/a.png'].status == 'done' and done['photos/b.png'].status == 'done'
    # c's name holds a file this batch did not write: refused, not overwritten, not "done before"
    assert done['photos/c.png'].status == 'failed' and 'refusing to overwrite' in done['photos/c.png'].error
    assert (out / 'c_edited.png').read_bytes() == b'junk' and (studio / 'elsewhere.png').read_bytes() == b'x'


def test_a_recursive_glob_does_not_take_the_batchs_own_outputs_on_resume(studio):
    path = write(studio / 'r.json', recipe_text(inputs=['photos/**/*.png'], output={'folder': 'photos/out'}))
    first = photodrag.batch(path)
    assert first.counts == {'done': 3}
    again = photodrag.batch(path, resume=True)
    assert len(again.items) == 3 and all(it.earlier for it in again.items)
