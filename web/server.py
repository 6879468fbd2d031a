"""What every editing session shares: the settings, the loaded generator and the session table."""

import asyncio
import gc
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from photodrag.errors import PhotodragError

log = logging.getLogger('photodrag.web')


@dataclass(frozen=True)
class ServerSettings:
    checkpoint: str = 'demo-faces'
    device: str = 'cpu'                     # 'auto' picks cuda -> mps -> cpu
    quality: str = 'balanced'
    max_steps: Optional[int] = None         # drag step cap (None: the drag settings' 300)
    max_sessions: int = 4
    idle_timeout_s: float = 30 * 60
    max_upload_bytes: int = 50 * 1024 * 1024
    cache: Any = True                       # inversion cache: True ($PHOTODRAG_CACHE), False, or a folder
    inversion: Any = None                   # an InversionConfig replacing the quality preset (tests, scripts)
    # the names a request's Host may carry (DNS rebinding: a foreign name pointing here is
    # refused); empty: this machine's loopback names only
    allowed_hosts: Tuple[str, ...] = ()
    # decoded photos (and other shots) all sessions may hold at once; more is answered 503 busy
    max_photo_bytes: int = 3 * 1024 ** 3
    # Start while a face's inversion still runs: drag at once on its start (the encoder's latents
    # on the untuned generator) and go on on the tuned generator when it is there (True), or
    # wait for the tuned generator (False)
    drag_while_tuning: bool = True


class Busy(PhotodragError):
    """Too many sessions, or too many photos open at once (answered 503)."""


LOOPBACK_HOSTS = ('127.0.0.1', 'localhost', '::1')


class Server:
    """What every session shares: the settings, the loaded generator and the session table."""

    settings: ServerSettings
    config: Any                             # pipeline.EditConfig: how every face is inverted and dragged
    G: Any                                  # the generator, loaded once
    checkpoint_info: Dict[str, Any]
    encoder: Any                            # inversion.encoder.Encoder the inversions start from, or None
    recipe: Any                             # the checkpoint's crop recipe
    cache: Any
    sessions: Dict[str, Any]                # session id -> editor.Editor
    lock: threading.Lock
    loop: Optional[asyncio.AbstractEventLoop]   # the app's event loop, once it runs (publish needs it)
    queues: Dict[str, set]                  # session id -> the event queues of the pages watching it

    def __init__(self, settings: ServerSettings):
        from photodrag import checkpoints
        from photodrag.inversion.encoder import for_generator
        from photodrag.pipeline import EditConfig, checks
        from photodrag.pipeline.record import checkpoint_info
        self.settings = settings
        self.config = EditConfig.from_options(checkpoint=settings.checkpoint, quality=settings.quality,
                                              inversion=settings.inversion, device=settings.device,
                                              max_steps=settings.max_steps)
        self.G = checkpoints.load_generator(self.config.checkpoint, device=self.config.device)
        self.checkpoint_info = checkpoint_info(self.config.checkpoint, self.G)
        self.encoder = for_generator(self.G, self.config.checkpoint, self.config.encoder) \
            if self.config.inversion_config().init != 'mean' else None
        self.recipe = checks.crop_recipe(self.config.checkpoint, None, int(self.G.img_resolution), self.G)
        self.cache = settings.cache
        self.sessions = {}
        self.lock = threading.Lock()
        self.loop = None
        self.queues = {}
        self.hosts = {h.lower().strip('[]') for h in (settings.allowed_hosts or LOOPBACK_HOSTS)}
        self.photo_bytes: Dict[str, int] = {}   # session id -> bytes of its decoded photos

    def reserve_photo(self, sid: str, nbytes: int) -> None:
        """Count `nbytes` more of decoded photo for session `sid`, or refuse (503) when all the
        sessions together would hold more than `max_photo_bytes`: busy rather than swapping."""
        with self.lock:
            total = sum(self.photo_bytes.values())
            if total + nbytes > self.settings.max_photo_bytes:
                raise Busy(f'the editor is busy: the open photos take {total / 1e9:.1f} GB and this one would need '
                           f'{nbytes / 1e9:.1f} GB more (at most {self.settings.max_photo_bytes / 1e9:.1f} GB); '
                           'try again when a session ends, or use a smaller photo')
            self.photo_bytes[sid] = self.photo_bytes.get(sid, 0) + nbytes

    def release_photos(self, sid: str) -> None:
        with self.lock:
            self.photo_bytes.pop(sid, None)

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
        self.release_photos(sid)
        if editor is None:
            return False
        editor.close()
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


def samples() -> Dict[str, Path]:
    """The photos a page may open by name (no upload needed)."""
    from photodrag.pipeline.demo import DEMO_PHOTO
    return {'astronaut': DEMO_PHOTO}


__all__ = ['Busy', 'LOOPBACK_HOSTS', 'Server', 'ServerSettings', 'samples']
