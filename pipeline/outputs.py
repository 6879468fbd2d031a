"""Writing an edit's files, all or none: the one policy the CLI, batches and the web editor share.

    written = write_outputs(result, 'out.jpg', record='out.json', before_after='out_ba.png')

Each file goes to a temporary name beside its final one; only when every file is complete
are they renamed into place, the record last, so a present record means a complete set.
Nothing is ever written over an input (the callers check their paths first).
"""

from pathlib import Path
from typing import List, Optional, Tuple, Union

from photodrag.io import atomic_files

PathLike = Union[str, Path]


def write_outputs(result, photo: PathLike, *, record: Optional[PathLike] = None,
                  before_after: Optional[PathLike] = None, video=None,
                  quality: Union[int, str, None] = None) -> List[Tuple[str, Path]]:
    """Write `result` (an `EditResult`): the edited photo like its input (JPEG blocks outside the
    edit kept), the before/after picture, and the record, which says how the photo was coded.
    video: a `report.VideoWriter` the drag wrote frames to; it is closed (renamed into place)
    with the others. Returns [(what, path)] in the order a person reads them."""
    from .report import save_image
    named = [('edited photo', Path(photo))] + ([('before/after', Path(before_after))] if before_after else []) + \
        ([('record', Path(record))] if record else [])
    try:
        with atomic_files([path for _, path in named]) as temps:
            tmp = dict(zip([what for what, _ in named], temps))
            details: dict = {}
            result.save(tmp['edited photo'], quality=quality, details=details)
            if before_after:
                save_image(tmp['before/after'], result.before_after())
            if record:
                result.record.with_encoding(details.get('encoding')).save(tmp['record'])
            if video is not None:
                video.close()
    except BaseException:
        if video is not None:
            video.abort()           # its temporary file too
        raise
    written = list(named)
    if video is not None:
        written.insert(len(written) - bool(record), ('drag video', Path(video.path)))
    return written


__all__ = ['write_outputs']
