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

from photodrag.errors import PhotodragError

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
        names = {f.name for f in dataclasses.fields(cls)}
        face_names = {f.name for f in dataclasses.fields(FaceRecord)}
        try:
            faces = [FaceRecord(**{k: v for k, v in f.items() if k in face_names}) for f in data['faces']]
            record = cls(**{**{k: v for k, v in data.items() if k in names}, 'faces': faces})
        except (KeyError, TypeError, AttributeError) as e:
            raise PhotodragError(f'the edit record is incomplete or damaged: {e}') from None
        record.edit_config()            # the settings must make sense before anything runs
        return record

    @classmethod
    def load(cls, path) -> 'EditRecord':
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise PhotodragError(f'{path}: no such record file') from None
        except (OSError, ValueError, RecursionError) as e:
            raise PhotodragError(f'{path}: cannot read the edit record: {e}') from None
        return cls.from_dict(data)


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
