"""The web editor's API (photodrag.web): what a page or a script sees, errors, isolation,
sessions freed, and the interactive drag replaying from its record."""

import base64
import io
import json

import numpy as np
import pytest

pytest.importorskip('fastapi')
from fastapi.testclient import TestClient  # noqa: E402

from photodrag import pipeline  # noqa: E402
from photodrag.inversion import InversionConfig  # noqa: E402
from photodrag.pipeline.demo import DEMO_PHOTO  # noqa: E402
from photodrag.web import ServerSettings, create_app  # noqa: E402

pytestmark = pytest.mark.slow

# started at w_avg: with the shipped encoder's start and this short 20 + 10 inversion, one face
# of the group photo did not move in 25 drag steps (the encoder's start is covered in test_encoder)
INVERSION = InversionConfig.preset('fast', projection_steps=20, tuning_steps=10).replace(init='mean')
TEST_HOSTS = ('testserver',)        # the host name Starlette's test client sends


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp('inversions')


@pytest.fixture(scope='module')
def client(cache):
    # Start waits for the inversion here (these tests hold the editor's drag to `pipeline.edit`'s);
    # the drag begun before tuning ends has its own tests below (`gated`)
    app = create_app(ServerSettings(allowed_hosts=TEST_HOSTS, inversion=INVERSION, max_steps=25, cache=cache, max_sessions=3,
                                    max_upload_bytes=2_000_000, drag_while_tuning=False))
    with TestClient(app, headers={'X-Photodrag': '1'}) as c:
        yield c


def new(client):
    r = client.post('/api/sessions')
    assert r.status_code == 200, r.text
    return r.json()['session']


def opened(client):
    sid = new(client)
    assert client.post(f'/api/sessions/{sid}/sample', json={'name': 'astronaut'}).status_code == 200
    r = client.post(f'/api/sessions/{sid}/faces/0/open')
    assert r.status_code == 200, r.text
    return sid


def run_to_end(client, sid, ws):
    r = client.post(f'/api/sessions/{sid}/faces/0/start')
    assert r.status_code == 200, r.text
    frames = []
    while True:
        m = json.loads(ws.receive_text())
        if m['type'] == 'frame':
            frames.append(m)
            ws.send_text(json.dumps({'type': 'ack'}))
            if m['final']:
                return frames


def test_sample_faces_points_drag_apply_download_equals_pipeline_edit(client, cache, tmp_path):
    sid = new(client)
    r = client.post(f'/api/sessions/{sid}/sample', json={'name': 'astronaut'})
    faces = r.json()['faces']
    assert len(faces) == 1 and faces[0]['expression']['eyes'] == 'open'
    info = client.post(f'/api/sessions/{sid}/faces/0/open').json()
    assert info['size'] == 128 and len(info['quad']) == 4 and not info['started']
    again = client.post(f'/api/sessions/{sid}/faces/0/open').json()
    assert again['inversion'] == info['inversion']
    # the left mouth corner (at 42, 96 in the crop), up and out: a cheek point may not move in 25 steps
    r = client.post(f'/api/sessions/{sid}/faces/0/points', json={'handle': [42, 96], 'target': [36, 90]})
    assert r.status_code == 200 and np.allclose(r.json()['handles'], [[42, 96]])
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        frames = run_to_end(client, sid, ws)
    assert len(frames) >= 3 and frames[-1]["step"] == 25 and frames[-1]['reason'] == 'max_steps'
    assert frames[0]['handles'] != frames[-1]['handles']            # the tracked handle moved
    # the status shows how far the content went, measured in the frame's pixels (not the tracker)
    assert abs(frames[0]['content_progress'][0]) < 0.2 and isinstance(frames[-1]['content_progress'][0], float)
    assert client.post(f'/api/sessions/{sid}/faces/0/apply').json()['applied'] == [0]
    photo = client.get(f'/api/sessions/{sid}/files/photo')
    assert photo.status_code == 200 and 'astronaut_edited.png' in photo.headers['content-disposition']
    record = client.get(f'/api/sessions/{sid}/files/record').json()
    assert record['input']['path'] == 'astronaut.png' and 'script' not in record['faces'][0]['drag']
    timings = record['timings']                     # the whole edit's time, not the paste's alone
    stages = sum(v for stage, v in timings.items() if stage != 'total')
    assert timings['total'] >= stages - 0.005 and timings['total'] > timings['invert'] > 0, timings
    f = record['faces'][0]
    drags = [(tuple(h), tuple(t)) for h, t in zip(f['handles_photo'], f['targets_photo'])]
    direct = pipeline.edit(DEMO_PHOTO, drags, pipeline.EditRecord.from_dict(record).edit_config(), face=0,
                           cache=cache)
    from PIL import Image
    downloaded = np.asarray(Image.open(io.BytesIO(photo.content)).convert('RGB'))
    assert np.array_equal(downloaded, direct.pixels)
    resaved = tmp_path / 'astronaut.png'                # the same pixels in another file
    Image.open(DEMO_PHOTO).save(resaved, compress_level=1)
    with pytest.warns(UserWarning, match='another file'):
        again = pipeline.edit_from_record(pipeline.EditRecord.from_dict(record), photo=resaved, cache=cache)
    assert np.array_equal(again.pixels, direct.pixels)
    video = client.get(f'/api/sessions/{sid}/faces/0/video')
    assert video.status_code == 200 and len(video.content) > 1000
    client.delete(f'/api/sessions/{sid}')


