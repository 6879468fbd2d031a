"""`photodrag serve`: the web editor on this machine."""

import ipaddress

import click

from photodrag.errors import PhotodragError

from .common import checkpoint_option, device_option, quality_option


@click.command('serve')
@click.option('--host', default='127.0.0.1', show_default=True,
              help='Address to listen on. Anything but a loopback address lets other machines in.')
@click.option('--port', type=click.IntRange(0, 65535), default=7860, show_default=True)
@checkpoint_option(help_default='  [default: demo-faces]')
@device_option
@quality_option('fast', help='Inversion preset of each face opened.')
@click.option('--steps', type=click.IntRange(1, 100_000), default=None, help='Drag step cap.  [default: 300]')
@click.option('--max-sessions', type=click.IntRange(1, 1000), default=4, show_default=True,
              help='Editing sessions open at once; more are told the editor is busy.')
@click.option('--idle-minutes', type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help='Close a session after this long without a request.')
@click.option('--max-upload-mb', type=click.FloatRange(min=0, min_open=True), default=50.0, show_default=True,
              help='Largest photo accepted.')
@click.option('--allow-host', 'allow_hosts', multiple=True, metavar='NAME',
              help='Another name the editor may be reached by (repeatable); requests naming any other host are '
                   'refused (DNS rebinding).')
@click.option('--wait-for-tuning', is_flag=True,
              help="Start waits for a face's inversion to finish instead of dragging at once on its first, "
                   'rougher copy and going on on the tuned generator.')
def serve_command(host, port, checkpoint, device, quality, steps, max_sessions, idle_minutes, max_upload_mb,
                  allow_hosts, wait_for_tuning):
    """Open the web editor: drag points on your own photo in a browser and watch it move.

    \b
    photodrag serve                       # then open http://127.0.0.1:7860
    photodrag serve --checkpoint stylegan2-ffhq-512 --device cuda --quality balanced
    """
    try:
        import uvicorn
        from photodrag.web import ServerSettings, create_app
    except ImportError as e:
        raise PhotodragError(f'the web editor needs its extra: pip install "photodrag[web]" ({e.name} is missing)') \
            from None
    from photodrag.pipeline.device import pick_device
    settings = ServerSettings(checkpoint=checkpoint or 'demo-faces', device=pick_device(device or 'auto'),
                              quality=quality, max_steps=steps, max_sessions=max_sessions,
                              idle_timeout_s=idle_minutes * 60, max_upload_bytes=int(max_upload_mb * 1e6),
                              allowed_hosts=host_names(host, allow_hosts), drag_while_tuning=not wait_for_tuning)
    if not is_loopback(host):
        click.echo(f'warning: listening on {host}: anyone who can reach this machine can open the editor and '
                   'upload photos; use --host 127.0.0.1 to keep it to this machine', err=True)
    click.echo(f'loading {settings.checkpoint} on {settings.device}...', err=True)
    app = create_app(settings)
    shown = f'[{host}]' if ':' in host else host
    click.echo(f'photodrag editor: http://{"127.0.0.1" if host in ("0.0.0.0", "::") else shown}:{port}  '
               '(Ctrl-C stops it)')
    uvicorn.run(app, host=host, port=port, log_level='warning')


def host_names(host: str, extra=()) -> tuple:
    """The names a request's Host may carry for an editor listening on `host`: this machine's
    loopback names, the address itself, and for a wildcard (0.0.0.0, ::) this machine's name
    and addresses; plus `extra`."""
    import socket
    from photodrag.web.server import LOOPBACK_HOSTS
    names = set(LOOPBACK_HOSTS) | {host.strip('[]').lower()} | {h.lower() for h in extra}
    if host in ('0.0.0.0', '::', ''):
        try:
            me = socket.gethostname()
            names |= {me.lower(), socket.getfqdn().lower()}
            names |= {info[4][0] for info in socket.getaddrinfo(me, None)}
        except OSError:
            pass
        try:                                # the address other machines reach (no packet is sent)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect(('10.255.255.255', 1))
                names.add(s.getsockname()[0])
        except OSError:
            pass
    return tuple(sorted(n for n in names if n))


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine (localhost, 127.x, ::1)."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
