"""What every route needs: the shared `Server` (a FastAPI dependency), the JSON body, and the
session's worker thread, which runs everything slow or that touches a drag."""

import asyncio
import json
from typing import Annotated, Any, Dict

from fastapi import Depends
from starlette.requests import HTTPConnection, Request

from photodrag.errors import PhotodragError

from .server import Server

MAX_JSON_BYTES = 8 * 1024 * 1024


class TooLarge(PhotodragError):
    """An upload or request body over the limit (answered 413)."""


def get_server(connection: HTTPConnection) -> Server:
    """The app's shared Server (`create_app` puts it in app.state)."""
    return connection.app.state.server


ServerDep = Annotated[Server, Depends(get_server)]


async def read_json(request: Request) -> Dict[str, Any]:
    """The request's JSON object ({} for an empty body); anything else is a one-line 400."""
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
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


async def on_worker(editor, fn, *args):
    """Run fn on the session's worker thread (never on the event loop) and return its answer."""
    return await asyncio.wrap_future(editor.submit(fn, *args))


async def stopped_then(editor, k: int, fn, *args):
    """fn(k, *args) on the worker once face k's running drag has stopped (within one step):
    changes never wait behind a drag."""
    if k in editor.face_states and editor.face_states[k].running:
        editor.face_states[k].stop.set()
    return await on_worker(editor, fn, k, *args)


__all__ = ['MAX_JSON_BYTES', 'ServerDep', 'TooLarge', 'get_server', 'on_worker', 'read_json', 'stopped_then']
