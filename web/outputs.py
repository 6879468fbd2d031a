"""What a session gives back: its files by name from a fixed list (the photo's view, crops,
reconstructions, masks, the edited photo and its record) and a face's drag as a video."""

from fastapi import APIRouter
from fastapi.responses import FileResponse

from .deps import ServerDep, on_worker, stopped_then

MEDIA_TYPES = {'.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp', '.tif': 'image/tiff',
               '.json': 'application/json'}
DOWNLOADS = ('photo', 'record')         # sent as attachments with a download name

router = APIRouter(prefix='/api/sessions/{sid}')


@router.get('/faces/{k}/video')
async def video(sid: str, k: int, server: ServerDep):
    editor = server.get(sid)
    path, name = await stopped_then(editor, k, editor.video)
    return FileResponse(path, media_type='video/mp4', filename=name)


@router.get('/files/{what}')
async def files(sid: str, what: str, server: ServerDep):
    editor = server.get(sid)
    path, name = await on_worker(editor, editor.output, what)
    media = MEDIA_TYPES.get(path.suffix, 'application/octet-stream')
    if what in DOWNLOADS:
        return FileResponse(path, media_type=media, filename=name)
    return FileResponse(path, media_type=media)
