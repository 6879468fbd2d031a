"""Live events of a session over a WebSocket: progress, drag frames (the page acknowledges each
one it drew, so frames never pile up), errors, and 'closed' when the session ends."""

import asyncio
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from .deps import ServerDep

log = logging.getLogger('photodrag.web')

CLOSE_NO_SESSION = 4404
CLOSE_SESSION_ENDED = 4410

router = APIRouter()


CLOSE_UNSUPPORTED = 1003            # a binary frame: the protocol is JSON text
CLOSE_INVALID = 1007                # text that is not a small JSON message
MAX_MESSAGE_CHARS = 4096


class ProtocolError(Exception):
    """The page broke the socket's protocol: the socket is closed with `code`."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


async def receive(ws: WebSocket, editor) -> None:
    """What the page sends: any message keeps the session alive; 'ack' asks for the next frame.
    A binary frame, or text that is not a small JSON message, ends the socket with a close code
    (no traceback)."""
    while True:
        message = await ws.receive()
        if message['type'] == 'websocket.disconnect':
            raise WebSocketDisconnect(message.get('code', 1000))
        text = message.get('text')
        if text is None:
            raise ProtocolError(CLOSE_UNSUPPORTED, 'binary frames are not part of the protocol')
        if len(text) > MAX_MESSAGE_CHARS:
            raise ProtocolError(CLOSE_INVALID, 'message too long')
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):
            raise ProtocolError(CLOSE_INVALID, 'not JSON') from None
        editor.touch()
        if isinstance(msg, dict) and msg.get('type') == 'ack':
            editor.frame_ready.set()


async def send(ws: WebSocket, q: asyncio.Queue, reader: asyncio.Task) -> None:
    """Send the session's messages until it ends (closes the socket) or the page leaves (raises)."""
    while True:
        getter = asyncio.create_task(q.get())
        done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
        if reader in done:
            getter.cancel()
            reader.result()         # raises the disconnect
        msg = getter.result()
        if msg.get('type') == 'closed':
            await ws.close(code=CLOSE_SESSION_ENDED)
            return
        await ws.send_text(json.dumps(msg))


@router.websocket('/api/sessions/{sid}/events')
async def events(ws: WebSocket, sid: str, server: ServerDep):
    if sid not in server.sessions:
        await ws.close(code=CLOSE_NO_SESSION)
        return
    await ws.accept()
    editor = server.sessions[sid]
    q: asyncio.Queue = asyncio.Queue()
    server.queues.setdefault(sid, set()).add(q)
    editor.watchers += 1
    reader = asyncio.create_task(receive(ws, editor))
    try:
        await send(ws, q, reader)
    except ProtocolError as e:
        log.info('session %s: closing its socket: %s', sid[:6], e.reason)
        try:
            await ws.close(code=e.code, reason=e.reason)
        except RuntimeError:
            pass
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
