"""Reading and writing photos: any common format in, uint8 RGB out, metadata kept for the way back.

`read_photo` applies the EXIF orientation, flattens transparency over white (the stages see
RGB) but keeps the straight RGBA of a transparent photo, converts
grayscale, palette, CMYK (through its ICC profile when it has one) and 16-bit images to
8-bit RGB, and keeps what writing the edit back needs: format, EXIF (orientation reset to
1, since the pixels are now upright), ICC profile, JPEG quality and chroma subsampling.
`write_photo` writes atomically (temporary file in the same folder, then `os.replace`) and
never over the photo it was read from. Written `like` a transparent photo, in a format that
holds alpha (PNG, WebP, TIFF), the output keeps the input's alpha channel: an edit changes
colour, not transparency; unchanged pixels keep their exact straight colour.
"""

import functools
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from photodrag.errors import PhotodragError, UnreadableImageError
from photodrag.io import atomic_write

DEFAULT_MAX_PIXELS = 100_000_000          # decompression-bomb guard: 100 megapixels
ORIENTATION_TAG = 0x0112
_SUFFIX_FORMATS = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.jpe': 'JPEG', '.png': 'PNG', '.webp': 'WEBP',
                   '.tif': 'TIFF', '.tiff': 'TIFF', '.bmp': 'BMP'}
_WHITE = 255


@dataclass(frozen=True, eq=False)
class Photo:
    """A decoded photo: upright uint8 RGB pixels [H, W, 3] plus what writing it back needs."""
    pixels: np.ndarray
    format: Optional[str] = None                # Pillow's format name: 'JPEG', 'PNG', 'WEBP', 'TIFF', ...
    exif: Optional[bytes] = None                # EXIF block with Orientation reset to 1, or None
    icc_profile: Optional[bytes] = None         # colour profile the pixels are in, None = sRGB
    path: Optional[Path] = None                 # file it was read from (never written over)
    jpeg_quality: Optional[int] = None          # estimated IJG quality of a JPEG source
    jpeg_subsampling: Optional[int] = None      # Pillow's code: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
    source_mode: Optional[str] = None           # Pillow mode before conversion ('CMYK', 'I;16', 'P', ...)
    rgba: Optional[np.ndarray] = None           # straight uint8 RGBA [H, W, 4] of a photo with transparency

    @property
    def alpha(self) -> Optional[np.ndarray]:
        """The photo's alpha channel (uint8 [H, W], 255 = opaque), or None when it has none."""
        return None if self.rgba is None else self.rgba[..., 3]

    @property
    def size(self):
        """(width, height) in pixels."""
        return self.pixels.shape[1], self.pixels.shape[0]


def as_rgb(image) -> np.ndarray:
    """uint8 RGB [H, W, 3] from a `Photo`, a PIL image, or a numpy array (HW, HW1, HW3 or HW4;
    uint8, uint16 scaled by 1/257, bool, or float in [0, 1]). Alpha is composited over white."""
    if isinstance(image, Photo):
        return image.pixels
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise UnreadableImageError(f'expected an image array [H, W], [H, W, 3] or [H, W, 4], got shape {a.shape}')
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = _scale16(a)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise UnreadableImageError('image array contains NaN or infinite values')
        a = np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8)
    else:
        raise UnreadableImageError(f'unsupported image array dtype {a.dtype} (use uint8, uint16 or float in [0, 1])')
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.shape[2] == 4:
        a = _over_white(a[..., :3], a[..., 3])
    return np.ascontiguousarray(a)


