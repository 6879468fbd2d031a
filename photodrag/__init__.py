"""photodrag: edit real photographs by dragging points (DragGAN on real photos).

    import photodrag
    result = photodrag.edit('group.jpg', [((410, 300), (418, 290))])   # bundled demo generator
    result.save('group_edited.jpg')

    G = photodrag.load_generator('demo-faces')
    session = photodrag.DragSession(G, w, handles=[(60, 80)], targets=[(64, 76)])

The stages are sub-packages: `photodrag.stylegan` (the generator), `photodrag.checkpoints`
(loaders, registry, cache), `photodrag.alignment` (photo I/O, faces, crops, paste-back),
`photodrag.inversion` (LPIPS, projection, pivotal tuning), `photodrag.drag` (DragGAN) and
`photodrag.pipeline` (edit(), records, reports). Above them: `photodrag.expressions` (presets,
the expression read-out), `photodrag.batches` (recipes over many photos), `photodrag.evaluation`
(metrics, protocols, DragBench), `photodrag.cli` (the command) and `photodrag.web` (the editor).
`photodrag.errors`, `photodrag.io` and `photodrag.datafile` are shared by all of them. Names are imported on first use, so `import photodrag` is quick and
`photodrag.errors` does not load torch.
"""

import importlib

from photodrag.errors import (BadCheckpointError, CheckpointNotFoundError, DownloadError, InvalidBoxError,
                              InvalidImageError, InvalidMaskError, InvalidPointsError, InvalidSettingsError,
                              NoFaceFoundError, PhotodragError, UnreadableImageError, UnsafeCheckpointError)

try:
    from importlib.metadata import PackageNotFoundError, version as _version
    __version__ = _version('photodrag')
except PackageNotFoundError:        # a source tree that was not installed
    __version__ = 'unknown'

_SUBPACKAGES = ('stylegan', 'checkpoints', 'alignment', 'inversion', 'drag', 'pipeline', 'expressions', 'batches',
                'evaluation', 'cli', 'web', 'io', 'restricted', 'datafile')

# public name -> the sub-package that defines it
_API = {
    **dict.fromkeys(('edit', 'edit_from_record', 'EditConfig', 'EditResult', 'EditRecord', 'FaceEdit'), 'pipeline'),
    **dict.fromkeys(('batch', 'load_recipe'), 'batches'),
    **dict.fromkeys(('DragSession', 'DragConfig', 'DragStep'), 'drag'),
    **dict.fromkeys(('invert', 'Inversion', 'InversionConfig', 'load_lpips'), 'inversion'),
    **dict.fromkeys(('load_generator', 'save_generator', 'list_checkpoints', 'random_generator'), 'checkpoints'),
    **dict.fromkeys(('Photo', 'read_photo', 'write_photo', 'Face', 'detect_faces', 'align', 'AlignedCrop',
                     'CropTransform', 'recipe_for', 'paste_back', 'PasteConfig'), 'alignment'),
    **dict.fromkeys(('Generator', 'w_from_seed', 'to_uint8', 'from_uint8'), 'stylegan'),
}


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f'photodrag.{name}')
    if name in _API:
        value = getattr(importlib.import_module(f'photodrag.{_API[name]}'), name)
        globals()[name] = value
        return value
    raise AttributeError(f'module photodrag has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(_API) | set(_SUBPACKAGES))


__all__ = sorted(_API) + ['PhotodragError', 'InvalidSettingsError', 'BadCheckpointError', 'UnsafeCheckpointError',
                          'CheckpointNotFoundError', 'DownloadError', 'InvalidPointsError', 'InvalidMaskError',
                          'InvalidBoxError', 'UnreadableImageError', 'NoFaceFoundError', 'InvalidImageError',
                          '__version__']
