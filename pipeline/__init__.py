"""The edit chain: edit() a real photo end to end — detect, align, invert, drag, paste back.

    from photodrag import pipeline
    result = pipeline.edit('photo.jpg', [((x1, y1), (x2, y2))], checkpoint='demo-faces')
    result.save('photo_edited.jpg')
    pipeline.edit_from_record(result.record)      # the same pixels again

Modules: `config` (EditConfig), `checks` (the inputs, checked), `editing` (edit,
edit_from_record), `record` (the edit record), `generated` (drags on generated images),
`demo` (the bundled demo), `device`, `report` (pictures and videos), `script` (interactive
drags as replayable calls). The rooms above it (`photodrag.batches`, `photodrag.evaluation`,
`photodrag.cli`, `photodrag.web`) call it; it calls the stages and `photodrag.expressions`.
"""

from .checks import FaceEdit
from .config import EditConfig
from .editing import EditResult, FaceResult, edit, edit_from_record
from .fixes import FixResult, fix_from_record, fix_with_references
from .record import EditRecord, FaceRecord, pixels_sha256
from .report import before_after

__all__ = ['edit', 'edit_from_record', 'fix_with_references', 'fix_from_record', 'FixResult', 'EditConfig', 'EditResult', 'EditRecord', 'FaceEdit', 'FaceRecord',
           'FaceResult', 'before_after', 'pixels_sha256']
