"""photodrag eval: each metric's arithmetic on made-up data, and the protocols' reports."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from photodrag.errors import InvalidPointsError
from photodrag.evaluation import metrics


def textured(h=64, w=64, seed=0):
    import cv2
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.2)


# ---------------------------------------------------------------- metrics

def test_a_known_shift_gives_the_known_content_distance():
    before = textured()
    after = np.roll(before, shift=(3, 5), axis=(0, 1))          # content moves 5 px right, 3 px down
    m = metrics.content_match(before, after, handle=(30, 30), target=(35, 33))
    assert m['found'] == [35.0, 33.0] and m['distance'] == 0.0 and m['progress'] == pytest.approx(1.0)
    half_way = metrics.content_match(before, after, handle=(30, 30), target=(40, 36))
    assert half_way['distance'] == pytest.approx(np.hypot(5, 3)) and half_way['progress'] == pytest.approx(0.5)
    still = metrics.content_match(before, before, handle=(30, 30), target=(35, 33))
    assert still['found'] == [30.0, 30.0] and still['progress'] == 0.0
    with pytest.raises(InvalidPointsError, match='too close to the image border'):
        metrics.content_match(before, after, handle=(1, 30), target=(5, 30))


def local_move(image, centre, shift, radius):
    """`image` with the content within `radius` of `centre` moved by `shift` (smoothly fading out
    to the rest), as a drag moves a feature: the same pixels, somewhere else."""
    import cv2
    h, w = image.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    fall = np.exp(-((gx - centre[0] - shift[0]) ** 2 + (gy - centre[1] - shift[1]) ** 2) / (2 * radius ** 2))
    return cv2.remap(image, gx - shift[0] * fall, gy - shift[1] * fall, cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT)


def test_content_position_reads_unmoved_as_0_and_arrived_as_1():
    """What the record's content_progress rests on: the content found again in the pixels."""
    before = textured(96, 96)
    h, t = (40.0, 50.0), (48.0, 44.0)                      # a 10 px drag
    still, score = metrics.content_position(before, before, h, t)
    assert still == (40.0, 50.0) and score == pytest.approx(1.0, abs=1e-3)
    for share in (0.5, 1.0):
        shift = (share * 8.0, share * -6.0)
        after = local_move(before, h, shift, radius=8)
        at, score = metrics.content_position(before, after, h, t)
        assert metrics.progress_towards(h, at, t) == pytest.approx(share, abs=0.08) and score > 0.8
    # content that went somewhere else entirely is not taken for the dragged content
    elsewhere = local_move(before, h, (0.0, 9.0), radius=8)      # down, away from the target
    at, _ = metrics.content_position(before, elsewhere, h, t)
    assert metrics.progress_towards(h, at, t) < 0.3


def test_unexplained_change_tells_motion_from_new_texture():
    before = textured(96, 96)
    moved = local_move(before, (48, 48), (4.0, -3.0), radius=10)
    painted = before.copy()
    painted[40:46, 36:60] = np.clip(painted[40:46, 36:60].astype(int) - 60, 0, 255).astype(np.uint8)  # a dark stripe
    where = np.zeros((96, 96), bool)
    where[28:68, 28:68] = True
    mean_moved, p99_moved = metrics.unexplained_change(before, moved, where)
    mean_painted, p99_painted = metrics.unexplained_change(before, painted, where)
    assert mean_moved < 1.5 and p99_moved < 15
    assert mean_painted > 2 * mean_moved and p99_painted > 30


def test_the_record_content_figures_are_measured_in_the_output_photo():
    """content_photo / content_progress of an edit record: 0 when nothing moved, 1 when the
    content under the handle arrived at its target, whatever the tracker said."""
    from types import SimpleNamespace
    from photodrag.alignment.transform import CropTransform
    from photodrag.pipeline.editing import content_in_photo
    photo = textured(160, 160, seed=3)
    tf = CropTransform(np.array([[0.8, 0, 0], [0, 0.8, 0], [0, 0, 1]]), (128, 128), (160, 160))
    face = SimpleNamespace(handles_photo=[[70.0, 80.0]], targets_photo=[[80.0, 72.0]])
    unmoved = content_in_photo(photo, photo, tf, face)
    assert unmoved['content_progress'] == [0.0] and unmoved['content_photo'] == [[70.0, 80.0]]
    assert unmoved['reached'] is False
    arrived = content_in_photo(photo, local_move(photo, (70, 80), (10.0, -8.0), radius=10), tf, face)
    assert arrived['content_progress'][0] == pytest.approx(1.0, abs=0.1)
    assert np.hypot(*np.subtract(arrived['content_photo'][0], (80, 72))) < 1.5 and arrived['reached'] is True


