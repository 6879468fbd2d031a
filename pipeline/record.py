"""The edit record: everything needed to reproduce an edit, as JSON (format `photodrag-edit`).

Version 2 keeps the edit's settings as one `EditConfig` (`config`, every override folded in);
version 1 records (separate inversion/drag/paste settings) are read and converted.
"""

import dataclasses
import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from photodrag.errors import PhotodragError, one_line, is_number

RECORD_FORMAT = 'photodrag-edit'
RECORD_VERSION = 2


@dataclass(frozen=True)
class FaceRecord:
    """What was done to one face: where it is, the points in both coordinate systems, results."""
    index: Optional[int]                    # detected face index (left to right); None: given by box / object mode
    box: List[float]                        # (x0, y0, x1, y1) in the photo
    landmarks: Optional[List[List[float]]]  # 68 (x, y) photo points, face recipes only
    score: Optional[float]                  # detector score
    crop_matrix: List[List[float]]          # CropTransform.matrix, photo -> crop
    crop_size: List[int]
    handles_photo: List[List[float]]
    targets_photo: List[List[float]]
    handles_crop: List[List[float]]
    targets_crop: List[List[float]]
    mask: Optional[Dict[str, Any]]          # {'kind': file|array|local, 'path', 'sha256' of the float32 photo mask}
    inversion: Dict[str, Any]               # lpips, lpips_net, psnr, from_cache, image_hash, per-stage metrics
    drag: Dict[str, Any]                    # steps, reason, final handles (crop, photo), distances (crop px, photo px)
    timings: Dict[str, float]               # seconds: align, invert, drag
    presets: List[Dict[str, Any]] = field(default_factory=list)     # PresetUse.to_dict() of each preset used
    drags_given: Optional[int] = None       # how many of the handles were given as drags (the presets' follow)


@dataclass(frozen=True)
class EditRecord:
    """Everything needed to reproduce an edit (JSON: `to_dict`, `save`, `load`)."""
    library_version: str
    input: Dict[str, Any]                   # path, sha256 (file), pixels_sha256, width, height, format
    checkpoint: Dict[str, Any]              # name as given, path, sha256 (file), generator_hash, resolution
    recipe: str                             # the crop recipe used: 'ffhq', 'digiface', 'afhq', 'car', 'object'
    device: str
    config: Dict[str, Any]                  # the EditConfig, resolved (EditConfig.to_dict)
    detection: Dict[str, Any]               # upsample, faces found
    faces: List[FaceRecord]
    output: Dict[str, Any]                  # pixels_sha256, width, height
    timings: Dict[str, float]               # seconds per stage, summed over faces, and 'total'
    environment: Dict[str, str] = field(default_factory=dict)   # python, torch, numpy, platform
    format: str = RECORD_FORMAT
    version: int = RECORD_VERSION

    # the stages' settings, as the config holds them
    @property
    def inversion_config(self) -> Dict[str, Any]:
        return self.config['inversion']

    @property
    def drag_config(self) -> Dict[str, Any]:
        return self.config['drag']

    @property
    def paste_config(self) -> Dict[str, Any]:
        return self.config['paste']

    @property
    def seed(self) -> int:
        return self.config['inversion']['seed']

    @property
    def quality(self) -> Optional[str]:
        return self.config.get('quality')

    def edit_config(self):
        """The record's settings as an `EditConfig` (checked like any other untrusted input)."""
        from .config import EditConfig
        return EditConfig.from_dict(self.config)

    def with_encoding(self, encoding: Optional[Dict[str, Any]]) -> 'EditRecord':
        """The record of a photo file written with `EditResult.save(details=...)`: its
        `output.encoding` says how the file was coded (JPEG blocks kept, or why not)."""
        if not encoding:
            return self
        return dataclasses.replace(self, output={**self.output, 'encoding': encoding})

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path) -> Path:
        """Write the record as JSON, atomically."""
        from photodrag.io import write_json
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'EditRecord':
        if not isinstance(data, dict) or data.get('format') != RECORD_FORMAT:
            raise PhotodragError('not a photodrag edit record (expected JSON with "format": "photodrag-edit")')
        if data.get('version') not in (1, RECORD_VERSION):
            raise PhotodragError(f'edit record version {data.get("version")!r:.40}; this photodrag reads versions 1 '
                                 f'and {RECORD_VERSION}')
        if data['version'] == 1:
            data = _upgrade_v1(data)
        check_record(data)
        face_names = {f.name for f in dataclasses.fields(FaceRecord)}
        faces = [FaceRecord(**{k: v for k, v in f.items() if k in face_names}) for f in data['faces']]
        record = cls(**{**data, 'faces': faces})
        record.edit_config()            # the settings must make sense before anything runs
        return record

    @classmethod
    def load(cls, path) -> 'EditRecord':
        path = Path(path)
        from photodrag.io import read_regular_text
        try:
            data = json.loads(read_regular_text(path, 'an edit record', MAX_RECORD_BYTES))
        except PhotodragError as e:
            raise PhotodragError(str(e).replace(': no such file', ': no such record file')) from None
        except RecursionError:
            raise PhotodragError(f'{path}: the edit record nests too deeply to be one') from None
        except (OSError, ValueError) as e:
            raise PhotodragError(f'{path}: cannot read the edit record: {one_line(e, 160)}') from None
        return cls.from_dict(data)