def test_interactive_drag_replays_from_its_record(client, cache, tmp_path):
    """Stop, move a target, add a pair, paint a region, change the step size, undo, go on:
    the record holds the calls and `edit_from_record` gives the same pixels."""
    sid = opened(client)
    base = f'/api/sessions/{sid}/faces/0'
    client.post(f'{base}/points', json={'handle': [50, 80], 'target': [42, 72]})
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        run_to_end(client, sid, ws)
        before_undo = client.get(f'{base}').json()
        assert client.patch(f'{base}/points/0', json={'target': [44, 74]}).status_code == 200
        assert client.post(f'{base}/points', json={'handle': [78, 80], 'target': [82, 76]}).status_code == 200
        mask = np.zeros((128, 128), np.uint8)
        mask[50:110, 25:105] = 255
        buf = io.BytesIO()
        from PIL import Image
        Image.fromarray(mask).save(buf, format='PNG')
        png = 'data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode()
        assert client.put(f'{base}/mask', json={'png': png}).json()['has_mask']
        assert client.put(f'{base}/settings', json={'lr': 0.003}).json()['lr'] == 0.003
        undone = client.post(f'{base}/undo', json={'steps': 3}).json()
        assert undone['step'] == before_undo['step'] - 3
    client.post(f'{base}/apply')
    record_bytes = client.get(f'/api/sessions/{sid}/files/record').content
    photo = client.get(f'/api/sessions/{sid}/files/photo').content
    rec = pipeline.EditRecord.from_dict(json.loads(record_bytes))
    ops = [op['op'] for op in rec.faces[0].drag['script']['ops']]
    assert ops == ['step', 'move', 'add', 'mask', 'lr', 'undo'] and rec.faces[0].mask['kind'] == 'painted'
    again = pipeline.edit_from_record(rec, photo=DEMO_PHOTO, cache=cache)
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(photo)).convert('RGB')), again.pixels)
    # the paste took nothing from outside the painted region
    face = again.faces[0]
    outside = face.mask == 0
    assert outside.any() and np.array_equal(pipeline.editing.masked_edit(face)[outside], face.reconstruction[outside])
    client.delete(f'/api/sessions/{sid}')


def test_a_face_the_detector_missed_is_boxed_by_hand_and_its_record_keeps_the_box(client, cache):
    """A box drawn around a face adds it as the next subject, with landmarks fitted in the box;
    edited and applied, its record keeps the box and replays. Bad boxes are one line of 4xx."""
    sid = new(client)
    assert client.post(f'/api/sessions/{sid}/subjects', json={'box': [10, 10, 90, 90]}).status_code == 409
    faces = client.post(f'/api/sessions/{sid}/sample', json={'name': 'astronaut'}).json()['faces']
    for box, words in ((['a', 'b', 'c', 'd'], 'x1 > x0'), ([1, 2, 3], 'x1 > x0'), ([50, 50, 40, 90], 'x1 > x0'),
                       ([600, 10, 700, 100], 'at least 16x16'), ([10, 10, 20, 20], 'at least 16x16'), (None, 'x1 > x0')):
        r = client.post(f'/api/sessions/{sid}/subjects', json={'box': box})
        assert r.status_code == 400 and words in r.json()['error'] and '\n' not in r.json()['error'], (box, r.text)
    x0, y0, x1, y1 = faces[0]['box']
    box = [round(v, 1) for v in (x0 - 6, y0 - 6, x1 + 6, y1 + 6)]      # her face again, boxed a little wider
    r = client.post(f'/api/sessions/{sid}/subjects', json={'box': box})
    assert r.status_code == 200, r.text
    added = r.json()
    assert added['index'] == 1 and added['faces'][1]['boxed'] and added['faces'][1]['box'] == box
    assert 'expression' in added['faces'][1] and not added['faces'][0]['boxed']     # landmarks were fitted
    base = f'/api/sessions/{sid}/faces/1'
    assert client.post(f'{base}/open').status_code == 200
    client.post(f'{base}/points', json={'handle': [50, 80], 'target': [44, 74]})
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        assert client.post(f'{base}/start').status_code == 200
        while not ((m := json.loads(ws.receive_text()))['type'] == 'frame' and m['final']):
            if m['type'] == 'frame':
                ws.send_text(json.dumps({'type': 'ack'}))
    assert client.post(f'{base}/apply').status_code == 200
    rec = pipeline.EditRecord.from_dict(client.get(f'/api/sessions/{sid}/files/record').json())
    photo = client.get(f'/api/sessions/{sid}/files/photo').content
    assert rec.faces[0].index is None and rec.faces[0].box == box
    again = pipeline.edit_from_record(rec, photo=DEMO_PHOTO, cache=cache)
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(photo)).convert('RGB')), again.pixels)
    client.delete(f'/api/sessions/{sid}')


def test_undo_gives_back_the_exact_image(client):
    sid = opened(client)
    base = f'/api/sessions/{sid}/faces/0'
    client.post(f'{base}/points', json={'handle': [50, 80], 'target': [40, 70]})
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        frames = run_to_end(client, sid, ws)
        assert frames[-1]["step"] == 25
        client.post(f'{base}/undo', json={"steps": 25})
        while True:
            m = json.loads(ws.receive_text())
            if m['type'] == 'frame':
                break
    assert m['step'] == 0 and m['view'] == 'photo'
    before = client.get(f'/api/sessions/{sid}/files/face0_photo.png').content
    from PIL import Image
    a = np.asarray(Image.open(io.BytesIO(before)).convert('RGB')).astype(int)
    b = np.asarray(Image.open(io.BytesIO(base64.b64decode(m['image'].split(',')[1]))).convert('RGB')).astype(int)
    assert np.abs(a - b).mean() < 2.0          # the photo's face unmoved, through JPEG
    client.delete(f'/api/sessions/{sid}')


def _frame(m):
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(m['image'].split(',')[1]))).convert('RGB'))


def _energy(grey):
    import cv2
    return float((cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F) ** 2).mean())


