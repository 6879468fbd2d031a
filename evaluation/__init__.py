"""Evaluation: how far a drag's content moved, measured from the images.

`metrics` (content shift, re-detected landmarks, fidelity), `protocols` (the landmark protocol
on real photos, content reports, DragBench runs) and `dragbench` (reading and writing DragBench
samples). It calls `photodrag.pipeline.edit`; nothing below imports it.
"""

from .protocols import content_report, eval_content, eval_dragbench, eval_landmarks, write_report

__all__ = ['eval_landmarks', 'eval_content', 'eval_dragbench', 'write_report', 'content_report']
