"""The web editor's ASGI app: one static page and a JSON API under /api (docs/web-editor.md).

    from photodrag.web import create_app, ServerSettings
    app = create_app(ServerSettings(checkpoint='demo-faces'))     # uvicorn.run(app, port=7860)

Every request names its session (`POST /api/sessions` makes one; the id comes from
`secrets`), and a session sees only its own photo and outputs. Requests never carry a file
system path: uploads are bytes recognised by their content, samples are names, outputs are
names from a fixed list. Errors a user can cause answer {"error": "one line"} with 400
(bad input), 404 (no such session, face or output), 409 (not now), 413 (too large) or 503
(too many sessions); anything else is logged here and answers a one-line 500.

The routes live by concern, each a module-level function that gets the shared `Server` as a
dependency (`deps.ServerDep`): pages.py (the page), sessions.py (sessions and their photo),
faces.py (a face's points, region, settings and drag), outputs.py (files and videos),
events.py (the WebSocket); security.py gives every answer its error shape and headers.
"""

import asyncio
from contextlib import asynccontextmanager
from typing import Optional

from .server import Server, ServerSettings

REAP_EVERY_S = 30.0                     # at most; a short idle timeout is checked 4 times as often


async def reap_idle(server: Server) -> None:
    """Close idle sessions, forever (cancelled when the app stops)."""
    from starlette.concurrency import run_in_threadpool
    while True:
        await asyncio.sleep(min(REAP_EVERY_S, max(server.settings.idle_timeout_s / 4, 0.2)))
        await run_in_threadpool(server.reap)


@asynccontextmanager
async def lifespan(app):
    """While the app runs: publish on its event loop and reap idle sessions; at the end, close them all."""
    from starlette.concurrency import run_in_threadpool
    server: Server = app.state.server
    server.loop = asyncio.get_running_loop()
    task = asyncio.create_task(reap_idle(server))
    try:
        yield
    finally:
        task.cancel()
        for sid in list(server.sessions):
            await run_in_threadpool(server.close, sid)


def create_app(settings: Optional[ServerSettings] = None, server: Optional[Server] = None):
    """The FastAPI app of the editor (a `Server` is made from `settings` unless given)."""
    from fastapi import FastAPI

    from . import events, faces, outputs, pages, security, sessions

    app = FastAPI(title='photodrag editor', lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server or Server(settings or ServerSettings())
    security.install(app)
    for routes in (pages, sessions, faces, outputs, events):
        app.include_router(routes.router)
    return app


__all__ = ['create_app', 'lifespan', 'Server', 'ServerSettings']