def _grey(image):
    import cv2
    return cv2.cvtColor(np.ascontiguousarray(image, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _laplacian_kept(image):
    """How much of the image's Laplacian energy survives being squeezed through 128 px."""
    import cv2
    grey = _grey(image)
    h, w = grey.shape
    squeezed = cv2.resize(cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA), (w, h),
                          interpolation=cv2.INTER_CUBIC)
    return _energy(squeezed) / _energy(grey)


def _upscaled(image, size):
    import cv2
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)


def test_a_photos_face_is_drawn_with_the_photos_detail(client):
    """The issue's measure on a real photo's face: the face the page draws before any drag is
    the photo's, >= 256 px, and squeezed through 128 px it keeps at most a quarter of its
    Laplacian energy; the generator's rendering blown up to that size keeps over 40 %. (The
    shared group photos' faces span 180-330 photo px: their views keep 0.47-0.62, as much detail
    as those photos hold; this 1024 px portrait's face keeps 0.08.)"""
    from pathlib import Path
    from conftest import shared_photo
    path = Path(shared_photo('portrait_aligned1024_e4e_input.jpg'))
    sid = new(client)
    r = client.post(f'/api/sessions/{sid}/photo', content=path.read_bytes(), headers={'X-Filename': path.name})
    assert r.status_code == 200, r.text
    info = client.post(f'/api/sessions/{sid}/faces/0/open').json()
    from PIL import Image
    get = lambda name: np.asarray(Image.open(io.BytesIO(client.get(f'/api/sessions/{sid}/files/{name}').content)).convert('RGB'))  # noqa: E731
    view, recon = get('face0_photo.png'), get('face0_reconstruction.png')
    assert view.shape[0] == info['view_size'] == 512                # the face spans more than the canvas
    assert _laplacian_kept(view) <= 0.25
    # and it holds several times the fine detail of the rendering blown up to its size (9x measured)
    assert _energy(_grey(view)) > 4 * _energy(_grey(_upscaled(recon, view.shape[0])))
    client.delete(f'/api/sessions/{sid}')


def test_the_face_canvas_shows_the_photo_moved_by_the_edit(client):
    """Frames show the photo's own pixels, at the face's size (>= 256 px), moved as the
    paste-back moves them: the last frame equals the applied photo cut to the face, and carries
    detail a 128 px rendering cannot. The generator's rendering is a toggle away."""
    from photodrag import alignment
    from photodrag.web.editor import VIEW_MIN
    sid = opened(client)
    base = f'/api/sessions/{sid}/faces/0'
    info = client.get(base).json()
    assert info['view'] == 'photo' and info['view_size'] >= VIEW_MIN
    client.post(f'{base}/points', json={'handle': [42, 96], 'target': [36, 90]})
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        frames = run_to_end(client, sid, ws)
        last = _frame(frames[-1])
        assert last.shape[:2] == (info['view_size'],) * 2 and frames[-1]['view'] == 'photo'
        r = client.put(f'{base}/view', json={'view': 'generator'})
        assert r.status_code == 200
        while True:                             # the stopped drag drawn again, as the generator renders it
            m = json.loads(ws.receive_text())
            if m['type'] == 'frame':
                break
    assert m['view'] == 'generator' and _frame(m).shape[:2] == (128, 128)
    assert client.put(f'{base}/view', json={'view': 'x-ray'}).status_code == 400
    # the astronaut's face spans about 200 photo px, so the 256 px view holds less detail than a
    # larger face's (above); still more than the rendering blown up to its size
    assert _energy(_grey(last)) > _energy(_grey(_upscaled(_frame(m), last.shape[0])))
    client.post(f'{base}/apply')
    from PIL import Image
    result = np.asarray(Image.open(io.BytesIO(client.get(f'/api/sessions/{sid}/files/photo').content)).convert('RGB'))
    fs = client.app.state.server.get(sid).face_states[0]
    size = info['view_size']
    view = alignment.CropTransform.from_quad(fs.aligned.crop.transform.quad(), (size, size), result.shape[1::-1])
    pasted = alignment.warp_quad(result, view).astype(int)
    unmoved = fs.photo_view.astype(int)
    last = last.astype(int)
    from photodrag.web.editor import _jpeg_b64
    floor = np.abs(_frame({'image': ',' + _jpeg_b64(pasted.astype(np.uint8))}).astype(int) - pasted).mean()
    assert np.abs(unmoved - pasted).mean() > 0.2                  # the edit changed the face ...
    assert np.abs(pasted - last).mean() <= 1.15 * floor + 0.1     # ... and the frame is the paste, within JPEG error
    client.delete(f'/api/sessions/{sid}')


@pytest.mark.parametrize('data, name, status, message', [
    (b'hello, this is text', 'notes.txt', 400, 'not an image'),
    (b'\x89PNG\r\n\x1a\n' + b'\0' * 100, 'broken.png', 400, 'broken.png'),
    (b'x' * 2_100_000, 'huge.jpg', 413, 'up to 2 MB'),
])
def test_bad_uploads_say_what_is_wrong(client, data, name, status, message):
    sid = new(client)
    r = client.post(f'/api/sessions/{sid}/photo', content=data, headers={'X-Filename': name})
    assert r.status_code == status and message in r.json()['error'], r.text
    assert 'Traceback' not in r.text and '/tmp' not in r.text
    client.delete(f'/api/sessions/{sid}')


def test_a_photo_without_a_face(client):
    sid = new(client)
    buf = io.BytesIO()
    from PIL import Image
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(buf, format='JPEG')
    r = client.post(f'/api/sessions/{sid}/photo', content=buf.getvalue(), headers={'X-Filename': 'wall.jpg'})
    assert r.status_code == 400 and 'no face' in r.json()['error'].lower() and 'wall.jpg' in r.json()['error']
    client.delete(f'/api/sessions/{sid}')


