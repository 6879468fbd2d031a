"""The inputs of an edit, checked before anything slow runs: drags, faces, boxes, masks, recipes.

Points and masks are in photo pixels (docs/architecture.md, "Coordinates"); every error says
which point or setting is wrong and what to do.
"""

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from photodrag.errors import InvalidPointsError, InvalidSettingsError, PhotodragError
from photodrag.io import check_box, check_points_editable, load_mask, mask_sha256

Point = Tuple[float, float]
Drag = Tuple[Point, Point]
Box = Tuple[float, float, float, float]
FaceSelector = Union[int, Point, str, None]        # index, a point in the photo, 'all' or None (by the handles)
MaskLike = Union[np.ndarray, str, os.PathLike, None]


@dataclass(frozen=True, eq=False)
class FaceEdit:
    """The drags for one face (or object) of a photo, in photo pixels.

    face: an index (faces numbered left to right), a point (x, y) on the face, or None /
    'all' (each drag goes to the face whose box holds its handle, the nearest one otherwise).
    drags: ((x1, y1), (x2, y2)) pairs: move the content at the handle to the target.
    mask: photo-sized float [0, 1] or bool array, or a grayscale image file (white = may
    change); None lets the whole crop change. box: the face's or object's box
    (x0, y0, x1, y1) instead of detection (object recipes: None = the whole photo).
    presets: expression presets for this face ('smile', 'smile:0.6', a `presets.PresetUse`):
    drags computed from its landmarks, added to `drags`, with their editable region.
    script: the ops of an interactive drag (`script.ScriptedDrag`, from a record the web
    editor wrote): made on the session after it starts from `drags`, instead of a plain run."""
    face: FaceSelector = None
    drags: Sequence[Drag] = ()
    mask: MaskLike = None
    box: Optional[Box] = None
    presets: Sequence[Any] = ()
    script: Optional[Sequence[Dict[str, Any]]] = None


def normalise(edits, face, allow_none: bool = False) -> List[FaceEdit]:
    """Any accepted form of `edits` -> FaceEdits, each naming its face (None: decided by the
    handles). `allow_none`: no edits at all is fine (presets are given apart)."""
    if allow_none and (edits is None or (isinstance(edits, (list, tuple)) and not edits)):
        return []
    if isinstance(edits, FaceEdit):
        items = [edits]
    elif isinstance(edits, dict):
        items = []
        for key, value in edits.items():
            sel = tuple(key) if isinstance(key, (list, tuple)) else key
            items.append(dataclasses.replace(value, face=sel) if isinstance(value, FaceEdit)
                         else FaceEdit(face=sel, drags=value))
    else:
        try:
            items = list(edits)
        except TypeError:
            raise InvalidPointsError(f'edits must be drags ((x1, y1), (x2, y2)), FaceEdits or a dict of them, '
                                     f'got {type(edits).__name__}') from None
        if items and all(isinstance(e, FaceEdit) for e in items):
            if face is not None and face != 'all':
                raise PhotodragError('give the face in each FaceEdit, not as face=, when passing FaceEdits')
        elif any(isinstance(e, FaceEdit) for e in items):
            raise InvalidPointsError('edits mixes FaceEdits and bare drags; use one or the other')
        else:
            items = [FaceEdit(face=face, drags=items)]
    out = []
    for item in items:
        sel = item.face
        if isinstance(sel, (list, np.ndarray)):
            sel = tuple(sel)
        if isinstance(sel, str) and sel != 'all':
            raise PhotodragError(f"a face is an index, a point (x, y) or 'all', got {sel!r}")
        if isinstance(sel, (bool, np.bool_)) or not (sel is None or sel == 'all' or isinstance(sel, (int, np.integer))
                                                    or (isinstance(sel, tuple) and len(sel) == 2)):
            raise PhotodragError(f"a face is an index, a point (x, y) or 'all', got {sel!r}")
        drags = [as_drag(d, i) for i, d in enumerate(item.drags)]
        item_presets = (item.presets,) if isinstance(item.presets, str) else tuple(item.presets or ())
        if not drags and not item_presets:
            raise InvalidPointsError('an edit needs at least one drag (handle (x1, y1) -> target (x2, y2)) '
                                     'or a preset')
        if not drags and sel in (None, 'all') and item.box is None:
            raise PhotodragError('an edit with presets and no drags needs its face (an index or a point) or a box')
        out.append(FaceEdit(face=None if sel == 'all' else (int(sel) if isinstance(sel, (int, np.integer))
                                                            else sel),
                            drags=drags, mask=item.mask, box=None if item.box is None else check_box(item.box),
                            presets=item_presets, script=item.script))
    if not out:
        raise InvalidPointsError('no edits given')
    return out


def as_drag(d, i) -> Drag:
    try:
        (x1, y1), (x2, y2) = d
        drag = ((float(x1), float(y1)), (float(x2), float(y2)))
    except (TypeError, ValueError):
        raise InvalidPointsError(f'drag {i + 1} must be ((x1, y1), (x2, y2)), got {d!r}') from None
    if not all(math.isfinite(v) for p in drag for v in p):
        raise InvalidPointsError(f'drag {i + 1} has a coordinate that is not a finite number: {d!r}')
    return drag


