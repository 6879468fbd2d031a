"""Expression presets, the expression read-out, `photodrag presets` and `photodrag fix`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared_photo
from photodrag.errors import InvalidSettingsError
from photodrag.expressions import presets, readout as expression
from photodrag.cli import main

FAST = ['--quality', 'fast', '--projection-steps', '4', '--tuning-steps', '4', '--steps', '60', '--no-cache']


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def made_up_face():
    """68 landmarks of a frontal face in the iBUG layout, eyes 60 px apart (no detector needed)."""
    lm = np.zeros((68, 2))
    lm[0:17] = np.stack([np.linspace(-70, 70, 17), 30 + 60 * np.sin(np.linspace(0, np.pi, 17))], axis=1)
    lm[17:22] = np.stack([np.linspace(-55, -15, 5), [-45, -50, -52, -50, -45]], axis=1)
    lm[22:27] = np.stack([np.linspace(15, 55, 5), [-45, -50, -52, -50, -45]], axis=1)
    lm[27:31] = np.stack([np.zeros(4), np.linspace(-25, 10, 4)], axis=1)
    lm[31:36] = np.stack([np.linspace(-12, 12, 5), [15, 17, 18, 17, 15]], axis=1)

    def eye(cx, opening):
        # p1 outer/inner corner, two upper, the other corner, two lower (the iBUG order)
        return np.array([[cx - 14, 0], [cx - 5, -opening], [cx + 5, -opening], [cx + 14, 0], [cx + 5, opening],
                         [cx - 5, opening]], float)
    lm[36:42] = eye(-30, 4.5)
    lm[42:48] = eye(30, 4.5)
    mouth = [[-25, 45], [-15, 40], [-5, 38], [0, 39], [5, 38], [15, 40], [25, 45], [15, 52], [5, 55], [0, 55],
             [-5, 55], [-15, 52]]
    lm[48:60] = mouth
    lm[60:68] = [[-20, 45], [-7, 44], [0, 44], [7, 44], [20, 45], [7, 46], [0, 46], [-7, 46]]
    return lm + [200.0, 200.0]


def transform(points, angle_deg, scale, about=(200.0, 200.0), shift=(30.0, -10.0)):
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (np.asarray(points) - about) @ R.T * scale + about + shift


# ---------------------------------------------------------------- geometry

@pytest.mark.parametrize('name', sorted(presets.builtin()))
def test_preset_geometry_follows_the_face(name):
    """The same landmarks rotated by 20 degrees and scaled x2 give handles and targets rotated
    and scaled the same way, and a region that is the rotated, scaled region."""
    p = presets.get(name)
    lm = made_up_face()
    moved = transform(lm, 20, 2.0)
    h0, t0 = p.displacements(lm, strength=0.8)
    h1, t1 = p.displacements(moved, strength=0.8)
    np.testing.assert_allclose(h1, transform(h0, 20, 2.0), atol=1e-9)
    np.testing.assert_allclose(t1, transform(t0, 20, 2.0), atol=1e-9)
    assert np.hypot(*(t0 - h0).T).max() > 0.5            # every built-in preset moves something here
    m0, m1 = p.mask(lm, (800, 800), 0.8), p.mask(moved, (800, 800), 0.8)
    assert 3.6 < m1.sum() / m0.sum() < 4.4               # the area scales with the square
    ys, xs = np.nonzero(m0 > 0.5)
    centre0 = np.array([xs.mean(), ys.mean()])
    ys, xs = np.nonzero(m1 > 0.5)
    np.testing.assert_allclose([xs.mean(), ys.mean()], transform(centre0, 20, 2.0), atol=3.0)
    for h in h0:                                         # the region holds the handles
        assert m0[int(round(h[1])), int(round(h[0]))] == 1.0


def test_strength_scales_the_motion_and_regions_stay_local():
    lm = made_up_face()
    smile = presets.get('smile')
    h, t = smile.displacements(lm)
    h2, t2 = smile.displacements(lm, strength=0.5)
    np.testing.assert_allclose(t2 - h2, 0.5 * (t - h))
    # smile moves the mouth corners out (away from the centre line) and up, by the file's amounts
    iod = 60.0
    np.testing.assert_allclose(t - h, [[-0.08 * iod, -0.07 * iod], [0.08 * iod, -0.07 * iod]])
    region = smile.mask(lm, (400, 400))
    assert region[int(lm[8][1]), int(lm[8][0])] == 0             # the chin and the eyes are outside the mouth's region
    assert region[int(lm[38][1]), int(lm[38][0])] == 0 and region[int(lm[30][1]), int(lm[30][0])] == 0
    for p in np.concatenate([h, t]):                             # handles and targets are inside it
        assert region[int(round(p[1])), int(round(p[0]))] == 1.0
    eyes = presets.get('close-eyes')
    hc, tc = eyes.displacements(lm)
    np.testing.assert_allclose(tc[:4], hc[:4] + 0.8 * (lm[[41, 40, 47, 46]] - lm[[37, 38, 43, 44]]))
    # a strength that would take the lids past each other stops them where they meet
    h3, t3 = eyes.displacements(lm, strength=2.0)
    np.testing.assert_allclose(t3[:4], lm[[41, 40, 47, 46]])


def test_two_presets_on_one_landmark_give_one_handle_with_both_motions():
    lm = made_up_face()
    both = presets.uses(['smile', 'smile:0.5'])
    drags, region, labels = presets.face_drags(both, lm, (400, 400))
    assert len(drags) == 2 and 'smile + smile:0.5' in labels[0]
    h, t = presets.get('smile').displacements(lm)
    np.testing.assert_allclose([d[1] for d in drags], h + 1.5 * (t - h))
    one_eye = presets.get('open-eyes').only(range(36, 42), name='open-eyes-left')
    assert set(one_eye.moved_points()) == {37, 38, 40, 41} and len(one_eye.regions) == 1


def test_preset_names_and_strengths_are_checked():
    with pytest.raises(InvalidSettingsError, match='known presets: .*close-eyes.*smile'):
        presets.use('grin')
    with pytest.raises(InvalidSettingsError, match='must be a number'):
        presets.use('smile:lots')
    for bad in ('smile:0', 'smile:-1', 'smile:nan', 'smile:9'):
        with pytest.raises(InvalidSettingsError, match=r'strength of smile must be in \(0, 3\]'):
            presets.use(bad)
    assert presets.use('smile:0.6').strength == 0.6 and presets.use('smile').label == 'smile'


# ---------------------------------------------------------------- files

GOOD = """\
format: photodrag-presets
presets:
  wink:
    description: close the image-left eye
    moves:
      - {points: [37, 38], to: [41, 40], share: 0.9}
    mask:
      - {points: [36, 37, 38, 39, 40, 41], margin: 0.15}