def test_points_outside_the_crop_and_bad_requests(client):
    sid = opened(client)
    base = f'/api/sessions/{sid}/faces/0'
    r = client.post(f'{base}/points', json={'handle': [500, 80], 'target': [45, 76]})
    assert r.status_code == 400 and 'outside the 128x128 crop' in r.json()['error']
    assert client.post(f'{base}/points', json={'handle': 'x'}).status_code == 400
    assert client.post(f'{base}/start').status_code == 400                          # no points yet
    assert client.post(f'/api/sessions/{sid}/faces/7/open').status_code == 404
    assert client.put(f'{base}/settings', json={'lr': -1}).status_code == 400
    assert client.post(f'{base}/preset', json={'name': 'frown'}).status_code == 400
    assert client.post(f'{base}/apply').status_code == 409
    client.delete(f'/api/sessions/{sid}')


def test_sessions_are_isolated_and_paths_never_reach_the_disk(client):
    a, b = opened(client), new(client)
    assert client.get(f'/api/sessions/{b}/files/view.jpg').status_code == 404      # b has no photo
    assert client.get(f'/api/sessions/{a}/files/view.jpg').status_code == 200
    for what in ['..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd', 'face0_crop.png%00', '.%2E', 'face0_../../x.png']:
        r = client.get(f'/api/sessions/{a}/files/{what}')
        assert r.status_code == 404, what
    other = a[:-1] + ('y' if a.endswith('x') else 'x')     # one character off
    assert client.get(f'/api/sessions/{other}/files/view.jpg').status_code == 404
    assert client.post('/api/sessions/../sample', json={'name': 'astronaut'}).status_code == 404
    r = client.post(f'/api/sessions/{a}/sample', json={'name': '../../../etc/passwd'})
    assert r.status_code == 404
    client.delete(f'/api/sessions/{a}')
    client.delete(f'/api/sessions/{b}')


def test_session_cap_says_busy(client):
    ids = [new(client) for _ in range(3)]
    r = client.post('/api/sessions')
    assert r.status_code == 503 and 'busy' in r.json()['error']
    for sid in ids:
        client.delete(f'/api/sessions/{sid}')
    assert client.get('/api/status').json()['sessions'] == 0


def test_a_client_leaving_mid_drag_frees_its_session(client):
    sid = opened(client)
    client.post(f'/api/sessions/{sid}/faces/0/points', json={'handle': [50, 80], 'target': [30, 60]})
    editor = client.app.state.server.sessions[sid]
    tmp = editor.tmp
    long = editor.drag_config(editor.face(0)).replace(max_steps=100_000)
    editor.drag_config = lambda fs: long            # a drag still running when the page leaves, however slow CI is
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        client.post(f'/api/sessions/{sid}/faces/0/start')
        json.loads(ws.receive_text())
    import time
    for _ in range(400):                            # the drag stops within a step, then memory and files go
        if sid not in client.app.state.server.sessions and editor.closed and not tmp.exists():
            break
        time.sleep(0.05)
    assert sid not in client.app.state.server.sessions and editor.closed and not tmp.exists()
    assert client.get(f'/api/sessions/{sid}').status_code == 404


def test_idle_sessions_are_closed(client):
    sid = new(client)
    server = client.app.state.server
    server.sessions[sid].last_active -= 31 * 60
    assert server.reap() == 1 and client.get(f'/api/sessions/{sid}').status_code == 404


def test_presets_place_points_and_region(client):
    sid = opened(client)
    r = client.post(f'/api/sessions/{sid}/faces/0/preset', json={'name': 'smile', 'strength': 1.0})
    assert r.status_code == 200, r.text
    info = r.json()
    assert len(info['handles']) == 2 and info['has_mask'] and info['presets'] == ['smile']
    assert client.get(f'/api/sessions/{sid}/files/face0_mask.png').status_code == 200
    client.delete(f'/api/sessions/{sid}')


def test_the_page_and_its_files_are_served_with_a_strict_policy(client):
    r = client.get('/')
    assert r.status_code == 200 and '<canvas id="crop"' in r.text
    assert "default-src 'self'" in r.headers['content-security-policy']
    assert client.get('/static/editor.js').status_code == 200
    assert client.get('/static/../app.py').status_code == 404
    assert 'http' not in client.get('/static/editor.js').text.replace('https:', '')   # nothing from elsewhere


def test_serve_command_warns_off_loopback_and_checks_its_options(monkeypatch):
    from click.testing import CliRunner
    from photodrag.cli import main
    from photodrag.cli.serve import is_loopback
    assert is_loopback('127.0.0.1') and is_loopback('::1') and is_loopback('localhost')
    assert not is_loopback('0.0.0.0') and not is_loopback('192.168.1.4')
    started = {}
    import uvicorn
    monkeypatch.setattr(uvicorn, 'run', lambda app, host, port, **kw: started.update(host=host, port=port))
    r = CliRunner().invoke(main, ['serve', '--host', '0.0.0.0', '--port', '7861', '--device', 'cpu'])
    assert r.exit_code == 0, r.output
    assert 'warning: listening on 0.0.0.0' in r.output and 'http://127.0.0.1:7861' in r.output
    assert started == {'host': '0.0.0.0', 'port': 7861}
    r = CliRunner().invoke(main, ['serve', '--port', '70000'])
    assert r.exit_code == 2 and '--port' in r.output
    # the Host names a request may carry: loopback always, the bound address, what --allow-host adds
    from photodrag.cli.serve import host_names
    assert set(host_names('127.0.0.1')) == {'127.0.0.1', 'localhost', '::1'}
    assert {'192.168.1.4', 'localhost'} <= set(host_names('192.168.1.4')) and \
        'photos.example' not in host_names('192.168.1.4')
    assert {'photos.example', '127.0.0.1'} <= set(host_names('0.0.0.0', ['Photos.Example']))


