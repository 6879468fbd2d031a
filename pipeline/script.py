"""An interactive drag as a script: every call that changed a `DragSession`, so it replays exactly.

A drag in the web editor is not one run from fixed points: the user stops it, moves a
handle, adds a pair, paints the mask, changes the step size, undoes steps, and starts again.
`ScriptedDrag` makes those calls on the session and writes each down; the edit record keeps
the list (`FaceRecord.drag['script']`), and `pipeline.edit_from_record` makes the same calls
in the same order, so the replay gives the same pixels. Points are written in photo pixels
and mapped into the crop by the face's `CropTransform` both times; the editable region is
the crop-sized 8-bit PNG the editor painted, stored as base64 (the last one bounds the paste).

    ops: {'op': 'step', 'n': 12}                 12 calls of session.step()
         {'op': 'add', 'handle': [x, y], 'target': [x, y]}
         {'op': 'move', 'index': 0, 'handle': [x, y] | None, 'target': [x, y] | None}
         {'op': 'remove', 'index': 1}
         {'op': 'mask', 'png': '<base64>' | None}
         {'op': 'lr', 'lr': 0.004}
         {'op': 'undo', 'to_step': 20}
         {'op': 'tuned'}                         the drag goes on on the tuned generator

A drag begun before the face's pivotal tuning ended (the editor's progressive start) runs on the
untuned generator from the inversion's start (`inversion.preview`) until its one 'tuned' op,
which moves it onto the tuned generator at the inversion's latent
(`DragSession.switch_generator`); such a script is version 2.
"""

import base64
import io
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from photodrag.errors import PhotodragError

from .record import MAX_POINTS

SCRIPT_FORMAT = 'photodrag-drag-script'
SCRIPT_VERSION = 1
PROGRESSIVE_VERSION = 2     # a script with a 'tuned' op
MAX_OPS = 20_000            # a tampered record cannot make a replay run for ever
MAX_STEPS = 100_000         # what `--steps` allows: hours on a CPU, not weeks
MAX_MASK_BYTES = 4 << 20


