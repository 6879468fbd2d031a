"""Honest pixels for JPEGs: an edit written back as JPEG keeps the input's coded blocks
(DCT coefficients) wherever the pixels are the input's, so those regions decode bit-identical
instead of being re-encoded (which changes a third of a photo's pixels, far from the face)."""

import numpy as np
import pytest
from PIL import Image

from photodrag import alignment
from photodrag.pipeline.demo import DEMO_PHOTO

jpeglib = pytest.importorskip('jpeglib')


def _jpeg(path, subsampling=2, orientation=1, size=(509, 437), quality=85):
    img = Image.open(DEMO_PHOTO).convert('RGB').crop((0, 0) + size)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = 'photodrag test camera'
    img.save(path, quality=quality, subsampling=subsampling, exif=exif.tobytes())
    return alignment.read_photo(path)


def _mcu_changed(before: np.ndarray, after: np.ndarray, mh: int, mw: int) -> np.ndarray:
    """Which MCUs (mh x mw pixel squares) hold a pixel that differs."""
    H, W = before.shape[:2]
    pad = np.zeros((-(-H // mh) * mh, -(-W // mw) * mw), bool)
    pad[:H, :W] = np.any(before != after, axis=2)
    return pad.reshape(pad.shape[0] // mh, mh, pad.shape[1] // mw, mw).any(axis=(1, 3))


def _blocks_equal(a, b, component, mcus, v, h):
    """Per block of `component`: coefficients equal; and the block mask of the untouched MCUs."""
    x, y = getattr(a, component), getattr(b, component)
    same = (x == y).all(axis=(2, 3))
    untouched = ~np.repeat(np.repeat(mcus, v, 0), h, 1)[:same.shape[0], :same.shape[1]]
    return same, untouched


def _check_kept(src_path, out_path, before, after, mh, mw):
    a, b = jpeglib.read_dct(str(src_path)), jpeglib.read_dct(str(out_path))
    mcus = _mcu_changed(before, after, mh, mw)
    for component, (v, h) in zip(('Y', 'Cb', 'Cr'), np.asarray(a.samp_factor).tolist()):
        same, untouched = _blocks_equal(a, b, component, mcus, v, h)
        assert same[untouched].all(), f'{component}: {int((~same[untouched]).sum())} untouched blocks changed'
        assert not same[~untouched].all()               # the edited blocks were coded anew
    return mcus


@pytest.mark.parametrize('subsampling,mcu', [(2, (16, 16)), (1, (8, 16)), (0, (8, 8))])
def test_untouched_blocks_keep_their_coefficients_and_pixels(tmp_path, subsampling, mcu):
    photo = _jpeg(tmp_path / 'in.jpg', subsampling)
    edited = photo.pixels.copy()
    edited[100:180, 120:230] = 255 - edited[100:180, 120:230]
    details = {}
    alignment.write_photo(edited, tmp_path / 'out.jpg', like=photo, details=details)
    info = details['encoding']
    assert info['method'] == 'kept-blocks', info
    mcus = _check_kept(tmp_path / 'in.jpg', tmp_path / 'out.jpg', photo.pixels, edited, *mcu)
    assert info['mcus_recoded'] == int(mcus.sum()) and info['mcus'] == mcus.size
    out = alignment.read_photo(tmp_path / 'out.jpg').pixels
    recoded = np.repeat(np.repeat(mcus, mcu[0], 0), mcu[1], 1)[:out.shape[0], :out.shape[1]]
    differs = np.any(out != photo.pixels, axis=2)
    seam = np.zeros_like(recoded)
    if subsampling:                     # chroma interpolated across a block edge: one pixel beside it
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                seam |= np.roll(recoded, (dy, dx), axis=(0, 1))
        seam &= ~recoded
    assert not differs[~recoded & ~seam].any()
    assert int((differs & seam).sum()) == info['seam_pixels_changed']
    # what the whole-image re-encoding of before does to the same regions
    Image.fromarray(edited).save(tmp_path / 'plain.jpg', quality=photo.jpeg_quality,
                                 subsampling=subsampling)
    plain = np.asarray(Image.open(tmp_path / 'plain.jpg').convert('RGB'))
    assert np.any(plain != photo.pixels, axis=2)[~recoded & ~seam].mean() > 0.02     # ours: 0


def test_rotated_jpeg_keeps_its_blocks_and_orientation(tmp_path):
    photo = _jpeg(tmp_path / 'in.jpg', 2, orientation=6)
    assert photo.pixels.shape[:2] == (509, 437)             # upright
    edited = photo.pixels.copy()
    edited[200:260, 100:200] = 0
    details = {}
    alignment.write_photo(edited, tmp_path / 'out.jpg', like=photo, details=details)
    assert details['encoding']['method'] == 'kept-blocks' and details['encoding']['orientation'] == 6
    with Image.open(tmp_path / 'out.jpg') as im:
        assert im.getexif()[0x0112] == 6 and im.getexif()[0x010F] == 'photodrag test camera'
    again = alignment.read_photo(tmp_path / 'out.jpg')
    assert again.pixels.shape == photo.pixels.shape
    stored = [np.asarray(Image.fromarray(p).transpose(Image.Transpose.ROTATE_90)) for p in (photo.pixels, edited)]
    _check_kept(tmp_path / 'in.jpg', tmp_path / 'out.jpg', *stored, 16, 16)


def test_when_blocks_cannot_be_kept_the_record_says_why(tmp_path):
    Image.open(DEMO_PHOTO).convert('L').save(tmp_path / 'gray.jpg')
    gray = alignment.read_photo(tmp_path / 'gray.jpg')
    details = {}
    alignment.write_photo(gray.pixels, tmp_path / 'g.jpg', like=gray, details=details)
    assert details['encoding']['method'] == 'encoded' and 'L JPEG' in details['encoding']['why']
    photo = _jpeg(tmp_path / 'in.jpg')
    alignment.write_photo(photo.pixels, tmp_path / 'q.jpg', like=photo, quality=40, details=details)
    assert details['encoding'] == {'method': 'encoded', 'format': 'JPEG'}          # another quality asked for
    Image.open(DEMO_PHOTO).convert('RGB').save(tmp_path / 'in.jpg', quality=60)     # the input changed on disk
    alignment.write_photo(photo.pixels, tmp_path / 'c.jpg', like=photo, details=details)
    assert 'changed on disk' in details['encoding']['why']
    assert np.array_equal(alignment.read_photo(tmp_path / 'c.jpg').pixels.shape, photo.pixels.shape)


def test_a_face_edit_of_a_jpeg_changes_only_the_blocks_around_the_face(tmp_path):
    """The whole pipeline on the demo portrait saved as JPEG: the record says how the file was
    coded, and every MCU the paste did not reach has the input's coefficients and pixels."""
    from photodrag import pipeline
    photo = _jpeg(tmp_path / 'portrait.jpg', 2, size=(512, 512), quality=90)
    from photodrag.inversion import InversionConfig
    inversion = InversionConfig.preset('fast').replace(projection_steps=6, tuning_steps=6)
    result = pipeline.edit(photo, presets=['smile'], face=0, checkpoint='demo-faces', quality=inversion, max_steps=40,
                           cache=False, device='cpu')
    details = {}
    result.save(tmp_path / 'edited.jpg', details=details)
    info = details['encoding']
    assert result.record.with_encoding(info).output['encoding'] == info and 'encoding' not in result.record.output
    assert info['method'] == 'kept-blocks', info
    mcus = _check_kept(tmp_path / 'portrait.jpg', tmp_path / 'edited.jpg', photo.pixels, result.pixels, 16, 16)
    assert 0 < mcus.sum() < 0.35 * mcus.size            # the face and its feathered border, not the photo
    out = alignment.read_photo(tmp_path / 'edited.jpg').pixels
    far = ~np.repeat(np.repeat(mcus, 16, 0), 16, 1)
    far[1:] &= far[:-1].copy()
    far[:-1] &= far[1:].copy()
    far[:, 1:] &= far[:, :-1].copy()
    far[:, :-1] &= far[:, 1:].copy()
    assert np.array_equal(out[far], photo.pixels[far])
