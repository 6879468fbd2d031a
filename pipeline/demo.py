"""The bundled demo: a public-domain portrait and the mouth-corner drags `photodrag demo` makes.

    from photodrag.pipeline import demo
    photo, face = demo.demo_face()
    drags = demo.demo_drags(face, expression='relax')

The photo is NASA's portrait of Eileen Collins (public domain; assets/NOTICE.txt), the one
scikit-image ships as `astronaut`.
"""

from pathlib import Path
from typing import List, Tuple

import numpy as np

from photodrag.errors import InvalidSettingsError

DEMO_PHOTO = Path(__file__).parent / 'assets' / 'astronaut.png'

EXPRESSIONS = ('smile', 'relax')

Point = Tuple[float, float]


def demo_drags(face, amount: float = 0.08, expression: str = 'smile') -> List[Tuple[Point, Point]]:
    """Both mouth corners (landmarks 48, 54) of `face` moved together by `amount` x the face's
    width (jaw landmarks 0 to 16), along the face's own axes: 'smile' moves them outward and
    up, 'relax' inward and down (a smiling mouth closes towards a neutral one)."""
    if expression not in EXPRESSIONS:
        raise InvalidSettingsError(f'expression must be one of {", ".join(EXPRESSIONS)}, got {expression!r}')
    lm = np.asarray(face.landmarks, np.float64)
    across = lm[42:48].mean(axis=0) - lm[36:42].mean(axis=0)        # left eye -> right eye (image left -> right)
    across /= np.hypot(*across)
    up = np.array([across[1], -across[0]])                          # perpendicular, towards the forehead
    width = float(np.hypot(*(lm[16] - lm[0])))
    step = amount * width / np.hypot(0.6, 0.8)
    sign = 1.0 if expression == 'smile' else -1.0
    drags = []
    for index, outward in ((48, -across), (54, across)):
        handle = lm[index]
        target = handle + sign * step * (0.6 * outward + 0.8 * up)
        drags.append((tuple(float(v) for v in handle), tuple(float(v) for v in target)))
    return drags


def default_demo_expression(checkpoint) -> str:
    """'relax' for the demo generator and its grown forms (they learned few smiles wider than
    the astronaut's), 'smile' for any other checkpoint."""
    from photodrag import checkpoints
    entry = checkpoints.named_entry(checkpoint)
    return 'relax' if entry is not None and 'demo-faces' in (entry.name, entry.grown_from) else 'smile'


def demo_face(detector=None):
    """(the demo `Photo`, its face): the face dlib finds in the bundled portrait (the best-scoring
    one, should a detector number more)."""
    from photodrag import alignment
    photo = alignment.read_photo(DEMO_PHOTO)
    faces = alignment.detect_faces(photo, detector=detector)
    if not faces:
        raise alignment.no_face_error(0, str(DEMO_PHOTO))
    return photo, max(faces, key=lambda f: f.score)


__all__ = ['DEMO_PHOTO', 'EXPRESSIONS', 'demo_drags', 'default_demo_expression', 'demo_face']
