"""DragGAN's point dragging: features, point tracking, motion supervision, DragSession.

    from photodrag.drag import DragSession, DragConfig
    session = DragSession(G, w, handles=[(x, y)], targets=[(x2, y2)], config=DragConfig(precision='bf16'))
    session.run()
"""

from .config import DragConfig
from .features import FeatureMap, FullResFeatures, LowResFeatures
from .session import DragSession, DragStep

__all__ = ['DragSession', 'DragConfig', 'DragStep', 'FeatureMap', 'FullResFeatures', 'LowResFeatures']
