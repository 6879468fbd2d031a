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


MAX_JSON_DIGITS = 30                # no number the editor takes has more


def _number(text: str):
    if len(text.lstrip('-')) > MAX_JSON_DIGITS:
        raise ValueError('a number with too many digits')
    return int(text)


def _constant(name: str):
    raise ValueError(f'{name} is not a number the editor takes')


async def read_json(request: Request) -> Dict[str, Any]:
    """The request's JSON object ({} for an empty body), read in chunks and refused (413) as
    soon as it passes MAX_JSON_BYTES; anything but a JSON object of sane numbers and nesting
    is a one-line 400."""
    declared = request.headers.get('content-length')
    if declared and declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise TooLarge('the request is too large')
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise TooLarge('the request is too large')
        chunks.append(chunk)
    raw = b''.join(chunks)
    if not raw:
        return {}
    try:
        data = json.loads(raw, parse_int=_number, parse_constant=_constant)
    except RecursionError:
        raise PhotodragError('the request body nests too deeply') from None
    except ValueError as e:
        raise PhotodragError(f'the request body is not JSON the editor takes ({str(e)[:80]})') from None
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
