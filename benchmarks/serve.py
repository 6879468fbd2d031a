"""The web editor's speed: does the drag stay fast while a page watches it?

    python3 benchmarks/serve.py [--checkpoint demo-faces] [--device cpu] [--steps 150] [--photo PATH] [--runs 2]

The editor runs in its own process under uvicorn, as `photodrag serve` runs it; this script
is the page: it uploads the photo, opens its first face, places one long drag that does not
converge, and runs it with no page connected (headless: no frames are made) and with a page
connected over the WebSocket that acknowledges every frame as the page does. Printed:
- upload -> faces shown: the POST of the photo until its answer (decode + face detection);
- drag steps/s headless and watched, from the server's own timing of its drag loop, and the
  ratio (goal >= 0.90); `--runs` alternating pairs, the median of each;
- frames/s received while watching (goal >= 10) and Start -> first frame (goal < 1 s).
`--view generator` makes the frames the generator's renderings (the default: the photo view).
Needs the `web` extra and the `websockets` package.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SERVER = """
import sys, uvicorn
from photodrag.inversion import InversionConfig
from photodrag.web import ServerSettings, create_app
ckpt, device, steps, port, cache = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
settings = ServerSettings(checkpoint=ckpt, device=device, max_steps=steps, cache=cache,
                          inversion=InversionConfig.preset('fast', projection_steps=20, tuning_steps=10))
uvicorn.run(create_app(settings), host='127.0.0.1', port=port, log_level='warning')
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--checkpoint', default='demo-faces')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--steps', type=int, default=150)
    ap.add_argument('--photo', default=None)
    ap.add_argument('--runs', type=int, default=2)
    ap.add_argument('--json', action='store_true')
    ap.add_argument('--view', default='photo', choices=['photo', 'generator'],
                    help="what frames show: the photo's pixels moved by the edit (the default) or the rendering")
    args = ap.parse_args()
    from websockets.sync.client import connect

    sys.path.insert(0, str(ROOT))
    from photodrag.pipeline.demo import DEMO_PHOTO
    photo = Path(args.photo or DEMO_PHOTO)

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, '-c', SERVER, args.checkpoint, args.device, str(args.steps), str(port),
                             tempfile.mkdtemp(prefix='photodrag-bench-')], env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    url = f'http://127.0.0.1:{port}'

    def call(method, path, body=None, data=None, headers=None):
        req = urllib.request.Request(url + path, method=method, headers={'X-Photodrag': '1', **(headers or {})},
                                     data=data if data is not None else
                                     (json.dumps(body).encode() if body is not None else None))
        if body is not None:
            req.add_header('Content-Type', 'application/json')
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())

    try:
        for _ in range(600):
            try:
                status = call('GET', '/api/status')
                break
            except OSError:
                time.sleep(0.1)
        R = status['resolution']
        sid = call('POST', '/api/sessions')['session']
        t = time.perf_counter()
        call('POST', f'/api/sessions/{sid}/photo', data=photo.read_bytes(), headers={'X-Filename': photo.name})
        upload_s = time.perf_counter() - t
        call('POST', f'/api/sessions/{sid}/faces/0/open')
        while not call('GET', f'/api/sessions/{sid}/faces/0')['tuned']:     # inverted in the background
            time.sleep(0.25)
        call('PUT', f'/api/sessions/{sid}/faces/0/view', {'view': args.view})
        base = f'/api/sessions/{sid}/faces/0'
        call('POST', f'{base}/points', {'handle': [R * 0.4, R * 0.62], 'target': [R * 0.1, R * 0.9]})

        def headless():
            call('POST', f'{base}/reset')
            call('POST', f'{base}/start')
            while True:
                time.sleep(0.25)
                info = call('GET', base)
                if not info['running'] and info['last_run']:
                    run = info['last_run']
                    return run['steps'] / run['seconds']

        def watched():
            with connect(f'ws://127.0.0.1:{port}{base.rsplit("/faces", 1)[0]}/events', max_size=None) as ws:
                call('POST', f'{base}/reset')
                while True:                     # up to the reset's frame (step 0)
                    m = json.loads(ws.recv())
                    if m.get('type') == 'frame' and m['step'] == 0:
                        break
                t0 = time.perf_counter()
                call('POST', f'{base}/start')
                frames, first = 0, None
                while True:
                    m = json.loads(ws.recv())
                    if m.get('type') != 'frame':
                        continue
                    ws.send(json.dumps({'type': 'ack'}))
                    if m['final']:
                        break
                    frames += 1
                    first = first or time.perf_counter() - t0
                elapsed = time.perf_counter() - t0
            info = call('GET', base)
            run = info['last_run']
            return run['steps'] / run['seconds'], frames / elapsed, first

        headless()                              # warm up
        alone, seen, fps, firsts = [], [], [], []
        for _ in range(args.runs):
            alone.append(headless())
            rate, f, first = watched()
            seen.append(rate)
            fps.append(f)
            firsts.append(first)
        call('DELETE', f'/api/sessions/{sid}')
    finally:
        proc.terminate()
        proc.wait(30)

    rate_alone, rate_seen = statistics.median(alone), statistics.median(seen)
    out = {'checkpoint': args.checkpoint, 'device': args.device, 'resolution': R, 'steps': args.steps,
           'upload_to_faces_s': round(upload_s, 3), 'steps_per_s_headless': [round(v, 2) for v in alone],
           'steps_per_s_watched': [round(v, 2) for v in seen], 'watched_over_headless': round(rate_seen / rate_alone, 3),
           'frames_per_s': [round(v, 1) for v in fps], 'first_frame_s': [round(v, 3) for v in firsts]}
    if args.json:
        print(json.dumps(out))
        return
    print(f'{args.checkpoint} ({R} px) on {args.device}, {args.steps} steps x {args.runs} runs, photo {photo.name}')
    print(f'  upload -> faces shown      {upload_s:7.2f} s')
    print(f'  steps/s headless           {rate_alone:7.2f}   (runs: {", ".join(f"{v:.2f}" for v in alone)})')
    print(f'  steps/s while watched      {rate_seen:7.2f}   (runs: {", ".join(f"{v:.2f}" for v in seen)})'
          f'   ratio {rate_seen / rate_alone:.3f}  (goal >= 0.90)')
    print(f'  frames/s received          {statistics.median(fps):7.1f}   (goal >= 10)')
    print(f'  Start -> first frame       {statistics.median(firsts):7.3f} s (goal < 1 s)')


if __name__ == '__main__':
    main()
