"""Expressions: presets (smile, open-eyes, ...) as data, and the read-out of a face's expression.

`presets` turns a preset into drags from a face's 68 landmarks (built-ins in `presets.yaml`,
docs/presets.md); `readout` measures what a face shows (eye and mouth openness, smile) from
its landmarks. `photodrag.pipeline.edit` applies presets; this room imports no stage.
"""
