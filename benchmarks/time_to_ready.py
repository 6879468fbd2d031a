"""Time to ready: from a face's click (web API) or the start of `edit` (pipeline) to a face that
can be dragged, for each inversion preset, against `balanced` measured in the same run.

    python benchmarks/time_to_ready.py [--photo PATH] [--face 0] [--presets fast balanced] [--checkpoint demo-faces]

- web: the editor app in this process (FastAPI's test client, as a page calls it): the photo
  uploaded, then from POST /faces/K/open to its answer (the face takes points: aligned, the
  inversion's start drawn) and on to the page's 'tuned' message (the inversion, run in the
  background, is done: Start drags at once), one server per preset, no inversion cache;
- web, dragging: the same, and Start pressed right after the open with one pair of points: the
  first drag step (on the untuned generator, from the inversion's start), and the switch of that
  drag onto the tuned generator (the inversion ran beside the drag, sharing the cores);
- pipeline: `pipeline.edit`'s stages up to the drag (load, detect, align, invert) for the
  same face, from its record's timings.
Printed per preset: seconds for each, LPIPS(vgg) of the inversion at the generator's
resolution, and the ratio to balanced (the issue's goal: <= 0.15 at an LPIPS within +0.01).
Then where a preset's inversion spends its time (projection and tuning steps, seconds a step).
"""

import argparse
import time
from pathlib import Path

import _measure  # noqa: F401  (sets sys.path first)


def web_open(photo: Path, face: int, checkpoint: str, quality: str):
    """(seconds until the face takes points, seconds until its inversion is done and a drag can
    run, LPIPS of that inversion), from the click on the face."""
    import json
    from fastapi.testclient import TestClient
    from photodrag.web import ServerSettings, create_app
    app = create_app(ServerSettings(allowed_hosts=('testserver',), checkpoint=checkpoint, quality=quality, cache=False))
    with TestClient(app, headers={'X-Photodrag': '1'}) as client:
        sid = client.post('/api/sessions').json()['session']
        r = client.post(f'/api/sessions/{sid}/photo', content=photo.read_bytes(), headers={'X-Filename': photo.name})
        r.raise_for_status()
        with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
            t = time.perf_counter()
            info = client.post(f'/api/sessions/{sid}/faces/{face}/open').json()
            ready = time.perf_counter() - t
            while not info['tuned']:
                m = json.loads(ws.receive_text())
                if m['type'] == 'tuned' and m['face'] == face:
                    info = m
                    if m['inversion']['error']:
                        raise SystemExit(m['inversion']['error'])
        tuned = time.perf_counter() - t
        client.delete(f'/api/sessions/{sid}')
    return ready, tuned, info['inversion']['lpips']


def web_drag(photo: Path, face: int, checkpoint: str, quality: str):
    """(seconds from the click on the face to the first drag step, to the drag going on on the
    tuned generator, steps taken before it did), Start pressed as soon as the face opened."""
    import json
    from fastapi.testclient import TestClient
    from photodrag.web import ServerSettings, create_app
    app = create_app(ServerSettings(allowed_hosts=('testserver',), checkpoint=checkpoint, quality=quality, cache=False))
    with TestClient(app, headers={'X-Photodrag': '1'}) as client:
        sid = client.post('/api/sessions').json()['session']
        r = client.post(f'/api/sessions/{sid}/photo', content=photo.read_bytes(), headers={'X-Filename': photo.name})
        r.raise_for_status()
        base = f'/api/sessions/{sid}/faces/{face}'
        with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
            t = time.perf_counter()
            info = client.post(f'{base}/open').json()
            c = info['size'] / 2
            client.post(f'{base}/points', json={'handle': [c, c * 1.25], 'target': [c * 0.95, c * 1.2]})
            client.post(f'{base}/start').raise_for_status()
            first = switched = None
            steps = 0
            while switched is None:
                m = json.loads(ws.receive_text())
                if m['type'] == 'frame':
                    ws.send_text(json.dumps({'type': 'ack'}))
                    if first is None and m['step'] >= 1:
                        first = time.perf_counter() - t
                    steps = max(steps, m['step'])
                elif m['type'] == 'tuned' and m['face'] == face:
                    if m['inversion']['error']:
                        raise SystemExit(m['inversion']['error'])
                    switched = time.perf_counter() - t
                    steps = m['step'] if m.get('switched') else steps
        client.delete(f'/api/sessions/{sid}')
    return first, switched, steps