def test_mean_distance_and_landmark_helpers():
    lm = np.random.default_rng(1).uniform(0, 100, (68, 2))
    assert metrics.mean_distance(lm, lm) == 0.0
    assert metrics.mean_distance(lm, lm + [3, 4]) == pytest.approx(5.0)
    with pytest.raises(InvalidPointsError):
        metrics.mean_distance(lm[:5], lm[:4])
    eyes = np.zeros((68, 2))
    eyes[42:48] = [40, 0]
    assert metrics.inter_ocular(eyes) == 40.0
    assert metrics.at_512(2.0, 128) == 8.0
    assert metrics.region_of(48) == 'mouth' and metrics.region_of(37) == 'eyes' and metrics.region_of(3) == 'jaw'
    assert metrics.direction_of((10, 10), (10, 2)) == 'up' and metrics.direction_of((10, 10), (15, 11)) == 'right'


def test_identical_images_have_fidelity_one_and_a_change_lowers_it():
    from conftest import lpips_or_skip
    lpips = lpips_or_skip('alex')
    a = textured(96, 80)
    assert metrics.image_fidelity(a, a.copy(), lpips) == pytest.approx(1.0, abs=1e-6)
    b = a.copy()
    b[20:60, 20:60] = 255 - b[20:60, 20:60]
    assert metrics.image_fidelity(a, b, lpips) < 0.9
    editable = np.zeros(a.shape[:2], bool)
    editable[15:65, 15:65] = True                              # the change is inside the editable region
    fid, psnr = metrics.outside_fidelity(a, b, editable, lpips)
    assert fid == pytest.approx(1.0, abs=1e-6) and psnr == float('inf')
    assert metrics.psnr(a, b) < 30 and metrics.psnr(a, a) == float("inf")


def test_the_assumed_editable_region_covers_the_points_and_a_margin():
    m = metrics.region_mask((100, 100), [(20, 20), (40, 20), (30, 50)], margin=5)
    assert m[20, 20] and m[30, 30] and m[50, 30] and m[16, 20] and not m[10, 20] and not m[80, 80]


# ---------------------------------------------------------------- protocols

def test_eval_content_reports_the_content_and_the_tracker(tmp_path, monkeypatch):
    """Protocol 2 end to end on a tiny random generator (mechanics: random weights move no content)."""
    from PIL import Image
    from conftest import lpips_or_skip
    from photodrag import checkpoints
    from photodrag.cli import main
    lpips_or_skip('vgg')
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    checkpoints.save_generator(checkpoints.random_generator(32), tmp_path / 'g.safetensors')
    Image.fromarray(textured(80, 100)).save(tmp_path / 'photo.png')
    out = tmp_path / 'report'
    result = CliRunner().invoke(main, ['eval', 'content', str(tmp_path / 'photo.png'), '--drag', '50,40:54,38',
                                       '--drag', '30,30:28,34', '--box', '20,10,80,70', '--recipe', 'object',
                                       '--checkpoint', str(tmp_path / 'g.safetensors'), '--projection-steps', '2',
                                       '--tuning-steps', '0', '--steps', '3', '--out', str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / 'report.json').read_text())
    assert report['protocol'] == 'content' and len(report['samples']) == 2 and report['failed'] == 0
    for s in report['samples']:
        assert {'found', 'content_distance', 'tracker_distance', 'content_progress', 'direction'} <= set(s)
        assert s['content_distance'] >= 0 and s['length'] > 0
    assert report['content_distance'] == pytest.approx(np.mean([s['content_distance'] for s in report['samples']]))
    assert report['by_direction'].keys() == {'right', 'down'}
    assert (out / 'contact_sheet.png').stat().st_size > 0


@pytest.mark.slow
@pytest.mark.spread
def test_eval_landmarks_on_two_real_faces(tmp_path, monkeypatch):
    """Protocol 1 on the shared group photo with the demo generator, a few steps (inversion
    included: the report's mechanics are tested here, not its figures): the report has its
    keys, the no-edit distance is the faces' own difference, and the MD is finite."""
    import shutil
    from conftest import lpips_or_skip, shared_photo
    from photodrag.evaluation.protocols import eval_landmarks, write_report
    pytest.importorskip('dlib')
    lpips_or_skip('vgg')
    folder = tmp_path / 'photos'
    folder.mkdir()
    shutil.copy(shared_photo('group2_codeformer_06.png'), folder)
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    from photodrag.inversion import InversionConfig
    report = eval_landmarks(folder, points=5, pairs=1, checkpoint='demo-faces', max_steps=20,
                            inversion=InversionConfig.preset('fast', projection_steps=5, tuning_steps=5))
    assert report['pairs'] == 1 and report['failed'] == 0, report['samples']
    s = report['samples'][0]
    assert s['a'] == 'group2_codeformer_06.png#0' and s['b'] == 'group2_codeformer_06.png#1'
    assert 0 < s['md_no_edit'] < 200 and np.isfinite(s['md']) and 0 < s['md_iod'] < 2
    assert 0 < s['fidelity_outside'] <= 1 and set(s['timings']) >= {'invert', 'drag', 'paste'}
    assert report['md'] == s['md'] and {p['region'] for p in s['points_detail']} == {'eyes', 'nose', 'mouth'}
    written = write_report(report, tmp_path / 'out')
    assert json.loads(written['report'].read_text())['md'] == pytest.approx(s['md'])


