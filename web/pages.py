"""The page: one HTML file and its script and style sheet (web/static), nothing else."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from .editor import NotFound

STATIC = Path(__file__).parent / 'static'
STATIC_FILES = {'editor.js': 'text/javascript', 'editor.css': 'text/css'}     # served by name, never a path

router = APIRouter()


@router.get('/')
async def index():
    return FileResponse(STATIC / 'index.html', media_type='text/html')


@router.get('/static/{name}')
async def static(name: str):
    if name not in STATIC_FILES:
        raise NotFound(f'no static file {name!r}')
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name])
