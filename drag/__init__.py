"""DragGAN: features, point tracking, motion supervision, DragSession (not built yet)."""
