"""The web editor in a real headless browser: Debian's chromium driven by Playwright.

Screenshots of each state go to $PHOTODRAG_SCREENSHOTS (default: the test's tmp folder)."""

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('fastapi')
uvicorn = pytest.importorskip('uvicorn')
sync_api = pytest.importorskip('playwright.sync_api')

from photodrag import pipeline  # noqa: E402
from photodrag.inversion import InversionConfig  # noqa: E402
from photodrag.pipeline.demo import DEMO_PHOTO  # noqa: E402
from photodrag.web import ServerSettings, create_app  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
if CHROMIUM is None:
    pytest.skip('Debian chromium is not installed (apt-get install chromium)', allow_module_level=True)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp('inversions')


@pytest.fixture(scope='module')
def server(cache):
    settings = ServerSettings(inversion=InversionConfig.preset('fast', projection_steps=20, tuning_steps=10),
                              max_steps=40, cache=cache, max_upload_bytes=3_000_000,
                              max_sessions=10)     # each test's page keeps its session open
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(settings), host='127.0.0.1', port=port, log_level='warning'))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f'http://127.0.0.1:{port}'
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope='module')
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get('PHOTODRAG_SCREENSHOTS') or tmp_path / 'screenshots')
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def crop_click(page, x, y):
    """Click crop pixel (x, y) of the 128-px demo crop shown at 512 px."""
    box = page.locator('#crop').bounding_box()
    page.mouse.click(box['x'] + x * box['width'] / 128, box['y'] + y * box['height'] / 128)


def test_edit_the_sample_in_the_browser(server, browser, cache, shots, tmp_path):
    page = browser.new_page(viewport={'width': 1400, 'height': 900}, accept_downloads=True, bypass_csp=True)
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_selector('body[data-ready="1"]')
    page.screenshot(path=str(shots / '1-empty.png'), full_page=True)
    page.click('#sample')
    page.wait_for_selector('body[data-face="0"]', timeout=60_000)      # one face: opened at once
    # ready for points before the inversion ends: it goes on in the background
    assert 'ready for points' in page.inner_text('#message') and page.get_attribute('body', 'data-tuning') == '1'
    page.screenshot(path=str(shots / '2-face-ready.png'), full_page=True)

    crop_click(page, 50, 80)
    crop_click(page, 42, 72)
    page.wait_for_function('document.querySelectorAll("#points li").length === 1')
    page.screenshot(path=str(shots / '3-points.png'), full_page=True)
    page.wait_for_selector('body[data-tuning="0"]', timeout=60_000)
    assert "the generator's copy of this face is" in page.inner_text('#message')
    assert 'LPIPS' in page.get_attribute('#message', 'title')          # the figure, for those who want it
    assert page.evaluate('state.info.handles.length') == 1           # the points placed meanwhile stay

    page.click('#start')
    page.wait_for_function('Number(document.body.dataset.frames || 0) >= 4', timeout=30_000)
    page.click('#stop')
    page.wait_for_selector('body[data-running="0"]', timeout=10_000)
    page.screenshot(path=str(shots / '4-stopped.png'), full_page=True)
    stopped_at = int(page.get_attribute('body', 'data-step'))
    assert 0 < stopped_at < 40
    before_undo = page.evaluate('document.getElementById("crop").toDataURL()')
    page.click('#undo')
    page.wait_for_function(f'Number(document.body.dataset.step) === {stopped_at - 1}')
    page.click('#start')                                # go on: to the step cap
    page.wait_for_function('state.info && state.info.done', timeout=60_000)
    page.wait_for_selector('body[data-running="0"]')
    assert page.evaluate('state.info.step') == 40
    assert page.evaluate('state.info.handles[0]') != [50, 80]      # the marker followed the content
    page.screenshot(path=str(shots / '5-done.png'), full_page=True)
    assert page.evaluate('document.getElementById("crop").toDataURL()') != before_undo

    page.click('#apply')
    page.wait_for_selector('body[data-applied="0"]', timeout=30_000)
    page.screenshot(path=str(shots / '6-applied.png'), full_page=True)
    with page.expect_download() as d:
        page.click('#dl-photo')
    path = tmp_path / d.value.suggested_filename
    d.value.save_as(path)
    assert path.name == 'astronaut_edited.png'
    with page.expect_download() as d:
        page.click('#dl-record')
    record = pipeline.EditRecord.load(d.value.path())
    f = record.faces[0]
    drags = [(tuple(h), tuple(t)) for h, t in zip(f.handles_photo, f.targets_photo)]
    direct = pipeline.edit(DEMO_PHOTO, drags, record.edit_config(), face=0, cache=cache)
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(path).convert('RGB')), direct.pixels)
    assert errors == []


