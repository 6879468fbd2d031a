"""alignment/: photo I/O, CropTransform, recipes, faces (dlib, skipped without it), paste-back."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from photodrag import alignment
from photodrag.alignment import AlignedCrop, CropTransform
from photodrag.errors import InvalidPointsError, NoFaceFoundError, PhotodragError, UnreadableImageError



def smooth_image(h=240, w=300, seed=0):
    """A textured but band-limited RGB image (what a resampling round trip can preserve)."""
    import cv2
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (h // 4, w // 4, 3)).astype(np.float32)
    img = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    return np.clip(np.rint((img - img.mean()) * 3 + 128), 0, 255).astype(np.uint8)


def rotated_quad(centre, half, angle_deg):
    a = np.deg2rad(angle_deg)
    x = np.array([np.cos(a), np.sin(a)]) * half
    y = np.array([-np.sin(a), np.cos(a)]) * half
    c = np.asarray(centre, float)
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def synthetic_crop(photo, centre, half, angle, size):
    t = CropTransform.from_quad(rotated_quad(centre, half, angle), (size, size), photo.shape[1::-1])
    return AlignedCrop(image=alignment.warp_quad(photo, t, 4), transform=t, face=None, recipe='test')


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


# ---------------------------------------------------------------- CropTransform

def test_points_round_trip_within_0_01_px():
    rng = np.random.default_rng(1)
    quads = [rotated_quad((130, 90), 60, 17), rotated_quad((20, 30), 200, -40),
             np.array([[10, 12], [5, 200], [230, 190], [220, 3.5]])]          # a true projective map
    for quad in quads:
        t = CropTransform.from_quad(quad, (512, 512), (300, 240))
        pts = rng.uniform(-50, 350, (200, 2))
        assert np.abs(t.to_photo(t.to_crop(pts)) - pts).max() < 0.01
        crop_pts = rng.uniform(0, 511, (200, 2))
        assert np.abs(t.to_crop(t.to_photo(crop_pts)) - crop_pts).max() < 0.01
        # the quad corners are the crop's outer pixel edges
        assert np.abs(t.to_crop(quad) - [[-0.5, -0.5], [-0.5, 511.5], [511.5, 511.5], [511.5, -0.5]]).max() < 1e-6


def test_transform_rejects_bad_points():
    t = CropTransform.from_quad(rotated_quad((50, 50), 20, 0), (64, 64), (100, 100))
    with pytest.raises(InvalidPointsError):
        t.to_crop([[1, 2, 3]])
    with pytest.raises(InvalidPointsError):
        t.to_crop([[np.nan, 2]])
    assert t.to_crop([10, 20]).shape == (2,)            # one point in, one point out


def test_images_and_masks_follow_the_points():
    import cv2
    t = CropTransform.from_quad(rotated_quad((150, 120), 70, 25), (128, 128), (300, 240))
    # a blob centred on a photo pixel lands (by its centroid) where to_crop says, in both directions
    photo = np.zeros((240, 300), np.float32)
    photo[102, 171] = 1
    crop = t.warp_to_crop(cv2.GaussianBlur(photo, (0, 0), 4))
    ys, xs = np.mgrid[0:128, 0:128]
    centroid = np.array([(crop * xs).sum(), (crop * ys).sum()]) / crop.sum()
    assert np.hypot(*(centroid - t.to_crop([171, 102]))) < 0.1
    rgb = np.zeros((128, 128, 3), np.uint8)
    rgb[30, 90] = 255
    back = t.warp_to_photo(cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 4)[..., 1])
    ys, xs = np.mgrid[0:240, 0:300]
    centroid = np.array([(back * xs).sum(), (back * ys).sum()]) / back.sum()
    assert np.hypot(*(centroid - t.to_photo([90, 30]))) < 0.1
    assert t.warp_to_crop(np.zeros((240, 300, 3), np.uint8)).shape == (128, 128, 3)
    # masks both ways: a disk drawn in the crop lands where the points say, zero outside the crop
    disk = np.zeros((128, 128), np.float32)
    cv2.circle(disk, (40, 80), 12, 1.0, -1)
    m = t.mask_to_photo(disk)
    assert m.shape == (240, 300) and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    cy, cx = np.argwhere(m > 0.5).mean(axis=0)
    assert np.hypot(*(np.array([cx, cy]) - t.to_photo([40, 80]))) < 0.5
    back = t.mask_to_crop(m)
    assert np.abs(back - disk)[disk_interior(disk)].max() < 0.05
    assert t.mask_to_photo(np.ones((128, 128), bool))[0, 0] == 0         # outside the crop's footprint


def disk_interior(disk):
    import cv2
    return cv2.erode(disk, np.ones((5, 5), np.uint8)) > 0


# ---------------------------------------------------------------- recipes

def test_ffhq_quad_follows_the_recipe():
    lm = np.zeros((68, 2))
    lm[36:42] = [100, 100]
    lm[42:48] = [140, 100]
    lm[48], lm[54] = [105, 150], [135, 150]
    q = alignment.ffhq_quad(lm)
    # eye_to_eye (40, 0), eye_to_mouth (0, 50): x along +x with |x| = max(80, 90) = 90, c = (120, 105)
    assert np.allclose(q, [[30, 15], [30, 195], [210, 195], [210, 15]])


def test_object_crop_with_aspect_and_padding():
    photo = smooth_image()
    crop = alignment.align(photo, (200, 150, 320, 260), size=64, recipe='car', margin=0.0)
    x0, y0, x1, y1 = crop.content
    assert (y1 - y0, x1 - x0) == (48, 64)                                # 4:3 content, letterboxed
    assert crop.image[:y0].max() == 0 and crop.image[y1:].max() == 0
    assert crop.image[y0:y1].std() > 5
    # the box (120 x 110) grows to 4:3 around its centre: 146.7 px wide -> the crop's 64 px
    half = 110 * 4 / 3 / 2
    assert np.allclose(crop.transform.to_crop([[259.5 - half, 205], [259.5 + half, 205]])[:, 0], [-0.5, 63.5])
    # the box leaves the photo: padding fades toward the median colour, no black corners
    assert crop.image[y0:y1, -8:].mean() > 40
    # the whole image when no box is given
    whole = alignment.align(photo, None, size=32, recipe='object')
    assert np.allclose(whole.transform.quad()[0], [-0.5, -30.5])


def test_recipe_for_checkpoint():
    r = alignment.recipe_for_checkpoint('stylegan2-ffhq-512')
    assert (r.name, r.face, r.size) == ('ffhq', True, 512)
    assert alignment.recipe_for_checkpoint('stylegan2-car-512').aspect == pytest.approx(4 / 3)
    assert alignment.recipe_for_checkpoint('stylegan2-afhqcat-512').name == 'afhq'
    assert alignment.recipe_for_checkpoint('stylegan2-horses-256').name == 'object'
    with pytest.raises(PhotodragError):
        alignment.align(smooth_image(), None, recipe='nope', size=32)
    with pytest.raises(PhotodragError):
        alignment.align(smooth_image(), None, recipe='object')           # no size


# ---------------------------------------------------------------- paste-back

def test_identity_paste_back_is_resampling_only():
    photo = smooth_image()
    crop = synthetic_crop(photo, (150, 118), 60, 12, 256)       # crop is 2x the photo's resolution
    result = alignment.paste_back(photo, [(crop, crop.image)])
    m = result.mask()
    assert result.pixels.dtype == np.uint8 and result.pixels.shape == photo.shape
    assert np.array_equal(result.pixels[m == 0], photo[m == 0])
    assert (m > 0).mean() > 0.1
    assert psnr(result.pixels[m > 0], photo[m > 0]) >= 40


def test_paste_several_crops_bit_identical_outside():
    photo = smooth_image(200, 360)
    crops = [synthetic_crop(photo, (80, 100), 50, -10, 128), synthetic_crop(photo, (270, 90), 45, 20, 128)]
    edits = []
    for c in crops:
        e = c.image.astype(np.int16)
        e[40:90, 40:90] = 255 - e[40:90, 40:90]                  # a strong local change
        edits.append((c, e.clip(0, 255).astype(np.uint8)))
    result = alignment.paste_back(photo, edits)
    assert len(result.masks) == 2
    m = result.mask()
    assert np.array_equal(result.pixels[m == 0], photo[m == 0])
    for c, mask in zip(crops, result.masks):
        x, y = np.round(c.transform.to_photo([64, 64])).astype(int)
        assert mask.full((360, 200))[y, x] == 1.0
        assert np.abs(result.pixels[y, x].astype(int) - photo[y, x]).max() > 30     # the edit is there
    single = alignment.paste_back(photo, edits[0])
    assert len(single.masks) == 1


def test_changed_region_covers_edit_and_caller_mask():
    photo = smooth_image()
    crop = synthetic_crop(photo, (150, 120), 70, 5, 128)
    edited = crop.image.copy()
    edited[20:40, 80:100] = 0                                    # the edit
    caller = np.zeros((128, 128), np.float32)
    caller[90:110, 20:40] = 1                                    # allowed to change, unchanged
    result = alignment.paste_back(photo, [(crop, edited, caller)])
    full = result.masks[0].full((300, 240))
    for cx, cy in [(90, 30), (30, 100)]:
        x, y = np.round(crop.transform.to_photo([cx, cy])).astype(int)
        assert full[y, x] == 1.0
    x, y = np.round(crop.transform.to_photo([64, 64])).astype(int)
    assert full[y, x] == 0.0                                     # untouched middle keeps the photo
    assert 0 < (full > 0).mean() < 0.5 * (alignment.paste_back(photo, [(crop, edited)]).mask() > 0).mean() + 0.2
    assert np.array_equal(result.pixels[full == 0], photo[full == 0])


def test_colour_matching_hides_a_tint_and_poisson_blend():
    photo = smooth_image()
    crop = synthetic_crop(photo, (150, 120), 70, 8, 128)
    tinted = np.clip(crop.image.astype(int) + [18, 6, -12], 0, 255).astype(np.uint8)
    steps = {}
    for kwargs in ({'colour_match': False}, {}, {'blend': 'poisson'}):
        r = alignment.paste_back(photo, [(crop, tinted)], **kwargs)
        m = r.mask()
        assert np.array_equal(r.pixels[m == 0], photo[m == 0])
        band = (m > 0.05) & (m < 0.95)
        steps[str(kwargs)] = np.abs((r.pixels[band].astype(float) - photo[band]).mean(axis=0)).max()
    assert steps["{'colour_match': False}"] > 6
    assert steps['{}'] < 1.5
    assert steps["{'blend': 'poisson'}"] < 1.5


def test_paste_back_validates():
    photo = smooth_image()
    crop = synthetic_crop(photo, (150, 120), 70, 8, 64)
    with pytest.raises(PhotodragError):
        alignment.paste_back(photo, [(crop, np.zeros((32, 32, 3), np.uint8))])
    with pytest.raises(PhotodragError):
        alignment.paste_back(photo[:100], [(crop, crop.image)])
    with pytest.raises(PhotodragError):
        alignment.paste_back(photo, [(crop, crop.image, np.full((64, 64), 2.0))])
    with pytest.raises(PhotodragError):
        alignment.paste_back(photo, [(crop, crop.image)], blend='magic')


# ---------------------------------------------------------------- photo I/O

def save(img, path, **kw):
    img.save(path, **kw)
    return path


def test_read_applies_exif_orientation_and_resets_the_tag(tmp_path):
    a = np.zeros((40, 60, 3), np.uint8)
    a[:, :10] = [255, 0, 0]                                      # a red band on the left
    exif = Image.Exif()
    exif[0x0112] = 6                                             # "rotate 90 CW to display"
    exif[0x010F] = 'TestCam'
    path = save(Image.fromarray(a), tmp_path / 'rot.jpg', exif=exif.tobytes(), quality=90)
    photo = alignment.read_photo(path)
    assert photo.pixels.shape == (60, 40, 3)                     # upright: portrait now
    assert photo.pixels[:8, :, 0].mean() > 200 and photo.pixels[-8:, :, 0].mean() < 60    # red on top
    kept = Image.Exif()
    kept.load(photo.exif)
    assert kept[0x0112] == 1 and kept[0x010F] == 'TestCam'
    assert photo.format == 'JPEG' and abs(photo.jpeg_quality - 90) <= 1


def test_read_modes(tmp_path):
    # RGBA: composited over white, not truncated
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, ..., 3] = 0
    rgba[4:, ..., 3] = 128
    p = alignment.read_photo(save(Image.fromarray(rgba, 'RGBA'), tmp_path / 'a.png')).pixels
    assert p[:4].tolist() == [[[255, 255, 255]] * 8] * 4
    assert np.allclose(p[4:, :, 0], 228, atol=1) and np.allclose(p[4:, :, 1], 127, atol=1)
    # LA and palette with transparency
    la = Image.fromarray(np.dstack([np.full((4, 4), 0, np.uint8), np.full((4, 4), 0, np.uint8)]), 'LA')
    assert alignment.read_photo(save(la, tmp_path / 'la.png')).pixels.min() == 255
    pal = Image.new('P', (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.info['transparency'] = 0
    pal.putpixel((0, 0), 0)
    p = alignment.read_photo(save(pal, tmp_path / 'p.png', transparency=0)).pixels
    assert p[0, 0].tolist() == [255, 255, 255] and p[1, 1].tolist() == [10, 20, 30]
    # grayscale
    g = alignment.read_photo(save(Image.fromarray(np.full((5, 6), 77, np.uint8)), tmp_path / 'g.jpg')).pixels
    assert g.shape == (5, 6, 3) and abs(int(g[2, 2, 0]) - 77) <= 2 and (g[..., 0] == g[..., 2]).all()
    # 16-bit gray: scaled (v / 257), not clipped at 255
    g16 = Image.fromarray(np.array([[0, 257 * 100, 65535, 30000]], np.uint16))
    assert g16.mode.startswith('I;16')
    p = alignment.read_photo(save(g16, tmp_path / 'g16.png')).pixels
    assert p[0, :, 0].tolist() == [0, 100, 255, 117]
    # 48-bit RGB (16-bit per channel) PNG and TIFF
    import cv2
    rgb16 = np.zeros((4, 4, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 257 * 60, 257 * 200
    for suffix in ('.png', '.tif'):
        path = str(tmp_path / f'rgb16{suffix}')
        assert cv2.imwrite(path, rgb16[..., ::-1])
        p = alignment.read_photo(path).pixels
        assert np.abs(p[0, 0].astype(int) - [255, 60, 200]).max() <= 1, suffix
    # CMYK JPEG (Pillow writes Adobe-style inverted CMYK; reading must undo it)
    cmyk = Image.new('CMYK', (8, 8), (0, 255, 255, 0))                  # pure red in CMYK
    p = alignment.read_photo(save(cmyk, tmp_path / 'c.jpg', quality=95)).pixels
    assert p[4, 4, 0] > 200 and p[4, 4, 1] < 60 and p[4, 4, 2] < 60
    # as_rgb on arrays
    assert alignment.as_rgb(np.ones((3, 3), np.float32)).tolist() == [[[255] * 3] * 3] * 3
    with pytest.raises(UnreadableImageError):
        alignment.as_rgb(np.zeros((3, 3, 2), np.uint8))


def test_unreadable_files(tmp_path):
    good = io.BytesIO()
    Image.fromarray(smooth_image(64, 64)).save(good, 'JPEG')
    cases = {'empty.jpg': b'', 'text.jpg': b'hello, not an image\n' * 10,
             'truncated.jpg': good.getvalue()[:len(good.getvalue()) // 2],
             'corrupt.png': b'\x89PNG\r\n\x1a\n' + os.urandom(200)}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UnreadableImageError, match=name):
            alignment.read_photo(path)
    with pytest.raises(UnreadableImageError, match='truncated'):
        alignment.read_photo(tmp_path / 'truncated.jpg')
    with pytest.raises(UnreadableImageError, match='no such file'):
        alignment.read_photo(tmp_path / 'missing.jpg')


def test_decompression_bomb_guard(tmp_path):
    path = save(Image.new('RGB', (400, 300)), tmp_path / 'big.png')
    with pytest.raises(UnreadableImageError, match='megapixels exceeds'):
        alignment.read_photo(path, max_pixels=100_000)
    assert alignment.read_photo(path, max_pixels=None).pixels.shape == (300, 400, 3)


def test_write_keeps_metadata_and_refuses_to_overwrite(tmp_path):
    from PIL import ImageCms
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
    exif = Image.Exif()
    exif[0x010F] = 'TestCam'
    src = save(Image.fromarray(smooth_image(48, 64)), tmp_path / 'in.jpg', quality=83, exif=exif.tobytes(),
               icc_profile=icc, subsampling=0)
    photo = alignment.read_photo(src)
    assert photo.jpeg_quality == 83 and photo.jpeg_subsampling == 0 and photo.icc_profile == icc
    with pytest.raises(PhotodragError, match='refusing to write over'):
        alignment.write_photo(photo, src)
    with pytest.raises(PhotodragError, match='refusing to write over'):
        alignment.write_photo(photo.pixels, tmp_path / '.' / 'in.jpg', like=photo)
    out = alignment.write_photo(photo.pixels, tmp_path / 'out.jpg', like=photo)
    again = alignment.read_photo(out)
    assert again.jpeg_quality == 83 and again.jpeg_subsampling == 0 and again.icc_profile == icc
    kept = Image.Exif()
    kept.load(again.exif)
    assert kept[0x010F] == 'TestCam'
    assert psnr(again.pixels, photo.pixels) > 35
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []      # no temporary left
    png = alignment.read_photo(alignment.write_photo(photo.pixels, tmp_path / 'out.png', like=photo))
    assert png.format == 'PNG' and np.array_equal(png.pixels, photo.pixels) and png.icc_profile == icc
    noext = alignment.write_photo(photo.pixels, tmp_path / 'noext', like=photo)
    assert Image.open(noext).format == 'JPEG'
    with pytest.raises(PhotodragError, match='format'):
        alignment.write_photo(photo.pixels, tmp_path / 'noext2')


# ---------------------------------------------------------------- faces (dlib, real photos)

def _photo(name):
    from conftest import shared_photo
    return alignment.read_photo(shared_photo(name))


def _needs_dlib():
    pytest.importorskip('dlib')
    pytest.importorskip('face_recognition_models')


FACE_COUNTS = {'group4_codeformer_02.png': 4, 'group2_codeformer_06.png': 2, 'group3_family_gfpgan_10045.png': 3,
               'group4_codeformer_00.jpg': 4, 'group4_tiny_codeformer_01.jpg': 4, 'portrait_facexlib_test2.jpg': 1,
               'portrait_lowres_codeformer_04.jpg': 1, 'horse_e4e.jpg': 0}


@pytest.mark.parametrize('name', sorted(FACE_COUNTS))
def test_face_counts_of_the_test_photos(name):
    _needs_dlib()
    faces = alignment.detect_faces(_photo(name))
    assert len(faces) == FACE_COUNTS[name]
    assert [f.index for f in faces] == list(range(len(faces)))
    assert [f.centre[0] for f in faces] == sorted(f.centre[0] for f in faces)      # left to right
    for f in faces:
        assert f.landmarks.shape == (68, 2) and f.box[2] > f.box[0]


def test_the_badge_on_the_astronauts_suit_is_not_numbered_as_a_face():
    _needs_dlib()
    from photodrag.pipeline.demo import DEMO_PHOTO
    photo = alignment.read_photo(DEMO_PHOTO)
    # dlib's HOG detector finds the mission patch as a weak detection, which is not numbered
    faces, weak = alignment.detect_faces(photo, detector=alignment.DlibDetector(), with_weak=True)
    assert [f.index for f in faces] == [0] and faces[0].score > 1 and faces[0].box[1] < 150     # her face, at the top
    assert len(weak) == 1 and weak[0].score < alignment.WEAK_SCORE and weak[0].box[1] > 300    # the mission patch
    assert alignment.eye_contrast(photo.pixels, faces[0]) > 1 > alignment.eye_contrast(photo.pixels, weak[0])
    # the default detector (RetinaFace) does not take the patch for a face at all
    faces, weak = alignment.detect_faces(photo, with_weak=True)
    assert len(faces) == 1 and faces[0].box[1] < 150 and faces[0].score > 0.99 and weak == []


def test_the_default_detector_finds_faces_cut_by_the_frame_and_in_the_dark():
    """RetinaFace (the default) finds the astronaut's face with 40 % of it outside the photo,
    and darkened as an underexposed or dark-skinned face reads; its landmarks agree with the HOG-box fit (to 0.03 inter-ocular
    distances) where both find the face."""
    _needs_dlib()
    from photodrag.pipeline.demo import DEMO_PHOTO
    pixels = alignment.read_photo(DEMO_PHOTO).pixels
    hog = alignment.DlibDetector()
    (whole,) = alignment.detect_faces(pixels)
    (by_hog,) = alignment.detect_faces(pixels, detector=hog)
    lm, ref = np.asarray(whole.landmarks), np.asarray(by_hog.landmarks)
    iod = np.hypot(*(ref[36:42].mean(0) - ref[42:48].mean(0)))
    assert np.hypot(*(lm - ref).T).mean() < 0.03 * iod
    cut = np.ascontiguousarray(pixels[:, int(whole.box[0] + 0.4 * whole.width):])
    (found,) = alignment.detect_faces(cut)
    assert found.box[0] < 5 and found.box[1] < 150             # the face's remaining 60 %, at the left edge
    dark = np.clip(255 * 0.35 * (pixels / 255.0) ** 2.2, 0, 255).astype(np.uint8)
    (found,) = alignment.detect_faces(dark)
    assert np.hypot(*(found.centre - whole.centre)) < 0.1 * whole.width


def test_people_are_found_head_to_foot_from_their_faces():
    """The full-body recipe's people: each from their face, head to feet, in the faces' order;
    none where there is no face."""
    _needs_dlib()
    photo = _photo('fullbody_stylegan_human_test.jpg')
    (person,) = alignment.detect_people(photo)
    hand = (390, 210, 1010, 1815)       # drawn by hand (docs/models.md); her right shoe sticks out alone
    assert abs(person[0] - hand[0]) < 60 and abs(person[1] - hand[1]) < 40 and person[3] > 1760
    assert 840 <= person[2] <= hand[2] + 20
    family = _photo('group3_family_gfpgan_10045.png')
    faces = alignment.detect_faces(family)
    people = alignment.detect_people(family, faces)
    assert len(people) == 3
    for f, p in zip(faces, people):
        assert p[0] <= f.box[0] and p[1] <= f.box[1] and p[2] >= f.box[2] and p[3] > f.box[3] + 4 * (f.box[3] - f.box[1])
    father, girl, _ = people
    assert father[3] > 950 and girl[3] > 950 and girl[1] > 350          # to their shoes; she is short
    assert alignment.select_person(people, point=(400, 700)) == girl    # the smaller box holding the point
    assert alignment.select_person(people) in (father, people[2])       # the largest
    assert alignment.detect_people(_photo('horse_e4e.jpg')) == []


def test_a_replaced_detector_model_is_refused_by_name(tmp_path, monkeypatch):
    from photodrag.alignment import retinaface
    bad = tmp_path / 'retinaface-mobilenet0.25.onnx'
    bad.write_bytes(retinaface.MODEL.read_bytes()[:-10] + b'0123456789')
    monkeypatch.setattr(retinaface, 'MODEL', bad)
    retinaface._network.cache_clear()
    try:
        with pytest.raises(PhotodragError, match='sha256 differs'):
            retinaface.find_boxes(np.zeros((64, 64, 3), np.uint8))
    finally:
        retinaface._network.cache_clear()


def test_aligned_crop_realigns_to_nearly_the_identity():
    _needs_dlib()
    photo = _photo('portrait_aligned1024_e4e_input.jpg')
    crop = alignment.align(photo, None, size=1024, supersample=False)
    corners = np.array([[-0.5, -0.5], [-0.5, 1023.5], [1023.5, 1023.5], [1023.5, -0.5]])
    displacement = np.hypot(*(crop.transform.quad() - corners).T)
    assert displacement.max() < 16          # measured 10.8 px: 1 % of the crop (landmark noise)
    assert abs(crop.transform.scale - 1) < 0.01


def test_real_face_align_paste_identity_and_selection():
    _needs_dlib()
    photo = _photo('portrait_lowres_codeformer_04.jpg')
    faces = alignment.detect_faces(photo)
    crop = alignment.align(photo, faces[0], size=256)
    assert crop.image.shape == (256, 256, 3) and crop.recipe == 'ffhq' and crop.face is faces[0]
    eyes = crop.transform.to_crop(faces[0].landmarks[36:48])
    assert abs(eyes[:, 1].mean() - 256 * 0.4) < 256 * 0.08          # FFHQ puts the eyes ~40 % down
    result = alignment.paste_back(photo, [(crop, crop.image)])
    m = result.mask()
    assert np.array_equal(result.pixels[m == 0], photo.pixels[m == 0])
    assert psnr(result.pixels[m > 0], photo.pixels[m > 0]) >= 40
    # a box instead of a face: landmarks from the predictor, the same crop
    again = alignment.align(photo, faces[0].box, size=256)
    assert np.abs(again.transform.quad() - crop.transform.quad()).max() < 1e-6
    # selection
    group = alignment.detect_faces(_photo('group4_tiny_codeformer_01.jpg'))
    assert alignment.select_face(group, index=2) is group[2]
    assert alignment.select_face(group, point=group[3].centre) is group[3]
    with pytest.raises(NoFaceFoundError, match='4 face'):
        alignment.select_face(group, index=4)


def test_no_face_found_is_a_clear_error():
    _needs_dlib()
    with pytest.raises(NoFaceFoundError, match='upsample'):
        alignment.align(smooth_image(120, 160), None, size=64)
    with pytest.raises(NoFaceFoundError):
        alignment.select_face([])


def test_ffhq_geometry_matches_the_reference_quad_warp():
    """The reference script hands quad + 0.5 to PIL's QUAD transform (pixel-edge coordinates);
    our crop, without supersampling, must be the same picture (measured 50 dB, mean 0.5 level
    from PIL's truncating bilinear)."""
    _needs_dlib()
    photo = _photo('group4_codeformer_02.png')
    face = alignment.detect_faces(photo)[1]
    crop = alignment.align(photo, face, size=128, supersample=False)
    quad = alignment.ffhq_quad(face.landmarks)
    ref = Image.fromarray(photo.pixels).transform((128, 128), Image.Transform.QUAD, tuple((quad + 0.5).ravel()),
                                                   Image.Resampling.BILINEAR)
    assert psnr(np.asarray(ref), crop.image) > 42


def test_scaled_quad_recipes_invert_their_measurement():
    from photodrag.alignment.recipes import DIGIFACE_QUAD, quad_relative_to_crop, scale_quad
    # a face whose FFHQ quad is an axis-aligned square inside a 256-px crop
    quad = np.array([[40.0, 30.0], [40.0, 230.0], [240.0, 230.0], [240.0, 30.0]])
    scale, shift = quad_relative_to_crop(quad, 256)
    crop_square = np.array([[-0.5, -0.5], [-0.5, 255.5], [255.5, 255.5], [255.5, -0.5]])
    np.testing.assert_allclose(scale_quad(quad, scale, shift), crop_square, atol=1e-9)
    np.testing.assert_allclose(scale_quad(quad), quad)                       # (1, (0, 0)) is FFHQ itself
    # the demo generator's recipe: a tighter crop than FFHQ's, about centred on the same point
    rec = alignment.recipe_for_checkpoint('demo-faces')
    assert rec.name == 'digiface' and rec.size == 128 and rec.face
    assert (rec.quad_scale, rec.quad_shift) == DIGIFACE_QUAD and 0.6 < rec.quad_scale < 0.9


def test_a_checkpoint_file_carries_its_crop_recipe(tmp_path):
    from photodrag import checkpoints
    from conftest import make_generator
    G = make_generator(img_resolution=32)
    info = {'recipe': 'digiface', 'quad_scale': 0.7, 'quad_shift': [0.01, -0.02]}
    path = checkpoints.save_generator(G, tmp_path / 'g.safetensors', extra={'alignment': info})
    loaded = checkpoints.load_generator(path)
    assert loaded.crop_recipe == info
    rec = alignment.recipe_from_metadata(loaded.crop_recipe, size=32)
    assert (rec.name, rec.face, rec.size, rec.quad_scale, rec.quad_shift) == ('digiface', True, 32, 0.7, (0.01, -0.02))
    assert checkpoints.load_generator(checkpoints.save_generator(G, tmp_path / 'plain.safetensors')).crop_recipe is None
    resaved = checkpoints.save_generator(loaded, tmp_path / 'resaved.safetensors')     # e.g. `checkpoints convert`
    assert checkpoints.load_generator(resaved).crop_recipe == info
    with pytest.raises(PhotodragError, match='does not know'):
        alignment.recipe_from_metadata({'recipe': 'unicorn'})
    from photodrag.checkpoints.native import CROP_RECIPES       # every name a checkpoint may record has a crop
    assert all(alignment.recipe_from_metadata({'recipe': name}, size=32).size == 32 for name in CROP_RECIPES)
    # recipe_for: a registry name's entry, else the file's record, else FFHQ; at G's size
    rec = alignment.recipe_for(str(path), loaded)
    assert (rec.name, rec.size, rec.quad_scale) == ('digiface', 32, 0.7)
    assert alignment.recipe_for('demo-faces-256', size=256) == alignment.recipe_for_checkpoint('demo-faces', size=256)
    plain = checkpoints.load_generator(tmp_path / 'plain.safetensors')
    assert alignment.recipe_for(tmp_path / 'plain.safetensors', plain).name == 'ffhq'
    assert alignment.recipe_for(None, plain).size == 32


def test_flow_transfer_moves_the_photos_own_pixels():
    """A blurry 'generator' moves a patch by 4 crop px: with transfer='flow' the photo's sharp
    pixels move (sharpness kept); with 'pixels' the blurry rendering is pasted."""
    import cv2
    rng = np.random.default_rng(3)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8), (0, 0), 0.7)
    crop = alignment.align(photo, (40, 40, 160, 160), size=120, recipe='object', margin=0.0, supersample=False)
    reference = cv2.GaussianBlur(crop.image, (0, 0), 2.0)            # what a blurry generator reconstructs
    edited = reference.copy()
    edited[40:80, 44:84] = reference[40:80, 40:80]                  # the drag moved this patch 4 px right
    results = {}
    for transfer in ('flow', 'pixels'):
        cfg = alignment.PasteConfig(transfer=transfer)
        results[transfer] = alignment.paste_back(photo, [alignment.Edit(crop, edited, reference=reference)], cfg)
    flow, pixels = results['flow'].pixels, results['pixels'].pixels
    region = (slice(95, 115), slice(100, 120))                     # inside the moved patch, in the photo
    sharp = lambda a: float(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.CV_32F)[region].var())  # noqa
    assert sharp(flow) > 0.5 * sharp(photo) > 2 * sharp(pixels)
    from photodrag.evaluation.metrics import content_shift
    found = content_shift(photo, flow, (105.0, 105.0), (109.0, 105.0))
    assert abs(found[0] - 109) <= 1 and abs(found[1] - 105) <= 1     # the photo's own texture moved 4 px
    untouched = results['flow'].mask() == 0
    assert np.array_equal(flow[untouched], photo[untouched])
    with pytest.raises(PhotodragError, match='transfer'):
        alignment.PasteConfig(transfer='teleport')


