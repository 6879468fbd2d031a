"""EditConfig: every setting of `photodrag.edit`, saved in each edit record."""

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from photodrag.alignment.paste import PasteConfig
from photodrag.drag.config import REFERENCE_CHOICES, DragConfig
from photodrag.errors import InvalidSettingsError, is_number
from photodrag.inversion.config import PRESETS, InversionConfig


REGIONS = ('local', 'whole')


def _default_paste() -> PasteConfig:
    return PasteConfig(region='changed')    # only what the drag changed is blended in


def auto_quality(device: str) -> str:
    """The inversion preset that fits the machine: 'fast' on a CPU (tens of seconds a face),
    'balanced' on a GPU (its 270 steps take seconds there)."""
    return 'fast' if str(device) == 'cpu' else 'balanced'


@dataclass(frozen=True)
class EditConfig:
    """Settings of one edit of a photo: which generator, how to invert, drag and paste.

    `quality` names an inversion preset ('fast', 'balanced', 'best', 'reference'); an
    `InversionConfig` may be given instead (or in `inversion`), and then wins. `seed`
    replaces the inversion's seed (None keeps it); `max_steps` replaces the drag's step cap.
    `recipe` is the crop recipe (None: the checkpoint's, `alignment.recipe_for`). `region`:
    where a face without a mask may change: 'local' (around its drags, `checks.drag_region`;
    nothing outside is touched) or 'whole' (DragGAN's behaviour: the whole crop)."""
    checkpoint: str = 'demo-faces'              # registry name, checkpoint file, or random:RES[:SEED]
    quality: Optional[str] = 'balanced'         # inversion preset; None when `inversion` is given
    inversion: Optional[InversionConfig] = None  # full inversion settings (replace the preset)
    seed: Optional[int] = 0                     # inversion seed; None keeps the preset's / inversion's
    drag: DragConfig = field(default_factory=DragConfig)
    max_steps: Optional[int] = None             # drag step cap; None keeps drag.max_steps
    paste: PasteConfig = field(default_factory=_default_paste)
    recipe: Optional[str] = None                # crop recipe: ffhq, digiface, afhq, car, object, ...
    upsample: Optional[int] = None              # face detector upsampling (None: automatic)
    device: str = 'cpu'
    region: str = 'local'                       # without a mask: 'local' (around the drags) or 'whole'
    encoder: Optional[str] = None               # where inversions start: None/'auto' (the checkpoint's
                                                # encoder if it has one), 'none', or an encoder file

    def __post_init__(self):
        quality = self.quality
        if isinstance(quality, InversionConfig):        # quality=InversionConfig(...) is accepted as a shorthand
            object.__setattr__(self, 'inversion', quality)
            object.__setattr__(self, 'quality', None)
        elif quality is not None and (not isinstance(quality, str) or quality not in PRESETS):
            raise InvalidSettingsError(f"quality is 'fast', 'balanced', 'best', 'reference' or an InversionConfig, "
                                       f'got {quality!r:.60}')
        if self.quality is None and self.inversion is None:
            raise InvalidSettingsError('give a quality preset or an InversionConfig')
        checks = [
            ('checkpoint', isinstance(self.checkpoint, str) and self.checkpoint, 'a registry name or a file path'),
            ('inversion', self.inversion is None or isinstance(self.inversion, InversionConfig), 'an InversionConfig'),
            ('drag', isinstance(self.drag, DragConfig), 'a DragConfig'),
            ('paste', isinstance(self.paste, PasteConfig), 'a PasteConfig'),
            ('seed', self.seed is None or is_number(self.seed, 0, 2 ** 32 - 1, whole=True),
             'an integer in 0..2**32-1 or None'),
            ('max_steps', self.max_steps is None or is_number(self.max_steps, 0, 100_000, whole=True),
             'an integer in 0..100000 or None'),
            ('recipe', self.recipe is None or isinstance(self.recipe, str), 'a crop recipe name or None'),
            ('upsample', self.upsample is None or is_number(self.upsample, 0, 4, whole=True),
             'an integer in 0..4 or None'),
            ('device', isinstance(self.device, str) and re.fullmatch(r'cpu|mps|cuda(:\d{1,2})?', self.device),
             "'cpu', 'cuda', 'cuda:N' or 'mps'"),
            ('region', self.region in REGIONS, f"one of {', '.join(REGIONS)}"),
            ('encoder', self.encoder is None or isinstance(self.encoder, str) and 0 < len(self.encoder) <= 4096,
             "None, 'auto', 'none' or an encoder file"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InvalidSettingsError(f'EditConfig.{name} must be {expected}, got {getattr(self, name)!r}')

    # ------------------------------------------------------------ what the stages get

    def inversion_config(self) -> InversionConfig:
        config = self.inversion if self.inversion is not None else InversionConfig.preset(self.quality)
        return config if self.seed is None else config.replace(seed=int(self.seed))

    def drag_config(self) -> DragConfig:
        return self.drag if self.max_steps is None else self.drag.replace(max_steps=int(self.max_steps))

    def resolved(self) -> 'EditConfig':
        """The same edit with every override folded in: what a record keeps, and reruns exactly."""
        return dataclasses.replace(self, inversion=self.inversion_config(), seed=None, drag=self.drag_config().resolved(),
                                   max_steps=None)

    def replace(self, **changes) -> 'EditConfig':
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------ from the edges

    @classmethod
    def from_options(cls, *, checkpoint: Optional[str] = None, quality: str = 'balanced',
                     projection_steps: Optional[int] = None, tuning_steps: Optional[int] = None,
                     inversion: Optional[InversionConfig] = None, drag: Optional[Dict[str, Any]] = None,
                     device: Optional[str] = 'auto', encoder: Optional[str] = 'auto',
                     base: Optional[os.PathLike] = None, **fields) -> 'EditConfig':
        """The EditConfig that a command line, a batch recipe or the web editor describes, checked
        before anything loads. The one place that turns options into settings:

        quality names a preset, or 'auto': 'fast' on a CPU, 'balanced' on a GPU (a balanced
        inversion takes about 50 s a face on 2 CPU cores, fast about 30 s; see the README's
        time to ready); projection_steps / tuning_steps replace its step counts; a whole
        `inversion` (an InversionConfig: tests, scripts) replaces the preset instead. drag is
        a mapping of `DragConfig` fields (max_steps among them). device 'auto' (or None) picks
        cuda -> mps -> cpu; the chosen device is checked against both precisions. encoder is
        'auto', 'none' or a file (relative to `base`, e.g. a recipe's folder), which must exist.
        Other `fields` are EditConfig's own (seed, recipe, upsample, region, max_steps, ...)."""
        from .device import pick_device
        if encoder not in (None, 'auto', 'none'):
            path = Path(base or '.') / str(encoder)
            if not path.is_file():
                raise InvalidSettingsError(f'encoder {encoder!s:.200}: no such file (or use auto or none)')
            encoder = str(path.resolve()) if base is not None else str(encoder)
        device = pick_device(device or 'auto')
        if quality == 'auto':
            quality = auto_quality(device)
        steps = {k: v for k, v in (('projection_steps', projection_steps), ('tuning_steps', tuning_steps))
                 if v is not None}
        if steps:           # an unknown quality is InversionConfig.preset's error
            inversion = (inversion or InversionConfig.preset(quality)).replace(**steps)
        drag = dict(drag or {})
        if 'max_steps' in drag:
            fields.setdefault('max_steps', drag.pop('max_steps'))
        _check_keys(DragConfig, drag, 'drag')
        config = cls(checkpoint=checkpoint or 'demo-faces', quality=None if inversion else quality,
                     inversion=inversion, drag=DragConfig(**drag), encoder=encoder, **fields)
        config.inversion_config().check_device(device)
        config.drag_config().check_device(device)
        return config.replace(device=device)

    @classmethod
    def with_settings(cls, config: Optional['EditConfig'] = None, **settings) -> 'EditConfig':
        """`config` (or the defaults) with keyword `settings` (its field names) on top, as
        `edit(photo, drags, config, quality='fast')` takes them; unknown names are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise InvalidSettingsError(f'unknown setting(s) {", ".join(unknown)}; settings are the fields '
                                       f'of EditConfig: {", ".join(sorted(names))}')
        if config is not None and not isinstance(config, cls):
            raise InvalidSettingsError(f'config must be an EditConfig, got {type(config).__name__}')
        settings = {k: (os.fspath(v) if k == 'checkpoint' and isinstance(v, os.PathLike) else v)
                    for k, v in settings.items()}
        if 'quality' in settings and 'inversion' not in settings:
            settings['inversion'] = None            # a preset given by name replaces the config's inversion
        return dataclasses.replace(config or cls(), **settings)

    # ------------------------------------------------------------ JSON

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'EditConfig':
        """The inverse of `to_dict`; unknown keys and wrong types are an `InvalidSettingsError`."""
        if not isinstance(data, dict):
            raise InvalidSettingsError(f'an edit config is a JSON object, got {type(data).__name__}')
        _check_keys(cls, data, 'edit')
        values = dict(data)
        values.update(_older(values))
        for key, kind in (('inversion', InversionConfig), ('drag', DragConfig), ('paste', PasteConfig)):
            if values.get(key) is not None:
                values[key] = _sub_config(kind, values[key], key)
        return cls(**values)


def _older(values: Dict[str, Any]) -> Dict[str, Any]:
    """Settings written before a field existed mean what that version did: drags without handle
    options followed DragGAN's algorithm, paste-backs without `residual` added all of it."""
    out = {}
    if isinstance(values.get('drag'), dict) and 'tracking' not in values['drag']:
        out['drag'] = {**REFERENCE_CHOICES, **values['drag']}
    if isinstance(values.get('paste'), dict) and 'residual' not in values['paste']:
        out['paste'] = {**values['paste'], 'residual': 'all'}
    return out


def _check_keys(kind, data, what: str) -> None:
    unknown = sorted(map(str, set(data) - {f.name for f in dataclasses.fields(kind)}))
    if unknown:
        raise InvalidSettingsError(f'unknown {what} setting(s): {", ".join(k[:40] for k in unknown[:10])}')


def _sub_config(kind, data, key):
    if not isinstance(data, dict):
        raise InvalidSettingsError(f'the {key} settings are a JSON object, got {type(data).__name__}')
    _check_keys(kind, data, key)
    try:
        return kind(**data)
    except TypeError as e:
        raise InvalidSettingsError(f'the {key} settings are malformed: {e}') from None



__all__ = ['EditConfig']