class ScriptedDrag:
    """A `DragSession` whose every change is written down (`ops`). Points are photo pixels."""

    def __init__(self, session, transform, ops: Optional[List[Dict[str, Any]]] = None,
                 tuned: Optional[Callable[[], Tuple[Any, Any]]] = None):
        """tuned: for a replay, gives (tuned generator, inversion latent) at the script's 'tuned' op."""
        self.session = session
        self.transform = transform
        self.ops: List[Dict[str, Any]] = [] if ops is None else ops
        self._tuned = tuned

    @property
    def progressive(self) -> bool:
        """Whether the drag began before the face's tuning ended and went on on the tuned generator."""
        return progressive(self.ops)

    # ---------------------------------------------------------------- the calls

    def step(self, preview: bool = False):
        result = self.session.step(preview=preview)
        if self.ops and self.ops[-1]['op'] == 'step':
            self.ops[-1]['n'] += 1
        else:
            self.ops.append({'op': 'step', 'n': 1})
        return result

    def add(self, handle, target) -> int:
        h, t = self.to_crop(handle), self.to_crop(target)
        index = self.session.add_point(h, t)
        self.ops.append({'op': 'add', 'handle': _xy(handle), 'target': _xy(target)})
        return index

    def move(self, index: int, handle=None, target=None) -> None:
        self.session.move_point(index, None if handle is None else self.to_crop(handle),
                                None if target is None else self.to_crop(target))
        self.ops.append({'op': 'move', 'index': int(index), 'handle': None if handle is None else _xy(handle),
                         'target': None if target is None else _xy(target)})

    def remove(self, index: int) -> None:
        self.session.remove_point(index)
        self.ops.append({'op': 'remove', 'index': int(index)})

    def set_mask(self, png: Optional[bytes]) -> None:
        """The editable region painted on the crop (a crop-sized PNG, white = may change), or
        None for none. Like the local region of `edit()` it bounds what the paste takes from the
        edited crop (`mask_png` at the end); the drag itself is not held back by it."""
        if png is not None:
            decode_mask(png, self.session.resolution)       # checked now, not at the end
        self.ops.append({'op': 'mask', 'png': None if png is None else base64.b64encode(png).decode('ascii')})

    def set_lr(self, lr: float) -> None:
        self.session.set_lr(lr)
        self.ops.append({'op': 'lr', 'lr': float(lr)})

    def undo(self, steps: int = 1, to_step: Optional[int] = None):
        result = self.session.undo(steps, to_step=to_step)
        self.ops.append({'op': 'undo', 'to_step': int(result.step)})
        return result

    def tuned(self, G, ws):
        """Go on on the tuned generator `G` at the inversion's latent `ws` (once per drag)."""
        if self.progressive:
            raise PhotodragError('this drag is on the tuned generator already')
        result = self.session.switch_generator(G, ws)
        self.ops.append({'op': 'tuned'})
        return result

    # ---------------------------------------------------------------- helpers

    def to_crop(self, point) -> Tuple[float, float]:
        return tuple(float(v) for v in self.transform.to_crop(np.array([point], np.float64))[0])

    @property
    def mask_png(self) -> Optional[bytes]:
        """The PNG of the mask in force now (the last mask op's), or None."""
        for op in reversed(self.ops):
            if op['op'] == 'mask':
                return None if op['png'] is None else base64.b64decode(op['png'])
        return None

    def drags(self, start: Sequence) -> List[Tuple[Tuple[float, float], Tuple[float, float]]]:
        return script_drags(start, self.ops)

    def to_dict(self) -> Dict[str, Any]:
        return {'format': SCRIPT_FORMAT, 'version': PROGRESSIVE_VERSION if self.progressive else SCRIPT_VERSION,
                'ops': [dict(op) for op in self.ops]}

    def replay(self, ops: Sequence[Dict[str, Any]]) -> None:
        """Make the calls of `ops` (checked with `check_ops`) on this session."""
        for op in ops:
            kind = op['op']
            if kind == 'step':
                for _ in range(op['n']):
                    self.step()
            elif kind == 'add':
                self.add(op['handle'], op['target'])
            elif kind == 'move':
                self.move(op['index'], op['handle'], op['target'])
            elif kind == 'remove':
                self.remove(op['index'])
            elif kind == 'mask':
                self.set_mask(None if op['png'] is None else base64.b64decode(op['png']))
            elif kind == 'lr':
                self.set_lr(op['lr'])
            elif kind == 'undo':
                self.undo(to_step=op['to_step'])
            elif kind == 'tuned':
                if self._tuned is None:
                    raise PhotodragError('the script goes on on a tuned generator, but none was given')
                self.tuned(*self._tuned())


def progressive(ops: Sequence[Dict[str, Any]]) -> bool:
    """Whether a drag's ops begin on the inversion's start and go on on the tuned generator."""
    return any(op['op'] == 'tuned' for op in ops)


def script_drags(start: Sequence, ops: Sequence[Dict[str, Any]]) -> List[Tuple[Tuple[float, float], Tuple[float, float]]]:
    """Every handle -> target pair (photo px) a drag was given: `start`'s, then those the ops
    added or moved (what bounds the local editable region)."""
    out = [(tuple(h), tuple(t)) for h, t in start]
    current = list(out)
    for op in ops:
        if op['op'] == 'add':
            current.append((tuple(op['handle']), tuple(op['target'])))
            out.append(current[-1])
        elif op['op'] == 'move' and 0 <= op['index'] < len(current):
            h, t = current[op['index']]
            current[op['index']] = (tuple(op['handle'] or h), tuple(op['target'] or t))
            out.append(current[op['index']])
        elif op['op'] == 'remove' and 0 <= op['index'] < len(current):
            del current[op['index']]
    return out


def decode_mask(png: bytes, resolution: int) -> np.ndarray:
    """A crop-sized grayscale PNG -> float32 [R, R] in [0, 1] (white = may change)."""
    from PIL import Image, UnidentifiedImageError
    if len(png) > MAX_MASK_BYTES:
        raise PhotodragError(f'the mask is {len(png)} bytes; at most {MAX_MASK_BYTES} are accepted')
    try:
        with Image.open(io.BytesIO(png)) as img:
            if img.format != 'PNG':
                raise PhotodragError(f'the mask must be a PNG, not {img.format}')
            if img.size != (resolution, resolution):
                raise PhotodragError(f'the mask is {img.size[0]}x{img.size[1]}; it must be the crop\'s '
                                     f'{resolution}x{resolution}')
            a = np.asarray(img.convert('L'), np.float32) / 255.0
    except Image.DecompressionBombError:
        raise PhotodragError('the mask declares more pixels than any crop has (a decompression bomb?)') from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise PhotodragError(f'the mask is not a readable PNG ({str(e)[:120]})') from None
    return a


