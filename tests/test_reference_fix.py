"""`photodrag fix --reference`: closed eyes opened with the same person's eyes from another shot
of the burst, nothing else touched, a stranger's eyes never taken, the record replaying."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import bursts
from conftest import shared_photo
from photodrag import alignment
from photodrag.cli import main
from photodrag.expressions import readout

cv2 = pytest.importorskip('cv2')
pytest.importorskip('dlib')



def _read(name, scale):
    pixels = alignment.read_photo(shared_photo(name)).pixels
    return cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale != 1 else pixels


def _side_by_side(left, right, height):
    canvas = np.full((height, left.shape[1] + 1024, 3), 128, np.uint8)
    canvas[:left.shape[0], :left.shape[1]] = left
    canvas[:right.shape[0], left.shape[1]:left.shape[1] + right.shape[1]] = right
    return canvas


@pytest.fixture(scope='module')
def burst(tmp_path_factory):
    """reference: person A (open eyes) beside person C; photo: the reference moved (shift, 3°,
    x1.05), re-lit (x0.9), with person B in C's place, and A's and B's eyes closed."""
    a = _read('portrait_deepface_img1.jpg', 1.0)
    b = _read('portrait_aligned1024_e4e_input.jpg', 1.0)
    c = _read('portrait_facexlib_test2.jpg', 2.0)
    reference = _side_by_side(a, c, a.shape[0])
    other = _side_by_side(a, b, a.shape[0])
    a_face = alignment.detect_faces(reference)[0]
    photo, aligned, A = bursts.blink_burst(reference, a_face.centre, frame=other)
    folder = tmp_path_factory.mktemp('burst')
    paths = {'photo': folder / 'group.png', 'reference': folder / 'group_2.png'}
    alignment.write_photo(photo, paths['photo'])
    alignment.write_photo(reference, paths['reference'])
    eyes = [(a_face.landmarks[list(idx)] @ A[:, :2].T + A[:, 2]) for idx in (range(36, 42), range(42, 48))]
    return {'paths': paths, 'photo': photo, 'reference': reference, 'aligned': aligned, 'eyes': eyes,
            'ref_readout': readout.read(a_face.landmarks), 'face_width': float(a_face.box[2] - a_face.box[0]) * bursts.SCALE}


def _check_face_a(burst, out):
    photo, eyes = burst['photo'], burst['eyes']
    faces = alignment.detect_faces(out)
    got = readout.read(faces[0].landmarks)
    ref = burst['ref_readout']
    assert got.left_eye >= 0.8 * ref.left_eye and got.right_eye >= 0.8 * ref.right_eye, (got, ref)
    for e in eyes:                                  # the eye regions are the reference's eyes, in place
        assert bursts.eye_ncc(out, burst['aligned'], e) >= 0.8
    yy, xx = np.mgrid[:photo.shape[0], :photo.shape[1]]
    near = np.zeros(photo.shape[:2], bool)
    for e in eyes:
        c = e.mean(0)
        near |= np.hypot(xx - c[0], yy - c[1]) <= 0.5 * burst['face_width']
    assert np.array_equal(out[~near], photo[~near])     # bit for bit beyond half a face width


def test_closed_eyes_open_with_the_same_persons_eyes_and_a_stranger_is_refused(burst):
    from photodrag.pipeline import fixes
    before = readout.read(alignment.detect_faces(burst['photo'])[0].landmarks)
    assert max(before.left_eye, before.right_eye) < readout.EYES_CLOSED_BELOW     # the test's eyes read closed
    result = fixes.fix_with_references(burst['paths']['photo'], [burst['paths']['reference']], ['closed-eyes'],
                                       fallback=False)
    _check_face_a(burst, result.pixels)
    lines = result.lines
    assert any(line.startswith('face 0: eyes opened from shot 1') for line in lines), lines
    # person B's place holds person C in the reference: refused in one line, nothing taken
    refused = [line for line in lines if line.startswith('face 1:')]
    assert len(refused) == 1 and 'no other shot shows this person' in refused[0] and '\n' not in refused[0]
    assert [t['face'] for t in result.record['transfers']] == [0]


def test_the_cli_fixes_one_face_and_its_record_replays_bit_for_bit(burst, tmp_path):
    photo, shot = burst['paths']['photo'], burst['paths']['reference']
    photo_bytes, shot_bytes = photo.read_bytes(), shot.read_bytes()
    out = tmp_path / 'fixed.png'
    r = CliRunner().invoke(main, ['fix', str(photo), '--closed-eyes', '--reference', str(shot), '--face', '0',
                                  '--out', str(out)])
    assert r.exit_code == 0, r.output
    assert 'face 0: eyes opened from shot 1' in r.output and 'face 1' not in r.output
    fixed = alignment.read_photo(out).pixels
    _check_face_a(burst, fixed)
    record = json.loads(out.with_suffix('.json').read_text())
    assert record['references'][0]['sha256'] and record['transfers'][0]['reference_face'] == 0
    again = tmp_path / 'again.png'
    r = CliRunner().invoke(main, ['fix', '--from-record', str(out.with_suffix('.json')), '--out', str(again)])
    assert r.exit_code == 0, r.output
    assert np.array_equal(alignment.read_photo(again).pixels, fixed)
    assert photo.read_bytes() == photo_bytes and shot.read_bytes() == shot_bytes      # inputs untouched
    # a record whose reference has other pixels is refused, in one line
    record['references'][0]['pixels_sha256'] = '0' * 64
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(record))
    r = CliRunner().invoke(main, ['fix', '--from-record', str(bad), '--out', str(tmp_path / 'x.png')])
    assert r.exit_code != 0 and 'is not reference 1 of the record' in r.output and 'Traceback' not in r.output


