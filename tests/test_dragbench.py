"""The DragBench data layer: reading the published layout (and its JSON variant), result paths,
and a specific, folder-naming error for each malformed input."""

import json
import os
import pickle
import shlex

import numpy as np
import pytest
from PIL import Image

from photodrag.alignment import read_photo, write_photo
from photodrag.errors import (InvalidMaskError, InvalidPointsError, PhotodragError, UnreadableImageError,
                              UnsafeCheckpointError)
from photodrag.evaluation.dragbench import (DragBenchSample, read_dragbench, result_path, write_result,
                                          write_sample)

H, W = 6, 8


def _image(seed=0, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mask(x0=2, y0=1, x1=6, y1=5):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _write_raw(folder, meta, image=None):
    """A sample folder with a hand-made meta_data.pkl (for inputs write_sample would refuse)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_photo(_image() if image is None else image, folder / 'original_image.png')
    with open(folder / 'meta_data.pkl', 'wb') as f:
        pickle.dump(meta, f, protocol=4)
    return folder


def _good_meta(**changes):
    meta = {'prompt': 'a cat', 'points': [[1, 2], [3, 4]], 'mask': _mask()}
    meta.update(changes)
    return meta


# ---------------------------------------------------------------- reading the published layout

def test_two_categories_read_back_exactly_in_sorted_order(tmp_path):
    root = tmp_path / 'drag_bench_data'
    # Written out of order: the reader must sort, not follow the file system.
    write_sample(root / 'art_work' / 'b_sample', _image(2), [(7, 5)], [(0, 0)], mask=_mask(0, 0, 8, 6),
                 prompt='a painting')
    write_sample(root / 'animals' / 'z_dog', _image(1), [(1.5, 2.25), (6, 0)], [(3, 4), (7, 5)], mask=_mask(),
                 prompt='a dog')
    write_sample(root / 'animals' / 'a_cat', _image(0), [(0, 0)], [(1, 1)], mask=None, prompt='')
    (root / 'animals' / 'z_dog' / 'user_drag.png').write_bytes(b'ignored')

    samples = read_dragbench(root)

    assert [s.name for s in samples] == ['animals/a_cat', 'animals/z_dog', 'art_work/b_sample']
    cat, dog, art = samples
    assert isinstance(dog, DragBenchSample)
    assert dog.folder == root / 'animals' / 'z_dog'
    assert dog.handles == [(1.5, 2.25), (6.0, 0.0)]          # even-indexed points, in order
    assert dog.targets == [(3.0, 4.0), (7.0, 5.0)]           # odd-indexed points, in order
    assert dog.prompt == 'a dog'
    assert dog.image.dtype == np.uint8 and dog.image.shape == (H, W, 3)
    np.testing.assert_array_equal(dog.image, _image(1))
    assert dog.mask.dtype == np.float32 and dog.mask.shape == (H, W)
    np.testing.assert_array_equal(dog.mask, _mask().astype(np.float32))   # uint8 0/1 -> 0.0/1.0, not 1/255
    assert float(dog.mask.sum()) == 16.0
    assert cat.mask is None and cat.prompt == '' and cat.handles == [(0.0, 0.0)] and cat.targets == [(1.0, 1.0)]
    assert art.handles == [(7.0, 5.0)] and art.targets == [(0.0, 0.0)] and float(art.mask.min()) == 1.0

    # The pickle is the published one: a plain dict, points alternating, mask uint8 0/1.
    with open(root / 'animals' / 'z_dog' / 'meta_data.pkl', 'rb') as f:
        raw = pickle.load(f)
    assert set(raw) == {'prompt', 'points', 'mask'}
    assert raw['points'] == [[1.5, 2.25], [3.0, 4.0], [6.0, 0.0], [7.0, 5.0]]
    assert raw['mask'].dtype == np.uint8 and set(np.unique(raw['mask'])) == {0, 1}

    assert [s.name for s in read_dragbench(root)] == [s.name for s in samples]       # deterministic
    assert [s.name for s in read_dragbench(root, limit=2)] == ['animals/a_cat', 'animals/z_dog']
    assert [s.name for s in read_dragbench(root, limit=10)] == [s.name for s in samples]
    with pytest.raises(PhotodragError, match='limit'):
        read_dragbench(root, limit=0)


def test_published_style_pickle_with_tuples_and_ints(tmp_path):
    # What DragDiffusion's labeling tool saves: click tuples of ints and a uint8 0/1 mask.
    folder = _write_raw(tmp_path / 'animals' / 'JH_2023-09-14-1820-16',
                        {'prompt': 'a horse', 'points': [(1, 2), (3, 4)], 'mask': _mask()})
    (sample,) = read_dragbench(tmp_path)
    assert sample.name == 'animals/JH_2023-09-14-1820-16'
    assert sample.folder == folder
    assert sample.handles == [(1.0, 2.0)] and sample.targets == [(3.0, 4.0)]
    assert sample.mask[1, 2] == 1.0 and sample.mask[0, 0] == 0.0


def test_flat_one_level_layout(tmp_path):
    write_sample(tmp_path / 'two', _image(5), [(2, 3)], [(4, 1)], prompt='second')
    write_sample(tmp_path / 'one', _image(4), [(0, 5)], [(7, 0)], mask=_mask(), prompt='first')
    samples = read_dragbench(tmp_path)
    assert [s.name for s in samples] == ['one', 'two']
    assert [s.prompt for s in samples] == ['first', 'second']
    assert samples[0].handles == [(0.0, 5.0)] and samples[0].targets == [(7.0, 0.0)]
    np.testing.assert_array_equal(samples[1].image, _image(5))
    assert result_path(tmp_path / 'out', samples[0]) == tmp_path / 'out' / 'one' / 'dragged_image.png'


def test_json_variant_with_a_mask_png(tmp_path):
    folder = write_sample(tmp_path / 'cat' / 's', _image(3), [(1, 1), (2, 2)], [(5, 4), (6, 5)], mask=_mask(),
                          prompt='json', fmt='json')
    assert not (folder / 'meta_data.pkl').exists()
    meta = json.loads((folder / 'meta_data.json').read_text())
    assert meta['mask'] == 'mask.png' and meta['points'] == [[1, 1], [5, 4], [2, 2], [6, 5]]
    assert np.asarray(Image.open(folder / 'mask.png')).max() == 255          # a viewable white-on-black PNG

    (sample,) = read_dragbench(tmp_path)
    assert sample.name == 'cat/s' and sample.prompt == 'json'
    assert sample.handles == [(1.0, 1.0), (2.0, 2.0)] and sample.targets == [(5.0, 4.0), (6.0, 5.0)]
    np.testing.assert_array_equal(sample.mask, _mask().astype(np.float32))
    np.testing.assert_array_equal(sample.image, _image(3))


def test_json_variant_with_a_list_mask_and_without_mask_or_prompt(tmp_path):
    listed = tmp_path / 'a_listed'
    listed.mkdir()
    write_photo(_image(), listed / 'original_image.png')
    (listed / 'meta_data.json').write_text(json.dumps({'points': [[0, 0], [7, 5]], 'mask': _mask().tolist()}))
    bare = tmp_path / 'b_bare'
    bare.mkdir()
    write_photo(_image(), bare / 'original_image.png')
    (bare / 'meta_data.json').write_text(json.dumps({'points': [[7, 5], [0, 0]]}))

    listed_sample, bare_sample = read_dragbench(tmp_path)
    np.testing.assert_array_equal(listed_sample.mask, _mask().astype(np.float32))
    assert listed_sample.prompt == ''
    assert bare_sample.mask is None and bare_sample.handles == [(7.0, 5.0)] and bare_sample.targets == [(0.0, 0.0)]


def test_json_mask_file_must_lie_beside_the_meta_file(tmp_path):
    folder = tmp_path / 's'
    folder.mkdir()
    write_photo(_image(), folder / 'original_image.png')
    (folder / 'meta_data.json').write_text(json.dumps({'points': [[0, 0], [1, 1]], 'mask': '../elsewhere.png'}))
    with pytest.raises(InvalidMaskError, match='beside') as e:
        read_dragbench(tmp_path)
    assert str(folder) in str(e.value)


def test_masks_are_binary_any_nonzero_value_is_editable(tmp_path):
    # DragDiffusion reads masks as mask > 0; soft or 0/255 masks mean the same region.
    soft = np.zeros((H, W), np.float32)
    soft[1:3, 1:4] = 0.25
    _write_raw(tmp_path / 'a_soft', _good_meta(mask=soft))
    _write_raw(tmp_path / 'b_255', _good_meta(mask=_mask() * 255))
    _write_raw(tmp_path / 'c_bool', _good_meta(mask=_mask().astype(bool)))
    _write_raw(tmp_path / 'c_int255', _good_meta(mask=_mask().astype(np.int64) * 255))
    gray = tmp_path / 'd_png'
    gray.mkdir()
    write_photo(_image(), gray / 'original_image.png')
    Image.fromarray((_mask() * 40).astype(np.uint8), 'L').save(gray / 'm.png')
    (gray / 'meta_data.json').write_text(json.dumps({'points': [[0, 0], [1, 1]], 'mask': 'm.png'}))
    soft_s, u255, as_bool, i255, png = read_dragbench(tmp_path)
    expected = np.zeros((H, W), np.float32)
    expected[1:3, 1:4] = 1.0
    np.testing.assert_array_equal(soft_s.mask, expected)
    for s in (u255, as_bool, i255, png):
        np.testing.assert_array_equal(s.mask, _mask().astype(np.float32))


# ---------------------------------------------------------------- results

def test_result_paths_mirror_the_samples_and_never_enter_a_sample_folder(tmp_path):
    root = tmp_path / 'bench'
    write_sample(root / 'animals' / 'x', _image(0), [(1, 1)], [(2, 2)], mask=_mask())
    (sample,) = read_dragbench(root)
    out = tmp_path / 'results' / 'photodrag'
    assert result_path(out, sample) == out / 'animals' / 'x' / 'dragged_image.png'

    edited = _image(9)
    written = write_result(out, sample, edited)
    assert written == out / 'animals' / 'x' / 'dragged_image.png'
    np.testing.assert_array_equal(read_photo(written).pixels, edited)
    assert sorted(p.name for p in written.parent.iterdir()) == ['dragged_image.png']     # no temporary left

    # Writing the results into the benchmark itself would put them inside the sample's folder.
    with pytest.raises(PhotodragError, match='inside the sample folder'):
        write_result(root, sample, edited)
    assert not (root / 'animals' / 'x' / 'dragged_image.png').exists()
    with pytest.raises(PhotodragError, match='inside the sample folder'):
        write_result(root / 'animals' / 'x' / '..' / '..', sample, edited)
    np.testing.assert_array_equal(read_photo(root / 'animals' / 'x' / 'original_image.png').pixels, _image(0))
    # A results folder beside the benchmark is not a sample (it has no meta or original image).
    assert [s.name for s in read_dragbench(root)] == ['animals/x']


def test_write_result_wants_uint8_rgb(tmp_path):
    write_sample(tmp_path / 'bench' / 's', _image(), [(1, 1)], [(2, 2)])
    (sample,) = read_dragbench(tmp_path / 'bench')
    with pytest.raises(PhotodragError, match='uint8 RGB'):
        write_result(tmp_path / 'out', sample, _image().astype(np.float32))
    assert not (tmp_path / 'out' / 's' / 'dragged_image.png').exists()


# ---------------------------------------------------------------- bad inputs

class _RunsAShellCommand:
    """A pickle payload: loading it with plain pickle runs `command` in a shell."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_malicious_pickle_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / 'pwned.txt'
    folder = tmp_path / 'bench' / 'evil' / 'sample'
    folder.mkdir(parents=True)
    write_photo(_image(), folder / 'original_image.png')
    payload = {'prompt': 'x', 'points': [[1, 1], [2, 2]],
               'mask': _RunsAShellCommand(f'echo PWNED > {shlex.quote(str(marker))}')}
    (folder / 'meta_data.pkl').write_bytes(pickle.dumps(payload))

    with pytest.raises(UnsafeCheckpointError) as e:
        read_dragbench(tmp_path / 'bench')
    assert not marker.exists()
    assert str(folder) in str(e.value) and 'system' in str(e.value)        # names what it asked for

    # The payload is live: plain pickle would have run it (so the check above can fail).
    live = tmp_path / 'live.txt'
    pickle.loads(pickle.dumps(_RunsAShellCommand(f'echo PWNED > {shlex.quote(str(live))}')))
    assert live.read_text().strip() == 'PWNED'


@pytest.mark.parametrize('points, message', [
    ([[1, 1], [2, 2], [3, 3]], '3 point'),
    ([[1, 1]], '1 point'),
    ([], '0 point'),
    ([[1, 1], [W, 2]], r'point 1 \(target 0\) at \(x, y\) = \(8, 2\) is outside the 8x6 image'),
    ([[1, -0.5], [2, 2]], r'point 0 \(handle 0\) at \(x, y\) = \(1, -0.5\) is outside'),
    ([[1, 1], [2, H]], r'y in 0\.\.5'),
    ([[1, 1], [float('nan'), 2]], r'point 1 \(target 0\) is \(nan, 2.0\); coordinates must be finite'),
    ([[1, 1], [2, float('inf')]], 'must be finite'),
    ([[1, 1], [2, 2, 3]], r'point 1 must be \[x, y\]'),
    ([[1, 1], ['2', 2]], r'point 1 must be \[x, y\]'),
    ([[True, 1], [2, 2]], r'point 0 must be \[x, y\]'),
    ('1,1,2,2', 'must be a list'),
])
def test_bad_points(tmp_path, points, message):
    folder = _write_raw(tmp_path / 'cat' / 's', _good_meta(points=points))
    with pytest.raises(InvalidPointsError, match=message) as e:
        read_dragbench(tmp_path)
    assert str(folder) in str(e.value)


def test_missing_points(tmp_path):
    meta = _good_meta()
    del meta['points']
    _write_raw(tmp_path / 's', meta)
    with pytest.raises(InvalidPointsError, match="no 'points'"):
        read_dragbench(tmp_path)


def test_mask_of_the_wrong_shape(tmp_path):
    folder = _write_raw(tmp_path / 'cat' / 's', _good_meta(mask=np.ones((W, H), np.uint8)))
    with pytest.raises(InvalidMaskError, match=r'shape \(8, 6\)') as e:
        read_dragbench(tmp_path)
    assert str(folder) in str(e.value)


def test_all_zero_mask(tmp_path):
    # the labelling tool saves zeros when no mask was drawn: read as "no mask", never written
    _write_raw(tmp_path / 'cat' / 's', _good_meta(mask=np.zeros((H, W), np.float32)))
    assert read_dragbench(tmp_path)[0].mask is None
    with pytest.raises(InvalidMaskError, match='all zeros'):
        write_sample(tmp_path / 'new', _image(), [(1, 1)], [(2, 2)], mask=np.zeros((H, W), np.uint8))
    assert not (tmp_path / 'new').exists()


@pytest.mark.parametrize('mask, error, message', [
    (np.full((H, W), 2.0, np.float32), InvalidMaskError, r'\[0, 1\]'),
    (np.full((H, W), np.nan, np.float32), InvalidMaskError, 'NaN'),
    (-np.ones((H, W), np.int64), InvalidMaskError, 'negative'),
    ('mask.png', InvalidMaskError, 'not an array'),
    ([[1, 0], [1]], InvalidMaskError, 'rectangular'),
])
def test_other_bad_masks(tmp_path, mask, error, message):
    folder = _write_raw(tmp_path / 's', _good_meta(mask=mask))
    with pytest.raises(error, match=message) as e:
        read_dragbench(tmp_path)
    assert str(folder) in str(e.value)


def test_missing_original_image(tmp_path):
    folder = tmp_path / 'cat' / 's'
    folder.mkdir(parents=True)
    with open(folder / 'meta_data.pkl', 'wb') as f:
        pickle.dump(_good_meta(), f)
    with pytest.raises(UnreadableImageError, match='original_image.png is missing') as e:
        read_dragbench(tmp_path)
    assert str(folder) in str(e.value)


def test_missing_meta_file(tmp_path):
    folder = tmp_path / 's'
    folder.mkdir()
    write_photo(_image(), folder / 'original_image.png')
    with pytest.raises(PhotodragError, match='neither meta_data.pkl nor meta_data.json') as e:
        read_dragbench(tmp_path)
    assert str(folder) in str(e.value)


def test_corrupt_png(tmp_path):
    folder = _write_raw(tmp_path / 'cat' / 's', _good_meta())
    (folder / 'original_image.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'not really a png' * 4)
    with pytest.raises(UnreadableImageError) as e:
        read_dragbench(tmp_path)
    assert str(folder) in str(e.value) and 'original_image.png' in str(e.value)


def test_corrupt_pickle_and_non_dict(tmp_path):
    folder = _write_raw(tmp_path / 'a', _good_meta())
    (folder / 'meta_data.pkl').write_bytes(b'\x80\x04not a pickle')
    with pytest.raises(PhotodragError, match='cannot read meta_data.pkl') as e:
        read_dragbench(tmp_path)
    assert str(folder) in str(e.value)
    (folder / 'meta_data.pkl').write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(PhotodragError, match='holds a list, not a dict'):
        read_dragbench(tmp_path)


def test_prompt_must_be_text_and_long_values_are_cut(tmp_path):
    _write_raw(tmp_path / 's', _good_meta(prompt=12345))
    with pytest.raises(PhotodragError, match='prompt of type int'):
        read_dragbench(tmp_path)
    _write_raw(tmp_path / 's', _good_meta(points='x' * 10_000))
    with pytest.raises(InvalidPointsError) as e:
        read_dragbench(tmp_path)
    assert 'x' * 30 in str(e.value) and 'x' * 100 not in str(e.value)


def test_empty_or_missing_root(tmp_path):
    with pytest.raises(PhotodragError, match='no DragBench samples were found') as e:
        read_dragbench(tmp_path)
    assert str(tmp_path) in str(e.value) and 'is empty' in str(e.value)
    assert '<category>/<sample_name>/original_image.png' in str(e.value)
    with pytest.raises(PhotodragError, match=r'no DragBench samples were found .*does not exist'):
        read_dragbench(tmp_path / 'nowhere')
    (tmp_path / 'animals' / 'empty').mkdir(parents=True)
    (tmp_path / 'animals' / 'notes.txt').write_text('nothing here')
    with pytest.raises(PhotodragError, match='holds no sample folder'):
        read_dragbench(tmp_path)


# ---------------------------------------------------------------- hostile meta files

def _meta_with(key: bytes, value_ops: bytes) -> bytes:
    """A meta_data.pkl dict {'prompt': 'a cat', key: <value built by value_ops>} in raw opcodes."""
    return (b'\x80\x04}(\x8c\x06prompt\x8c\x05a cat\x8c' + bytes([len(key)]) + key + value_ops + b'u.')


def _list_dag(levels=60):
    """l_{i+1} = [l_i, l_i] memoised: a plain repr of it doubles 60 times."""
    ops = [b']', b'q\x00']
    for i in range(levels):
        ops += [b'(', b'h' + bytes([i]), b'h' + bytes([i]), b'l', b'q' + bytes([i + 1])]
    return b''.join(ops)


def _shared_rows(rows=40_000, width=40_000):
    """A mask of `rows` references to one row of `width` ints: 280 KB of pickle, 12.8 GB as an array."""
    row = b']q\x00(' + b'K\x01' * width + b'e'
    return row + b'(' + b'h\x00' * rows + b'l'


@pytest.mark.parametrize('key, ops, message', [
    (b'points', _list_dag(), 'counting shared parts at each use'),
    (b'prompt', _list_dag(), 'counting shared parts at each use'),
    (b'mask', _shared_rows(), 'counting shared parts at each use'),
])
def test_crafted_meta_files_are_refused_in_milliseconds(tmp_path, key, ops, message):
    import time
    folder = tmp_path / 's'
    folder.mkdir()
    write_photo(_image(), folder / 'original_image.png')
    (folder / 'meta_data.pkl').write_bytes(_meta_with(key, ops))
    t = time.perf_counter()
    with pytest.raises(PhotodragError) as e:
        read_dragbench(tmp_path)
    assert time.perf_counter() - t < 5
    assert message in str(e.value) and '\n' not in str(e.value) and len(str(e.value)) < 700


def test_one_bad_sample_is_recorded_and_the_others_are_read(tmp_path):
    from photodrag.evaluation.dragbench import BadSample
    write_sample(tmp_path / 'a', _image(), [(1, 2)], [(3, 4)], _mask(), 'a cat')
    _write_raw(tmp_path / 'b', _good_meta(points='nonsense'))
    write_sample(tmp_path / 'c', _image(1), [(2, 2)], [(4, 3)], _mask(), 'a dog')
    got = read_dragbench(tmp_path, skip_bad=True)
    assert [type(s).__name__ for s in got] == ['DragBenchSample', 'BadSample', 'DragBenchSample']
    assert isinstance(got[1], BadSample) and got[1].name == 'b' and "'points' must be a list" in got[1].error
    with pytest.raises(InvalidPointsError):            # without skip_bad the first bad one stops it, as before
        read_dragbench(tmp_path)


def test_eval_dragbench_records_a_bad_sample_and_goes_on(tmp_path, monkeypatch):
    """As `eval landmarks` does: the report lists the bad sample with its one-line error, and
    every other sample is edited (the edit itself is stubbed here: its reading is what is tested)."""
    from photodrag.evaluation import protocols
    write_sample(tmp_path / 'a', _image(), [(1, 2)], [(3, 4)], _mask(), 'a cat')
    _write_raw(tmp_path / 'b', _good_meta(points='nonsense'))
    write_sample(tmp_path / 'c', _image(1), [(2, 2)], [(4, 3)], _mask(), 'a dog')
    edited = []
    monkeypatch.setattr(protocols, '_start', lambda config, cache, detector: type('Run', (), {'sheet': []})())
    monkeypatch.setattr(protocols, '_dragbench_sample',
                        lambda run, item, out: edited.append(item.name) or {'image_fidelity': 0.9})
    report = protocols.eval_dragbench(tmp_path, tmp_path / 'out', device='cpu')
    assert edited == ['a', 'c']
    errors = {s['name']: s.get('error') for s in report['samples']}
    assert errors['a'] is None and errors['c'] is None and "'points' must be a list" in errors['b']