def encode_mask(mask: np.ndarray) -> bytes:
    """float [R, R] in [0, 1] -> an 8-bit grayscale PNG."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(np.asarray(mask, np.float32) * 255), 0, 255).astype(np.uint8), 'L').save(
        buf, format='PNG', optimize=True)
    return buf.getvalue()


def check_script(data: Any, where: str = 'the record') -> List[Dict[str, Any]]:
    """The ops of a stored script, every field checked (a damaged or hostile record fails here,
    with what is wrong, before anything runs)."""
    def bad(msg):
        return PhotodragError(f'{where}: drag script: {msg}')
    if not isinstance(data, dict) or data.get('format') != SCRIPT_FORMAT:
        raise bad(f'expected an object with format {SCRIPT_FORMAT!r}')
    if data.get('version') not in (SCRIPT_VERSION, PROGRESSIVE_VERSION):
        raise bad(f'version {data.get("version")!r} is not supported (this photodrag reads {SCRIPT_VERSION} and '
                  f'{PROGRESSIVE_VERSION})')
    ops = data.get('ops')
    if not isinstance(ops, list) or len(ops) > MAX_OPS:
        raise bad(f'ops must be a list of at most {MAX_OPS}')
    total = added = 0
    fields = {'step': {'n'}, 'add': {'handle', 'target'}, 'move': {'index', 'handle', 'target'},
              'remove': {'index'}, 'mask': {'png'}, 'lr': {'lr'}, 'undo': {'to_step'}, 'tuned': set()}
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or op.get('op') not in fields or set(op) != fields[op['op']] | {'op'}:
            raise bad(f'op {i} is not one of {", ".join(fields)} with its fields')
        kind = op['op']
        for key in ('n', 'index', 'to_step'):
            if key in op and not (isinstance(op[key], int) and not isinstance(op[key], bool) and
                                  0 <= op[key] <= MAX_STEPS):
                raise bad(f'op {i} ({kind}): {key} must be a whole number from 0 to {MAX_STEPS}')
        for key in ('handle', 'target'):
            if key in op and not (op[key] is None and kind == 'move') and not _is_point(op[key]):
                raise bad(f'op {i} ({kind}): {key} must be [x, y]')
        if kind == 'lr' and not (isinstance(op['lr'], (int, float)) and math.isfinite(op['lr']) and op['lr'] > 0):
            raise bad(f'op {i} (lr): lr must be a positive number')
        if kind == 'mask' and op['png'] is not None:
            if not isinstance(op['png'], str) or len(op['png']) > MAX_MASK_BYTES * 4 // 3 + 4:
                raise bad(f'op {i} (mask): png must be base64 text of at most {MAX_MASK_BYTES} bytes')
            try:
                base64.b64decode(op['png'], validate=True)
            except ValueError:
                raise bad(f'op {i} (mask): png is not base64') from None
        total += op.get('n', 0)
        added += kind == 'add'
        if total > MAX_STEPS:
            raise bad(f'more than {MAX_STEPS} steps')
        if added > MAX_POINTS:
            raise bad(f'adds more than {MAX_POINTS} pairs of points (a face takes at most {MAX_POINTS})')
    tuned = sum(op['op'] == 'tuned' for op in ops)
    if tuned != (data['version'] == PROGRESSIVE_VERSION):
        raise bad(f'version {data["version"]} has {"one" if data["version"] == PROGRESSIVE_VERSION else "no"} '
                  f"'tuned' op, this one has {tuned}")
    return ops


def _is_point(p) -> bool:
    return (isinstance(p, (list, tuple)) and len(p) == 2 and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p))


def _xy(p) -> List[float]:
    return [float(p[0]), float(p[1])]