MAX_RECORD_BYTES = 64 << 20       # drag scripts with painted regions make records of a few MB at most
MAX_FACES = 256
MAX_POINTS = 256


class _Damaged(PhotodragError):
    pass


def _need(ok: bool, where: str, expected: str, value: Any) -> None:
    if not ok:
        shown = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
        raise _Damaged(f'the edit record is damaged: {where} must be {expected}, not {shown[:40]}')


def _number(v) -> bool:
    return is_number(v, -1e9, 1e9)


def _points(value, where: str, count: Optional[int] = None, limit: int = MAX_POINTS) -> None:
    _need(isinstance(value, list) and len(value) <= limit and (count is None or len(value) == count), where,
          f'a list of {count or f"at most {limit}"} [x, y] points', value)
    for i, p in enumerate(value):
        _need(isinstance(p, list) and len(p) == 2 and all(_number(v) for v in p), f'{where}[{i}]',
              'an [x, y] pair of finite numbers', p)


def _text(value, where: str, optional: bool = True, limit: int = 4096) -> None:
    _need((optional and value is None) or (isinstance(value, str) and len(value) <= limit), where,
          f'a string of at most {limit} characters' + (' or null' if optional else ''), value)


def _hex(value, where: str, optional: bool = True) -> None:
    _need((optional and value is None) or (isinstance(value, str) and len(value) == 64
                                          and all(c in '0123456789abcdef' for c in value)),
          where, 'a sha256 (64 hex digits)' + (' or null' if optional else ''), value)


def check_record(data: Dict[str, Any]) -> None:
    """Check a record's structure as untrusted input, before anything runs: the fields a
    replay uses have the right types, finite values and bounded sizes; no unknown keys."""
    names = {f.name for f in dataclasses.fields(EditRecord)}
    unknown = sorted(map(str, set(data) - names))
    _need(not unknown, 'the record', 'free of unknown keys', ', '.join(k[:40] for k in unknown[:5]))
    missing = sorted(n for n in names - set(data) if n not in ('environment', 'format', 'version'))
    _need(not missing, 'the record', 'complete', 'missing ' + ', '.join(missing))
    for key in ('input', 'checkpoint', 'config', 'detection', 'output', 'timings', 'environment'):
        _need(isinstance(data.get(key, {}), dict), key, 'a JSON object', data.get(key))
    _text(data['library_version'], 'library_version', optional=False, limit=64)
    _text(data['recipe'], 'recipe', optional=False, limit=64)
    _text(data['device'], 'device', optional=False, limit=64)
    inp, ckpt = data['input'], data['checkpoint']
    _text(inp.get('path'), 'input.path')
    _hex(inp.get('sha256'), 'input.sha256')
    _hex(inp.get('pixels_sha256'), 'input.pixels_sha256', optional=False)
    for key in ('name', 'path'):
        _text(ckpt.get(key), f'checkpoint.{key}')
    _need(bool(ckpt.get('name') or ckpt.get('path')), 'checkpoint', 'a name or a path', None)
    _hex(ckpt.get('sha256'), 'checkpoint.sha256')
    faces = data['faces']
    _need(isinstance(faces, list) and 1 <= len(faces) <= MAX_FACES, 'faces', f'a list of 1..{MAX_FACES} faces', faces)
    face_names = {f.name for f in dataclasses.fields(FaceRecord)}
    optional = {'presets', 'drags_given'}
    for k, f in enumerate(faces):
        where = f'faces[{k}]'
        _need(isinstance(f, dict), where, 'a JSON object', f)
        unknown = sorted(map(str, set(f) - face_names))
        _need(not unknown, where, 'free of unknown keys', ', '.join(u[:40] for u in unknown[:5]))
        missing = sorted(face_names - set(f) - optional)
        _need(not missing, where, 'complete', 'missing ' + ', '.join(missing))
        index = f['index']
        _need(index is None or is_number(index, 0, 9_999, whole=True),
              f'{where}.index', 'a face number or null', index)
        _need(isinstance(f['box'], list) and len(f['box']) == 4 and all(_number(v) for v in f['box']),
              f'{where}.box', 'four finite numbers', f['box'])
        if f['landmarks'] is not None:
            _points(f['landmarks'], f'{where}.landmarks', count=68)
        _points(f['handles_photo'], f'{where}.handles_photo')
        _points(f['targets_photo'], f'{where}.targets_photo', count=len(f['handles_photo']))
        for key in ('handles_crop', 'targets_crop'):
            _points(f[key], f'{where}.{key}')
        mask = f['mask']
        _need(mask is None or isinstance(mask, dict), f'{where}.mask', 'a JSON object or null', mask)
        if mask is not None:
            _text(mask.get('kind'), f'{where}.mask.kind', optional=False, limit=32)
            _text(mask.get('path'), f'{where}.mask.path')
            _hex(mask.get('sha256'), f'{where}.mask.sha256', optional=False)
        for key in ('inversion', 'drag', 'timings'):
            _need(isinstance(f[key], dict), f'{where}.{key}', 'a JSON object', f[key])
        presets = f.get('presets', [])
        _need(isinstance(presets, list) and len(presets) <= 64 and all(isinstance(u, dict) for u in presets),
              f'{where}.presets', 'a list of at most 64 objects', presets)
        given = f.get('drags_given')
        _need(given is None or is_number(given, 0, whole=True),
              f'{where}.drags_given', 'a whole number or null', given)