def test_two_faces_of_a_group_photo_go_into_one_result(client, cache):
    from conftest import shared_photo
    path = shared_photo('group2_codeformer_06.png')
    sid = new(client)
    with open(path, 'rb') as f:
        r = client.post(f'/api/sessions/{sid}/photo', content=f.read(), headers={'X-Filename': 'group2.png'})
    faces = r.json()['faces']
    assert r.status_code == 200 and len(faces) == 2
    for k in (0, 1):
        base = f'/api/sessions/{sid}/faces/{k}'
        assert client.post(f'{base}/open').status_code == 200
        # the left mouth corner, up and out (a cheek point barely moves in this short edit)
        client.post(f'{base}/points', json={'handle': [46, 98], 'target': [41, 93]})
        with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
            client.post(f'{base}/start')
            while not json.loads(ws.receive_text()).get('final'):
                ws.send_text(json.dumps({'type': 'ack'}))
        assert client.post(f'{base}/apply').json()['applied'] == list(range(k + 1))
    record = client.get(f'/api/sessions/{sid}/files/record').json()
    assert [f['index'] for f in record['faces']] == [0, 1] and record['input']['path'] == 'group2.png'
    again = pipeline.edit_from_record(pipeline.EditRecord.from_dict(record), photo=path, cache=cache)
    from PIL import Image
    got = np.asarray(Image.open(io.BytesIO(client.get(f'/api/sessions/{sid}/files/photo').content)).convert('RGB'))
    assert np.array_equal(got, again.pixels)
    original = np.asarray(Image.open(path).convert('RGB'))
    changed = np.argwhere((got != original).any(axis=2))
    for f in faces:                                  # both faces changed
        x0, y0, x1, y1 = f['box']
        assert ((changed[:, 1] >= x0) & (changed[:, 1] <= x1) & (changed[:, 0] >= y0) & (changed[:, 0] <= y1)).any()
    client.delete(f'/api/sessions/{sid}')


# ---------------------------------------------------------------- the inversion in the background

@pytest.fixture
def gated(tmp_path, monkeypatch, request):
    """A server whose background inversions wait for `gate` before they start (so the test
    decides when tuning ends), with an empty inversion cache of its own; settings from the
    test's indirect parameter."""
    import threading
    from photodrag.pipeline import editing
    gate, real = threading.Event(), editing.invert_face

    def invert_face(*args, **kwargs):
        assert gate.wait(120), 'the test never let the inversion go'
        return real(*args, **kwargs)

    monkeypatch.setattr(editing, 'invert_face', invert_face)
    cache = tmp_path / 'inversions'
    app = create_app(ServerSettings(allowed_hosts=TEST_HOSTS, inversion=INVERSION, max_steps=25, cache=cache,
                                    max_sessions=3, **getattr(request, 'param', {})))
    with TestClient(app, headers={'X-Photodrag': '1'}) as c:
        yield c, gate, cache


WAITING = pytest.mark.parametrize('gated', [{'drag_while_tuning': False}], indirect=True)


def _until(ws, kind):
    """Messages up to and including the first of type `kind`."""
    seen = []
    while True:
        m = json.loads(ws.receive_text())
        seen.append(m)
        if m['type'] == 'frame':
            ws.send_text(json.dumps({'type': 'ack'}))
        if m['type'] == kind:
            return seen


@WAITING
def test_a_face_takes_points_while_it_is_inverted_and_starts_on_the_tuned_generator(gated, tmp_path):
    """Open answers before the inversion (the page shows the encoder's start); points go in
    meanwhile; with drag_while_tuning off, Start waits and the drag begins on the tuned
    generator; the record replays."""
    client, gate, cache = gated
    sid = new(client)
    client.post(f'/api/sessions/{sid}/sample', json={'name': 'astronaut'})
    base = f'/api/sessions/{sid}/faces/0'
    info = client.post(f'{base}/open').json()
    assert info['inversion']['tuning'] and info['inversion']['lpips'] is None and not info['tuned']
    assert client.get(f'/api/sessions/{sid}/files/face0_reconstruction.png').status_code == 200
    assert client.post(f'{base}/points', json={'handle': [42, 96], 'target': [36, 90]}).status_code == 200
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        waiting = client.post(f'{base}/start').json()
        assert waiting['waiting'] and not waiting['running'] and not waiting['started']
        # a second pair placed while Start waits is part of the drag
        assert client.post(f'{base}/points', json={'handle': [86, 96], 'target': [92, 90]}).status_code == 200
        assert not list(cache.rglob('*.safetensors'))
        gate.set()
        seen = _until(ws, 'tuned')
        tuned = seen[-1]
        assert any(m['type'] == 'progress' and m['stage'] == 'tuning' for m in seen)
        assert tuned['tuned'] and tuned['started'] and tuned['running'] and not tuned['waiting']
        assert tuned['inversion']['lpips'] > 0 and len(tuned['handles']) == 2
        frames = [m for m in _until(ws, 'frame') if m['type'] == 'frame']
        while not frames[-1]['final']:
            frames += [m for m in _until(ws, 'frame') if m['type'] == 'frame']
    assert frames[-1]['step'] == 25
    assert len(list(cache.rglob('*.safetensors'))) == 1        # the finished inversion, cached
    client.post(f'{base}/apply')
    record = client.get(f'/api/sessions/{sid}/files/record').json()
    photo = client.get(f'/api/sessions/{sid}/files/photo').content
    assert len(record['faces'][0]['handles_photo']) == 2 and record['timings']['invert'] > 0
    again = pipeline.edit_from_record(pipeline.EditRecord.from_dict(record), photo=DEMO_PHOTO, cache=cache)
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(photo)).convert('RGB')), again.pixels)
    client.delete(f'/api/sessions/{sid}')