def test_eval_landmarks_on_the_generators_own_samples(tmp_path):
    """DragGAN's Table 1 protocol on demo-faces samples, from the command line: the report has
    the photo protocol's keys, the no-edit distance is the two samples' own difference, and
    PHOTOS_DIR and --on samples exclude each other."""
    from photodrag.cli import main
    pytest.importorskip('dlib')
    out = tmp_path / 'samples'
    r = CliRunner().invoke(main, ['eval', 'landmarks', '--on', 'samples', '--points', '1', '--pairs', '1',
                                  '--steps', '5', '--tracking', 'features', '--out', str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads((out / 'report.json').read_text())
    assert report['on'] == 'samples' and report['points'] == 1 and report['pairs'] == 1
    s = report['samples'][0]
    assert s['a'].startswith('seed') and s['points_used'] == 1 and s['steps'] <= 5
    assert 0 < s['md_no_edit'] < 200 and np.isfinite(s['md']) and report['md'] == s['md']
    assert report['drag']['tracking'] == 'features' and report['drag']['content_check'] is False
    assert (out / 'contact_sheet.png').is_file() and 'md ' in r.output
    both = CliRunner().invoke(main, ['eval', 'landmarks', str(tmp_path), '--on', 'samples', '--out', str(out)])
    assert both.exit_code != 0 and 'give no PHOTOS_DIR' in both.output
    neither = CliRunner().invoke(main, ['eval', 'landmarks', '--out', str(tmp_path / 'x')])
    assert neither.exit_code != 0 and '--on samples' in neither.output


def test_eval_dragbench_writes_results_where_the_published_scripts_read_them(tmp_path, monkeypatch):
    """DragBench end to end on a tiny made-up benchmark and a tiny random generator (mechanics)."""
    from conftest import lpips_or_skip
    from photodrag import checkpoints
    from photodrag.cli import main
    from photodrag.evaluation.dragbench import write_sample
    lpips_or_skip('vgg')
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    checkpoints.save_generator(checkpoints.random_generator(32), tmp_path / 'g.safetensors')
    bench = tmp_path / 'bench'
    mask = np.zeros((64, 80), np.uint8)
    mask[10:50, 20:70] = 1
    write_sample(bench / 'art' / 'a1', textured(64, 80, 1), [(40, 30)], [(44, 28)], mask=mask, prompt='a texture')
    write_sample(bench / 'art' / 'a2', textured(64, 80, 2), [(30, 30), (50, 20)], [(33, 33), (47, 22)], fmt='json')
    out = tmp_path / 'results'
    loads = []          # the generator is read once per run, not once per sample
    load = checkpoints.load_generator
    monkeypatch.setattr(checkpoints, 'load_generator', lambda *a, **k: loads.append(a) or load(*a, **k))
    result = CliRunner().invoke(main, ['eval', 'dragbench', str(bench), '--checkpoint', str(tmp_path / 'g.safetensors'),
                                       '--projection-steps', '2', '--tuning-steps', '0', '--steps', '2',
                                       '--out', str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / 'report.json').read_text())
    assert [s['name'] for s in report['samples']] == ['art/a1', 'art/a2'] and report['failed'] == 0
    for s in report['samples']:
        assert (out / s['name'] / 'dragged_image.png').is_file() and s['recipe'] == 'object'
        assert 0 < s['image_fidelity'] <= 1 and s['content_distance'] >= 0
    assert report['image_fidelity'] == pytest.approx(np.mean([s['image_fidelity'] for s in report['samples']]))
    assert len(report['samples'][1]['points']) == 2 and len(loads) == 1
    bad = CliRunner().invoke(main, ['eval', 'dragbench', str(bench), '--out', str(bench)])
    assert bad.exit_code == 2 and 'benchmark folder' in bad.output