def read_photo(path, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode the photo at `path` (JPEG, PNG, WebP, TIFF, BMP, ...) into an upright RGB `Photo`.

    Raises `UnreadableImageError` naming the file and the reason for missing, empty,
    truncated, corrupt or non-image files and for images above `max_pixels` (None: no limit)."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableImageError(f'{path}: no such file' if not path.exists() else f'{path}: not a file')
    if path.stat().st_size == 0:
        raise UnreadableImageError(f'{path}: the file is empty')
    try:
        with warnings.catch_warnings():
            # Our own pixel limit replaces Pillow's global one (checked below, before decoding).
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if max_pixels is not None and width * height > max_pixels:
                    raise UnreadableImageError(
                        f'{path}: {width}x{height} = {width * height / 1e6:.1f} megapixels exceeds the limit of '
                        f'{max_pixels / 1e6:.1f} MP (a decompression bomb?); raise max_pixels to read it anyway')
                fmt = img.format
                frames = getattr(img, 'n_frames', 1)
                if frames > 1:
                    # an edit of one frame written back as the whole file would drop the others
                    raise UnreadableImageError(
                        f'{path}: a {fmt} of {frames} frames (an animation or a multi-page file); photodrag edits '
                        'single images: save the frame to edit as PNG or JPEG first')
                img.load()
                quality = subsampling = None
                if fmt == 'JPEG':
                    quality = estimate_jpeg_quality(img)
                    subsampling = _jpeg_subsampling(img)
                icc = img.info.get('icc_profile') or None
                source_mode = img.mode
                upright = ImageOps.exif_transpose(img)
                exif = _upright_exif(img)          # after the transpose: it edits img's EXIF in place
                img = upright
                pixels, icc = _decode_pixels(img, icc)
                rgba = _straight_rgba(img)
    except UnreadableImageError:
        raise
    except Image.DecompressionBombError as e:
        raise UnreadableImageError(f'{path}: {e}') from None
    except UnidentifiedImageError:
        raise UnreadableImageError(f'{path}: not an image Pillow can read (unknown format or corrupt header)') from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, MemoryError) as e:
        reason = str(e) or type(e).__name__
        if 'truncated' in reason:
            reason = f'the file is truncated ({reason})'
        raise UnreadableImageError(f'{path}: cannot decode the image: {reason}') from None
    return Photo(pixels=pixels, format=fmt, exif=exif, icc_profile=icc, path=path.resolve(),
                 jpeg_quality=quality, jpeg_subsampling=subsampling, source_mode=source_mode, rgba=rgba)


