"""JPEG in, JPEG out, and every block the edit did not touch kept as it was.

Re-encoding a whole JPEG changes about a quarter to a half of its pixels by a few levels,
also far from the face that was edited. Here only the MCUs (the 8x8, or 16x16 with
subsampled chroma, pixel squares that JPEG codes together) that hold a changed pixel are
coded anew, with the input's own quantisation tables and subsampling; every other MCU's DCT
coefficients are copied from the input file unchanged (read and written with `jpeglib`),
so they decode to the input's pixels bit for bit. The one exception is a seam of at most
one pixel beside a re-coded MCU when chroma is subsampled (4:2:0, 4:2:2): decoders
interpolate chroma across block edges there. The input's markers (EXIF with its
orientation, ICC profile, XMP) are kept, with the pixels in the file's stored orientation.

`write_keeping_blocks` raises `CannotKeep` (with the reason) for inputs it cannot do this
for: grayscale or CMYK JPEGs, unusual table layouts, a source file changed since it was
read. The caller then encodes the whole image and says so in the record.
"""

import tempfile
from pathlib import Path
from typing import Any, Dict

import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112
# the transpose that makes stored pixels upright (as ImageOps.exif_transpose), and its inverse
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_STORED = {**_UPRIGHT, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


class CannotKeep(Exception):
    """This JPEG's blocks cannot be kept; the message says why."""


def _transpose(pixels: np.ndarray, method) -> np.ndarray:
    return pixels if method is None else np.asarray(Image.fromarray(pixels).transpose(method))


def write_keeping_blocks(pixels: np.ndarray, path, like) -> Dict[str, Any]:
    """Write `pixels` (upright uint8 RGB, `like`'s size) to `path` as a JPEG that copies the
    coefficients of every MCU of `like.path` (a JPEG) where `pixels` equal `like.pixels`.
    Returns what was done, for the edit record."""
    try:
        import jpeglib
    except ImportError:                                 # pragma: no cover - a dependency of photodrag
        raise CannotKeep('jpeglib is not installed') from None
    source = Path(like.path)
    with Image.open(source) as im:
        if im.format != 'JPEG' or im.mode != 'RGB':
            raise CannotKeep(f'the input is a {im.mode} JPEG; only YCbCr colour JPEGs keep their blocks')
        orientation = im.getexif().get(ORIENTATION_TAG, 1)
        tables = im.quantization
        stored = np.asarray(im.convert('RGB'))
    orientation = orientation if orientation in _UPRIGHT else 1
    upright = _transpose(stored, _UPRIGHT.get(orientation))
    if upright.shape != like.pixels.shape or not np.array_equal(upright, like.pixels):
        raise CannotKeep(f'{source.name} is not the photo that was read any more (changed on disk)')
    if pixels.shape != like.pixels.shape:
        raise CannotKeep('the edited image is not the input\'s size')
    edited = np.ascontiguousarray(_transpose(np.asarray(pixels, np.uint8), _STORED.get(orientation)))

    src = jpeglib.read_dct(str(source))
    if src.num_components != 3 or src.has_black:
        raise CannotKeep(f'the input JPEG has {src.num_components} components')
    factors = np.asarray(src.samp_factor)
    if factors.shape != (3, 2) or (factors[1:] != 1).any() or not set(factors[0].tolist()) <= {1, 2}:
        raise CannotKeep(f'the input JPEG samples its components as {factors.tolist()}')
    vmax, hmax = int(factors[0][0]), int(factors[0][1])      # jpeglib lists (vertical, horizontal)
    with tempfile.TemporaryDirectory() as tmp:
        fresh_path = Path(tmp) / 'fresh.jpg'
        subsampling = {(1, 1): '4:4:4', (2, 1): '4:2:2', (2, 2): '4:2:0'}.get((hmax, vmax))
        if subsampling is None:
            raise CannotKeep(f'the input JPEG subsamples chroma {hmax}x{vmax} (horizontal x vertical)')
        try:
            Image.fromarray(edited, 'RGB').save(fresh_path, format='JPEG', qtables=tables, subsampling=subsampling)
        except (ValueError, TypeError, OSError) as e:
            raise CannotKeep(f'cannot code the edit with the input\'s tables ({e})') from None
        fresh = jpeglib.read_dct(str(fresh_path))
        same_layout = (np.array_equal(fresh.qt, src.qt) and np.array_equal(fresh.quant_tbl_no, src.quant_tbl_no)
                       and np.array_equal(fresh.samp_factor, src.samp_factor)
                       and all(getattr(fresh, c).shape == getattr(src, c).shape for c in ('Y', 'Cb', 'Cr')))
        if not same_layout:
            raise CannotKeep('the input\'s quantisation tables cannot be reproduced for the edited blocks')

        H, W = stored.shape[:2]
        mh, mw = 8 * vmax, 8 * hmax
        rows, cols = -(-H // mh), -(-W // mw)
        changed = np.zeros((rows * mh, cols * mw), bool)
        changed[:H, :W] = np.any(edited != stored, axis=2)
        mcus = changed.reshape(rows, mh, cols, mw).any(axis=(1, 3))
        for name, (v, h) in zip(('Y', 'Cb', 'Cr'), factors.tolist()):
            kept = getattr(src, name).copy()
            new = getattr(fresh, name)
            blocks = np.repeat(np.repeat(mcus, v, axis=0), h, axis=1)[:kept.shape[0], :kept.shape[1]]
            kept[blocks] = new[blocks]
            setattr(src, name, kept)
        # libjpeg writes its own JFIF header; every other marker (EXIF, ICC, XMP, comments) is the input's
        src.markers = [m for m in (src.markers or [])
                       if not (m.type == jpeglib.JPEG_APP0 and bytes(m.content[:5]) == b'JFIF\0')]
        src.write_dct(str(path))

    # What the file decodes to: the input's pixels outside the re-coded MCUs (and their seam).
    with Image.open(path) as out:
        written = np.asarray(out.convert('RGB'))
    recoded = np.repeat(np.repeat(mcus, mh, axis=0), mw, axis=1)[:H, :W]
    seam = _grow(recoded) & ~recoded if (hmax, vmax) != (1, 1) else np.zeros_like(recoded)
    differs = np.any(written != stored, axis=2)
    if differs[~recoded & ~seam].any():
        raise CannotKeep('the copied blocks did not decode to the input\'s pixels')
    seam_diff = int(np.abs(written.astype(np.int16) - stored)[seam & differs].max(initial=0))
    return {'method': 'kept-blocks', 'mcu': [mw, mh], 'mcus': int(mcus.size), 'mcus_recoded': int(mcus.sum()),
            'pixels_outside_recoded': int((~recoded).sum()),
            'seam_pixels_changed': int((seam & differs).sum()), 'seam_max_change': seam_diff,
            'orientation': int(orientation)}


def _grow(mask: np.ndarray) -> np.ndarray:
    """`mask` grown by one pixel in all eight directions."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    grown = out.copy()
    grown[:, 1:] |= out[:, :-1]
    grown[:, :-1] |= out[:, 1:]
    return grown


__all__ = ['write_keeping_blocks', 'CannotKeep']
