"""The shared helpers (photodrag.io), settings errors, EditConfig, transparency and the
before/after picture: behaviour every stage relies on."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photodrag import alignment
from photodrag.drag import DragConfig
from photodrag.errors import InvalidBoxError, InvalidMaskError, InvalidSettingsError, PhotodragError
from photodrag.inversion import InversionConfig
from photodrag.io import as_mask, atomic_write, check_box, load_mask, write_json
from photodrag.pipeline import EditConfig, EditRecord


# ---------------------------------------------------------------- atomic writes

def test_atomic_write_leaves_nothing_behind_when_the_writer_fails(tmp_path):
    target = tmp_path / 'out.png'
    target.write_bytes(b'old')
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b'half')
            raise RuntimeError('writer crashed')
    assert target.read_bytes() == b'old' and sorted(p.name for p in tmp_path.iterdir()) == ['out.png']
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == '.png' and tmp != target
        tmp.write_bytes(b'new')
    assert target.read_bytes() == b'new' and sorted(p.name for p in tmp_path.iterdir()) == ['out.png']


def test_atomic_write_into_an_unwritable_place_is_one_clear_error(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(PhotodragError, match='cannot write'):
        write_json(tmp_path / 'file' / 'below.json', {'a': 1})


# ---------------------------------------------------------------- boxes and masks

def test_one_box_check():
    assert check_box([1, 2, 3.5, 4]) == (1.0, 2.0, 3.5, 4.0)
    for bad in ([1, 2, 3], [3, 2, 1, 4], [0, 0, float('nan'), 1], 'abcd', None):
        with pytest.raises(InvalidBoxError, match=r'x1 > x0'):
            check_box(bad)


def test_one_mask_check_for_arrays_and_files(tmp_path):
    assert as_mask(np.ones((4, 6), bool), (4, 6)).dtype == np.float32
    np.testing.assert_allclose(as_mask(np.full((4, 6), 255, np.uint8), (4, 6)), 1.0)
    np.testing.assert_allclose(as_mask(np.full((1, 4, 6), 0.25), (4, 6)), 0.25)
    with pytest.raises(InvalidMaskError, match='must be 6x4'):
        as_mask(np.ones((6, 4)), (4, 6))
    with pytest.raises(InvalidMaskError, match=r'\[0, 1\]'):
        as_mask(np.full((4, 6), 2.0), (4, 6))
    with pytest.raises(InvalidMaskError, match='NaN'):
        as_mask(np.full((4, 6), np.nan), (4, 6))
    gray = np.zeros((4, 6), np.uint8)
    gray[:, 3:] = 255
    Image.fromarray(gray).save(tmp_path / 'm.png')
    np.testing.assert_array_equal(load_mask(tmp_path / 'm.png', (4, 6)), gray / 255.0)
    with pytest.raises(InvalidMaskError, match="it must be the photo's size 8x8"):
        load_mask(tmp_path / 'm.png', (8, 8), size_name="the photo's size")


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize('make, message', [
    (lambda: DragConfig(lr=0), 'lr must be positive'),
    (lambda: DragConfig(lr='fast'), 'wrong type'),
    (lambda: DragConfig(precision='fp8'), 'precision'),
    (lambda: InversionConfig(projection_steps=-1), 'step counts'),
    (lambda: InversionConfig.preset('perfect'), 'unknown inversion preset'),
    (lambda: DragConfig(precision='fp16').check_device('cpu'), 'needs a CUDA device'),
    (lambda: alignment.PasteConfig(feather=-1), 'feather'),
    (lambda: EditConfig(quality='perfect'), "quality is 'fast'"),
    (lambda: EditConfig(max_steps=-1), 'max_steps'),
    (lambda: EditConfig(seed=2 ** 40), 'seed'),
    (lambda: EditConfig(drag={'lr': 1}), 'DragConfig'),
])
def test_bad_settings_are_invalid_settings_errors(make, message):
    with pytest.raises(InvalidSettingsError, match=message):
        make()


def test_edit_config_resolves_overrides_and_round_trips_through_json():
    quick = InversionConfig(projection_steps=5, tuning_steps=2)
    config = EditConfig(quality=quick, seed=7, max_steps=12, recipe='ffhq')
    assert config.quality is None and config.inversion is quick
    assert config.inversion_config().seed == 7 and config.drag_config().max_steps == 12
    resolved = config.resolved()
    assert resolved.inversion.seed == 7 and resolved.drag.max_steps == 12 and resolved.max_steps is None
    again = EditConfig.from_dict(json.loads(json.dumps(resolved.to_dict())))
    assert again == resolved
    assert EditConfig().inversion_config() == InversionConfig.preset('balanced')
    with pytest.raises(InvalidSettingsError, match='unknown edit setting'):
        EditConfig.from_dict({**resolved.to_dict(), 'projection_steps': 10 ** 12})


def test_edit_takes_settings_only_by_keyword():
    from photodrag import pipeline
    with pytest.raises(TypeError):
        pipeline.edit('photo.jpg', [((1, 1), (2, 2))], None, 'demo-faces')
    with pytest.raises(InvalidSettingsError, match='unknown setting'):
        pipeline.edit('photo.jpg', [((1, 1), (2, 2))], projection_steps=3)


ONE_FACE = {'index': 0, 'box': [1, 2, 30, 40], 'landmarks': None, 'score': 1.0, 'crop_matrix': [[1, 0, 0], [0, 1, 0]],
            'crop_size': [64, 64], 'handles_photo': [[5, 5]], 'targets_photo': [[6, 6]], 'handles_crop': [[5, 5]],
            'targets_crop': [[6, 6]], 'mask': None, 'inversion': {}, 'drag': {}, 'timings': {}}


def test_a_version_1_record_is_read_as_version_2():
    v1 = {'format': 'photodrag-edit', 'version': 1, 'library_version': '0.1.0',
          'input': {'path': None, 'pixels_sha256': '0' * 64}, 'checkpoint': {'name': 'demo-faces'}, 'recipe': 'digiface',
          'device': 'cpu', 'seed': 3, 'quality': 'fast',
          'inversion_config': {**InversionConfig.preset('fast').__dict__, 'seed': 3},
          'drag_config': DragConfig(max_steps=9).__dict__, 'paste_config': alignment.PasteConfig().__dict__,
          'detection': {'upsample': None, 'faces_found': 1}, 'faces': [ONE_FACE], 'output': {}, 'timings': {}}
    rec = EditRecord.from_dict(v1)
    assert rec.version == 2 and rec.seed == 3 and rec.quality == 'fast' and rec.drag_config['max_steps'] == 9
    config = rec.edit_config()
    assert config.recipe == 'digiface' and config.inversion_config().seed == 3


# ---------------------------------------------------------------- transparency

def test_a_transparent_photo_keeps_its_alpha_channel(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    rgba[:5, :, 3] = 0
    rgba[5:10, :, 3] = 255
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'in.png')
    photo = alignment.read_photo(tmp_path / 'in.png')
    assert photo.pixels.shape == (30, 40, 3) and photo.alpha is not None
    edited = photo.pixels.copy()
    edited[5:10, 10:20] = (20, 200, 40)                 # an opaque region changes colour
    alignment.write_photo(edited, tmp_path / 'out.png', like=photo)
    with Image.open(tmp_path / 'out.png') as im:
        assert im.mode == 'RGBA'
        out = np.asarray(im)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])            # transparency untouched
    unchanged = np.ones((30, 40), bool)
    unchanged[5:10, 10:20] = False
    np.testing.assert_array_equal(out[unchanged], rgba[unchanged])      # the rest exactly as it was
    np.testing.assert_array_equal(out[5:10, 10:20, :3], np.broadcast_to([20, 200, 40], (5, 10, 3)))
    alignment.write_photo(edited, tmp_path / 'out.jpg', like=photo)      # JPEG has no alpha: composited
    assert Image.open(tmp_path / 'out.jpg').mode == 'RGB'


# ---------------------------------------------------------------- before/after

def test_before_after_leaves_the_two_photos_untouched_draws_the_drags_apart_and_names_each_panel():
    from types import SimpleNamespace
    from photodrag.pipeline import before_after
    before = np.full((100, 120, 3), 90, np.uint8)
    after = before.copy()
    after[40:60, 40:60] = 200
    face = SimpleNamespace(box=[20, 20, 100, 100], handles_photo=[[50, 50]], targets_photo=[[70, 45]],
                           drag={'handles_photo': [[68, 46]]})
    result = SimpleNamespace(photo=SimpleNamespace(pixels=before), pixels=after,
                             record=SimpleNamespace(faces=[face]), faces=(SimpleNamespace(region=None),))
    picture = before_after(result)
    gap = max(4, 120 // 100)
    strip = picture.shape[0] - 100                      # the captions' white strip, above the panels
    assert 10 <= strip <= 40 and picture.shape[1:] == (3 * 120 + 2 * gap, 3)
    panels = picture[strip:]
    np.testing.assert_array_equal(panels[:, :120], before)
    np.testing.assert_array_equal(panels[:, 120 + gap:240 + gap], after)
    guide = panels[:, 240 + 2 * gap:]
    assert (guide != after).any()
    assert (guide[50, 50] == after[50, 50]).all()       # a hollow ring: the handle's own pixel shows
    captions = [picture[:strip, x:x + 120] for x in (0, 120 + gap, 240 + 2 * gap)]
    for caption in captions:                            # dark text on white, in every panel's strip
        assert (caption < 100).any() and (caption == 255).mean() > 0.6
    assert not np.array_equal(captions[0], captions[1]) and not np.array_equal(captions[1], captions[2])
    assert before_after(result, points=False).shape == (100 + strip, 2 * 120 + gap, 3)


def test_outputs_of_one_edit_are_written_all_or_none(tmp_path):
    """`photodrag edit` and batches write photo, before/after and record with `write_outputs`
    (io.atomic_files): a failure in the last leaves none of them (and no temporary file)."""
    import numpy as np
    from photodrag.pipeline.outputs import write_outputs

    class Record:
        def with_encoding(self, encoding):
            return self

        def save(self, path):
            raise PhotodragError(f'cannot write {path}: disk full')

    class Result:
        record = Record()

        def save(self, path, quality=None, details=None):
            Path(path).write_bytes(b'photo')
            return Path(path)

        def before_after(self):
            return np.zeros((4, 8, 3), np.uint8)

    out, ba, rec = tmp_path / 'a.jpg', tmp_path / 'ba.png', tmp_path / 'a.json'
    with pytest.raises(PhotodragError, match='disk full'):
        write_outputs(Result(), out, record=rec, before_after=ba)
    assert list(tmp_path.iterdir()) == []
    Result.record = type('R', (), {'save': lambda self, path: Path(path).write_text('{}'),
                                   'with_encoding': lambda self, encoding: self})()
    written = write_outputs(Result(), out, record=rec, before_after=ba)
    assert [w for w, _ in written] == ['edited photo', 'before/after', 'record']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.jpg', 'a.json', 'ba.png']


@pytest.mark.parametrize('where, key, value, message', [
    ('inversion', 'projection_steps', 10 ** 12, 'step counts must be whole numbers'),
    ('inversion', 'tuning_steps', 1e12, 'step counts must be whole numbers'),
    ('inversion', 'seed', 10 ** 30, 'seed must be a whole number'),
    ('inversion', 'w_avg_samples', 10 ** 10, 'w_avg_samples must be a whole number'),
    (None, 'device', 'meta', "EditConfig.device must be 'cpu'"),
    ('drag', 'lr', float('nan'), 'lr must be positive'),
])
def test_tampered_record_settings_are_refused_before_anything_runs(where, key, value, message):
    """A record is untrusted input: settings that would run for ever, allocate terabytes or
    name a device that is not one fail with one line."""
    data = EditConfig(quality=None, inversion=InversionConfig.preset('fast')).to_dict()
    (data if where is None else data[where])[key] = value
    with pytest.raises(InvalidSettingsError, match=message):
        config = EditConfig.from_dict(data)
        config.inversion_config()
        config.drag_config()


@pytest.mark.parametrize('named, used', [(None, 'hog'), ('hog', 'hog'), ('retinaface', 'retinaface')])
def test_a_record_replays_with_the_face_detector_it_was_made_with(monkeypatch, named, used):
    """Records name the detector that found their faces; those written before RetinaFace became
    the default name none and were made with dlib's HOG, so they replay with it (other boxes
    would give other crops and other pixels)."""
    from photodrag import pipeline
    from photodrag.pipeline.record import pixels_sha256
    pixels = np.full((48, 64, 3), 90, np.uint8)
    data = {'format': 'photodrag-edit', 'version': 1, 'library_version': '0.1.0',
            'input': {'path': None, 'pixels_sha256': pixels_sha256(pixels)}, 'checkpoint': {'name': 'demo-faces'},
            'recipe': 'digiface', 'device': 'cpu', 'seed': 3, 'quality': 'fast',
            'inversion_config': InversionConfig.preset('fast').__dict__, 'drag_config': DragConfig().__dict__,
            'paste_config': alignment.PasteConfig().__dict__, 'faces': [ONE_FACE], 'output': {}, 'timings': {},
            'detection': {'upsample': None, 'faces_found': 1, **({'detector': named} if named else {})}}
    asked = []

    def named_detector(name):
        asked.append(name)
        raise InvalidSettingsError('stop before any work')
    monkeypatch.setattr(alignment, 'named_detector', named_detector)
    with pytest.raises(InvalidSettingsError, match='stop before any work'):
        pipeline.edit_from_record(EditRecord.from_dict(data), photo=alignment.Photo(pixels=pixels))
    assert asked == [used]
