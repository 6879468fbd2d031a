"""A face of the session's photo: open it (align and invert), place points, paint its region,
change its settings, add a preset, start / stop / undo / reset its drag, apply it to the photo.
Every change waits for a running drag of the face to stop (within one step)."""

import base64
import binascii

from fastapi import APIRouter, Request

from photodrag.errors import PhotodragError, is_number

from .deps import ServerDep, on_worker, read_json, stopped_then

router = APIRouter(prefix='/api/sessions/{sid}/faces/{k}')


@router.post('/open')
async def open_face(sid: str, k: int, server: ServerDep):
    editor = server.get(sid)
    editor.stop_all()
    return await on_worker(editor, editor.open_face, k)


@router.get('')
async def face_state(sid: str, k: int, server: ServerDep):
    return server.get(sid).face_info(k)


@router.post('/points')
async def add_point(sid: str, k: int, request: Request, server: ServerDep):
    editor, data = server.get(sid), await read_json(request)
    return await stopped_then(editor, k, editor.add_point, data.get('handle'), data.get('target'))


@router.patch('/points/{i}')
async def move_point(sid: str, k: int, i: int, request: Request, server: ServerDep):
    editor, data = server.get(sid), await read_json(request)
    return await stopped_then(editor, k, editor.move_point, i, data.get('handle'), data.get('target'))


@router.delete('/points/{i}')
async def remove_point(sid: str, k: int, i: int, server: ServerDep):
    editor = server.get(sid)
    return await stopped_then(editor, k, editor.remove_point, i)


@router.put('/mask')
async def set_mask(sid: str, k: int, request: Request, server: ServerDep):
    """The painted region as a base64 PNG (a data: URL is fine); null removes it."""
    editor, data = server.get(sid), await read_json(request)
    png = data.get('png')
    if png is not None:
        try:
            png = base64.b64decode(png.split(',', 1)[-1], validate=True)
        except (binascii.Error, ValueError, AttributeError):
            raise PhotodragError('the mask must be a base64 PNG') from None
    return await stopped_then(editor, k, editor.set_mask, png)


@router.put('/settings')
async def set_settings(sid: str, k: int, request: Request, server: ServerDep):
    editor, data = server.get(sid), await read_json(request)
    return await stopped_then(editor, k, editor.set_settings, data.get('lr'), data.get('latent_space'))


@router.put('/view')
async def set_view(sid: str, k: int, request: Request, server: ServerDep):
    editor, data = server.get(sid), await read_json(request)
    if editor.set_view(k, data.get('view')):
        await on_worker(editor, editor.redraw, k)
    return {'face': k, 'view': data.get('view')}


@router.post('/preset')
async def add_preset(sid: str, k: int, request: Request, server: ServerDep):
    editor, data = server.get(sid), await read_json(request)
    strength = data.get('strength', 1.0)
    if not is_number(strength, 0, 3) or strength == 0:
        raise PhotodragError('strength must be a number from 0 to 3')
    return await stopped_then(editor, k, editor.add_preset, str(data.get('name')), float(strength))


@router.post('/from-shot')
async def from_shot(sid: str, k: int, request: Request, server: ServerDep):
    """{"part": "eyes"} (or "mouth"): the same person's eyes taken from another shot of the session."""
    editor, data = server.get(sid), await read_json(request)
    return await stopped_then(editor, k, editor.from_shot, data.get('part', 'eyes'))


@router.post('/start')
async def start(sid: str, k: int, server: ServerDep):
    editor = server.get(sid)
    return await on_worker(editor, editor.start, k)


@router.post('/stop')
async def stop(sid: str, k: int, server: ServerDep):
    editor = server.get(sid)
    editor.face(k).stop.set()
    return await on_worker(editor, editor.stop, k, False)


@router.post('/undo')
async def undo(sid: str, k: int, request: Request, server: ServerDep):
    editor, data = server.get(sid), await read_json(request)
    steps = data.get('steps', 1)
    if not is_number(steps, 1, 100_000, whole=True):
        raise PhotodragError('steps must be a whole number >= 1')
    return await stopped_then(editor, k, editor.undo, steps)


@router.post('/reset')
async def reset(sid: str, k: int, server: ServerDep):
    editor = server.get(sid)
    return await stopped_then(editor, k, editor.reset)


@router.post('/apply')
async def apply(sid: str, k: int, server: ServerDep):
    editor = server.get(sid)
    return await stopped_then(editor, k, editor.apply)