def pipeline_ready(photo: Path, face: int, checkpoint: str, quality: str):
    """The stages before the drag, from the record of an edit whose drag takes no step."""
    from photodrag import pipeline
    from photodrag.alignment import detect_faces, read_photo
    p = read_photo(photo)
    f = detect_faces(p)[face]
    x, y = f.centre
    result = pipeline.edit(p, [((x, y), (x, y))], checkpoint=checkpoint, quality=quality, face=face, cache=False,
                           device='cpu', max_steps=1)
    rec = result.record
    timings = rec.timings
    ready = sum(timings.get(k, 0.0) for k in ('load', 'detect', 'align', 'invert'))
    inversion = rec.faces[0].inversion
    return ready, inversion['lpips'], inversion


def main():
    from photodrag.pipeline.demo import DEMO_PHOTO
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--photo', default=str(DEMO_PHOTO))
    ap.add_argument('--face', type=int, default=0)
    ap.add_argument('--checkpoint', default='demo-faces')
    ap.add_argument('--presets', nargs='*', default=['fast', 'balanced'])
    args = ap.parse_args()
    photo = Path(args.photo)
    presets = list(dict.fromkeys(args.presets + ['balanced']))
    rows = {}
    drags = {}
    for q in presets:
        ready_s, tuned_s, web_lpips = web_open(photo, args.face, args.checkpoint, q)
        first_s, switched_s, steps = web_drag(photo, args.face, args.checkpoint, q)
        cli_s, cli_lpips, inv = pipeline_ready(photo, args.face, args.checkpoint, q)
        rows[q] = (ready_s, tuned_s, web_lpips, cli_s, cli_lpips, inv)
        drags[q] = (first_s, switched_s, steps)
        print(f'{q:9s} web: points {ready_s:5.1f} s, tuned {tuned_s:6.1f} s, LPIPS {web_lpips:.3f}; Start at once: '
              f'first drag step {first_s:5.1f} s, on the tuned generator {switched_s:6.1f} s (after {steps} steps)   '
              f'pipeline to drag {cli_s:6.1f} s, LPIPS {cli_lpips:.3f}', flush=True)
    b = rows['balanced']
    print(f'\n{photo.name}, face {args.face}, {args.checkpoint}; ratio to a balanced inversion (web, idle) (goal <= '
          '0.15 at LPIPS <= +0.01 once tuned):')
    for q, (ready_s, tuned_s, web_lpips, cli_s, cli_lpips, inv) in rows.items():
        first_s, switched_s, _ = drags[q]
        print(f'  {q:9s} web: points {ready_s / b[1]:.2f}, dragging {first_s / b[1]:.2f}, tuned {tuned_s / b[1]:.2f} '
              f'(LPIPS {web_lpips - b[2]:+.3f}), tuned while dragging {switched_s / b[1]:.2f}'
              f'   pipeline {cli_s / b[3]:.2f} (LPIPS {cli_lpips - b[4]:+.3f})')
    print('\nwhere the inversion spends its time (pipeline run):')
    for q, row in rows.items():
        stages = row[5].get('stages') or {}
        parts = []
        for name in ('projection', 'tuning'):
            s = stages.get(name) or {}
            if s.get('steps'):
                parts.append(f'{name} {s["steps"]} steps {s["seconds"]:.1f} s ({s["seconds"] / s["steps"]:.2f} s/step)')
        print(f'  {q:9s} ' + ('; '.join(parts) or str(sorted(row[5]))))


if __name__ == '__main__':
    main()
