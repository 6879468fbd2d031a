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


def install(app) -> None:
    """Give `app` the editor's error answers and security headers."""
    app.add_exception_handler(PhotodragError, photodrag_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.middleware('http')(headers)


__all__ = ['CONTENT_SECURITY_POLICY', 'error', 'headers', 'install', 'status_of']