def _upgrade_v1(data: Dict[str, Any]) -> Dict[str, Any]:
    """A version-1 record (inversion/drag/paste settings side by side) in version 2's form."""
    data = dict(data)
    try:
        config = {'checkpoint': data['checkpoint']['name'], 'quality': data.get('quality'),
                  'inversion': data.pop('inversion_config'), 'seed': None, 'drag': data.pop('drag_config'),
                  'max_steps': None, 'paste': data.pop('paste_config'), 'recipe': data['recipe'],
                  'upsample': (data.get('detection') or {}).get('upsample'), 'device': data['device'],
                  'region': 'whole'}             # version 1 let the whole crop change
    except (KeyError, TypeError) as e:
        raise PhotodragError(f'the edit record (version 1) is incomplete or damaged: {e}') from None
    data.pop('seed', None)
    data.pop('quality', None)
    data.update(config=config, version=RECORD_VERSION)
    return data


def pixels_sha256(pixels: np.ndarray) -> str:
    """sha256 of an image's shape and uint8 pixels (what 'bit-identical' is checked with)."""
    a = np.ascontiguousarray(pixels)
    return hashlib.sha256(f'{a.shape};{a.dtype};'.encode() + a.tobytes()).hexdigest()


def checkpoint_info(checkpoint, G) -> Dict[str, Any]:
    """What a record keeps of the checkpoint: the name given, its file and sha256, the weights' hash."""
    from photodrag import checkpoints
    from photodrag.inversion import generator_hash
    from photodrag.io import sha256_file
    text = os.fspath(checkpoint)
    path = digest = None
    source = 'random' if text.startswith('random:') else ('registry' if checkpoints.named_entry(text) else 'file')
    if source != 'random':
        path = checkpoints.resolve_path(text, download=False)
        if path.is_file():
            digest = sha256_file(path)
        path = str(Path(path).resolve())
    return {'name': text, 'source': source, 'path': path, 'sha256': digest, 'generator_hash': generator_hash(G),
            'resolution': int(G.img_resolution), 'description': checkpoints.describe(G)}


def library_version() -> str:
    import photodrag
    return photodrag.__version__


def environment() -> Dict[str, str]:
    import torch
    return {'python': platform.python_version(), 'torch': torch.__version__, 'numpy': np.__version__,
            'platform': platform.platform(), 'threads': str(torch.get_num_threads())}


__all__ = ['EditRecord', 'FaceRecord', 'pixels_sha256', 'checkpoint_info', 'RECORD_FORMAT', 'RECORD_VERSION']