@WAITING
def test_stop_while_waiting_for_the_inversion_starts_nothing(gated):
    client, gate, cache = gated
    sid = opened(client)
    base = f'/api/sessions/{sid}/faces/0'
    client.post(f'{base}/points', json={'handle': [42, 96], 'target': [36, 90]})
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        assert client.post(f'{base}/start').json()['waiting']
        stopped = client.post(f'{base}/stop').json()
        assert not stopped['waiting'] and not stopped['running']
        gate.set()
        seen = _until(ws, 'tuned')
    assert not seen[-1]['started'] and not seen[-1]['running'] and seen[-1]['tuned']
    assert not any(m['type'] == 'frame' for m in seen)
    assert client.get(base).json()['inversion']['lpips'] > 0
    client.delete(f'/api/sessions/{sid}')


def test_a_drag_begun_while_the_face_is_tuned_goes_on_on_the_tuned_generator(gated):
    """Start before the inversion ends drags at once on its start (the untuned generator); when
    tuning ends the same drag goes on on the tuned generator with its points where they were
    tracked to; Apply waits for that; the record replays the whole drag bit for bit."""
    client, gate, cache = gated
    sid = opened(client)
    base = f'/api/sessions/{sid}/faces/0'
    assert client.post(f'{base}/points', json={'handle': [42, 96], 'target': [36, 90]}).status_code == 200
    editor = client.app.state.server.sessions[sid]
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        started = client.post(f'{base}/start').json()
        assert started['started'] and started['on_start'] and not started['waiting'] and not started['tuned']
        frames = [m for m in _until(ws, 'frame') if m['type'] == 'frame']
        assert not frames[-1]['final'] and frames[-1]['step'] >= 1         # dragging before any tuning
        stopped = client.post(f'{base}/stop').json()
        assert not stopped['running'] and stopped['step'] >= 1
        r = client.post(f'{base}/apply')
        assert r.status_code == 409 and 'still learning' in r.json()['error']
        at_switch = stopped['step']
        handles = editor.face(0).drag.session.handles
        gate.set()
        seen = _until(ws, 'tuned')
        tuned = seen[-1]
        assert tuned['switched'] and tuned['tuned'] and not tuned['on_start'] and not tuned['running']
        assert tuned['step'] == at_switch and [tuple(h) for h in tuned['handles']] == handles
        assert editor.face(0).drag.session.G is editor.face(0).G_tuned
        client.post(f'{base}/start')
        frames = [m for m in _until(ws, 'frame') if m['type'] == 'frame']
        while not frames[-1]['final']:
            frames += [m for m in _until(ws, 'frame') if m['type'] == 'frame']
    assert frames[-1]['step'] > at_switch
    assert client.post(f'{base}/apply').status_code == 200
    record = client.get(f'/api/sessions/{sid}/files/record').json()
    script = record['faces'][0]['drag']['script']
    assert script['version'] == 2 and [op['op'] for op in script['ops']].count('tuned') == 1
    photo = client.get(f'/api/sessions/{sid}/files/photo').content
    again = pipeline.edit_from_record(pipeline.EditRecord.from_dict(record), photo=DEMO_PHOTO, cache=cache)
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(photo)).convert('RGB')), again.pixels)
    client.delete(f'/api/sessions/{sid}')


def test_a_drag_that_ended_before_the_tuning_did_goes_on_by_itself(gated):
    client, gate, cache = gated
    sid = opened(client)
    base = f'/api/sessions/{sid}/faces/0'
    client.post(f'{base}/settings', json={'lr': 0.05})
    client.post(f'{base}/points', json={'handle': [42, 96], 'target': [40, 94]})
    with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
        client.post(f'{base}/start')
        frames = [m for m in _until(ws, 'frame') if m['type'] == 'frame']
        while not frames[-1]['final']:
            frames += [m for m in _until(ws, 'frame') if m['type'] == 'frame']
        assert frames[-1]['done']
        gate.set()
        tuned = _until(ws, 'tuned')[-1]
        assert tuned['switched'] and tuned['running']      # on again, now on the tuned generator
        frames = [m for m in _until(ws, 'frame') if m['type'] == 'frame']
        while not frames[-1]['final']:
            frames += [m for m in _until(ws, 'frame') if m['type'] == 'frame']
    assert frames[-1]['done'] and client.post(f'{base}/apply').status_code == 200
    client.delete(f'/api/sessions/{sid}')


@pytest.mark.parametrize('how', ['close', 'new photo'])
def test_leaving_a_face_mid_inversion_leaves_nothing_behind(gated, how):
    """Closing the session or opening another photo while a face is inverted ends the inversion
    within a step: no cached file, no session files, no thread left running."""
    import threading
    import time
    client, gate, cache = gated
    sid = opened(client)
    editor = client.app.state.server.sessions[sid]
    tmp = editor.tmp
    fs = editor.face(0)
    steps = []
    real_publish = editor.publish
    editor.publish = lambda m: (steps.append(m) if m.get('type') == 'progress' else None, real_publish(m))[1]
    gate.set()
    for _ in range(600):                                # wait until the inversion is under way
        if any(m.get('stage') in ('projection', 'tuning') for m in steps):
            break
        time.sleep(0.05)
    assert fs.tuning is not None and not fs.tuning.done()
    if how == 'close':
        assert client.delete(f'/api/sessions/{sid}').status_code == 200
    else:
        assert client.post(f'/api/sessions/{sid}/sample', json={'name': 'astronaut'}).status_code == 200
    for _ in range(200):
        if fs.tuning is None or fs.tuning.done():
            break
        time.sleep(0.05)
    assert fs.inv is None and (fs.tuning is None or fs.tuning.done())
    assert not list(cache.rglob('*.safetensors')) and not [p for p in cache.rglob('*') if p.is_file()]
    if how == 'close':
        assert not tmp.exists()
        assert not [t for t in threading.enumerate() if t.name.startswith(f'tuning-{sid[:6]}')]
    else:
        assert client.get(f'/api/sessions/{sid}/faces/0').status_code == 404      # the new photo's face is not open
        client.delete(f'/api/sessions/{sid}')


