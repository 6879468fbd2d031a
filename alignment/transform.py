"""CropTransform: the one object that moves points, images and masks between photo and crop.

Convention (docs/architecture.md, "Coordinates"): points are (x, y) floats with pixel centres at integer
coordinates, in both the photo and the crop. OpenCV's warps use the same convention, so
the 3x3 matrix goes to `cv2.warpPerspective` unchanged.
"""

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from photodrag.errors import InvalidPointsError, PhotodragError
from photodrag.io import as_mask


@dataclass(frozen=True, eq=False)
class CropTransform:
    """A projective map photo -> crop (`matrix`, 3x3 float64) with both sizes as (width, height)."""
    matrix: np.ndarray
    crop_size: Tuple[int, int]
    photo_size: Tuple[int, int]

    def __post_init__(self):
        m = np.array(self.matrix, dtype=np.float64)
        if m.shape != (3, 3) or not np.isfinite(m).all() or abs(np.linalg.det(m)) < 1e-12:
            raise PhotodragError(f'a crop transform needs an invertible finite 3x3 matrix, got {m.shape}')
        m.setflags(write=False)
        object.__setattr__(self, 'matrix', m)
        object.__setattr__(self, 'crop_size', (int(self.crop_size[0]), int(self.crop_size[1])))
        object.__setattr__(self, 'photo_size', (int(self.photo_size[0]), int(self.photo_size[1])))

    @classmethod
    def from_quad(cls, quad, crop_size: Tuple[int, int], photo_size: Tuple[int, int]) -> 'CropTransform':
        """The transform taking `quad` (photo points: top-left, bottom-left, bottom-right, top-right
        corners of the crop's outer pixel edges, as pixel-centre coordinates) onto the crop."""
        w, h = crop_size
        dst = np.array([[-0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5], [w - 0.5, -0.5]])
        return cls(homography(np.asarray(quad, np.float64), dst), crop_size, photo_size)

    @property
    def inverse(self) -> np.ndarray:
        """The 3x3 matrix crop -> photo."""
        return np.linalg.inv(self.matrix)

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel (geometric mean over the crop's area)."""
        corners = self.quad()
        x, y = corners[:, 0], corners[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        return float(np.sqrt(self.crop_size[0] * self.crop_size[1] / max(area, 1e-12)))

    def quad(self) -> np.ndarray:
        """The crop's outer corners in photo coordinates [4, 2]: TL, BL, BR, TR."""
        w, h = self.crop_size
        return self.to_photo([[-0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5], [w - 0.5, -0.5]])

    def to_crop(self, points) -> np.ndarray:
        """Photo points [N, 2] (x, y) -> crop points [N, 2] float64."""
        return _apply(self.matrix, points)

    def to_photo(self, points) -> np.ndarray:
        """Crop points [N, 2] (x, y) -> photo points [N, 2] float64."""
        return _apply(self.inverse, points)

    def warp_to_crop(self, image: np.ndarray, interpolation: Optional[int] = None, border: Optional[int] = None,
                     border_value=0) -> np.ndarray:
        """Resample a photo-sized image or mask onto the crop (default: Lanczos for images,
        linear for float masks; reflected borders for images, zero for masks)."""
        import cv2
        image = _check_image(image, self.photo_size, 'photo')
        is_mask = image.ndim == 2 and image.dtype != np.uint8
        if interpolation is None:
            interpolation = cv2.INTER_LINEAR if is_mask else cv2.INTER_LANCZOS4
        if border is None:
            border = cv2.BORDER_CONSTANT if is_mask else cv2.BORDER_REFLECT
        out = cv2.warpPerspective(image, self.matrix, self.crop_size, flags=interpolation, borderMode=border,
                                  borderValue=border_value)
        return _restore(out, image)

    def warp_to_photo(self, image: np.ndarray, photo_size: Optional[Tuple[int, int]] = None,
                      interpolation: Optional[int] = None, border: Optional[int] = None,
                      border_value=0, offset: Tuple[int, int] = (0, 0)) -> np.ndarray:
        """Resample a crop-sized image or mask into photo space (`photo_size`, default the
        transform's; `offset` (x, y): produce only the window starting there). Pixels the crop
        does not cover are `border_value` (masks) or reflected (images, unless `border` says)."""
        import cv2
        image = _check_image(image, self.crop_size, 'crop')
        size = tuple(int(s) for s in (photo_size or self.photo_size))
        is_mask = image.ndim == 2 and image.dtype != np.uint8
        if interpolation is None:
            interpolation = cv2.INTER_LINEAR if is_mask else cv2.INTER_LANCZOS4
        if border is None:
            border = cv2.BORDER_CONSTANT if is_mask else cv2.BORDER_REFLECT
        shift = np.array([[1, 0, offset[0]], [0, 1, offset[1]], [0, 0, 1]], np.float64)
        m = self.matrix @ shift                     # window pixel -> crop pixel
        out = cv2.warpPerspective(image, m, size, flags=interpolation | cv2.WARP_INVERSE_MAP,
                                  borderMode=border, borderValue=border_value)
        return _restore(out, image)

    def mask_to_crop(self, mask: np.ndarray) -> np.ndarray:
        """A photo-space mask (float [0, 1] or bool) -> crop-space float32 mask."""
        return np.clip(self.warp_to_crop(_as_mask(mask, self.photo_size)), 0.0, 1.0)

    def mask_to_photo(self, mask: np.ndarray, photo_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """A crop-space mask (float [0, 1] or bool) -> photo-space float32 mask (0 outside the crop)."""
        return np.clip(self.warp_to_photo(_as_mask(mask, self.crop_size), photo_size), 0.0, 1.0)


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 projective matrix mapping 4 points `src` onto `dst` (float64, exact to rounding)."""
    src = np.asarray(src, np.float64).reshape(4, 2)
    dst = np.asarray(dst, np.float64).reshape(4, 2)
    a = np.zeros((8, 8))
    b = np.zeros(8)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst)):
        a[2 * i] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * i + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        b[2 * i], b[2 * i + 1] = u, v
    try:
        h = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise PhotodragError(f'degenerate crop quad (three corners on a line?): {src.tolist()}') from None
    return np.append(h, 1.0).reshape(3, 3)


def _apply(matrix: np.ndarray, points) -> np.ndarray:
    try:
        p = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        raise InvalidPointsError(f'points must be (x, y) number pairs [N, 2], got {points!r}') from None
    single = p.ndim == 1
    if single:
        p = p[None]
    if p.ndim != 2 or p.shape[1] != 2:
        raise InvalidPointsError(f'points must be (x, y) pairs [N, 2], got shape {np.shape(points)}')
    if not np.isfinite(p).all():
        raise InvalidPointsError('points must be finite numbers')
    q = p @ matrix[:, :2].T + matrix[:, 2]
    out = q[:, :2] / q[:, 2:3]
    return out[0] if single else out


def _check_image(image, size: Sequence[int], where: str) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    if a.ndim not in (2, 3) or (a.shape[1], a.shape[0]) != tuple(size):
        raise PhotodragError(f'expected a {where}-sized image {size[0]}x{size[1]} (width x height), got shape {a.shape}')
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    return np.ascontiguousarray(a)


def _restore(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.ndim == 3 and out.ndim == 2:          # OpenCV drops a trailing channel of size 1
        out = out[..., None]
    return out


def _as_mask(mask, size) -> np.ndarray:
    return as_mask(mask, (size[1], size[0]))       # size is (width, height)