def _opened_mouth(cast: float):
    """(photo, crop, reference, edited, the teeth's photo rows and columns): a skin-like photo
    with a dark closed mouth, a blurry 'generator' reconstruction of its crop, and an edit in
    which the lower half moved 6 crop px down and teeth fill the gap the motion uncovered; with
    `cast` > 0 the generator also turns the whole face that much greyer and 12 levels darker,
    as the demo generator does when a drag goes on."""
    import cv2
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.integers(60, 200, (240, 240, 3), dtype=np.uint8), (0, 0), 1.2)
    photo = (texture.astype(np.float32) * 0.4 + np.array([200, 150, 120]) * 0.6).astype(np.uint8)
    photo[118:122, 80:160] = (90, 40, 40)                                   # the closed mouth
    crop = alignment.align(photo, (40, 40, 200, 200), size=128, recipe='object', margin=0.0, supersample=False)
    reference = cv2.GaussianBlur(crop.image, (0, 0), 1.5)
    edited = reference.astype(np.float32)
    edited[70:] = reference[64:-6]                                          # the lower half, 6 px down
    edited[64:70, 24:104] = (235, 235, 225)                                 # teeth where the mouth opened
    if cast:
        edited = edited * (1 - cast) + cast * edited.mean(axis=2, keepdims=True) - 12
    edited = np.clip(edited, 0, 255).astype(np.uint8)
    return photo, crop, reference, edited, (slice(121, 127), slice(75, 165))


