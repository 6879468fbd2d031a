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
    """Protocol 1 on the shared group photo with the demo generator, a few steps: the report has
    its keys, the no-edit distance is the faces' own difference, and the MD is finite."""
    import shutil
    from conftest import lpips_or_skip, shared_photo
    from photodrag.evaluation.protocols import eval_landmarks, write_report
    pytest.importorskip('dlib')
    lpips_or_skip('vgg')
    folder = tmp_path / 'photos'
    folder.mkdir()
    shutil.copy(shared_photo('group2_codeformer_06.png'), folder)
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path / 'cache'))
    report = eval_landmarks(folder, points=5, pairs=1, checkpoint='demo-faces', quality='fast', max_steps=20)
    assert report['pairs'] == 1 and report['failed'] == 0, report['samples']
    s = report['samples'][0]
    assert s['a'] == 'group2_codeformer_06.png#0' and s['b'] == 'group2_codeformer_06.png#1'
    assert 0 < s['md_no_edit'] < 200 and np.isfinite(s['md']) and 0 < s['md_iod'] < 2
    assert 0 < s['fidelity_outside'] <= 1 and set(s['timings']) >= {'invert', 'drag', 'paste'}
    assert report['md'] == s['md'] and {p['region'] for p in s['points_detail']} == {'eyes', 'nose', 'mouth'}
    written = write_report(report, tmp_path / 'out')
    assert json.loads(written['report'].read_text())['md'] == pytest.approx(s['md'])


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
