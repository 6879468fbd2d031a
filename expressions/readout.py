"""What a face's 68 landmarks say about its expression: eye openness, mouth openness, smile width.

    from photodrag.expressions import readout as expression
    readout = expression.read(face.landmarks)
    readout.states()            # {'eyes': 'open', 'mouth': 'closed', 'smile': 'neutral'}

The measures are ratios of landmark distances, so they do not depend on the face's size or
roll. Where each threshold comes from is written beside it (docs/presets.md has the table).
"""

from dataclasses import asdict, dataclass
from typing import Dict

import numpy as np

from photodrag.errors import InvalidSettingsError

# Eye aspect ratio (Soukupová & Čech, "Real-Time Eye Blink Detection using Facial Landmarks",
# CVWW 2016): (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|) over the six landmarks of an eye. They
# report open eyes at about 0.3, falling towards 0.05-0.1 in a blink; 0.2 is the cut commonly
# used for "closed". Over the faces of shared/data/photos whose eyes are wide enough to read
# (below), all open, dlib's landmarks give 0.21-0.43, so 0.18 flags none of them.
EYES_CLOSED_BELOW = 0.18
# dlib's landmarks are whole pixels: on an eye 9 px wide one pixel is 0.11 of EAR. The four
# 45 px faces of group4_codeformer_00.jpg (eyes open, narrowed by smiles and glasses, 8-9 px
# wide) read 0.12-0.17. Below this eye width (photo px) the eye state is 'uncertain'.
MIN_EYE_PX = 12.0
# Mouth openness: the inner-lip gap (landmarks 61-67, 62-66, 63-65, mean) over the inner
# mouth width (60-64), the mouth aspect ratio of yawn and speech detectors. Closed mouths of
# shared/data/photos read 0.00-0.23; the two toothy smiles of group3_family_gfpgan_10045.png
# read 0.26 and 0.31, so a mouth counts as open (caught mid-word) above 0.35.
MOUTH_OPEN_ABOVE = 0.35
# Smile width: the mouth corners' distance (48-54) over the inter-ocular distance. Neutral
# faces of shared/data/photos read 0.67-1.07; the broad smile of group2 (face 1) 1.17.
SMILING_ABOVE = 1.1

THRESHOLDS = {'eyes_closed_below': EYES_CLOSED_BELOW, 'mouth_open_above': MOUTH_OPEN_ABOVE,
              'smiling_above': SMILING_ABOVE}


@dataclass(frozen=True)
class Readout:
    """Eye aspect ratio of the image-left and image-right eye, mouth aspect ratio (inner lips),
    smile width (mouth corners over inter-ocular distance), and the eyes' width in pixels
    (their state is 'uncertain' below MIN_EYE_PX)."""
    left_eye: float
    right_eye: float
    mouth: float
    smile: float
    eye_width: float = float('inf')

    def states(self, eyes_closed_below: float = EYES_CLOSED_BELOW, mouth_open_above: float = MOUTH_OPEN_ABOVE,
               smiling_above: float = SMILING_ABOVE) -> Dict[str, str]:
        """What the measures imply: eyes 'open', 'closed', 'one closed' or 'uncertain' (too
        small to read); mouth 'open' or
        'closed'; smile 'smiling' or 'neutral'."""
        closed = [e < eyes_closed_below for e in (self.left_eye, self.right_eye)]
        eyes = 'closed' if all(closed) else ('one closed' if any(closed) else 'open')
        if self.eye_width < MIN_EYE_PX:
            eyes = 'uncertain'
        return {'eyes': eyes, 'mouth': 'open' if self.mouth > mouth_open_above else 'closed',
                'smile': 'smiling' if self.smile > smiling_above else 'neutral'}

    def to_dict(self) -> Dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}

    def describe(self, **thresholds) -> str:
        s = self.states(**thresholds)
        return (f'eyes {self.left_eye:.2f}/{self.right_eye:.2f} ({s["eyes"]}), mouth {self.mouth:.2f} '
                f'({s["mouth"]}), smile {self.smile:.2f} ({s["smile"]})')


