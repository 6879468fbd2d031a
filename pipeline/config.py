"""EditConfig: every setting of `photodrag.edit`, saved in each edit record."""

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from photodrag.alignment.paste import PasteConfig
from photodrag.drag.config import DragConfig
from photodrag.errors import InvalidSettingsError
from photodrag.inversion.config import PRESETS, InversionConfig


REGIONS = ('local', 'whole')


def _default_paste() -> PasteConfig:
    return PasteConfig(region='changed')    # only what the drag changed is blended in


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
            ('seed', self.seed is None or _is_int(self.seed) and 0 <= self.seed < 2 ** 32,
             'an integer in 0..2**32-1 or None'),
            ('max_steps', self.max_steps is None or _is_int(self.max_steps) and 0 <= self.max_steps <= 100_000,
             'an integer in 0..100000 or None'),
            ('recipe', self.recipe is None or isinstance(self.recipe, str), 'a crop recipe name or None'),
            ('upsample', self.upsample is None or _is_int(self.upsample) and 0 <= self.upsample <= 4,
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
        return dataclasses.replace(self, inversion=self.inversion_config(), seed=None, drag=self.drag_config(),
                                   max_steps=None)

    def replace(self, **changes) -> 'EditConfig':
        return dataclasses.replace(self, **changes)

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
        for key, kind in (('inversion', InversionConfig), ('drag', DragConfig), ('paste', PasteConfig)):
            if values.get(key) is not None:
                values[key] = _sub_config(kind, values[key], key)
        return cls(**values)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


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
