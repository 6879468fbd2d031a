"""Expression presets: drags computed from a face's 68 landmarks, so nobody types coordinates.

    from photodrag.expressions import presets
    smile = presets.get('smile')
    drags, mask = smile.drags(face.landmarks, strength=0.6), smile.mask(face.landmarks, photo.size)
    pipeline.edit('group.jpg', presets=['smile:0.6'], face=1)

A preset is data (`assets/presets.yaml`, format `photodrag-presets`; docs/presets.md): moves
of iBUG 68-point landmarks in the face's own frame (x from the image-left eye to the
image-right eye, y up towards the forehead), in inter-ocular distances, so that it does the
same to a face of any size and roll; and an editable region around landmark groups. Users
add their own with `load_file('my.yaml')`; a mistake names the file, the line and the key.
"""

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from photodrag.errors import InvalidSettingsError, PhotodragError, is_number

BUILTIN_FILE = Path(__file__).parent / 'presets.yaml'
FORMAT = 'photodrag-presets'
MAX_STRENGTH = 3.0
FEATHER = 0.12          # soft border of a preset's region, in inter-ocular distances
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 20          # nesting levels of a presets file
MAX_EVENTS = 100_000    # YAML nodes of a presets file

Point = Tuple[float, float]


class PresetFileError(InvalidSettingsError):
    """A presets file that cannot be used: the message names the file, line and key."""


@dataclass(frozen=True)
class Move:
    """Landmarks `points` moved `by` (dx, dy) inter-ocular distances in the face frame, or each
    `share` of the way to the landmark at the same position of `to`."""
    points: Tuple[int, ...]
    by: Optional[Tuple[float, float]] = None
    to: Optional[Tuple[int, ...]] = None
    share: Optional[float] = None

    def to_dict(self) -> dict:
        d = {'points': list(self.points)}
        if self.by is not None:
            d['by'] = list(self.by)
        else:
            d.update(to=list(self.to), share=self.share)
        return d