def test_eyes_taken_from_another_shot_of_the_burst(client, tmp_path):
    """A blink fixed in the editor from another frame: the page's photo and record are those of
    `photodrag fix --reference`, and a stranger's shot is refused in one line."""
    import bursts
    from conftest import shared_photo
    from photodrag import alignment
    from photodrag.pipeline import fixes
    reference = alignment.read_photo(shared_photo('group2_codeformer_06.png')).pixels
    frame, _, _ = bursts.blink_burst(reference, alignment.detect_faces(reference)[1].centre, close=[1])
    paths = {'frame': tmp_path / 'frame.png', 'shot': tmp_path / 'shot.png'}
    alignment.write_photo(frame, paths['frame'])
    alignment.write_photo(reference, paths['shot'])
    sid = new(client)
    up = lambda what, name: client.post(f'/api/sessions/{sid}/{what}', content=paths[name].read_bytes(),  # noqa
                                        headers={'X-Filename': paths[name].name})
    assert up('photo', 'frame').status_code == 200
    r = client.post(f'/api/sessions/{sid}/faces/1/from-shot', json={'part': 'eyes'})
    assert r.status_code == 409 and 'add another shot' in r.json()['error']
    assert up('shots', 'shot').json() == {'shots': ['shot.png']}
    r = client.post(f'/api/sessions/{sid}/faces/1/from-shot', json={'part': 'eyes'})
    assert r.status_code == 200, r.text
    assert r.json()['fixed'] and r.json()['message'].startswith('face 1: eyes opened from shot.png')
    photo = client.get(f'/api/sessions/{sid}/files/photo')
    from PIL import Image
    got = np.asarray(Image.open(io.BytesIO(photo.content)).convert('RGB'))
    direct = fixes.fix_with_references(paths['frame'], [paths['shot']], ['closed-eyes'], faces=[1], fallback=False)
    assert np.array_equal(got, direct.pixels)
    record = client.get(f'/api/sessions/{sid}/files/record').json()
    assert record['format'] == 'photodrag-fix' and record['references'][0]['path'] == 'shot.png'
    again = fixes.fix_from_record(record, photo=paths['frame'], references=[paths['shot']])
    assert np.array_equal(again.pixels, got)
    # face 0 is another person, whose eyes are open in the shot too: refused, one line
    r = client.post(f'/api/sessions/{sid}/faces/0/from-shot', json={'part': 'eyes'})
    assert r.status_code == 400 and r.json()['error'].startswith('face 0: ') and '\n' not in r.json()['error']
    client.delete(f'/api/sessions/{sid}')


# ---------------------------------------------------------------- hostile requests

