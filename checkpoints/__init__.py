"""The model zoo: safe loaders for every generator format, the registry, the download cache.

    from photodrag import checkpoints
    G = checkpoints.load_generator('stylegan2-ffhq-512')        # a registry name
    G = checkpoints.load_generator('network-snapshot.pkl')       # or any supported file
    checkpoints.save_generator(G, 'ffhq512.safetensors')         # photodrag's own format
"""

from .cache import (DownloadResult, VerifyResult, cache_dir, checkpoint_dir, download, local_path,
                    sha256_file, verify)
from .loader import describe, detect_format, load_file, load_generator, random_generator, resolve_path
from .native import save_generator
from .registry import REGISTRY, CheckpointEntry, get_entry, list_checkpoints, named_entry

__all__ = [
    'load_generator', 'load_file', 'save_generator', 'random_generator', 'detect_format', 'describe',
    'resolve_path', 'CheckpointEntry', 'REGISTRY', 'get_entry', 'list_checkpoints', 'named_entry',
    'cache_dir', 'checkpoint_dir', 'local_path', 'download', 'verify', 'sha256_file',
    'DownloadResult', 'VerifyResult',
]
