"""The local editable region: its geometry follows the drags and scales with the face, and
paste-back never touches a pixel outside it."""

import numpy as np
import pytest

from photodrag import alignment
from photodrag.pipeline import checks
from photodrag.pipeline.config import EditConfig


def test_the_region_follows_the_drags_and_scales_with_the_face():
    drags = [((100.0, 100.0), (110.0, 100.0))]
    small = checks.drag_region(drags, face_width=100, size=(300, 200))
    assert small.shape == (200, 300) and small.dtype == np.float32
    r = checks.REGION_FACE * 100 + checks.REGION_DRAG * 10                 # 20 px around the path
    ramp = checks.REGION_FEATHER * 100
    assert small[100, 100] == small[100, 105] == small[100, 110] == 1.0     # along the drag's path
    assert small[100 - int(r) + 1, 105] == 1.0 and small[100, 110 + int(r) - 1] == 1.0
    assert 0 < small[100, int(110 + r + ramp / 2)] < 1                     # the soft border
    assert small[100, int(110 + r + ramp) + 2] == 0 and small[10, 10] == 0
    big = checks.drag_region(drags, face_width=200, size=(300, 200))
    assert big.sum() > 1.5 * small.sum() and (big >= small).all()          # a larger face, a larger region
    longer = checks.drag_region([((100.0, 100.0), (130.0, 100.0))], face_width=100, size=(300, 200))
    assert longer[100, 145] == 1.0 and small[100, 145] < 1.0               # a longer drag reaches farther
    two = checks.drag_region(drags + [((250.0, 50.0), (250.0, 40.0))], face_width=100, size=(300, 200))
    assert two[45, 250] == 1.0 and two[100, 105] == 1.0 and two[100, 180] == 0


def test_paste_back_never_changes_a_pixel_outside_the_limit():
    rng = np.random.default_rng(0)
    photo = alignment.Photo(pixels=rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    crop = alignment.align(photo, (40, 20, 120, 100), size=32, recipe='object')
    edited = 255 - crop.image                                               # the edit changes every pixel
    limit = checks.drag_region([((80.0, 60.0), (86.0, 60.0))], face_width=80, size=(160, 120))
    free = alignment.paste_back(photo, [alignment.Edit(crop, edited, reference=crop.image)])
    bound = alignment.paste_back(photo, [alignment.Edit(crop, edited, reference=crop.image, limit=limit)])
    assert (free.pixels[limit == 0] != photo.pixels[limit == 0]).any()      # without the limit the change spreads
    np.testing.assert_array_equal(bound.pixels[limit == 0], photo.pixels[limit == 0])
    assert (bound.pixels[limit == 1] != photo.pixels[limit == 1]).any()     # inside, the edit is pasted
    assert (bound.mask() <= limit + 1e-6).all()


def test_the_region_is_a_setting():
    assert EditConfig().region == 'local' and EditConfig(region='whole').region == 'whole'
    from photodrag.errors import InvalidSettingsError
    with pytest.raises(InvalidSettingsError, match='region'):
        EditConfig(region='everywhere')


@pytest.mark.slow
def test_a_mouth_drag_on_the_astronaut_leaves_the_rest_of_the_photo_alone(shared_inversions, monkeypatch):
    """The issue's evidence: both mouth corners in and down by 6 % of the face width, with the
    demo generator. With the local region (the default) every pixel farther than 0.3 face
    widths from the mouth is the input's, the re-detected eye landmarks stay within 0.5 px (mean,
    sub-pixel), and the mouth corners' content still moves as far as with the whole face free."""
    import cv2
    from conftest import lpips_or_skip
    from photodrag import pipeline
    from photodrag.pipeline import demo
    from photodrag.evaluation.metrics import photo_landmarks
    pytest.importorskip('dlib')
    lpips_or_skip('vgg')
    monkeypatch.setenv('PHOTODRAG_CACHE', str(shared_inversions))   # one inversion, shared by both edits
    photo, face = demo.demo_face()
    lm = np.asarray(face.landmarks)
    width = float(np.hypot(*(lm[16] - lm[0])))
    drags = demo.demo_drags(face, amount=0.06, expression='relax')
    mouth = np.zeros(photo.pixels.shape[:2], np.uint8)
    cv2.fillConvexPoly(mouth, cv2.convexHull(np.round(lm[48:68]).astype(np.int32)), 1)
    far = cv2.distanceTransform(1 - mouth, cv2.DIST_L2, 5) > 0.3 * width
    lm0 = photo_landmarks(photo.pixels, face)          # sub-pixel, as the results are measured
    progress = {}
    for region in ('local', 'whole'):
        result = pipeline.edit(photo, pipeline.FaceEdit(face=face.index, drags=drags), quality='fast', region=region)
        after = photo_landmarks(result.pixels, face)
        # where each corner's content went in the output photo (its patch found again), as the
        # record and the CLI report it
        progress[region] = result.record.faces[0].drag['content_progress']
        if region == 'local':
            assert result.record.faces[0].mask['kind'] == 'local' and result.record.config['region'] == 'local'
            np.testing.assert_array_equal(result.pixels[far], photo.pixels[far])
            assert np.hypot(*(after[36:48] - lm0[36:48]).T).mean() < 0.5
            assert result.faces[0].region is not None and (result.blend_mask <= result.faces[0].region + 1e-6).all()
    # the corners' content moves as far with the region as with the whole face free: 0.27 / 0.49
    # of the way for both on one thread (as the parallel workers run), 0.17 / 0.62 on two (`-n 0`:
    # the inversion's and the drag's sums run in another order). dlib's corners refit in the
    # input's box are not the ruler here: the pure motion of this edit moves them 0.16 / 0.31,
    # and before the generator's colour drift was taken out of the paste's residual its grey
    # paint on the cheek moved them to 0.32 / 0.41 without moving the corner's pixels
    local, whole = np.mean(progress['local']), np.mean(progress['whole'])
    assert min(progress['local']) >= 0.1 and local >= 0.3 and local >= whole - 0.03, progress