def test_a_batch_fixes_a_burst_from_the_other_shots_in_its_folder(tmp_path):
    """`references: same-folder`: each photo's folder is one burst; the blink in a real group
    photo is fixed from the other frame, the record replays, a resume does nothing twice."""
    from photodrag import batch
    from photodrag.pipeline import fixes
    reference = alignment.read_photo(shared_photo('group2_codeformer_06.png')).pixels
    target = alignment.detect_faces(reference)[1]
    frame, aligned, A = bursts.blink_burst(reference, target.centre, close=[1])
    (tmp_path / 'burst').mkdir()
    alignment.write_photo(frame, tmp_path / 'burst' / 'frame.png')
    alignment.write_photo(reference, tmp_path / 'burst' / 'shot.png')
    recipe = tmp_path / 'recipe.json'
    recipe.write_text(json.dumps({'inputs': ['burst/frame.png'], 'faces': 'closed-eyes', 'references': 'same-folder',
                                  'output': {'folder': 'out'}}))
    result = batch(recipe)
    assert result.counts == {'done': 1}, [(i.status, i.error) for i in result.items]
    item = result.items[0]
    assert item.faces == [{'face': 1, 'fixed': True}] and item.error is None
    out = alignment.read_photo(tmp_path / 'out' / item.output).pixels
    eyes = [target.landmarks[list(idx)] @ A[:, :2].T + A[:, 2] for idx in (range(36, 42), range(42, 48))]
    assert min(bursts.eye_ncc(out, aligned, e) for e in eyes) >= 0.8
    assert np.array_equal(fixes.fix_from_record(tmp_path / 'out' / item.record).pixels, out)
    again = batch(recipe, resume=True)
    assert again.items[0].earlier and again.counts == {'done': 1}


def test_recipes_with_references_are_checked(tmp_path):
    from photodrag.batches.recipe import RecipeError, load_recipe
    with pytest.raises(RecipeError, match='references: reference shots fix faces picked by faces: closed-eyes'):
        load_recipe({'inputs': ['a.jpg'], 'references': 'same-folder', 'edits': [{'preset': 'smile'}],
                     'output': {'folder': 'out'}}, base=tmp_path)
    with pytest.raises(RecipeError, match='expected same-folder'):
        load_recipe({'inputs': ['a.jpg'], 'faces': 'closed-eyes', 'references': ['b.jpg'],
                     'output': {'folder': 'out'}}, base=tmp_path)
    r = load_recipe({'inputs': ['a.jpg'], 'faces': 'closed-eyes', 'references': {'a.jpg': ['b.jpg', 'c.jpg']},
                     'output': {'folder': 'out'}}, base=tmp_path)
    assert r.references_for(tmp_path / 'a.jpg') == [tmp_path / 'b.jpg', tmp_path / 'c.jpg']


def test_a_face_no_shot_helps_falls_back_to_the_generator_and_says_it_stayed_shut(burst, tmp_path):
    """Person B is nobody in the reference: the generator's preset runs on that face (a short
    one here), the line says the eyes are still closed and asks for another shot, and the
    whole fix (transfer, then the generator's edit) replays from its record bit for bit."""
    from photodrag.pipeline import EditConfig, fixes
    config = EditConfig.from_options(quality='fast', projection_steps=2, tuning_steps=1, max_steps=2, device='cpu',
                                     encoder='none')
    result = fixes.fix_with_references(burst['paths']['photo'], [burst['paths']['reference']], ['closed-eyes'],
                                       config=config, cache=tmp_path / 'cache')
    assert result.achieved == {0: True, 1: False}
    face1 = [line for line in result.lines if line.startswith('face 1:')]
    assert face1[0].endswith('trying the generator')
    assert 'still not fixed' in face1[1] and 'give another shot of this person with --reference' in face1[1]
    assert result.record['edit']['faces'][0]['presets'][0]['name'] == 'open-eyes'
    path = result.save_record(tmp_path / 'fix.json')
    again = fixes.fix_from_record(path, photo=burst['paths']['photo'], references=[burst['paths']['reference']],
                                  cache=tmp_path / 'cache')
    assert np.array_equal(again.pixels, result.pixels)
