"""The web editor: `photodrag serve`, a page in the browser that drags points on your own photo.

    from photodrag.web import create_app, ServerSettings
    import uvicorn
    uvicorn.run(create_app(ServerSettings(checkpoint='demo-faces')), host='127.0.0.1', port=7860)

Needs the `web` extra (FastAPI, uvicorn). The page is one static HTML file with plain
JavaScript and CSS (web/static), nothing fetched from elsewhere.
"""

from .app import create_app
from .server import Server, ServerSettings

__all__ = ['create_app', 'Server', 'ServerSettings']
