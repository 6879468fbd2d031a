"""The web editor's ASGI app: one static page and a JSON API under /api (README: "Web editor").

    from photodrag.web import create_app, ServerSettings
    app = create_app(ServerSettings(checkpoint='demo-faces'))     # uvicorn.run(app, port=7860)

Every request names its session (`POST /api/sessions` makes one; the id comes from
`secrets`), and a session sees only its own photo and outputs. Requests never carry a file
system path: uploads are bytes recognised by their content, samples are names, outputs are
names from a fixed list. Errors a user can cause answer {"error": "one line"} with 400
(bad input), 404 (no such session, face or output), 409 (not now), 413 (too large) or 503
(too many sessions); anything else is logged here and answers a one-line 500.
"""

import asyncio
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from photodrag.errors import PhotodragError

log = logging.getLogger('photodrag.web')

STATIC = Path(__file__).parent / 'static'


@dataclass(frozen=True)
class ServerSettings:
    checkpoint: str = 'demo-faces'
    device: str = 'cpu'
    quality: str = 'balanced'
    max_steps: Optional[int] = None         # drag step cap (None: the drag settings' 300)
    max_sessions: int = 4
    idle_timeout_s: float = 30 * 60
    max_upload_bytes: int = 50 * 1024 * 1024
    cache: Any = True                       # inversion cache: True ($PHOTODRAG_CACHE), False, or a folder
    inversion: Any = None                   # an InversionConfig replacing the quality preset (tests, scripts)


class Server:
    """What every session shares: the settings, the loaded generator and the session table."""

    def __init__(self, settings: ServerSettings):
        from photodrag import checkpoints
        from photodrag.pipeline import EditConfig
        from photodrag.pipeline import checks
        from photodrag.pipeline.record import checkpoint_info
        self.settings = settings
        self.config = EditConfig(checkpoint=settings.checkpoint, quality=None if settings.inversion else settings.quality,
                                 inversion=settings.inversion, device=settings.device, max_steps=settings.max_steps)
        self.config.inversion_config().check_device(settings.device)
        self.config.drag_config().check_device(settings.device)
        self.G = checkpoints.load_generator(settings.checkpoint, device=settings.device)
        self.checkpoint_info = checkpoint_info(settings.checkpoint, self.G)
        from photodrag.inversion.encoder import for_generator
        self.encoder = for_generator(self.G, settings.checkpoint) \
            if self.config.inversion_config().init != 'mean' else None
        self.recipe = checks.crop_recipe(settings.checkpoint, None, int(self.G.img_resolution), self.G)
        self.cache = settings.cache
        self.sessions: Dict[str, Any] = {}
        self.lock = threading.Lock()
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.queues: Dict[str, set] = {}

    def log_exception(self, e: BaseException) -> None:
        log.error('editor error', exc_info=e)

    # ---------------------------------------------------------------- sessions

    def new_session(self):
        from .editor import Editor
        with self.lock:
            if len(self.sessions) >= self.settings.max_sessions:
                raise Busy(f'the editor is busy: {len(self.sessions)} sessions are open (at most '
                           f'{self.settings.max_sessions}); try again when one ends')
            sid = secrets.token_urlsafe(18)
            self.queues[sid] = set()
            self.sessions[sid] = Editor(sid, self, lambda msg, sid=sid: self.publish(sid, msg))
            return self.sessions[sid]

    def get(self, sid: str):
        editor = self.sessions.get(sid)
        if editor is None or editor.closed:
            from .editor import NotFound
            raise NotFound('no such editing session (it may have ended after being idle); reload the page')
        editor.touch()
        return editor

    def close(self, sid: str) -> bool:
        with self.lock:
            editor = self.sessions.pop(sid, None)
            queues = self.queues.pop(sid, set())
        for q in queues:
            self._put(q, {'type': 'closed'})
        if editor is None:
            return False
        editor.close()
        import gc
        gc.collect()
        return True

    def reap(self) -> int:
        """Close the sessions idle for longer than the timeout (a running drag with nobody
        watching counts as idle); returns how many."""
        now = time.monotonic()
        idle = [sid for sid, e in list(self.sessions.items())
                if now - e.last_active > self.settings.idle_timeout_s and e.watchers == 0]
        for sid in idle:
            log.info('closing idle session %s', sid[:6])
            self.close(sid)
        return len(idle)

    # ---------------------------------------------------------------- events

    def publish(self, sid: str, msg: Dict[str, Any]) -> None:
        """Send `msg` to every page watching session `sid` (from any thread)."""
        loop = self.loop
        if loop is None:
            return
        for q in list(self.queues.get(sid, ())):
            loop.call_soon_threadsafe(self._put, q, msg)

    @staticmethod
    def _put(q: asyncio.Queue, msg) -> None:
        if msg.get('type') == 'progress' and q.qsize() > 50:
            return
        q.put_nowait(msg)


