"""Chaining the stages: edit() a real photo end to end, the click CLI (`photodrag`), reports.

    from photodrag import pipeline
    result = pipeline.edit('photo.jpg', [((x1, y1), (x2, y2))], checkpoint='demo-faces')
    result.save('photo_edited.jpg')
    pipeline.edit_from_record(result.record)      # the same pixels again

`pipeline.edit` is the function (it shadows the module `pipeline/edit.py`, whose other
names are all exported here).
"""

from .edit import (EditRecord, EditResult, FaceEdit, FaceRecord, FaceResult, before_after, edit, edit_from_record,
                   pixels_sha256)

__all__ = ['edit', 'edit_from_record', 'EditResult', 'EditRecord', 'FaceEdit', 'FaceRecord', 'FaceResult',
           'before_after', 'pixels_sha256']