@pytest.mark.parametrize('name, data, message', [
    ('notes.txt', b'just some text, not a photo', 'not an image'),
    ('huge.jpg', b'\xff\xd8' + b'0' * 3_200_000, 'up to 3 MB'),
], ids=['text', 'huge'])      # short ids: pytest puts the id in PYTEST_CURRENT_TEST, and a 3 MB one
#                               leaves no room in the environment to start the browser
def test_bad_files_show_one_line(server, browser, shots, tmp_path, name, data, message):
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector('body[data-ready="1"]')
    path = tmp_path / name
    path.write_bytes(data)
    page.set_input_files('#file', str(path))
    page.wait_for_selector('#message.error')
    text = page.inner_text('#message')
    assert message in text and '\n' not in text.strip() and 'Traceback' not in text
    page.screenshot(path=str(shots / f'error-{name}.png'), full_page=True)


def test_a_photo_without_a_face_says_so(server, browser, tmp_path):
    from PIL import Image
    path = tmp_path / 'wall.jpg'
    Image.fromarray(np.full((240, 320, 3), 140, np.uint8)).save(path)
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector('body[data-ready="1"]')
    page.set_input_files('#file', str(path))
    page.wait_for_selector('#message.error')
    assert 'no face' in page.inner_text('#message').lower()


def test_the_compare_slider_shows_each_image_under_its_label(server, browser):
    """After an apply, the photo is split at the slider: the photo as it was on the side under
    "Before" (left), the result on the side under "After" (right)."""
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector('body[data-ready="1"]')
    colours = page.evaluate('''() => {
      const plain = (v) => {
        const o = document.createElement('canvas');
        o.width = 200; o.height = 100;
        const g = o.getContext('2d');
        g.fillStyle = `rgb(${v},${v},${v})`; g.fillRect(0, 0, 200, 100);
        return o;
      };
      Object.assign(state, {photo: {width: 200, height: 100}, faces: [], quad: null,
                            photoImg: plain(0), resultImg: plain(255)});
      document.getElementById('compare-row').hidden = false;
      const slider = document.getElementById('compare'), c = document.getElementById('photo');
      const at = (fraction) => c.getContext('2d').getImageData(Math.round(c.width * fraction), 50, 1, 1).data[0];
      const seen = {};
      for (const value of [0, 50, 100]) {
        slider.value = String(value);
        slider.dispatchEvent(new Event('input'));
        seen[value] = [at(0.25), at(0.75)];
      }
      return seen;
    }''')
    assert colours == {'0': [255, 255], '50': [0, 255], '100': [0, 0]}      # black before, white after
    labels = page.locator('#compare-row label')
    before, after = labels.nth(0).bounding_box(), labels.nth(1).bounding_box()
    assert labels.nth(0).inner_text() == 'Before' and labels.nth(1).inner_text() == 'After'
    assert before['x'] < after['x']
    page.close()


def test_a_blink_is_fixed_from_another_shot_in_the_page(server, browser, shots, tmp_path):
    """Open a group photo, add the next frame of the burst, pick the face that blinked, take
    its eyes from the other shot: the photo and its download change, the page says so."""
    import bursts
    from conftest import shared_photo
    from photodrag import alignment
    reference = alignment.read_photo(shared_photo('group2_codeformer_06.png')).pixels
    faces = alignment.detect_faces(reference)
    frame, _, _ = bursts.blink_burst(reference, faces[1].centre, close=[1])
    alignment.write_photo(frame, tmp_path / 'frame.png')
    alignment.write_photo(reference, tmp_path / 'shot.png')
    page = browser.new_page(viewport={'width': 1400, 'height': 900}, accept_downloads=True)
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_selector('body[data-ready="1"]')
    page.set_input_files('#file', str(tmp_path / 'frame.png'))
    page.wait_for_selector('body[data-faces="2"]')
    page.set_input_files('#shot-file', str(tmp_path / 'shot.png'))
    page.wait_for_selector('body[data-shots="1"]')
    page.evaluate('openFace(1)')
    page.wait_for_selector('body[data-face="1"]', timeout=60_000)
    page.click('#from-shot')
    page.wait_for_selector('body[data-from-shot="fixed"]', timeout=60_000)
    assert page.inner_text('#message').startswith('face 1: eyes opened from shot.png')
    page.screenshot(path=str(shots / 'from-shot.png'), full_page=True)
    with page.expect_download() as d:
        page.click('#dl-photo')
    fixed = alignment.read_photo(d.value.path()).pixels
    assert fixed.shape == frame.shape and not np.array_equal(fixed, frame)
    assert errors == []