@dataclass(frozen=True)
class Region:
    """The convex hull of landmarks `points` (and of where they move) grown by `margin` inter-ocular distances."""
    points: Tuple[int, ...]
    margin: float

    def to_dict(self) -> dict:
        return {'points': list(self.points), 'margin': self.margin}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    moves: Tuple[Move, ...]
    regions: Tuple[Region, ...]
    source: str = 'built-in'

    # ------------------------------------------------------------ geometry

    def displacements(self, landmarks, strength: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
        """(handles [N, 2], targets [N, 2]) in the landmarks' pixels, for this face."""
        lm = _landmarks(landmarks)
        strength = check_strength(strength, self.name)
        across, up, iod = face_frame(lm)
        handles, targets = [], []
        for move in self.moves:
            for k, index in enumerate(move.points):
                start = lm[index]
                if move.by is not None:
                    end = start + strength * iod * (move.by[0] * across + move.by[1] * up)
                else:
                    end = start + min(1.0, strength * move.share) * (lm[move.to[k]] - start)   # never past it
                handles.append(start)
                targets.append(end)
        return np.array(handles, np.float64).reshape(-1, 2), np.array(targets, np.float64).reshape(-1, 2)

    def drags(self, landmarks, strength: float = 1.0) -> List[Tuple[Point, Point]]:
        handles, targets = self.displacements(landmarks, strength)
        return [((float(h[0]), float(h[1])), (float(t[0]), float(t[1]))) for h, t in zip(handles, targets)]

    def moved_points(self) -> Tuple[int, ...]:
        """The landmark indices this preset moves (one per handle, in handle order)."""
        return tuple(i for m in self.moves for i in m.points)

    def mask(self, landmarks, size, strength: float = 1.0) -> np.ndarray:
        """The editable region as a float32 [H, W] mask of a `size` = (width, height) image:
        1 inside each region's grown hull, falling smoothly to 0 over FEATHER inter-ocular
        distances beyond it."""
        import cv2
        lm = _landmarks(landmarks)
        _, targets = self.displacements(lm, strength)
        moved = lm.copy()
        for index, t in zip(self.moved_points(), targets):
            moved[index] = t
        _, _, iod = face_frame(lm)
        w, h = (int(v) for v in size)
        out = np.zeros((h, w), np.float32)
        ramp = max(FEATHER * iod, 1.0)
        for region in self.regions:
            pts = np.concatenate([lm[list(region.points)], moved[list(region.points)]])
            grow = region.margin * iod
            reach = grow + ramp + 2
            x0, y0 = (max(int(math.floor(v - reach)), 0) for v in pts.min(axis=0))
            x1, y1 = min(int(math.ceil(pts[:, 0].max() + reach)) + 1, w), min(int(math.ceil(pts[:, 1].max() + reach)) + 1, h)
            if x1 <= x0 or y1 <= y0:
                continue
            inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
            hull = cv2.convexHull(np.round((pts - [x0, y0]) * 4).astype(np.int32))     # 2 bits of sub-pixel
            cv2.fillConvexPoly(inside, hull, 1, lineType=cv2.LINE_8, shift=2)
            dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
            t = np.clip((grow + ramp - dist) / ramp, 0.0, 1.0)
            soft = (t * t * (3.0 - 2.0 * t)).astype(np.float32)
            np.maximum(out[y0:y1, x0:x1], soft, out=out[y0:y1, x0:x1])
        return out

    def only(self, landmarks: Sequence[int], name: Optional[str] = None) -> 'Preset':
        """The part of this preset that moves `landmarks` (e.g. one eye's), with the regions
        that hold them."""
        keep = set(landmarks)
        moves = []
        for m in self.moves:
            at = [k for k, p in enumerate(m.points) if p in keep]
            if at:
                moves.append(Move(tuple(m.points[k] for k in at), by=m.by,
                                  to=None if m.to is None else tuple(m.to[k] for k in at), share=m.share))
        regions = tuple(r for r in self.regions if keep & set(r.points))
        if not moves:
            raise InvalidSettingsError(f'preset {self.name} moves none of landmarks {sorted(keep)}')
        return Preset(name or self.name, self.description, tuple(moves), regions, self.source)

    def to_dict(self) -> dict:
        return {'description': self.description, 'moves': [m.to_dict() for m in self.moves],
                'mask': [r.to_dict() for r in self.regions]}


@dataclass(frozen=True)
class PresetUse:
    """A preset and its strength (0.5 = half the motion), as `--preset smile:0.5` gives it."""
    preset: Preset
    strength: float = 1.0

    @property
    def label(self) -> str:
        return label(self.preset.name, self.strength)

    def to_dict(self) -> dict:
        return {'name': self.preset.name, 'strength': self.strength, 'source': self.preset.source,
                'definition': self.preset.to_dict()}

    @classmethod
    def from_dict(cls, data) -> 'PresetUse':
        """A use as an edit record keeps it (checked like a presets file)."""
        if not isinstance(data, dict) or not isinstance(data.get('name'), str):
            raise InvalidSettingsError('a preset in the record must be an object with a name, strength and definition')
        preset = _preset(data['name'], data.get('definition'), {}, 'the record', data.get('source', 'record'))
        return cls(preset, check_strength(data.get('strength', 1.0), data['name']))


def label(name: str, strength: float) -> str:
    """How a preset use is written: 'smile', or 'smile:0.6' at another strength than 1."""
    return name if strength == 1.0 else f'{name}:{strength:g}'


# ---------------------------------------------------------------- the face's frame

def face_frame(landmarks) -> Tuple[np.ndarray, np.ndarray, float]:
    """(across, up, inter-ocular distance): unit vectors from the image-left eye centre
    (landmarks 36-41) to the image-right one (42-47) and perpendicular to it towards the
    forehead, in image coordinates (y grows down), and the distance between the eye centres."""
    lm = _landmarks(landmarks)
    d = lm[42:48].mean(axis=0) - lm[36:42].mean(axis=0)
    iod = float(np.hypot(*d))
    if not iod > 0:
        raise InvalidSettingsError('the face landmarks have both eyes at one place; they are not a face')
    across = d / iod
    return across, np.array([across[1], -across[0]]), iod


def _landmarks(landmarks) -> np.ndarray:
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise InvalidSettingsError(f'presets need the 68 landmarks of a face (68 x 2 finite numbers), got {lm.shape}')
    return lm


def check_strength(strength, name: str = 'the preset') -> float:
    if isinstance(strength, float) or is_number(strength):     # nan and inf are numbers out of range
        if not is_number(strength, 0, MAX_STRENGTH) or strength == 0:
            raise InvalidSettingsError(f'the strength of {name} must be in (0, {MAX_STRENGTH:g}] (1 = the preset as '
                                       f'defined, 0.5 = half the motion), got {float(strength):g}')
        return float(strength)
    raise InvalidSettingsError(f'the strength of {name} must be a number (e.g. smile:0.5), got {strength!r:.40}')


# ---------------------------------------------------------------- files

def load_file(path, source: Optional[str] = None) -> Dict[str, Preset]:
    """The presets of a YAML or JSON file (format photodrag-presets), checked; errors name the
    file, the line and the key."""
    path = Path(path)
    from photodrag.io import read_regular_text
    try:
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise PresetFileError(f'{path}: a presets file is at most {MAX_FILE_BYTES // 1000} kB')
        text = read_regular_text(path, 'a presets file', MAX_FILE_BYTES)
    except PresetFileError:
        raise
    except PhotodragError as e:
        raise PresetFileError(str(e).replace(': no such file', ': no such presets file')) from None
    except (OSError, UnicodeDecodeError) as e:
        raise PresetFileError(f'{path}: cannot read the presets file: {e}') from None
    return parse(text, str(path), source or str(path))


def parse(text: str, where: str = 'the presets', source: str = 'user') -> Dict[str, Preset]:
    data, lines = _compose(text, where)
    if not isinstance(data, dict):
        raise PresetFileError(f'{where} line {lines.get((), 1)}: a presets file is a mapping with "presets:" '
                              f'(format {FORMAT}), got {type(data).__name__}')
    _keys(data, {'format', 'version', 'presets'}, (), lines, where)
    if data.get('format', FORMAT) != FORMAT:
        raise PresetFileError(f'{where} line {lines.get(("format",), 1)}: format: expected {FORMAT!r}, '
                              f'got {data["format"]!r:.40}')
    version = data.get('version', 1)
    if isinstance(version, bool) or not isinstance(version, int) or version != 1:
        raise PresetFileError(f'{where} line {lines.get(("version",), 1)}: version: this photodrag reads version 1, '
                              f'got {data["version"]!r:.40}')
    presets = data.get('presets')
    if not isinstance(presets, dict) or not presets:
        raise PresetFileError(f'{where} line {lines.get(("presets",), lines.get((), 1))}: presets: expected a '
                              'mapping of preset names to definitions')
    out = {}
    for name, body in presets.items():
        out[str(name)] = _preset(name, body, lines, where, source, ('presets', name))
    return out


_NAME = re.compile(r'^[a-z0-9][a-z0-9_-]{0,39}$')


def _preset(name, body, lines, where, source, key=()) -> Preset:
    def fail(path, message):
        line = lines.get(key + path) or lines.get(key) or 1
        dotted = '.'.join(str(p) if not isinstance(p, int) else f'[{p}]' for p in key[1:] + path).replace('.[', '[')
        raise PresetFileError(f'{where} line {line}: {dotted or name}: {message}')

    if not isinstance(name, str) or not _NAME.match(name):
        fail((), 'a preset name is lower-case letters, digits, - and _ (at most 40), e.g. smile or wide-smile')
    if not isinstance(body, dict):
        fail((), 'a preset is a mapping with description, moves and mask')
    _keys(body, {'description', 'moves', 'mask'}, key, lines, where, name)
    description = body.get('description', '')
    if not isinstance(description, str):
        fail(('description',), 'expected text')
    moves_in, mask_in = body.get('moves'), body.get('mask')
    if not isinstance(moves_in, list) or not moves_in:
        fail(('moves',), 'expected a list of moves: {points: [landmark indices], by: [dx, dy]} or '
                         '{points: [...], to: [...], share: s}')
    if not isinstance(mask_in, list) or not mask_in:
        fail(('mask',), 'expected a list of regions: {points: [landmark indices], margin: m}')
    moves = []
    for i, m in enumerate(moves_in):
        at = ('moves', i)
        if not isinstance(m, dict):
            fail(at, 'a move is a mapping with points and by (or to and share)')
        _keys(m, {'points', 'by', 'to', 'share'}, key + at, lines, where, name)
        points = _indices(m.get('points'), lambda msg: fail(at + ('points',), msg))
        if ('by' in m) == ('to' in m):
            fail(at, 'give either by: [dx, dy] or to: [landmark indices] with share')
        if 'by' in m:
            if 'share' in m:
                fail(at + ('share',), 'share goes with to:, not with by:')
            by = m['by']
            if not (isinstance(by, list) and len(by) == 2 and all(is_number(v) for v in by)):
                fail(at + ('by',), 'expected [dx, dy]: two numbers, in inter-ocular distances (x towards the '
                                   'image-right eye, y up)')
            if max(abs(float(v)) for v in by) > 1.0:
                fail(at + ('by',), 'a move of more than one inter-ocular distance is not an expression')
            moves.append(Move(points, by=(float(by[0]), float(by[1]))))
        else:
            to = _indices(m.get('to'), lambda msg: fail(at + ('to',), msg))
            if len(to) != len(points):
                fail(at + ('to',), f'expected as many landmarks as points ({len(points)}), got {len(to)}')
            share = m.get('share')
            if not is_number(share, 0, 1):
                fail(at + ('share',), 'expected a number from 0 to 1: how much of the way to go')
            moves.append(Move(points, to=to, share=float(share)))
    regions = []
    for i, r in enumerate(mask_in):
        at = ('mask', i)
        if not isinstance(r, dict):
            fail(at, 'a region is a mapping with points and margin')
        _keys(r, {'points', 'margin'}, key + at, lines, where, name)
        points = _indices(r.get('points'), lambda msg: fail(at + ('points',), msg))
        margin = r.get('margin')
        if not is_number(margin, 0, 2):
            fail(at + ('margin',), 'expected a number from 0 to 2 (inter-ocular distances)')
        regions.append(Region(points, float(margin)))
    covered = {i for r in regions for i in r.points}
    for i, m in enumerate(moves):
        loose = [p for p in m.points if p not in covered]
        if loose:
            fail(('moves', i, 'points'), f'landmark(s) {", ".join(map(str, loose))} move but no mask region lists '
                                         'them, so the move could never show; add them to a region')
    return Preset(name=name, description=description, moves=tuple(moves), regions=tuple(regions), source=source)


def _indices(values, fail) -> Tuple[int, ...]:
    if not isinstance(values, list) or not values:
        fail('expected a list of landmark indices (0-67, iBUG 68-point order)')
    if len(values) > 68 or not all(is_number(v, 0, 67, whole=True) for v in values):
        fail('expected landmark indices from 0 to 67 (iBUG 68-point order)')
    return tuple(values)


def _keys(mapping, allowed, key, lines, where, name=None) -> None:
    for k in mapping:
        if k not in allowed:
            line = lines.get(key + (k,)) or lines.get(key) or 1
            inside = f' in preset {name}' if name else ''
            raise PresetFileError(f'{where} line {line}: unknown key {str(k)[:40]!r}{inside}; expected one of '
                                  f'{", ".join(sorted(allowed))}')


def _compose(text: str, where: str):
    """(plain data, {key path: line}) of YAML or JSON (`datafile.compose`)."""
    from photodrag.datafile import compose
    return compose(text, where, PresetFileError, max_depth=MAX_DEPTH, max_events=MAX_EVENTS)


# ---------------------------------------------------------------- the registry

_builtin: Optional[Dict[str, Preset]] = None


def builtin() -> Dict[str, Preset]:
    """The built-in presets (assets/presets.yaml)."""
    global _builtin
    if _builtin is None:
        _builtin = parse(BUILTIN_FILE.read_text(encoding='utf-8'), str(BUILTIN_FILE), 'built-in')
    return dict(_builtin)


def available(files: Sequence = ()) -> Dict[str, Preset]:
    """The built-in presets plus those of `files` (a later file's preset replaces one of the same name)."""
    out = builtin()
    for f in files:
        out.update(load_file(f))
    return out


def get(name: str, files: Sequence = (), known: Optional[Dict[str, Preset]] = None) -> Preset:
    """The preset called `name` among `known` (default: the built-in ones and those of `files`)."""
    known = known if known is not None else available(files)
    if name not in known:
        raise InvalidSettingsError(f'unknown preset {name!r:.60}; known presets: {", ".join(sorted(known))}'
                                   ' (add your own with --presets FILE)')
    return known[name]


PresetLike = Union[str, Preset, PresetUse, Tuple[Union[str, Preset], float]]


def use(spec: PresetLike, files: Sequence = (), known: Optional[Dict[str, Preset]] = None) -> PresetUse:
    """'smile', 'smile:0.6', a Preset, (name or Preset, strength) or a PresetUse -> PresetUse."""
    if isinstance(spec, PresetUse):
        return PresetUse(spec.preset, check_strength(spec.strength, spec.preset.name))
    if isinstance(spec, Preset):
        return PresetUse(spec)
    if isinstance(spec, tuple) and len(spec) == 2:
        p = spec[0] if isinstance(spec[0], Preset) else use(spec[0], files, known).preset
        return PresetUse(p, check_strength(spec[1], p.name))
    if not isinstance(spec, str):
        raise InvalidSettingsError(f'a preset is a name such as smile or smile:0.6, got {spec!r:.60}')
    name, colon, strength = (part.strip() for part in spec.partition(':'))
    preset = get(name, files, known)
    if not colon:
        return PresetUse(preset)
    try:
        value = float(strength)
    except ValueError:
        raise InvalidSettingsError(f'{spec!r:.60}: the strength after the colon must be a number, e.g. '
                                   f'{name}:0.5') from None
    return PresetUse(preset, check_strength(value, name))


def uses(specs, files: Sequence = (), known: Optional[Dict[str, Preset]] = None) -> Tuple[PresetUse, ...]:
    """Any accepted form of presets (one or a list of: a name, 'name:strength', a Preset, a
    (name or Preset, strength) pair, a PresetUse) -> PresetUses."""
    if specs is None:
        return ()
    if isinstance(specs, (str, Preset, PresetUse)) or (isinstance(specs, tuple) and len(specs) == 2
                                                       and is_number(specs[1])):
        specs = [specs]
    if known is None and specs:
        known = available(files)
    return tuple(use(s, files, known) for s in specs)


def face_drags(preset_uses: Sequence[PresetUse], landmarks, size) -> Tuple[List, np.ndarray, List[str]]:
    """(drags, editable region, what each drag is) of several presets on one face: one drag per
    landmark moved (a landmark two presets move gets the sum of their motions, not two handles
    on one pixel pulling apart), and the union of their regions (photo-sized float32)."""
    w, h = size
    lm = _landmarks(landmarks)
    motion: Dict[int, np.ndarray] = {}
    names: Dict[int, List[str]] = {}
    region = np.zeros((int(h), int(w)), np.float32)
    for u in preset_uses:
        handles, targets = u.preset.displacements(lm, u.strength)
        for index, d in zip(u.preset.moved_points(), targets - handles):
            motion[index] = motion.get(index, 0.0) + d
            names.setdefault(index, []).append(u.label)
        np.maximum(region, u.preset.mask(lm, size, u.strength), out=region)
    drags = [((float(lm[i][0]), float(lm[i][1])), (float(lm[i][0] + d[0]), float(lm[i][1] + d[1])))
             for i, d in motion.items()]
    labels = [f'landmark {i} ({" + ".join(names[i])})' for i in motion]
    return drags, region, labels


__all__ = ['Preset', 'PresetUse', 'Move', 'Region', 'PresetFileError', 'builtin', 'available', 'get', 'use', 'uses',
           'load_file', 'parse', 'face_frame', 'face_drags', 'check_strength', 'BUILTIN_FILE']
