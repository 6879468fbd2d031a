"""`photodrag fix --reference`: closed eyes opened with the same person's eyes from another shot
of the burst, nothing else touched, a stranger's eyes never taken, the record replaying."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared_photo
from photodrag import alignment
from photodrag.cli import main
from photodrag.expressions import readout

cv2 = pytest.importorskip('cv2')
pytest.importorskip('dlib')

SHIFT, ANGLE, SCALE, GAIN = (9, -6), 3.0, 1.05, 0.9


def _read(name, scale):
    pixels = alignment.read_photo(shared_photo(name)).pixels
    return cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale != 1 else pixels


def _side_by_side(left, right, height):
    canvas = np.full((height, left.shape[1] + 1024, 3), 128, np.uint8)
    canvas[:left.shape[0], :left.shape[1]] = left
    canvas[:right.shape[0], left.shape[1]:left.shape[1] + right.shape[1]] = right
    return canvas


def _close_eyes(pixels, landmarks, lashes_at, thickness, shift, tall=0.5):
    """Skin from under each eye drawn over it, and a dark lash line near the lower lid (where
    closed lids meet)."""
    out = pixels.copy()
    for idx in (range(36, 42), range(42, 48)):
        e = landmarks[list(idx)]
        w = float(np.hypot(*(e[0] - e[3])))
        c = e.mean(0)
        m = np.zeros(out.shape[:2], np.float32)
        cv2.ellipse(m, (int(c[0]), int(c[1] - (tall - 0.5) * w)), (int(0.8 * w), int(tall * w)), 0, 0, 360, 1.0, -1)
        m = cv2.GaussianBlur(m, (0, 0), w / 10)[..., None]
        below = np.roll(out, -int(shift * w), axis=0)
        out = np.clip(out * (1 - m) + below * m, 0, 255).astype(np.uint8)
        upper, lower = np.array([e[0], e[1], e[2], e[3]]), np.array([e[0], e[5], e[4], e[3]])
        lashes = (1 - lashes_at) * upper + lashes_at * lower
        cv2.polylines(out, [np.round(lashes).astype(np.int32)], False, (50, 35, 35), max(1, round(w / thickness)),
                      cv2.LINE_AA)
    return out


def _closed(pixels, face):
    """`pixels` with the face's eyes closed so that they read closed (dlib's landmarks decide
    where a drawn closed eye ends up: the first of a few lash lines that reads closed)."""
    for params in ((0.65, 7, 1.2, 0.7), (0.8, 7, 1.2, 0.7), (0.8, 6, 1.1, 0.6)):
        out = _close_eyes(pixels, face.landmarks, *params)
        now = min(alignment.detect_faces(out), key=lambda f: np.hypot(*(f.centre - face.centre)))
        if max(readout.read(now.landmarks).left_eye, readout.read(now.landmarks).right_eye) < 0.16:
            return out
    raise AssertionError('the test could not draw eyes that read closed')


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
    H, W = reference.shape[:2]
    A = cv2.getRotationMatrix2D(tuple(float(v) for v in a_face.centre), ANGLE, SCALE)
    A[:, 2] += SHIFT
    moved = lambda im: cv2.warpAffine(im, A, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)  # noqa
    photo = np.clip(moved(other) * GAIN, 0, 255).astype(np.uint8)
    for f in alignment.detect_faces(photo):
        photo = _closed(photo, f)
    aligned = np.clip(moved(reference) * GAIN, 0, 255).astype(np.uint8)     # where the reference's pixels belong
    folder = tmp_path_factory.mktemp('burst')
    paths = {'photo': folder / 'group.png', 'reference': folder / 'group_2.png'}
    alignment.write_photo(photo, paths['photo'])
    alignment.write_photo(reference, paths['reference'])
    eyes = [(a_face.landmarks[list(idx)] @ A[:, :2].T + A[:, 2]) for idx in (range(36, 42), range(42, 48))]
    return {'paths': paths, 'photo': photo, 'reference': reference, 'aligned': aligned, 'eyes': eyes,
            'ref_readout': readout.read(a_face.landmarks), 'face_width': float(a_face.box[2] - a_face.box[0]) * SCALE}


def _check_face_a(burst, out):
    photo, eyes = burst['photo'], burst['eyes']
    faces = alignment.detect_faces(out)
    got = readout.read(faces[0].landmarks)
    ref = burst['ref_readout']
    assert got.left_eye >= 0.8 * ref.left_eye and got.right_eye >= 0.8 * ref.right_eye, (got, ref)
    for e in eyes:                                  # the eye regions are the reference's eyes, in place
        w, c = float(np.hypot(*(e[0] - e[3]))), e.mean(0)
        x0, x1, y0, y1 = int(c[0] - 0.7 * w), int(c[0] + 0.7 * w), int(c[1] - 0.4 * w), int(c[1] + 0.4 * w)
        p = out[y0:y1, x0:x1].astype(np.float64).ravel()
        q = burst['aligned'][y0:y1, x0:x1].astype(np.float64).ravel()
        p, q = p - p.mean(), q - q.mean()
        assert p @ q / np.sqrt((p @ p) * (q @ q)) >= 0.8
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