def write_photo(photo_or_array, path, like: Optional[Photo] = None, quality: Union[int, str, None] = None,
                format: Optional[str] = None, details: Optional[dict] = None) -> Path:
    """Write pixels to `path` atomically, in the format of `path`'s suffix (or `like.format`),
    with `like`'s EXIF and ICC profile and, for JPEG, its quality and subsampling.

    `like` defaults to `photo_or_array` when that is a `Photo`. `quality`: an int, or None/'keep'
    for the source JPEG's estimated quality (95 when unknown). Refuses to write over `like.path`.

    A JPEG written like a JPEG file at its own quality keeps the input's coded blocks wherever
    the pixels are the input's (`alignment.jpeg`): unchanged regions decode bit-identical.
    `details` (a dict), when given, receives under 'encoding' how the file was coded and, when
    the blocks could not be kept, why."""
    if like is None and isinstance(photo_or_array, Photo):
        like = photo_or_array
    pixels = as_rgb(photo_or_array)
    path = Path(path)
    if like is not None and like.path is not None and _same_file(path, Path(like.path)):
        raise PhotodragError(f'{path}: refusing to write over the input photo; choose another output path')
    fmt = format or _SUFFIX_FORMATS.get(path.suffix.lower()) or (like.format if like is not None else None)
    if fmt is None:
        raise PhotodragError(f'{path}: cannot tell the image format from the suffix {path.suffix!r}; '
                             f'use one of {", ".join(sorted(_SUFFIX_FORMATS))}')
    fmt = fmt.upper()
    options = {}
    if like is not None and like.exif and fmt in ('JPEG', 'PNG', 'WEBP', 'TIFF'):
        options['exif'] = like.exif
    if like is not None and like.icc_profile and fmt in ('JPEG', 'PNG', 'WEBP', 'TIFF'):
        options['icc_profile'] = like.icc_profile
    if fmt in ('JPEG', 'WEBP'):
        if quality is None or quality == 'keep':
            known = like.jpeg_quality if like is not None else None
            quality = known if known is not None else 95
        if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise PhotodragError(f'JPEG/WebP quality must be an int in 1..100 or "keep", got {quality!r}')
        options['quality'] = int(quality)
    if fmt == 'JPEG':
        sub = like.jpeg_subsampling if like is not None else None
        options['subsampling'] = sub if sub in (0, 1, 2) else (0 if options['quality'] >= 90 else 2)
    if fmt == 'TIFF':
        options['compression'] = 'tiff_deflate'
    if (fmt == 'JPEG' and like is not None and like.format == 'JPEG' and like.path is not None
            and like.rgba is None and (quality is None or quality == 'keep' or quality == like.jpeg_quality)):
        from .jpeg import CannotKeep, write_keeping_blocks
        with atomic_write(path) as tmp:
            try:
                info = write_keeping_blocks(pixels, tmp, like)
            except CannotKeep as e:
                info = {'method': 'encoded', 'why': f'blocks not kept: {e}'}
            except Exception as e:          # jpeglib/libjpeg refusing an odd file: code the whole image
                info = {'method': 'encoded', 'why': f'blocks not kept: {type(e).__name__}: {str(e)[:200]}'}
            if info['method'] == 'encoded':
                _save(Image.fromarray(pixels, 'RGB'), tmp, path, fmt, options)
        if details is not None:
            details['encoding'] = info
        return path
    if details is not None:
        details['encoding'] = {'method': 'encoded', 'format': fmt}
    image = Image.fromarray(pixels, 'RGB')
    if like is not None and like.rgba is not None and fmt in _ALPHA_FORMATS and like.rgba.shape[:2] == pixels.shape[:2]:
        image = Image.fromarray(_restore_alpha(pixels, like), 'RGBA')
    with atomic_write(path) as tmp:
        _save(image, tmp, path, fmt, options)
    return path


def _save(image: Image.Image, tmp: Path, path: Path, fmt: str, options: dict) -> None:
    try:
        image.save(tmp, format=fmt, **options)
    except (ValueError, KeyError) as e:
        raise PhotodragError(f'{path}: cannot write the image: {e}') from None


def estimate_jpeg_quality(img: Image.Image) -> Optional[int]:
    """IJG quality (1..100) whose luminance quantisation table is closest to `img`'s, or None."""
    tables = getattr(img, 'quantization', None)
    if not tables or 0 not in tables:
        return None
    luma = np.asarray(tables[0], np.float64)
    refs = _ijg_luma_tables()
    if luma.shape != refs.shape[1:]:
        return None
    err = np.abs(np.log(refs) - np.log(np.maximum(luma, 1))[None]).sum(axis=1)
    return int(np.argmin(err)) + 1


@functools.lru_cache(maxsize=1)
def _ijg_luma_tables() -> np.ndarray:
    """Pillow's (libjpeg's) luminance tables for qualities 1..100, read back from tiny encodes
    so that table order and rounding match whatever Pillow reports for a real file."""
    tile = Image.new('L', (8, 8), 128)
    tables = []
    for q in range(1, 101):
        buf = io.BytesIO()
        tile.save(buf, 'JPEG', quality=q)
        buf.seek(0)
        with Image.open(buf) as im:
            tables.append(np.asarray(im.quantization[0], np.float64))
    return np.maximum(np.stack(tables), 1)


def _jpeg_subsampling(img: Image.Image) -> Optional[int]:
    try:
        from PIL import JpegImagePlugin
        sub = JpegImagePlugin.get_sampling(img)
    except Exception:        # noqa: BLE001 -- a hint only; unknown layouts just get the default
        return None
    return sub if sub in (0, 1, 2) else None


