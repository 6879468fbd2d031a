"""Photo I/O, face/object detection, crop recipes, CropTransform and paste-back (not built yet)."""
