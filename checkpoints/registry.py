"""Known checkpoints: the generators DragGAN published, with what a user needs to know.

sha256 is filled in where it is known; for the others the first verified download records
the hash locally (see `checkpoints.cache`) and later downloads are held to it.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from photodrag.errors import CheckpointNotFoundError

NVIDIA_NC = 'NVIDIA Source Code License-NC (non-commercial research use only)'
SELF_DISTILLED = 'Self-Distilled StyleGAN release (research use; check its terms before other uses)'
_SD = 'https://storage.googleapis.com/self-distilled-stylegan'
_SD_MIRROR = 'https://huggingface.co/aaronb/StyleGAN2-pkl/resolve/main/self_distill'
_NGC = 'https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files'
_TF = 'http://d36zk2xti64re0.cloudfront.net/stylegan2/networks'
_NGC3 = 'https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files'


def _stylegan3(config: str, data: str, res: int, domain: str, alignment: str, notes: str = '') -> 'CheckpointEntry':
    """One of NVIDIA's published StyleGAN3 models (config 't': translation-equivariant, 'r': also
    rotation-equivariant)."""
    file = f'stylegan3-{config}-{data}-{res}x{res}.pkl'
    kind = {'t': 'StyleGAN3-T', 'r': 'StyleGAN3-R'}[config]
    return CheckpointEntry(f'stylegan3-{config}-{data}-{res}', f'{_NGC3}/{file}', file, res, f'{domain} ({kind})',
                           alignment, NVIDIA_NC, 'nvidia-pickle', notes=notes or f'NVIDIA {kind}, {data}')


@dataclass(frozen=True)
class CheckpointEntry:
    name: str                       # what users type: `--checkpoint NAME`
    url: str                        # primary download address
    filename: str                   # file name in the cache
    resolution: int                 # generator output size (px)
    domain: str                     # what it draws
    alignment: str                  # crop recipe real photos need: 'ffhq', 'afhq', 'car', 'none'
    licence: str
    format: str                     # 'nvidia-pickle' or 'tf-pickle'
    sha256: Optional[str] = None    # known digest, None = recorded on first download
    mirrors: Tuple[str, ...] = ()   # other addresses serving the same file
    supported: bool = True          # False: listed for completeness, not loadable yet
    notes: str = ''
    bundled: Optional[str] = None   # shipped inside the package: path relative to checkpoints/
    grown_from: Optional[str] = None  # this file's generator grown to `resolution` (stylegan.grow)

    @property
    def bundled_path(self) -> Optional[Path]:
        return Path(__file__).parent / self.bundled if self.bundled else None


DEMO_LICENCE = ('photodrag demo model: non-commercial research and trying photodrag only (distilled from '
                'gan-face-generate, MIT code, whose weights were trained on DigiFace-1M, non-commercial research)')

_ENTRIES: List[CheckpointEntry] = [
    CheckpointEntry('demo-faces', '', 'demo-faces.safetensors', 128, 'human faces (small demo model, offline)',
                    'digiface', DEMO_LICENCE, 'photodrag', bundled='demo_faces/demo-faces.safetensors',
                    notes='bundled with photodrag, trained by `python training/train_demo.py`; '
                          'the default for `photodrag demo` and `photodrag edit`'),
    CheckpointEntry('demo-faces-256', '', 'demo-faces.safetensors', 256,
                    'human faces (the demo model grown to 256 px, offline)', 'digiface', DEMO_LICENCE, 'photodrag',
                    bundled='demo_faces/demo-faces.safetensors', grown_from='demo-faces',
                    notes='demo-faces with a 256 px block added that starts as a 2x upsampler (its ToRGB at '
                          'zero): it draws the same faces, upsampled, until pivotal tuning trains the new '
                          'block on a photo; inverts real faces at 256 px (the `best` preset)'),
    CheckpointEntry('stylegan2-ffhq-512', f'{_NGC}/stylegan2-ffhq-512x512.pkl', 'stylegan2-ffhq-512x512.pkl',
                    512, 'human faces (FFHQ)', 'ffhq', NVIDIA_NC, 'nvidia-pickle',
                    notes="DragGAN's face model"),
    CheckpointEntry('stylegan2-afhqcat-512', f'{_NGC}/stylegan2-afhqcat-512x512.pkl',
                    'stylegan2-afhqcat-512x512.pkl', 512, 'cat faces (AFHQ cat)', 'afhq', NVIDIA_NC,
                    'nvidia-pickle'),
    CheckpointEntry('stylegan2-lions-512', f'{_SD}/lions_512_pytorch.pkl', 'stylegan2_lions_512_pytorch.pkl',
                    512, 'lions', 'none', SELF_DISTILLED, 'nvidia-pickle',
                    mirrors=(f'{_SD_MIRROR}/lions_512_pytorch.pkl',)),
    CheckpointEntry('stylegan2-dogs-1024', f'{_SD}/dogs_1024_pytorch.pkl', 'stylegan2_dogs_1024_pytorch.pkl',
                    1024, 'dogs', 'none', SELF_DISTILLED, 'nvidia-pickle',
                    mirrors=(f'{_SD_MIRROR}/dogs_1024_pytorch.pkl',)),
    CheckpointEntry('stylegan2-horses-256', f'{_SD}/horses_256_pytorch.pkl', 'stylegan2_horses_256_pytorch.pkl',
                    256, 'horses', 'none', SELF_DISTILLED, 'nvidia-pickle',
                    mirrors=(f'{_SD_MIRROR}/horses_256_pytorch.pkl',)),
    CheckpointEntry('stylegan2-elephants-512', f'{_SD}/elephants_512_pytorch.pkl',
                    'stylegan2_elephants_512_pytorch.pkl', 512, 'elephants', 'none', SELF_DISTILLED,
                    'nvidia-pickle', mirrors=(f'{_SD_MIRROR}/elephants_512_pytorch.pkl',)),
    CheckpointEntry('stylegan2-car-512', f'{_TF}/stylegan2-car-config-f.pkl', 'stylegan2-car-config-f.pkl',
                    512, 'cars (LSUN car; 512x384 content, padded)', 'car', NVIDIA_NC, 'tf-pickle',
                    notes='original TensorFlow pickle, converted on load'),
    CheckpointEntry('stylegan2-cat-256', f'{_TF}/stylegan2-cat-config-f.pkl', 'stylegan2-cat-config-f.pkl',
                    256, 'cats (LSUN cat)', 'none', NVIDIA_NC, 'tf-pickle',
                    notes='original TensorFlow pickle, converted on load'),
    # NVIDIA's published StyleGAN3 models, each in config T and R
    *[_stylegan3(config, data, res, domain, alignment) for data, res, domain, alignment in (
        ('ffhq', 1024, 'human faces (FFHQ)', 'ffhq'),
        ('ffhqu', 1024, 'human faces (FFHQ, unaligned)', 'ffhq'),
        ('ffhqu', 256, 'human faces (FFHQ, unaligned)', 'ffhq'),
        ('afhqv2', 512, 'cat, dog and wild animal faces (AFHQv2)', 'afhq'),
        ('metfaces', 1024, 'faces in art (MetFaces)', 'ffhq'),
        ('metfacesu', 1024, 'faces in art (MetFaces, unaligned)', 'ffhq'),
    ) for config in 'tr'],
    CheckpointEntry('stylegan-human-v2-512',
                    'https://huggingface.co/aaronb/StyleGAN2-pkl/resolve/main/human/stylegan_human_v2_512.pkl',
                    'stylegan_human_v2_512.pkl', 512, 'full-body people (SHHQ), 512x256', 'body',
                    'StyleGAN-Human licence (non-commercial research use)', 'nvidia-pickle',
                    notes="DragGAN's full-body model: 512x256, shown on a white 512x512 canvas; give the person's "
                          'box (--box)'),
]

REGISTRY: Dict[str, CheckpointEntry] = {e.name: e for e in _ENTRIES}


def list_checkpoints() -> List[CheckpointEntry]:
    return list(_ENTRIES)


def named_entry(path_or_name) -> Optional[CheckpointEntry]:
    """The registry entry `path_or_name` names, or None. Names win over files: a file in the
    working directory called `demo-faces` does not replace the bundled model; give it as a
    path (`./demo-faces`) to load it."""
    return REGISTRY.get(os.fspath(path_or_name))


def get_entry(name: str) -> CheckpointEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise CheckpointNotFoundError(f'no known checkpoint named {name!r}; known: {", ".join(REGISTRY)} '
                                      '(or give a path to a file)') from None
