"""Sessions and their photo: the editor's status, a new session, its state, its end, and the
photo it edits (an upload recognised by its content, or a sample by name)."""

from urllib.parse import unquote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from photodrag.errors import PhotodragError

from .deps import ServerDep, TooLarge, on_worker, read_json
from .editor import NotFound
from .server import samples

UPLOAD_SLACK_BYTES = 64 * 1024      # refused unread only when the declared length is clearly over;
                                    # the bytes streamed are counted exactly

router = APIRouter(prefix='/api')


@router.get('/status')
async def status(server: ServerDep):
    s = server.settings
    return {'checkpoint': s.checkpoint, 'device': server.config.device, 'resolution': int(server.G.img_resolution),
            'sessions': len(server.sessions), 'max_sessions': s.max_sessions,
            'max_upload_bytes': s.max_upload_bytes, 'samples': sorted(samples())}


@router.post('/sessions')
async def new_session(server: ServerDep):
    from photodrag.expressions import presets
    editor = await run_in_threadpool(server.new_session)
    return {'session': editor.sid, 'samples': sorted(samples()), 'resolution': int(server.G.img_resolution),
            'presets': [{'name': p.name, 'description': p.description} for p in presets.available().values()],
            'max_upload_bytes': server.settings.max_upload_bytes}


@router.delete('/sessions/{sid}')
async def end_session(sid: str, server: ServerDep):
    server.get(sid)
    await run_in_threadpool(server.close, sid)
    return {'closed': True}


@router.get('/sessions/{sid}')
async def session_state(sid: str, server: ServerDep):
    editor = server.get(sid)
    return {'photo': editor.photo_name, 'faces': len(editor.faces), 'open': sorted(editor.face_states),
            'applied': sorted(editor.applied), 'running': editor.running}


async def read_upload(request: Request, limit: int, what: str = 'photo') -> bytes:
    """An upload's body, read in chunks up to `limit` bytes (413 beyond, 400 when empty)."""
    declared = request.headers.get('content-length')
    if declared and declared.isdigit() and int(declared) > limit + UPLOAD_SLACK_BYTES:
        raise TooLarge(f'the upload is {int(declared) / 1e6:.1f} MB; the editor takes photos up to '
                       f'{limit / 1e6:.0f} MB')
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f'the {what} is over {limit / 1e6:.0f} MB; the editor takes photos up to that size')
        chunks.append(chunk)
    if not size:
        raise PhotodragError('the upload is empty')
    return b''.join(chunks)


@router.post('/sessions/{sid}/photo')
async def upload(sid: str, request: Request, server: ServerDep):
    """The photo's bytes are the body (its name in X-Filename); read in chunks up to the limit."""
    editor = server.get(sid)
    data = await read_upload(request, server.settings.max_upload_bytes)
    editor.stop_all()
    return await on_worker(editor, editor.open_photo, data, unquote(request.headers.get('x-filename') or 'photo'))


@router.post('/sessions/{sid}/shots')
async def add_shot(sid: str, request: Request, server: ServerDep):
    """Another shot of the same people (bytes as the body, X-Filename its name): where a face's
    eyes (or mouth) can be taken from (`POST .../faces/{k}/from-shot`)."""
    editor = server.get(sid)
    data = await read_upload(request, server.settings.max_upload_bytes, 'shot')
    return await on_worker(editor, editor.add_shot, data, unquote(request.headers.get('x-filename') or 'shot'))


@router.post('/sessions/{sid}/subjects')
async def add_subject(sid: str, request: Request, server: ServerDep):
    """`{"box": [x0, y0, x1, y1]}` (photo pixels): a face the detector missed, or the object to
    edit with a generator of objects: `{index, faces}`."""
    editor = server.get(sid)
    box = (await read_json(request)).get('box')
    return await on_worker(editor, editor.add_subject, box)


@router.post('/sessions/{sid}/sample')
async def sample(sid: str, request: Request, server: ServerDep):
    editor = server.get(sid)
    name = (await read_json(request)).get('name')
    known = samples()
    if name not in known:
        raise NotFound(f'no sample {name!r}; samples: {", ".join(sorted(known))}')
    editor.stop_all()
    return await on_worker(editor, editor.open_photo, None, known[name].name, known[name])