def test_faces_are_picked_on_the_photo_and_a_missed_one_is_boxed_by_hand(server, browser, shots, tmp_path):
    """A click on a face's box in the photo opens it, and so does a click on another face after
    it; a box dragged where the detector found nothing adds a subject, numbered next, and opens
    it with landmarks fitted in the box."""
    from conftest import shared_photo
    page = browser.new_page(viewport={'width': 1400, 'height': 900})
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_selector('body[data-ready="1"]')
    page.set_input_files('#file', shared_photo('group2_codeformer_06.png'))
    page.wait_for_selector('body[data-faces="2"]')
    assert 'Drag a box around any face it missed' in page.inner_text('#faces-hint')
    def at(x, y):                           # photo px -> page px (where the canvas is now)
        canvas = page.locator('#photo').bounding_box()
        scale = page.evaluate('state.photoScale') * canvas['width'] / page.evaluate('document.getElementById("photo").width')
        return canvas['x'] + x * scale, canvas['y'] + y * scale

    for k in (1, 0):
        x0, y0, x1, y1 = page.evaluate(f'state.faces[{k}].box')
        page.mouse.click(*at((x0 + x1) / 2, (y0 + y1) / 2))
        page.wait_for_selector(f'body[data-face="{k}"]', timeout=60_000)
    w, h = page.evaluate('[state.photo.width, state.photo.height]')
    left = min(b[0] for b in page.evaluate('state.faces.map((f) => f.box)'))   # a box left of every face
    box = (left * 0.1, h * 0.3, left * 0.9, h * 0.3 + left * 0.8)
    page.mouse.move(*at(box[0], box[1]))
    page.mouse.down()
    page.mouse.move(*at((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), steps=4)
    page.mouse.move(*at(box[2], box[3]), steps=4)
    page.mouse.up()
    page.wait_for_selector('body[data-face="2"]', timeout=60_000)
    assert page.get_attribute('body', 'data-faces') == '3'
    added = page.evaluate('state.faces[2]')
    assert added['boxed'] and added['index'] == 2
    assert all(abs(a - b) <= 3 for a, b in zip(added['box'], box)), (added['box'], box)
    page.screenshot(path=str(shots / 'boxed.png'), full_page=True)
    assert errors == [] and 'error' not in (page.get_attribute('#message', 'class') or '')
    page.close()


def test_a_page_from_another_origin_cannot_create_a_session(server, browser, tmp_path):
    """A foreign site open in the same browser (here: another port, another origin) tries a
    simple cross-site POST, a form and a preflighted fetch: the editor's sessions stay as they were."""
    import http.server
    import json as js
    import urllib.request
    (tmp_path / 'evil.html').write_text(f'''<!doctype html><html><body>
<form id="f" method="POST" action="{server}/api/sessions" target="sink"><input name="a" value="1"></form>
<iframe name="sink"></iframe>
<script>
async function attack() {{
  const tries = [];
  try {{ await fetch('{server}/api/sessions', {{method: 'POST', mode: 'no-cors'}}); tries.push('simple sent'); }}
  catch (e) {{ tries.push('simple failed'); }}
  try {{ await fetch('{server}/api/sessions', {{method: 'POST', headers: {{'X-Photodrag': '1'}}}}); tries.push('read'); }}
  catch (e) {{ tries.push('preflight refused'); }}
  document.getElementById('f').submit();
  return tries;
}}
</script></body></html>''')
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    evil = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    status = lambda: js.loads(urllib.request.urlopen(f'{server}/api/status').read())['sessions']  # noqa: E731
    before = status()
    page = browser.new_page()
    try:
        page.goto(f'http://127.0.0.1:{evil.server_address[1]}/evil.html')
        tries = page.evaluate('attack()')
        page.wait_for_timeout(1500)                 # the form's POST lands in the iframe
        assert 'read' not in tries, tries           # no answer reached the foreign page
        assert status() == before
    finally:
        page.close()
        evil.shutdown()


def test_a_600_mb_json_body_is_refused_while_it_streams(server):
    """The server reads a JSON body in chunks and answers 413 at its cap: its memory does not
    grow by the body (the server runs in this process; the client streams from a generator)."""
    import http.client
    import resource
    from urllib.parse import urlparse
    u = urlparse(server)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request('POST', '/api/sessions', headers={'X-Photodrag': '1'})
    sid = json.loads(conn.getresponse().read())['session']
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def body():
        for _ in range(600):
            yield b' ' * (1 << 20)
    status = None
    try:
        conn.request('PUT', f'/api/sessions/{sid}/faces/0/settings', body=body(), encode_chunked=True,
                     headers={'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked'})
        status = conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = 'closed'                            # the server stopped reading: also a refusal
    assert status in (413, 'closed')
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    assert grown_mb < 150, f'the server grew by {grown_mb:.0f} MB reading a refused body'