def _upright_exif(img: Image.Image) -> Optional[bytes]:
    """The EXIF block with Orientation reset to 1 (the pixels will be transposed), or None."""
    if not img.info.get('exif') and img.format != 'TIFF':
        return None
    exif = img.getexif()
    if not len(exif):
        return None
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    try:
        return exif.tobytes()
    except Exception:        # noqa: BLE001 -- malformed maker notes must not stop the edit
        return None


_ALPHA_FORMATS = ('PNG', 'WEBP', 'TIFF')


def _straight_rgba(img: Image.Image) -> Optional[np.ndarray]:
    """The straight (not premultiplied) RGBA of an image with transparency; None when it has
    none or every pixel is opaque."""
    if img.mode not in ('RGBA', 'LA', 'PA', 'RGBa', 'La') and not (img.mode == 'P' and 'transparency' in img.info):
        return None
    rgba = np.asarray(img.convert('RGBA'))
    return None if (rgba[..., 3] == 255).all() else np.ascontiguousarray(rgba)


def _restore_alpha(pixels: np.ndarray, like: 'Photo') -> np.ndarray:
    """RGBA to write for edited `pixels` (composited over white, as `like.pixels` is): the input's
    alpha; its straight colour where the pixel is unchanged, the colour that composites to the
    edited pixel elsewhere."""
    rgba = like.rgba
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    straight = (pixels.astype(np.float32) - _WHITE * (1.0 - a)) / np.maximum(a, 1.0 / 255)
    colour = np.where(a > 0, np.clip(np.rint(straight), 0, 255), pixels).astype(np.uint8)
    same = (pixels == like.pixels).all(axis=2, keepdims=True)
    colour = np.where(same, rgba[..., :3], colour)
    return np.ascontiguousarray(np.concatenate([colour, rgba[..., 3:]], axis=2))


def _decode_pixels(img: Image.Image, icc: Optional[bytes]):
    """(uint8 RGB pixels, the ICC profile those pixels are in)."""
    if img.mode == 'CMYK':
        return _cmyk_to_rgb(img, icc)
    if img.mode in ('LAB', 'HSV', 'YCbCr'):
        return np.asarray(img.convert('RGB')), None
    return _pil_to_rgb(img), icc


def _cmyk_to_rgb(img: Image.Image, icc: Optional[bytes]):
    # Pillow already undoes Adobe's inverted CMYK in JPEGs (APP14 marker), so the data is real CMYK.
    if icc:
        try:
            from PIL import ImageCms
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile('sRGB')
            rgb = ImageCms.profileToProfile(img, src, dst, outputMode='RGB',
                                            renderingIntent=ImageCms.Intent.PERCEPTUAL)
            return np.asarray(rgb), None            # the pixels are sRGB now: the CMYK profile no longer applies
        except Exception:        # noqa: BLE001 -- a broken profile: fall back to the naive conversion below
            pass
    return np.asarray(img.convert('RGB')), None


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == 'RGB':
        return np.asarray(img)
    if mode == 'P':
        img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
        mode = img.mode
        if mode == 'RGB':
            return np.asarray(img)
    if mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La'):
        rgba = np.asarray(img.convert('RGBA'))
        return _over_white(rgba[..., :3], rgba[..., 3])
    if mode.startswith('I;16') or mode == 'I':
        a = np.asarray(img).astype(np.int64)
        gray = _scale16(np.clip(a, 0, 65535).astype(np.uint16))
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode == 'F':
        a = np.asarray(img, np.float64)
        a = a / 255.0 if np.nanmax(a) > 1.0 else a
        gray = np.round(np.clip(np.nan_to_num(a), 0, 1) * 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode == 'CMYK':
        return np.asarray(img.convert('RGB'))
    # '1', 'L', and the rest: Pillow's own conversion
    return np.asarray(img.convert('RGB'))


def _scale16(a: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by rounding v * 255 / 65535 (full range kept, never clipped)."""
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.uint32)[..., None]
    out = (rgb.astype(np.uint32) * a + _WHITE * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()