"""


def test_a_users_preset_file_adds_presets(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text(GOOD)
    known = presets.available([path])
    assert 'wink' in known and 'smile' in known and known['wink'].source == str(path)
    h, t = known['wink'].displacements(made_up_face())
    assert h.shape == (2, 2) and (t[:, 1] > h[:, 1]).all()           # upper lid points move down
    as_json = tmp_path / 'mine.json'                                   # JSON is read the same way
    as_json.write_text(json.dumps({'presets': {'wink': known['wink'].to_dict()}}))
    assert presets.load_file(as_json)['wink'].moves == known['wink'].moves


@pytest.mark.parametrize('change, message', [
    (('share: 0.9', 'shares: 0.9'), r"line 6: unknown key 'shares' in preset wink"),
    (('share: 0.9', 'share: 1.9'), r'line 6: wink.moves\[0\].share: expected a number from 0 to 1'),
    (('[37, 38], to', '[37, 99], to'), r'line 6: wink.moves\[0\].points: expected landmark indices from 0 to 67'),
    (('to: [41, 40]', 'to: [41]'), r'line 6: wink.moves\[0\].to: expected as many landmarks as points'),
    (('margin: 0.15', 'margin: wide'), r'line 8: wink.mask\[0\].margin: expected a number'),
    (('    description', '    colour: red\n    description'), r"line 4: unknown key 'colour' in preset wink"),
    (('moves:\n      - {', 'moves:\n      - [1, 2]\n      - {'), r'line 6: wink.moves\[0\]: a move is a mapping'),
    (('  wink:', '  Wink Eye:'), r'line 3: Wink Eye: a preset name is lower-case'),
    (('format: photodrag-presets', 'format: other'), r"line 1: format: expected 'photodrag-presets'"),
    (('{points: [37, 38]', '{points: [37, 38'), r'line 6: not valid YAML or JSON'),
])
def test_preset_file_mistakes_name_the_key_and_line(tmp_path, change, message):
    """Each mistake is refused with the file, the line and the key (the GOOD file's line 6 is the move)."""
    path = tmp_path / 'mine.yaml'
    path.write_text(GOOD.replace(*change))
    with pytest.raises(presets.PresetFileError, match=message):
        presets.load_file(path)


BLOCK = """\
presets:
  lift:
    moves:
      - points: [19, 24]
        by:
          - 0
          - lots
    mask:
      - points: [17, 18, 19, 20, 21, 22, 23, 24, 25, 26]
        margin: 0.2
"""


def test_block_style_errors_point_at_the_key(tmp_path):
    path = tmp_path / 'block.yaml'
    path.write_text(BLOCK)
    with pytest.raises(presets.PresetFileError, match=r'line 5: lift.moves\[0\].by: expected \[dx, dy\]'):
        presets.load_file(path)
    path.write_text(BLOCK.replace('lots', '0.05').replace('[17, 18, 19, 20, 21, 22, 23, 24, 25, 26]', '[17, 18]'))
    with pytest.raises(presets.PresetFileError, match=r'line 4: lift.moves\[0\].points: landmark\(s\) 19, 24 move '
                                                     r'but no mask region lists them'):
        presets.load_file(path)


def test_a_users_file_can_replace_a_builtin(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text(BLOCK.replace('lots', '0.05').replace('lift', 'smile'))
    mine = presets.available([path])['smile']
    assert mine.source == str(path) and mine.moved_points() == (19, 24)
    assert presets.get('smile').source == 'built-in'          # the built-in is still there without the file


@pytest.mark.parametrize('text', [
    'presets: ' + '[' * 3000 + ']' * 3000,                     # deep nesting (RecursionError in a naive reader)
    'presets:\n' + ''.join('  ' * i + f'k{i}:\n' for i in range(1, 60)),
    'a: &a [1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n'
    'd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d]\npresets: [*e, *e, *e, *e]',
    'presets: {x: {moves: [{points: [1], by: [' + '9' * 5000 + ', 0]}]}}',   # past Python's int-digit limit
    '!!python/object/apply:os.system ["echo owned"]',
])
def test_hostile_preset_files_are_one_clear_error(tmp_path, text):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(presets.PresetFileError):
        presets.load_file(path)


def test_preset_file_errors_on_the_command_line_are_one_line(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text(GOOD.replace('margin: 0.15', 'margin: -1'))
    out = run('presets', '--presets', path)
    assert out.exit_code == 2 and 'line 8' in out.output and 'margin' in out.output
    assert 'Traceback' not in out.output and len(out.output.strip().splitlines()) == 1
    assert run('presets', '--presets', tmp_path / 'none.yaml').exit_code == 2


# ---------------------------------------------------------------- read-out

def test_readout_tells_open_from_closed_eyes():
    lm = made_up_face()
    open_ = expression.read(lm)
    assert 0.28 < open_.left_eye < 0.36 and open_.states()['eyes'] == 'open'
    closed = lm.copy()
    closed[[37, 38]] = closed[[41, 40]] + [0, -1.0]         # the image-left lid shut
    r = expression.read(closed)
    assert r.left_eye < 0.1 < open_.left_eye and r.states()['eyes'] == 'one closed'
    closed[[43, 44]] = closed[[47, 46]] + [0, -1.0]
    assert expression.read(closed).states()['eyes'] == 'closed'
    assert expression.needs_fix(expression.read(closed), 'closed-eyes')
    assert not expression.needs_fix(open_, 'closed-eyes')
    # the same face 20 degrees rolled and twice the size reads the same
    r2 = expression.read(transform(lm, 20, 2.0))
    np.testing.assert_allclose([r2.left_eye, r2.mouth, r2.smile], [open_.left_eye, open_.mouth, open_.smile])
    tiny = expression.read((lm - 200) * 0.3 + 200)             # eyes 8 px wide: too small to read
    assert tiny.states()['eyes'] == 'uncertain' and not expression.needs_fix(
        expression.read((closed - 200) * 0.3 + 200), 'closed-eyes')


def test_readout_of_the_mouth():
    lm = made_up_face()
    assert expression.read(lm).states()['mouth'] == 'closed'
    talking = lm.copy()
    talking[65:68, 1] += 20
    assert expression.read(talking).mouth > expression.MOUTH_OPEN_ABOVE
    assert expression.read(talking).states()['mouth'] == 'open'
    wide = lm.copy()
    wide[48, 0] -= 15
    wide[54, 0] += 15
    assert expression.read(wide).states()['smile'] == 'smiling'


# ---------------------------------------------------------------- editing

@pytest.mark.slow
def test_preset_edit_on_the_astronaut_changes_only_its_region_and_replays(tmp_path):
    from photodrag import pipeline
    from photodrag.inversion import InversionConfig
    from photodrag.pipeline import demo
    photo, face = demo.demo_face()
    inv = InversionConfig.preset('fast', projection_steps=4, tuning_steps=4)
    result = pipeline.edit(photo, [(tuple(face.landmarks[30]), tuple(face.landmarks[30] + [0, 3]))], inversion=inv,
                           max_steps=60, presets=['open-eyes:0.8'], face=face.index, cache=False)
    frec = result.record.faces[0]
    assert frec.drags_given == 1 and len(frec.handles_photo) == 9 and frec.presets[0]['strength'] == 0.8
    assert frec.mask['kind'] == 'preset' and frec.mask['presets'] == ['open-eyes:0.8']
    region = result.faces[0].region
    changed = np.any(result.pixels != photo.pixels, axis=2)
    assert changed.any() and not changed[region == 0].any()      # outside the region: the input's pixels
    assert region[int(face.landmarks[8][1]), int(face.landmarks[8][0])] == 0       # the chin is not in it
    path = result.record.save(tmp_path / 'rec.json')
    again = pipeline.edit_from_record(path, cache=False)
    assert again.record.output['pixels_sha256'] == result.record.output['pixels_sha256']


def test_edit_command_checks_presets_before_anything_runs(tmp_path):
    from photodrag.pipeline import demo
    out = run('edit', demo.DEMO_PHOTO, '--preset', 'grin', '--out', tmp_path / 'o.png')
    assert out.exit_code == 2 and 'unknown preset' in out.output and 'open-eyes' in out.output
    out = run('edit', demo.DEMO_PHOTO, '--preset', 'smile:big', '--out', tmp_path / 'o.png')
    assert out.exit_code == 2 and 'must be a number' in out.output
    assert list(tmp_path.iterdir()) == []


def test_presets_command_lists_and_shows(tmp_path):
    from photodrag.pipeline import demo
    listed = run('presets')
    assert listed.exit_code == 0
    for name in ('smile', 'relax', 'open-eyes', 'close-eyes', 'close-mouth', 'open-mouth', 'raise-brows',
                 'lower-brows'):
        assert name in listed.output
    lonely = run('presets', '--strength', '0.5')
    assert lonely.exit_code == 2 and 'go with --show' in lonely.output
    drawing = tmp_path / 'shown.png'
    out = run('presets', '--show', demo.DEMO_PHOTO, '--out', drawing)
    assert out.exit_code == 0 and drawing.is_file()
    from PIL import Image
    assert Image.open(drawing).size[0] > 600


@pytest.mark.slow
def test_fix_edits_only_the_faces_that_need_it(tmp_path):
    """On a group photo, a threshold between the faces' mouth read-outs picks exactly the face
    above it: that face is edited, every other face keeps every pixel, one output, one record."""
    from photodrag import alignment
    src = shared_photo('group3_family_gfpgan_10045.png')
    photo = alignment.read_photo(src)
    faces = alignment.detect_faces(photo)
    mouths = sorted((expression.read(f.landmarks).mouth, f.index) for f in faces)
    threshold = (mouths[-1][0] + mouths[-2][0]) / 2
    chosen = mouths[-1][1]

    preview = tmp_path / 'preview.png'
    out = run('fix', src, '--open-mouth', '--mouth-above', f'{threshold:.4f}', '--preview', '--out', preview)
    assert out.exit_code == 0, out.output
    assert f'face {chosen}:' in out.output and '1 of 3 face(s) would be edited' in out.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ['preview.png']

    fixed = tmp_path / 'fixed.png'
    out = run('fix', src, '--open-mouth', '--mouth-above', f'{threshold:.4f}', '--out', fixed, *FAST)
    assert out.exit_code == 0, out.output
    # the output is read again, with a margin: the line says whether the mouth reads closed now
    said = [line for line in out.output.splitlines() if line.startswith(f'face {chosen}: mouth ')]
    assert len(said) == 1 and ('fixed by the generator' in said[0] or 'give another shot' in said[0]), out.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fixed.json', 'fixed.png', 'preview.png']
    record = json.loads((tmp_path / 'fixed.json').read_text())
    assert [f['index'] for f in record['faces']] == [chosen]
    assert record['faces'][0]['presets'][0]['name'] == 'close-mouth'
    result = alignment.read_photo(fixed).pixels
    changed = np.any(result != photo.pixels, axis=2)
    assert changed.any()
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        if f.index != chosen:
            assert not changed[y0:y1, x0:x1].any()
    ys, xs = np.nonzero(changed)
    box = faces[chosen].box
    assert box[0] <= xs.min() and xs.max() <= box[2] and box[1] <= ys.min() and ys.max() <= box[3]

    nothing = run('fix', src, '--closed-eyes', '--out', tmp_path / 'none.png', *FAST)
    assert nothing.exit_code == 0 and 'nothing written' in nothing.output
    assert not (tmp_path / 'none.png').exists()
