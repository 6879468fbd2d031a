"""Every answer the editor gives: errors as {"error": "one line"} with the status their kind
says, nothing internal in them (tracebacks go to the server log), and headers that keep the
page to its own origin."""

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from photodrag.errors import PhotodragError

from .deps import TooLarge
from .editor import Conflict, NotFound
from .server import Busy

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; "
    "script-src 'self'; media-src 'self' blob:; frame-ancestors 'none'")


def error(status: int, message) -> JSONResponse:
    """The one-line JSON error answer."""
    return JSONResponse({'error': ' '.join(str(message).split())}, status_code=status)


def status_of(e: PhotodragError) -> int:
    """404 no such thing, 409 not now, 503 busy, 413 too large, 400 anything else the user caused."""
    return 404 if isinstance(e, NotFound) else 409 if isinstance(e, Conflict) else \
        503 if isinstance(e, Busy) else 413 if isinstance(e, TooLarge) else 400


async def photodrag_error(request: Request, e: PhotodragError):
    return error(status_of(e), e)


async def internal_error(request: Request, e: Exception):
    request.app.state.server.log_exception(e)
    return error(500, 'internal error in the editor (the server log has the details)')


async def http_error(request: Request, e: StarletteHTTPException):
    return error(e.status_code, e.detail if isinstance(e.detail, str) else 'bad request')


async def validation_error(request: Request, e: RequestValidationError):
    first = e.errors()[0] if e.errors() else {}
    where = '.'.join(str(p) for p in first.get('loc', ()) if p != 'body')
    return error(400, f'bad request: {where}: {first.get("msg", "invalid")}')


async def headers(request: Request, call_next):
    """Same-origin only: no script, style, image or connection from elsewhere, no framing."""
    response = await call_next(request)
    response.headers['Content-Security-Policy'] = CONTENT_SECURITY_POLICY
    response.headers['X-Content-Type-Options'] = 'nosniff'
    response.headers['Referrer-Policy'] = 'no-referrer'
    response.headers['Cache-Control'] = 'no-store'
    return response


STATE_CHANGING = ('POST', 'PUT', 'PATCH', 'DELETE')
# a header no HTML form or simple cross-site request can send: with it (or a JSON body, or the
# upload's X-Filename) a browser must ask first (CORS preflight), and the editor never says yes
CUSTOM_HEADER = 'x-photodrag'


def _host_name(value: str) -> str:
    """The host of a Host header or an Origin's authority, lowercase, without port or brackets."""
    value = value.strip().lower()
    if value.startswith('['):
        return value[1:value.find(']')] if ']' in value else value
    return value.rsplit(':', 1)[0] if value.count(':') == 1 else value


class Guard:
    """ASGI middleware in front of every route, HTTP and WebSocket:
    - Host must name this server (`Server.hosts`: the bound address or this machine's loopback
      names), so a page from a foreign name that resolves here (DNS rebinding) gets nothing;
    - state-changing requests and WebSockets with an Origin must come from the editor's own
      origin (a browser always sends one cross-site; scripts and curl send none);
    - state-changing requests must carry a JSON body, the upload's X-Filename or X-Photodrag:
      none of these can be sent by a form or a simple request, so any cross-site attempt needs
      a preflight, which is never granted.
    Refusals are one-line JSON 403s (400 for a missing header); a refused WebSocket is closed
    with 4403 before it is accepted."""

    def __init__(self, app, server):
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope['type'] not in ('http', 'websocket'):
            return await self.app(scope, receive, send)
        headers = {k.decode('latin-1').lower(): v.decode('latin-1') for k, v in scope.get('headers', [])}
        why, status = self._refusal(scope, headers)
        if why is None:
            return await self.app(scope, receive, send)
        if scope['type'] == 'websocket':
            await send({'type': 'websocket.close', 'code': 4403, 'reason': why[:120]})
            return
        await error(status, why)(scope, receive, send)

    def _refusal(self, scope, headers):
        host = headers.get('host', '')
        if _host_name(host) not in self.server.hosts:
            return (f'this editor answers to {", ".join(sorted(self.server.hosts))}, not to the host '
                    f'{host[:60]!r}; open it by that address'), 403
        origin = headers.get('origin')
        changing = scope['type'] == 'websocket' or scope.get('method') in STATE_CHANGING
        if changing and origin is not None:
            scheme = 'ws' if scope['type'] == 'websocket' else 'http'
            expected = {f'{s}://{host.lower()}' for s in (scheme, scheme + 's', 'http', 'https')}
            if origin.lower() not in expected:
                return f'requests from another site ({origin[:60]}) may not change this editor', 403
        if scope['type'] == 'http' and scope.get('method') in STATE_CHANGING:
            content_type = headers.get('content-type', '').split(';')[0].strip().lower()
            if content_type != 'application/json' and CUSTOM_HEADER not in headers and 'x-filename' not in headers:
                return (f'send a JSON body (Content-Type: application/json) or the header X-Photodrag: 1 with '
                        'every request that changes something'), 400
        return None, 0


def install(app) -> None:
    """Give `app` the editor's error answers, security headers and request guard."""
    app.add_exception_handler(PhotodragError, photodrag_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.middleware('http')(headers)
    app.add_middleware(Guard, server=app.state.server)


__all__ = ['CONTENT_SECURITY_POLICY', 'CUSTOM_HEADER', 'Guard', 'error', 'headers', 'install', 'status_of']