def _bomb_png(w=50_000, h=50_000) -> bytes:
    """A PNG of a few hundred bytes declaring w x h pixels."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) +
            chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def test_only_this_editors_host_and_origin_may_change_it(client):
    sessions = lambda: client.get('/api/status').json()['sessions']  # noqa: E731
    before = sessions()
    r = client.post('/api/sessions', headers={'Host': 'evil.example'})              # DNS rebinding
    assert r.status_code == 403 and 'not to the host' in r.json()['error']
    r = client.get('/api/status', headers={'Host': 'evil.example:7860'})
    assert r.status_code == 403
    r = client.post('/api/sessions', headers={'Origin': 'http://evil.example'})      # a foreign page
    assert r.status_code == 403 and 'another site' in r.json()['error']
    r = client.post('/api/sessions', headers={'Origin': 'null'})
    assert r.status_code == 403
    # a simple request (no custom header, no JSON) cannot change anything, wherever it comes from
    from fastapi.testclient import TestClient
    bare = TestClient(client.app)
    r = bare.post('/api/sessions', content=b'a=1', headers={'Content-Type': 'application/x-www-form-urlencoded'})
    assert r.status_code == 400 and 'X-Photodrag' in r.json()['error']
    assert sessions() == before
    sid = new(client)
    from starlette.websockets import WebSocketDisconnect
    for headers in ({'Origin': 'http://evil.example'}, {'Host': 'evil.example'}):
        with pytest.raises(WebSocketDisconnect) as e:
            with client.websocket_connect(f'/api/sessions/{sid}/events', headers=headers) as ws:
                ws.receive_text()
        assert e.value.code == 4403
    with client.websocket_connect(f'/api/sessions/{sid}/events', headers={'Origin': 'http://testserver'}):
        pass                                                    # the editor's own page is let in
    client.delete(f'/api/sessions/{sid}')


def test_bodies_numbers_and_bombs_are_one_line_4xx(client):
    sid = new(client)
    r = client.put(f'/api/sessions/{sid}/faces/0/settings', content=b' ' * (9 << 20),
                   headers={'Content-Type': 'application/json'})
    assert r.status_code == 413          # (memory while a 600 MB body streams in: test_web_browser.py)
    for body, status in ((b'{"lr": ' + b'9' * 400 + b'}', 400), (b'[' * 100_000 + b']' * 100_000, 400),
                         (b'{"lr": NaN}', 400)):
        r = client.put(f'/api/sessions/{sid}/faces/0/settings', content=body,
                       headers={'Content-Type': 'application/json'})
        assert r.status_code == status and '\n' not in r.json()['error'], (body[:20], r.text[:200])
    r = client.post(f'/api/sessions/{sid}/photo', content=_bomb_png(), headers={'X-Filename': 'bomb.png'})
    assert r.status_code == 400 and 'decompression bomb' in r.json()['error']
    assert client.post(f'/api/sessions/{sid}/sample', json={'name': 'astronaut'}).status_code == 200
    assert client.post(f'/api/sessions/{sid}/faces/0/open').status_code == 200
    r = client.put(f'/api/sessions/{sid}/faces/0/settings', json={'lr': True})          # a bool is no number
    assert r.status_code == 400
    png = 'data:image/png;base64,' + base64.b64encode(_bomb_png()).decode()
    r = client.put(f'/api/sessions/{sid}/faces/0/mask', json={'png': png})
    assert r.status_code == 400 and 'mask' in r.json()['error']
    for i in range(256):
        assert client.post(f'/api/sessions/{sid}/faces/0/points', json={'handle': [50, 60], 'target': [52, 62]}) \
            .status_code == 200
    r = client.post(f'/api/sessions/{sid}/faces/0/points', json={'handle': [50, 60], 'target': [52, 62]})
    assert r.status_code == 400 and 'at most 256' in r.json()['error']
    client.delete(f'/api/sessions/{sid}')


def test_a_broken_websocket_message_closes_the_socket_with_a_code(client, caplog):
    sid = new(client)
    from starlette.websockets import WebSocketDisconnect
    for send, code in ((lambda ws: ws.send_bytes(b'\x00\x01'), 1003), (lambda ws: ws.send_text('{not json'), 1007)):
        with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
            send(ws)
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_text()
            assert e.value.code == code
    assert 'Traceback' not in caplog.text
    assert client.get(f'/api/sessions/{sid}').status_code == 200            # the session lives on
    client.delete(f'/api/sessions/{sid}')


def test_photos_past_the_servers_memory_budget_are_told_busy(cache):
    app = create_app(ServerSettings(allowed_hosts=TEST_HOSTS, inversion=INVERSION, cache=cache,
                                    max_photo_bytes=4 * 3 * 512 * 512 + 1))
    with TestClient(app, headers={'X-Photodrag': '1'}) as c:
        sids = [c.post('/api/sessions').json()['session'] for _ in range(2)]
        assert c.post(f'/api/sessions/{sids[0]}/sample', json={'name': 'astronaut'}).status_code == 200
        r = c.post(f'/api/sessions/{sids[1]}/sample', json={'name': 'astronaut'})
        assert r.status_code == 503 and 'busy' in r.json()['error']
        c.delete(f'/api/sessions/{sids[0]}')                    # its photo's memory goes with it
        assert c.post(f'/api/sessions/{sids[1]}/sample', json={'name': 'astronaut'}).status_code == 200


def test_a_full_body_photo_in_the_editor_on_a_non_square_generator(tmp_path):
    """On a generator of full-body people (StyleGAN-Human's non-square layout) the editor's
    subjects are the people found from their faces (here the one person), each cut by the body
    recipe (white sides the generator draws too); the drag, Apply and the record's replay work
    as for a face."""
    import copy
    import time
    import torch
    from PIL import Image
    from conftest import make_generator, shared_photo
    from photodrag import checkpoints, stylegan
    path = shared_photo('fullbody_stylegan_human_test.jpg')
    kwargs = copy.deepcopy(make_generator(img_resolution=64, channel_base=1024, channel_max=64).init_kwargs)
    kwargs['synthesis_kwargs']['square'] = False
    torch.manual_seed(0)
    ckpt = checkpoints.save_generator(stylegan.Generator(**kwargs).eval(), tmp_path / 'human.safetensors')
    app = create_app(ServerSettings(allowed_hosts=TEST_HOSTS, checkpoint=str(ckpt), inversion=INVERSION,
                                    max_steps=6, cache=False))
    with TestClient(app, headers={'X-Photodrag': '1'}) as client:
        sid = new(client)
        with open(path, 'rb') as f:
            r = client.post(f'/api/sessions/{sid}/photo', content=f.read(), headers={'X-Filename': 'body.jpg'})
        assert r.status_code == 200, r.text
        faces = r.json()['faces']
        assert len(faces) == 1 and faces[0]['object'] and not faces[0]['whole']
        box = faces[0]['box']               # the person, head to shoes (docs/models.md's hand-drawn box:
        assert 380 <= box[0] <= 460 and 200 <= box[1] <= 260 and 840 <= box[2] <= 1020 and box[3] >= 1760
        # 390,210,1010,1815; her right shoe sticks out alone)
        base = f'/api/sessions/{sid}/faces/0'
        info = client.post(f'{base}/open').json()
        assert info['size'] == 64
        crop = np.asarray(Image.open(io.BytesIO(client.get(f'/api/sessions/{sid}/files/face0_crop.png').content)))
        assert (crop[:, :16] == 255).all() and (crop[:, 48:] == 255).all() and (crop[:, 16:48] != 255).any()
        assert client.post(f'{base}/preset', json={'name': 'smile'}).status_code == 400
        assert client.post(f'{base}/points', json={'handle': [32, 20], 'target': [35, 18]}).status_code == 200
        with client.websocket_connect(f'/api/sessions/{sid}/events') as ws:
            client.post(f'{base}/start')
            frames = [m for m in _until(ws, 'frame') if m['type'] == 'frame']
            while not frames[-1]['final']:
                frames += [m for m in _until(ws, 'frame') if m['type'] == 'frame']
        for _ in range(600):                # the inversion behind the drag: Apply once it is there
            r = client.post(f'{base}/apply')
            if r.status_code != 409:
                break
            time.sleep(0.1)
        assert r.status_code == 200, r.text
        record = client.get(f'/api/sessions/{sid}/files/record').json()
        photo = np.asarray(Image.open(io.BytesIO(client.get(f'/api/sessions/{sid}/files/photo').content)).convert('RGB'))
    assert record['faces'][0]['index'] is None and record['faces'][0]['box'] == box
    again = pipeline.edit_from_record(pipeline.EditRecord.from_dict(record), photo=path, checkpoint=str(ckpt),
                                      cache=False)
    assert again.record.output['pixels_sha256'] == record['output']['pixels_sha256']
    assert np.abs(again.pixels.astype(int) - photo).max() <= 40 and np.abs(again.pixels.astype(int) - photo).mean() < 2