class Busy(PhotodragError):
    """Too many sessions (answered 503)."""


class TooLarge(PhotodragError):
    """An upload over the limit (answered 413)."""


def create_app(settings: Optional[ServerSettings] = None, server: Optional[Server] = None):
    """The FastAPI app of the editor (a `Server` is made from `settings` unless given)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import FileResponse, JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    from .editor import Conflict, NotFound

    server = server or Server(settings or ServerSettings())

    @asynccontextmanager
    async def lifespan(app):
        server.loop = asyncio.get_running_loop()

        async def reaper():
            while True:
                await asyncio.sleep(min(30.0, max(server.settings.idle_timeout_s / 4, 0.2)))
                await run_in_threadpool(server.reap)
        task = asyncio.create_task(reaper())
        try:
            yield
        finally:
            task.cancel()
            for sid in list(server.sessions):
                await run_in_threadpool(server.close, sid)

    app = FastAPI(title='photodrag editor', lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server

    def error(status: int, message: str):
        return JSONResponse({'error': ' '.join(str(message).split())}, status_code=status)

    @app.exception_handler(PhotodragError)
    async def photodrag_error(request, e: PhotodragError):
        status = 404 if isinstance(e, NotFound) else 409 if isinstance(e, Conflict) else \
            503 if isinstance(e, Busy) else 413 if isinstance(e, TooLarge) else 400
        return error(status, e)

    @app.exception_handler(Exception)
    async def internal_error(request, e: Exception):
        server.log_exception(e)
        return error(500, 'internal error in the editor (the server log has the details)')

    from starlette.exceptions import HTTPException as StarletteHTTPException
    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e):
        return error(e.status_code, e.detail if isinstance(e.detail, str) else 'bad request')

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, e):
        first = e.errors()[0] if e.errors() else {}
        where = '.'.join(str(p) for p in first.get('loc', ()) if p != 'body')
        return error(400, f'bad request: {where}: {first.get("msg", "invalid")}')

    @app.middleware('http')
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers['Content-Security-Policy'] = (
            "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; "
            "script-src 'self'; media-src 'self' blob:; frame-ancestors 'none'")
        response.headers['X-Content-Type-Options'] = 'nosniff'
        response.headers['Referrer-Policy'] = 'no-referrer'
        response.headers['Cache-Control'] = 'no-store'
        return response

    async def on_worker(editor, fn, *args):
        """Run fn on the session's worker thread (never on the event loop) and return its answer."""
        return await asyncio.wrap_future(editor.submit(fn, *args))

    async def body(request: Request) -> Dict[str, Any]:
        raw = await request.body()
        if len(raw) > 8 * 1024 * 1024:
            raise TooLarge('the request is too large')
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise PhotodragError('the request body is not JSON') from None
        if not isinstance(data, dict):
            raise PhotodragError('the request body must be a JSON object')
        return data

    # ---------------------------------------------------------------- the page

    @app.get('/')
    async def index():
        return FileResponse(STATIC / 'index.html', media_type='text/html')

    @app.get('/static/{name}')
    async def static(name: str):
        files = {'editor.js': 'text/javascript', 'editor.css': 'text/css'}
        if name not in files:
            raise NotFound(f'no static file {name!r}')
        return FileResponse(STATIC / name, media_type=files[name])

    # ---------------------------------------------------------------- sessions

    @app.get('/api/status')
    async def status():
        s = server.settings
        return {'checkpoint': s.checkpoint, 'device': s.device, 'resolution': int(server.G.img_resolution),
                'sessions': len(server.sessions), 'max_sessions': s.max_sessions,
                'max_upload_bytes': s.max_upload_bytes, 'samples': sorted(_samples())}

    @app.post('/api/sessions')
    async def new_session():
        editor = await run_in_threadpool(server.new_session)
        from photodrag.expressions import presets as presets_mod
        return {'session': editor.sid, 'samples': sorted(_samples()), 'resolution': int(server.G.img_resolution),
                'presets': [{'name': p.name, 'description': p.description}
                            for p in presets_mod.available().values()],
                'max_upload_bytes': server.settings.max_upload_bytes}

    @app.delete('/api/sessions/{sid}')
    async def end_session(sid: str):
        server.get(sid)
        await run_in_threadpool(server.close, sid)
        return {'closed': True}

    @app.get('/api/sessions/{sid}')
    async def session_state(sid: str):
        editor = server.get(sid)
        return {'photo': editor.photo_name, 'faces': len(editor.faces), 'open': sorted(editor.face_states),
                'applied': sorted(editor.applied), 'running': editor.running}

    @app.post('/api/sessions/{sid}/photo')
    async def upload(sid: str, request: Request):
        editor = server.get(sid)
        limit = server.settings.max_upload_bytes
        declared = request.headers.get('content-length')
        if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
            raise TooLarge(f'the upload is {int(declared) / 1e6:.1f} MB; the editor takes photos up to '
                           f'{limit / 1e6:.0f} MB')
        name = request.headers.get('x-filename') or 'photo'
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f'the photo is over {limit / 1e6:.0f} MB; the editor takes photos up to that size')
            chunks.append(chunk)
        if not size:
            raise PhotodragError('the upload is empty')
        from urllib.parse import unquote
        editor.stop_all()
        return await on_worker(editor, editor.open_photo, b''.join(chunks), unquote(name))

    @app.post('/api/sessions/{sid}/sample')
    async def sample(sid: str, request: Request):
        editor = server.get(sid)
        name = (await body(request)).get('name')
        samples = _samples()
        if name not in samples:
            raise NotFound(f'no sample {name!r}; samples: {", ".join(sorted(samples))}')
        editor.stop_all()
        return await on_worker(editor, editor.open_photo, None, samples[name].name, samples[name])

    @app.post('/api/sessions/{sid}/faces/{k}/open')
    async def open_face(sid: str, k: int):
        editor = server.get(sid)
        editor.stop_all()
        return await on_worker(editor, editor.open_face, k)

    @app.get('/api/sessions/{sid}/faces/{k}')
    async def face_state(sid: str, k: int):
        editor = server.get(sid)
        return editor.face_info(k)

    async def stopped_then(editor, k, fn, *args):
        """Changes wait for a running drag of the face to stop (within one step)."""
        if k in editor.face_states and editor.face_states[k].running:
            editor.face_states[k].stop.set()
        return await on_worker(editor, fn, k, *args)

    @app.post('/api/sessions/{sid}/faces/{k}/points')
    async def add_point(sid: str, k: int, request: Request):
        editor, data = server.get(sid), await body(request)
        return await stopped_then(editor, k, editor.add_point, data.get('handle'), data.get('target'))

    @app.patch('/api/sessions/{sid}/faces/{k}/points/{i}')
    async def move_point(sid: str, k: int, i: int, request: Request):
        editor, data = server.get(sid), await body(request)
        return await stopped_then(editor, k, editor.move_point, i, data.get('handle'), data.get('target'))

    @app.delete('/api/sessions/{sid}/faces/{k}/points/{i}')
    async def remove_point(sid: str, k: int, i: int):
        editor = server.get(sid)
        return await stopped_then(editor, k, editor.remove_point, i)

    @app.put('/api/sessions/{sid}/faces/{k}/mask')
    async def set_mask(sid: str, k: int, request: Request):
        editor, data = server.get(sid), await body(request)
        png = data.get('png')
        if png is not None:
            import base64
            import binascii
            try:
                png = base64.b64decode(png.split(',', 1)[-1], validate=True)
            except (binascii.Error, ValueError, AttributeError):
                raise PhotodragError('the mask must be a base64 PNG') from None
        return await stopped_then(editor, k, editor.set_mask, png)

    @app.put('/api/sessions/{sid}/faces/{k}/settings')
    async def set_settings(sid: str, k: int, request: Request):
        editor, data = server.get(sid), await body(request)
        return await stopped_then(editor, k, editor.set_settings, data.get('lr'), data.get('latent_space'))

    @app.post('/api/sessions/{sid}/faces/{k}/preset')
    async def add_preset(sid: str, k: int, request: Request):
        editor, data = server.get(sid), await body(request)
        strength = data.get('strength', 1.0)
        if not isinstance(strength, (int, float)) or not 0 < strength <= 3:
            raise PhotodragError('strength must be a number from 0 to 3')
        return await stopped_then(editor, k, editor.add_preset, str(data.get('name')), float(strength))

    @app.post('/api/sessions/{sid}/faces/{k}/start')
    async def start(sid: str, k: int):
        editor = server.get(sid)
        return await on_worker(editor, editor.start, k)

    @app.post('/api/sessions/{sid}/faces/{k}/stop')
    async def stop(sid: str, k: int):
        editor = server.get(sid)
        editor.face(k).stop.set()
        return await on_worker(editor, editor.stop, k, False)

    @app.post('/api/sessions/{sid}/faces/{k}/undo')
    async def undo(sid: str, k: int, request: Request):
        editor, data = server.get(sid), await body(request)
        steps = data.get('steps', 1)
        if not isinstance(steps, int) or steps < 1:
            raise PhotodragError('steps must be a whole number >= 1')
        return await stopped_then(editor, k, editor.undo, steps)

    @app.post('/api/sessions/{sid}/faces/{k}/reset')
    async def reset(sid: str, k: int):
        editor = server.get(sid)
        return await stopped_then(editor, k, editor.reset)

    @app.post('/api/sessions/{sid}/faces/{k}/apply')
    async def apply(sid: str, k: int):
        editor = server.get(sid)
        return await stopped_then(editor, k, editor.apply)

    @app.get('/api/sessions/{sid}/faces/{k}/video')
    async def video(sid: str, k: int):
        editor = server.get(sid)
        path, name = await stopped_then(editor, k, editor.video)
        return FileResponse(path, media_type='video/mp4', filename=name)

    @app.get('/api/sessions/{sid}/files/{what}')
    async def files(sid: str, what: str):
        editor = server.get(sid)
        path, name = await on_worker(editor, editor.output, what)
        media = {'.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp', '.tif': 'image/tiff',
                 '.json': 'application/json'}.get(path.suffix, 'application/octet-stream')
        if what in ('photo', 'record'):
            return FileResponse(path, media_type=media, filename=name)
        return FileResponse(path, media_type=media)

    # ---------------------------------------------------------------- live events

    @app.websocket('/api/sessions/{sid}/events')
    async def events(ws: WebSocket, sid: str):
        if sid not in server.sessions:
            await ws.close(code=4404)
            return
        await ws.accept()
        editor = server.sessions[sid]
        q: asyncio.Queue = asyncio.Queue()
        server.queues.setdefault(sid, set()).add(q)
        editor.watchers += 1

        async def receive():
            while True:
                msg = await ws.receive_json()
                editor.touch()
                if isinstance(msg, dict) and msg.get('type') == 'ack':
                    editor.frame_ready.set()

        reader = asyncio.create_task(receive())
        try:
            while True:
                getter = asyncio.create_task(q.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    reader.result()         # raises the disconnect
                msg = getter.result()
                if msg.get('type') == 'closed':
                    await ws.close(code=4410)
                    return
                await ws.send_text(json.dumps(msg))
        except (WebSocketDisconnect, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            reader.cancel()
            server.queues.get(sid, set()).discard(q)
            editor.watchers -= 1
            if editor.running and editor.watchers == 0 and not editor.closed:
                # the page went away mid-drag: stop it and free the session. Not awaited: when the
                # disconnect arrives as a cancellation of this handler, an await here would be
                # cancelled too and the session would live on.
                log.info('client left session %s mid-drag; closing it', sid[:6])
                asyncio.get_running_loop().run_in_executor(None, server.close, sid)

    return app


def _samples() -> Dict[str, Path]:
    from photodrag.pipeline.demo import DEMO_PHOTO
    return {'astronaut': DEMO_PHOTO}