def check_photo_point(p, size, what: str) -> None:
    w, h = size
    x, y = (float(v) for v in p)
    if not (math.isfinite(x) and math.isfinite(y) and 0 <= x <= w - 1 and 0 <= y <= h - 1):
        raise InvalidPointsError(f'{what} ({x:g}, {y:g}) is outside the {w}x{h} photo '
                                 f'(valid x: 0..{w - 1}, y: 0..{h - 1})')


def check_drags(drags, size) -> None:
    for i, (h, t) in enumerate(drags):
        check_photo_point(h, size, f'handle {i + 1}')
        check_photo_point(t, size, f'target {i + 1}')


def check_in_crop(p, q, crop, what: str, face_name: str) -> None:
    x0, y0, x1, y1 = crop.content
    if not (x0 <= q[0] <= x1 - 1 and y0 <= q[1] <= y1 - 1):
        raise InvalidPointsError(
            f'{what} ({p[0]:g}, {p[1]:g}) lies outside the aligned crop of {face_name} (it maps to '
            f'({q[0]:.1f}, {q[1]:.1f}) in the {crop.image.shape[1]}x{crop.image.shape[0]} crop); put the points on '
            'that face or its surroundings, or choose the face with --face')


def face_name(k: int, crop) -> str:
    if crop.face is not None:
        return f'face {crop.face.index}'
    return f'edit {k}' if crop.recipe != 'object' else 'the object box'


def photo_mask(mask, size) -> Tuple[Optional[np.ndarray], Optional[Dict[str, Any]]]:
    """(photo-sized float32 mask in [0, 1] or None, its record entry {'path', 'sha256'})."""
    if mask is None:
        return None, None
    w, h = size
    m = load_mask(mask, (h, w), size_name="the photo's size")
    path = os.path.realpath(mask) if isinstance(mask, (str, os.PathLike)) else None
    return m, {'kind': 'file' if path else 'array', 'path': path, 'sha256': mask_sha256(m)}


# The local editable region used when the user gives no mask: around each drag's path, a
# capsule of radius REGION_FACE x the face's width + REGION_DRAG x the drag's length, with a
# soft border REGION_FEATHER x the face's width wide. Measured on the astronaut (mouth corners in
# and down by 6 % of the face width, demo generator): nothing changes farther than 0.22 face
# widths from the mouth, and the corners move as far as with the whole face free (0.37 / 0.44
# of the way against 0.37 / 0.35, landmarks fitted in the input's face box); a 0.15 radius
# reached no further, so the smaller one stays.
REGION_FACE = 0.10
REGION_DRAG = 1.0
REGION_FEATHER = 0.06


def drag_region(drags, face_width: float, size, *, face=REGION_FACE, drag=REGION_DRAG,
                feather=REGION_FEATHER) -> np.ndarray:
    """The local editable region of `drags` (photo pixels) as a photo-sized float32 mask [H, W]:
    1 within `face` x face_width + `drag` x the drag's length of each handle-to-target path,
    falling smoothly to 0 over `feather` x face_width beyond."""
    w, h = size
    fw = max(float(face_width), 1.0)
    ramp = max(feather * fw, 1.0)
    out = np.zeros((h, w), np.float32)
    for (hx, hy), (tx, ty) in drags:
        length = float(np.hypot(tx - hx, ty - hy))
        r = face * fw + drag * length
        reach = r + ramp + 1
        x0, x1 = max(int(min(hx, tx) - reach), 0), min(int(max(hx, tx) + reach) + 1, w)
        y0, y1 = max(int(min(hy, ty) - reach), 0), min(int(max(hy, ty) + reach) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
        d = np.array([tx - hx, ty - hy], np.float64)
        along = np.clip(((gx - hx) * d[0] + (gy - hy) * d[1]) / max(length ** 2, 1e-12), 0.0, 1.0)
        dist = np.hypot(gx - (hx + along * d[0]), gy - (hy + along * d[1]))       # to the path segment
        t = np.clip((r + ramp - dist) / ramp, 0.0, 1.0)
        soft = (t * t * (3.0 - 2.0 * t)).astype(np.float32)                     # smoothstep
        np.maximum(out[y0:y1, x0:x1], soft, out=out[y0:y1, x0:x1])
    return out


def check_points_in_mask(mask, drags, start: int = 1) -> None:
    """Every handle and target of `drags` (numbered from `start`) lies where `mask` lets it change."""
    points = [p for pair in drags for p in pair]
    names = [f'{what} {i}' for i in range(start, start + len(drags)) for what in ('handle', 'target')]
    check_points_editable(mask, points, names)


def crop_recipe(checkpoint, recipe: Optional[str], size: int, G=None):
    """The crop recipe: `recipe` if given, else the checkpoint's (`alignment.recipe_for`)."""
    from photodrag import alignment
    if recipe is not None:
        name = {'none': 'object'}.get(recipe, recipe)
        if name not in alignment.RECIPES:
            raise InvalidSettingsError(f'unknown crop recipe {recipe!r}; known: {", ".join(alignment.RECIPES)}')
        r = alignment.RECIPES[name]
        return dataclasses.replace(r, size=size)
    return alignment.recipe_for(checkpoint, G, size=size)