def eye_aspect_ratio(eye) -> float:
    """Soukupová & Čech's EAR of six eye landmarks p1..p6 (corner, two upper, corner, two lower)."""
    p = np.asarray(eye, np.float64)
    width = np.hypot(*(p[0] - p[3]))
    if not width > 0:
        return 0.0
    return float((np.hypot(*(p[1] - p[5])) + np.hypot(*(p[2] - p[4]))) / (2.0 * width))


def read(landmarks) -> Readout:
    """The expression read-out of one face's 68 landmarks (iBUG 300-W order)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise InvalidSettingsError(f'an expression read-out needs 68 finite (x, y) landmarks, got {lm.shape}')
    iod = float(np.hypot(*(lm[42:48].mean(axis=0) - lm[36:42].mean(axis=0))))
    inner = float(np.hypot(*(lm[60] - lm[64])))
    gap = np.mean([np.hypot(*(lm[a] - lm[b])) for a, b in ((61, 67), (62, 66), (63, 65))])
    return Readout(left_eye=eye_aspect_ratio(lm[36:42]), right_eye=eye_aspect_ratio(lm[42:48]),
                   mouth=float(gap / inner) if inner > 0 else 0.0,
                   smile=float(np.hypot(*(lm[48] - lm[54])) / iod) if iod > 0 else 0.0,
                   eye_width=float(np.mean([np.hypot(*(lm[36] - lm[39])), np.hypot(*(lm[42] - lm[45]))])))


# the fixes `photodrag fix` makes: the state that calls for it, and the preset that fixes it
FIXES = {'closed-eyes': ('open-eyes', lambda r, t: r.eye_width >= MIN_EYE_PX
                         and min(r.left_eye, r.right_eye) < t['eyes_closed_below']),
         'open-mouth': ('close-mouth', lambda r, t: r.mouth > t['mouth_open_above'])}


def check_thresholds(**given) -> Dict[str, float]:
    """THRESHOLDS with the `given` ones (None = default) replaced, checked."""
    out = dict(THRESHOLDS)
    for key, value in given.items():
        if key not in out:
            raise InvalidSettingsError(f'unknown threshold {key!r}; known: {", ".join(out)}')
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) <= 5:
            raise InvalidSettingsError(f'the threshold {key} must be a number from 0 to 5, got {value!r:.40}')
        out[key] = float(value)
    return out


EYES = {'left': tuple(range(36, 42)), 'right': tuple(range(42, 48))}     # image-left, image-right


def fixes_for(readout: Readout, fixes, known, thresholds=None) -> list:
    """The presets (from `known`, by name) that the `fixes` asked for call for on this face:
    `open-eyes` on the closed eye only when just one is closed, `close-mouth` on an open mouth."""
    thresholds = thresholds or THRESHOLDS
    out = []
    for fix in fixes:
        if not needs_fix(readout, fix, thresholds):
            continue
        preset = known[FIXES[fix][0]]
        if fix == 'closed-eyes':
            closed = [side for side, ear in (('left', readout.left_eye), ('right', readout.right_eye))
                      if ear < thresholds['eyes_closed_below']]
            if len(closed) == 1:
                preset = preset.only(EYES[closed[0]], name=f'{preset.name}-{closed[0]}')
        out.append(preset)
    return out


def needs_fix(readout: Readout, fix: str, thresholds=None) -> bool:
    if fix not in FIXES:
        raise InvalidSettingsError(f'unknown fix {fix!r}; known: {", ".join(FIXES)}')
    return bool(FIXES[fix][1](readout, thresholds or THRESHOLDS))


__all__ = ['Readout', 'read', 'fixes_for', 'EYES', 'eye_aspect_ratio', 'THRESHOLDS', 'FIXES', 'needs_fix', 'check_thresholds',
           'EYES_CLOSED_BELOW', 'MOUTH_OPEN_ABOVE', 'SMILING_ABOVE', 'MIN_EYE_PX']