def test_an_opening_mouth_brings_its_teeth_but_not_the_generators_colour_cast():
    """What the motion uncovers comes from the generator (teeth as a mouth opens; with residual
    'none' the gap shows stretched skin), but only as it differs from its surroundings: a grey
    cast the generator lays over the whole face does not reach the photo through the uncovered
    pixels (on the demo's drag it had painted a grey blotch on the astronaut's cheek)."""
    teeth = {}
    for cast in (0.0, 0.5):
        photo, crop, reference, edited, where = _opened_mouth(cast)
        edit = alignment.Edit(crop, edited, reference=reference)
        for residual in ('disoccluded', 'none'):
            out = alignment.paste_back(photo, [edit], alignment.PasteConfig(residual=residual)).pixels
            teeth[cast, residual] = float(out[where].astype(np.float32).mean())
            above = (slice(60, 110), slice(60, 180))                       # skin the edit leaves in place
            assert abs(float((out[above].astype(np.float32) - photo[above]).mean())) < 1.0
    there = float(photo[where].astype(np.float32).mean())                  # 132 grey levels
    assert teeth[0.0, 'disoccluded'] > there + 60 and teeth[0.0, 'none'] < there + 30, (there, teeth)
    # 228.3 without the cast, 228.5 with it (before the drift was taken out: 228.3 and 217.6)
    assert abs(teeth[0.5, 'disoccluded'] - teeth[0.0, 'disoccluded']) < 3.0, teeth


@pytest.mark.parametrize('fmt', ['GIF', 'TIFF'])
def test_animations_and_multi_page_files_are_refused_clearly(tmp_path, fmt):
    from PIL import Image
    frames = [Image.new('RGB', (40, 30), c) for c in ('red', 'blue')]
    path = tmp_path / f'two.{fmt.lower()}'
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(UnreadableImageError, match='of 2 frames'):
        alignment.read_photo(path)
    frames[0].save(tmp_path / f'one.{fmt.lower()}', format=fmt)
    assert alignment.read_photo(tmp_path / f'one.{fmt.lower()}').size == (40, 30)
