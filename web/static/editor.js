// photodrag's web editor: plain JavaScript, no build step. It talks to the JSON API under
// /api (docs/web-editor.md) and shows the frames the server streams over a WebSocket.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  sid: null, ws: null, resolution: 256, photo: null, faces: [], face: null, info: null,
  pending: null,        // a handle placed, waiting for its target (crop px)
  dragging: null,       // {index, which: 'handle'|'target', at: [x, y]} while a marker is moved
  frame: null,          // the Image drawn under the points
  trails: [], showBefore: false, running: false, painting: false, view: 'photo',
  photoImg: null, resultImg: null, photoScale: 1, quad: null,
  boxing: null,         // {from: [x, y], to: [x, y]} photo px while a box is drawn on the photo
};
const mask = document.createElement('canvas');     // the painted area, crop-sized, white = may change
let maskUsed = false;

// ------------------------------------------------------------------ talking to the server

function say(text, isError) {
  const m = $('message');
  m.textContent = text || '';
  m.title = '';
  m.className = isError ? 'error' : '';
}

async function api(method, path, body, raw) {
  // X-Photodrag: a header no cross-site form can send (the server refuses changes without it)
  const opts = { method, headers: { 'X-Photodrag': '1' } };
  if (raw !== undefined) { opts.body = raw; Object.assign(opts.headers, body || {}); }
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers['Content-Type'] = 'application/json'; }
  const r = await fetch(`/api/sessions/${state.sid}${path}`, opts);
  let data = {};
  try { data = await r.json(); } catch (e) { data = { error: `the server answered ${r.status}` }; }
  if (!r.ok) { const err = new Error(data.error || `the server answered ${r.status}`); err.status = r.status; throw err; }
  return data;
}

async function guarded(fn) {
  try { await fn(); } catch (e) { say(e.message, true); }
}

async function connect() {
  const r = await fetch('/api/sessions', { method: 'POST', headers: { 'X-Photodrag': '1' } });
  const data = await r.json();
  if (!r.ok) { say(data.error, true); return; }
  state.sid = data.session;
  state.resolution = data.resolution;
  state.maxUpload = data.max_upload_bytes;
  mask.width = mask.height = state.resolution;
  const sel = $('preset');
  for (const p of data.presets) {
    const o = document.createElement('option');
    o.value = p.name; o.textContent = p.name; o.title = p.description || '';
    sel.appendChild(o);
  }
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  state.ws = new WebSocket(`${proto}://${location.host}/api/sessions/${state.sid}/events`);
  state.ws.onmessage = (ev) => onEvent(JSON.parse(ev.data));
  state.ws.onclose = () => { if (state.sid) say('the connection to the editor closed; reload the page to go on', true); };
  document.body.dataset.ready = '1';
}

function onEvent(msg) {
  if (msg.type === 'progress' && (msg.face === undefined || msg.face === state.face)) showProgress(msg);
  else if (msg.type === 'frame' && msg.face === state.face) showFrame(msg);
  else if (msg.type === 'tuned' && msg.face === state.face) showTuned(msg);
  else if (msg.type === 'error') say(msg.error, true);
  else if (msg.type === 'closed') { state.sid = null; say('this session ended; reload the page', true); }
}

// ------------------------------------------------------------------ the photo

const STAGES = { detect: 'Finding faces', align: 'Aligning', projection: 'Inverting (projection)',
                 tuning: 'Inverting (pivotal tuning)', paste: 'Pasting' };

// the face before any drag, as the current view shows it: the photo's own pixels, or the
// generator's reconstruction
function loadBefore(k) {
  const name = state.view === 'photo' ? 'photo' : 'reconstruction';
  return loadImage(`/api/sessions/${state.sid}/files/face${k}_${name}.png?t=${Date.now()}`);
}

function showViewButton() {
  const b = $('view');
  b.setAttribute('aria-pressed', String(state.view === 'generator'));
  b.textContent = state.view === 'generator' ? 'Show the photo' : "Show the generator's rendering";
}

// a time to wait as a person reads it: '40 s', '3 min'
function duration(s) {
  return s < 90 ? `${Math.max(1, Math.round(s))} s` : `${Math.round(s / 60)} min`;
}

// how closely the generator's copy of a face matches the photo, in words (LPIPS thresholds:
// the demo generator's fast inversions of the shared portraits land at 0.05-0.10)
function fitWords(lpips) {
  if (lpips < 0.08) return 'close to the photo';
  if (lpips < 0.15) return 'near the photo, with some detail lost';
  return 'rough: the edit may change more than the points ask';
}

function showProgress(msg) {
  const box = $('progress');
  box.hidden = false;
  const frac = msg.total ? msg.step / msg.total : 0;
  $('progress-bar').style.width = `${Math.round(frac * 100)}%`;
  const eta = msg.eta_s != null && msg.step < msg.total ? `, about ${duration(msg.eta_s)} left` : '';
  $('progress-text').textContent = `${STAGES[msg.stage] || msg.stage}: ${msg.step} / ${msg.total}${eta}`;
  document.body.dataset.stage = msg.stage;
}

async function openUpload(file) {
  if (!file) return;
  if (state.maxUpload && file.size > state.maxUpload) {
    say(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the editor takes photos up to ${(state.maxUpload / 1e6).toFixed(0)} MB`, true);
    return;
  }
  say(`Reading ${file.name}…`);
  await guarded(async () => {
    const data = await api('POST', '/photo', { 'X-Filename': encodeURIComponent(file.name) }, file);
    await showPhoto(data);
  });
}

async function openSample(name) {
  say('Opening the sample…');
  await guarded(async () => showPhoto(await api('POST', '/sample', { name })));
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the image did not load'));
    img.src = src;
  });
}

async function showPhoto(data) {
  state.photo = data.photo; state.faces = data.faces; state.face = null; state.quad = null;
  state.resultImg = null;
  state.photoImg = await loadImage(`/api/sessions/${state.sid}/files/view.jpg?t=${Date.now()}`);
  $('drop-hint').hidden = true;
  $('shots-row').hidden = false;
  $('face-panel').hidden = true;
  $('downloads').hidden = true;
  $('compare-row').hidden = true;
  const n = data.faces.length;
  const whole = n === 1 && data.faces[0].whole;       // a generator of objects: the whole photo is the subject
  const people = n > 0 && data.faces[0].object && !whole;   // full-body people, each found from their face
  $('faces-hint').textContent = (whole ? 'This generator draws objects, not faces: the whole photo is the subject, '
      + 'or drag a box around the one to edit.'
    : people ? (n === 1 ? 'One person found: click them to edit.'
                        : `${n} people found, numbered left to right: click the one to edit.`)
    : n === 1 ? 'One face found: click it to edit it.'
    : `${n} faces found, numbered left to right: click the one to edit.`)
    + (whole ? '' : ` Drag a box around ${people ? 'anyone' : 'any face'} it missed.`);
  say(`${data.photo.name}: ${data.photo.width}×${data.photo.height}`);
  drawPhoto();
  document.body.dataset.faces = String(n);
  if (n === 1) await openFace(0);
}

function drawPhoto() {
  const c = $('photo'), img = state.photoImg;
  if (!img) return;
  const maxW = 470, scale = Math.min(1, maxW / img.width);
  c.width = Math.round(img.width * scale); c.height = Math.round(img.height * scale);
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0, c.width, c.height);
  if (state.resultImg) {              // before | after, split by the compare slider: each side
    const x = c.width * Number($('compare').value) / 100;     // under its label
    g.save(); g.beginPath(); g.rect(x, 0, c.width - x, c.height); g.clip();
    g.drawImage(state.resultImg, 0, 0, c.width, c.height); g.restore();
    g.strokeStyle = '#fff'; g.lineWidth = 2; g.beginPath(); g.moveTo(x, 0); g.lineTo(x, c.height); g.stroke();
  }
  const s = c.width / state.photo.width;    // photo px -> canvas px
  state.photoScale = s;
  g.lineWidth = 2; g.font = 'bold 14px system-ui';
  for (const f of state.faces) {
    const [x0, y0, x1, y1] = f.box;
    const on = f.index === state.face;
    g.strokeStyle = on ? '#ffd400' : '#39d353';
    g.strokeRect(x0 * s, y0 * s, (x1 - x0) * s, (y1 - y0) * s);
    g.fillStyle = g.strokeStyle;
    g.fillRect(x0 * s, y0 * s - 18, 20, 18);
    g.fillStyle = '#000'; g.fillText(String(f.index), x0 * s + 5, y0 * s - 4);
  }
  if (state.boxing && state.boxing.moved) {       // the box being drawn
    const [a, b] = [state.boxing.from, state.boxing.to];
    g.strokeStyle = '#ffd400'; g.setLineDash([4, 3]);
    g.strokeRect(Math.min(a[0], b[0]) * s, Math.min(a[1], b[1]) * s, Math.abs(b[0] - a[0]) * s, Math.abs(b[1] - a[1]) * s);
    g.setLineDash([]);
  }
  if (state.quad) {                   // where the aligned crop sits in the photo
    g.strokeStyle = 'rgba(255,212,0,.7)'; g.setLineDash([6, 4]); g.beginPath();
    state.quad.forEach(([x, y], i) => (i ? g.lineTo(x * s, y * s) : g.moveTo(x * s, y * s)));
    g.closePath(); g.stroke(); g.setLineDash([]);
  }
}

function toPhoto(ev) {
  const c = $('photo'), r = c.getBoundingClientRect();
  return [(ev.clientX - r.left) * c.width / r.width / state.photoScale,
          (ev.clientY - r.top) * c.height / r.height / state.photoScale];
}

function faceAt(ev) {             // the smallest box holding the point (a boxed object inside the whole photo)
  const [x, y] = toPhoto(ev);
  const area = (f) => (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]);
  return state.faces.filter((f) => x >= f.box[0] && x <= f.box[2] && y >= f.box[1] && y <= f.box[3])
    .sort((a, b) => area(a) - area(b))[0];
}

// a box dragged on the photo: a face the detector missed, or the object to edit
function onPhotoDown(ev) {
  if (!state.photo || ev.button !== 0) return;
  state.boxing = { from: toPhoto(ev), to: toPhoto(ev), moved: false };
}

function onPhotoMove(ev) {
  const b = state.boxing;
  if (!b) return;
  b.to = toPhoto(ev);
  b.moved = b.moved || Math.hypot((b.to[0] - b.from[0]) * state.photoScale, (b.to[1] - b.from[1]) * state.photoScale) > 6;
  if (b.moved) drawPhoto();
}

async function onPhotoUp(ev) {
  const b = state.boxing;
  if (!b) return;
  state.boxing = null;
  if (!b.moved) { const f = faceAt(ev); if (f) openFace(f.index); return; }
  drawPhoto();
  const box = [Math.min(b.from[0], b.to[0]), Math.min(b.from[1], b.to[1]),
               Math.max(b.from[0], b.to[0]), Math.max(b.from[1], b.to[1])];
  await guarded(async () => {
    const data = await api('POST', '/subjects', { box });
    state.faces = data.faces;
    document.body.dataset.faces = String(data.faces.length);
    drawPhoto();
    await openFace(data.index);
  });
}

// ------------------------------------------------------------------ a face

async function openFace(k) {
  if (state.running) await stopDrag();
  state.face = k; state.pending = null; state.trails = []; state.frame = null; state.info = null;
  buttons(); drawCrop();
  mask.getContext('2d').clearRect(0, 0, mask.width, mask.height); maskUsed = false;
  $('face-panel').hidden = false;
  $('face-title').textContent = `2. Face ${k}`;
  $('progress').hidden = true;
  drawPhoto();
  say(`Preparing face ${k}: aligning and inverting it into the generator…`);
  await guarded(async () => {
    const info = await api('POST', `/faces/${k}/open`);
    state.quad = info.quad;
    state.view = info.view;
    state.before = await loadBefore(k);
    state.frame = state.before;
    showViewButton();
    update(info);
    const inv = info.inversion;
    $('progress').hidden = !inv.tuning;
    if (inv.tuning) {
      $('progress-bar').style.width = '0%';
      $('progress-text').textContent = 'Inverting in the background: starting';
      say(`Face ${k} ready for points: click a point to move, then where it goes, and Start. The generator is still learning this face in the background; until it has, the drag runs on a first, rougher copy and then goes on on the finer one.`);
      document.body.dataset.tuning = '1';
    } else {
      sayFit(k, inv);
      document.body.dataset.tuning = '0';
    }
    document.body.dataset.face = String(k);
    drawPhoto();
  });
}

function sayFit(k, inv) {
  say(`Face ${k} ready${inv.from_cache ? ' (from the cache)' : ''}: the generator's copy of this face is ${fitWords(inv.lpips)}. Click a point to move, then where it goes.`);
  $('message').title = `LPIPS ${inv.lpips.toFixed(3)}, PSNR ${inv.psnr.toFixed(1)} dB`;
}

// the face's inversion, run in the background since the face opened, is done (or failed)
async function showTuned(msg) {
  document.body.dataset.tuning = '0';
  $('progress').hidden = true;
  const inv = msg.inversion;
  if (inv.error) { say(`Face ${msg.face} could not be inverted: ${inv.error}`, true); update(msg); return; }
  if (!msg.started) { state.before = await loadBefore(msg.face); state.frame = state.before; }
  else if (state.view !== 'photo') state.before = await loadBefore(msg.face);
  update(msg);
  if (msg.switched && !msg.running) {
    say(`Face ${msg.face}: the generator has learnt it (${fitWords(inv.lpips)}); the drag is on it now, where it stood. Start goes on, Apply pastes it.`);
  } else if (!msg.running) { sayFit(msg.face, inv); return; }
  else say(`Face ${msg.face}: the generator has learnt it (${fitWords(inv.lpips)}); the drag goes on on it.`);
  $('message').title = `LPIPS ${inv.lpips.toFixed(3)}, PSNR ${inv.psnr.toFixed(1)} dB`;
}

function update(info) {
  state.info = info;
  state.running = !!info.running || !!info.waiting;
  if (info.lr !== undefined) $('lr').value = info.lr;
  if (info.latent_space) $('latent').value = info.latent_space;
  $('latent').disabled = !!info.started;
  const list = $('points');
  list.innerHTML = '';
  info.handles.forEach((h, i) => {
    const t = info.targets[i];
    const li = document.createElement('li');
    li.textContent = `(${h[0].toFixed(0)}, ${h[1].toFixed(0)}) → (${t[0].toFixed(0)}, ${t[1].toFixed(0)})`;
    const del = document.createElement('button');
    del.textContent = '✕'; del.title = 'delete this pair'; del.setAttribute('aria-label', `delete pair ${i + 1}`);
    del.onclick = () => guarded(async () => update(await api('DELETE', `/faces/${state.face}/points/${i}`)));
    li.appendChild(del);
    list.appendChild(li);
  });
  buttons();
  drawCrop();
}

function buttons() {
  const info = state.info || { handles: [] };
  $('place-preset').disabled = state.running || !state.info;
  $('from-shot').disabled = $('mouth-from-shot').disabled = state.running || !state.info || !document.body.dataset.shots;
  $('clear-mask').disabled = !state.info;
  $('start').disabled = state.running || !info.handles.length || !!info.done;
  $('stop').disabled = !state.running;
  $('undo').disabled = state.running || !(info.step > 0);
  $('reset').disabled = state.running || !info.started;
  $('apply').disabled = state.running || !info.started || !!info.on_start;
  $('drag-status').textContent = info.started ? startWords(info) + dragStatus(info.step, info.content_progress, info.done, info.reason) : '';
}

// a drag begun while the generator still learns the face runs on its first, rougher copy
function startWords(info) {
  return info.on_start ? 'On a first copy of the face (the finer one takes over when ready): ' : '';
}

// What the drag status says: how far the content went, measured in the frame's pixels by the
// server (not the tracker's distance); "at the targets" only when the pixels show it there.
const ARRIVED = 0.9;
function dragStatus(step, progress, done, reason) {
  const shares = (progress || []).filter((p) => p !== null && p !== undefined);
  const moved = shares.length ? `, content moved ${shares.map((p) => Math.round(100 * p) + ' %').join(', ')} of the way` : '';
  let end = '';
  if (done) {
    if (shares.length && Math.min(...shares) >= ARRIVED) end = ' (content at the targets)';
    else if (reason === 'converged') end = ' (the tracker stopped at the targets; the content is short of them)';
    else if (reason === 'stalled') end = ' (stopped: the content came no nearer)';
    else end = ' (stopped at the step limit)';
  }
  return `step ${step}${moved}${end}`;
}

// ------------------------------------------------------------------ the crop canvas

const MARK = 7;

function cropScale() { return $('crop').width / state.resolution; }

function toCrop(ev) {
  const c = $('crop'), r = c.getBoundingClientRect();
  const s = cropScale();
  const x = (ev.clientX - r.left) * c.width / r.width / s;
  const y = (ev.clientY - r.top) * c.height / r.height / s;
  const R = state.resolution - 1;
  return [Math.min(Math.max(x, 0), R), Math.min(Math.max(y, 0), R)];
}

function drawCrop() {
  const c = $('crop'), g = c.getContext('2d'), s = cropScale();
  g.imageSmoothingEnabled = true;
  g.clearRect(0, 0, c.width, c.height);
  const img = state.showBefore ? state.before : state.frame;
  if (img) g.drawImage(img, 0, 0, c.width, c.height);
  if (maskUsed && !state.showBefore) {          // the area that may change, tinted
    const tint = document.createElement('canvas');
    tint.width = tint.height = state.resolution;
    const tg = tint.getContext('2d');
    tg.drawImage(mask, 0, 0);
    tg.globalCompositeOperation = 'source-in';
    tg.fillStyle = 'rgba(60, 200, 120, 0.35)';
    tg.fillRect(0, 0, tint.width, tint.height);
    g.drawImage(tint, 0, 0, c.width, c.height);
  }
  const info = state.info;
  if (!info || state.showBefore) return;
  g.lineWidth = 2;
  state.trails.forEach((trail) => {
    if (trail.length < 2) return;
    g.strokeStyle = 'rgba(255, 80, 80, .8)'; g.beginPath();
    trail.forEach(([x, y], i) => (i ? g.lineTo(x * s, y * s) : g.moveTo(x * s, y * s)));
    g.stroke();
  });
  info.handles.forEach((h, i) => {
    let hh = h, tt = info.targets[i];
    if (state.dragging && state.dragging.index === i) {
      if (state.dragging.which === 'handle') hh = state.dragging.at; else tt = state.dragging.at;
    }
    arrow(g, hh[0] * s, hh[1] * s, tt[0] * s, tt[1] * s);
    dot(g, tt[0] * s, tt[1] * s, '#2d6cdf');
    dot(g, hh[0] * s, hh[1] * s, '#e5322d');
    g.fillStyle = '#fff'; g.font = 'bold 11px system-ui';
    g.fillText(String(i + 1), hh[0] * s + 9, hh[1] * s - 6);
  });
  if (state.pending) dot(g, state.pending[0] * s, state.pending[1] * s, '#e5322d');
}

function dot(g, x, y, colour) {
  g.beginPath(); g.arc(x, y, MARK, 0, 2 * Math.PI);
  g.fillStyle = colour; g.fill(); g.strokeStyle = '#fff'; g.lineWidth = 2; g.stroke();
}

function arrow(g, x0, y0, x1, y1) {
  g.strokeStyle = 'rgba(255,255,255,.9)'; g.lineWidth = 2;
  g.beginPath(); g.moveTo(x0, y0); g.lineTo(x1, y1); g.stroke();
}

function markerAt(p) {
  const info = state.info;
  if (!info) return null;
  const near = (q) => Math.hypot(q[0] - p[0], q[1] - p[1]) * cropScale() <= MARK + 3;
  for (let i = info.handles.length - 1; i >= 0; i--) {
    if (near(info.targets[i])) return { index: i, which: 'target' };
    if (near(info.handles[i])) return { index: i, which: 'handle' };
  }
  return null;
}

function tool() { return document.querySelector('input[name="tool"]:checked').value; }

function paintAt(p) {
  const g = mask.getContext('2d');
  g.globalCompositeOperation = tool() === 'erase' ? 'destination-out' : 'source-over';
  g.fillStyle = '#fff';
  g.beginPath(); g.arc(p[0], p[1], Number($('brush').value) / 2, 0, 2 * Math.PI); g.fill();
  maskUsed = true;
  drawCrop();
}

function maskPng() {
  // grayscale PNG: white where painted, black elsewhere; null when nothing is painted
  const out = document.createElement('canvas');
  out.width = out.height = state.resolution;
  const g = out.getContext('2d');
  g.fillStyle = '#000'; g.fillRect(0, 0, out.width, out.height);
  g.drawImage(mask, 0, 0);
  const px = g.getImageData(0, 0, out.width, out.height).data;
  let any = false;
  for (let i = 0; i < px.length; i += 4) if (px[i] > 0) { any = true; break; }
  return any ? out.toDataURL('image/png') : null;
}

async function sendMask() {
  const png = maskPng();
  maskUsed = png !== null;
  await guarded(async () => update(await api('PUT', `/faces/${state.face}/mask`, { png })));
}

function onCropDown(ev) {
  if (state.face === null || !state.info) return;
  const p = toCrop(ev);
  if (tool() !== 'points') { state.painting = true; paintAt(p); return; }
  const hit = markerAt(p);
  if (hit) { state.dragging = { ...hit, at: p }; return; }
  if (!state.pending) { state.pending = p; drawCrop(); $('crop-status').textContent = 'Now click where it should go.'; return; }
  const handle = state.pending;
  state.pending = null;
  $('crop-status').textContent = 'Click the point to move (red), then where it should go (blue).';
  guarded(async () => {
    const info = await api('POST', `/faces/${state.face}/points`, { handle, target: p });
    state.trails.push([]);
    update(info);
  });
}

function onCropMove(ev) {
  if (state.painting) { paintAt(toCrop(ev)); return; }
  if (state.dragging) { state.dragging.at = toCrop(ev); drawCrop(); }
}

function onCropUp() {
  if (state.painting) { state.painting = false; sendMask(); return; }
  if (!state.dragging) return;
  const d = state.dragging;
  state.dragging = null;
  guarded(async () => update(await api('PATCH', `/faces/${state.face}/points/${d.index}`, { [d.which]: d.at })));
}

// ------------------------------------------------------------------ the drag

async function showFrame(msg) {
  const img = await loadImage(msg.image);
  state.frame = img;
  state.trails = msg.trails || [];
  if (state.info) {
    state.info.handles = msg.handles; state.info.targets = msg.targets;
    state.info.step = msg.step; state.info.done = msg.done; state.info.reason = msg.reason;
    state.info.content_progress = msg.content_progress;
    state.info.started = true;
  }
  state.running = !!msg.running;
  document.body.dataset.step = String(msg.step);
  document.body.dataset.frames = String(Number(document.body.dataset.frames || 0) + 1);
  drawCrop();
  buttons();
  $('drag-status').textContent = startWords(state.info || {}) + dragStatus(msg.step, msg.content_progress, msg.done, msg.reason);
  if (msg.final) { document.body.dataset.running = '0'; }
  if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ type: 'ack' }));
}

async function startDrag() {
  await guarded(async () => {
    document.body.dataset.running = '1';
    state.running = true; buttons();
    const info = await api('POST', `/faces/${state.face}/start`);
    update(info);
    if (info.waiting) say('The drag starts as soon as the generator has learnt this face (see the progress bar); Stop cancels.');
    else if (info.on_start) say('Dragging on a first copy of the face while the generator learns it; the drag goes on on the finer copy when it is ready.');
  });
  if (!state.running) document.body.dataset.running = '0';
}

async function stopDrag() {
  const waiting = !!(state.info && state.info.waiting);
  await guarded(async () => update(await api('POST', `/faces/${state.face}/stop`)));
  if (waiting) { document.body.dataset.running = '0'; say('Not started: place or move points, then Start again.'); }
}

async function applyEdit() {
  say('Pasting the edit into the photo…');
  await guarded(async () => {
    const r = await api('POST', `/faces/${state.face}/apply`);
    state.resultImg = await loadImage(`/api/sessions/${state.sid}/files/result.jpg?t=${Date.now()}`);
    $('compare-row').hidden = false;
    $('compare').value = 0;           // the result first: slide right to uncover the photo before
    const base = `/api/sessions/${state.sid}`;
    $('dl-photo').href = `${base}/files/photo?t=${Date.now()}`;
    $('dl-record').href = `${base}/files/record?t=${Date.now()}`;
    $('dl-video').href = `${base}/faces/${state.face}/video?t=${Date.now()}`;
    $('dl-video').hidden = false;
    $('downloads').hidden = false;
    drawPhoto();
    const faces = r.applied.length === 1 ? `face ${r.applied[0]}` : `faces ${r.applied.join(', ')}`;
    say(`Applied ${faces} to the photo. Slide to compare; pick another face to edit it too.`);
    document.body.dataset.applied = r.applied.join(',');
  });
}

// ------------------------------------------------------------------ other shots of the burst

async function addShot(file) {
  if (!file) return;
  say(`Reading ${file.name}…`);
  await guarded(async () => {
    const r = await api('POST', '/shots', { 'X-Filename': encodeURIComponent(file.name) }, file);
    $('shots').textContent = `Other shots: ${r.shots.join(', ')}`;
    say(`${file.name} added: open a face whose eyes are closed and take them from it.`);
    document.body.dataset.shots = String(r.shots.length);
  });
}

// the face's eyes (or mouth) from the same person in another shot: the photo changes there,
// the face is opened again on the new pixels
async function fromShot(part) {
  const k = state.face;
  say(`Looking for face ${k} in the other shots…`);
  await guarded(async () => {
    const r = await api('POST', `/faces/${k}/from-shot`, { part });
    state.faces = r.faces;
    state.photoImg = await loadImage(`/api/sessions/${state.sid}/files/view.jpg?t=${Date.now()}`);
    state.resultImg = null;
    $('dl-photo').href = `/api/sessions/${state.sid}/files/photo?t=${Date.now()}`;
    $('dl-record').href = `/api/sessions/${state.sid}/files/record?t=${Date.now()}`;
    $('dl-video').hidden = true;                 // no drag to film
    $('downloads').hidden = false;
    drawPhoto();
    await openFace(k);
    say(r.message, !r.fixed);
    document.body.dataset.fromShot = r.fixed ? 'fixed' : 'unsure';
  });
}

// ------------------------------------------------------------------ wiring

window.addEventListener('DOMContentLoaded', () => {
  connect();
  $('file').addEventListener('change', (ev) => openUpload(ev.target.files[0]));
  $('sample').addEventListener('click', () => openSample('astronaut'));
  $('shot-file').addEventListener('change', (ev) => addShot(ev.target.files[0]));
  $('from-shot').addEventListener('click', () => fromShot('eyes'));
  $('mouth-from-shot').addEventListener('click', () => fromShot('mouth'));
  const drop = $('drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault(); drop.classList.remove('over');
    openUpload(ev.dataTransfer.files[0]);
  });
  $('photo').addEventListener('pointerdown', onPhotoDown);
  $('photo').addEventListener('pointermove', onPhotoMove);
  window.addEventListener('pointerup', onPhotoUp);
  $('compare').addEventListener('input', drawPhoto);
  const crop = $('crop');
  crop.addEventListener('pointerdown', onCropDown);
  crop.addEventListener('pointermove', onCropMove);
  window.addEventListener('pointerup', onCropUp);
  crop.addEventListener('contextmenu', (ev) => {
    ev.preventDefault();
    const hit = markerAt(toCrop(ev));
    if (hit) guarded(async () => update(await api('DELETE', `/faces/${state.face}/points/${hit.index}`)));
  });
  $('clear-mask').addEventListener('click', () => { mask.getContext('2d').clearRect(0, 0, mask.width, mask.height); sendMask(); });
  $('place-preset').addEventListener('click', () => guarded(async () => {
    const info = await api('POST', `/faces/${state.face}/preset`, { name: $('preset').value, strength: Number($('strength').value) });
    const png = await fetch(`/api/sessions/${state.sid}/files/face${state.face}_mask.png?t=${Date.now()}`);
    if (png.ok) {
      const img = await loadImage(URL.createObjectURL(await png.blob()));
      const g = mask.getContext('2d');
      g.clearRect(0, 0, mask.width, mask.height);
      // white = may change: draw it as the painted area
      const tmp = document.createElement('canvas'); tmp.width = tmp.height = state.resolution;
      const tg = tmp.getContext('2d'); tg.drawImage(img, 0, 0);
      const d = tg.getImageData(0, 0, tmp.width, tmp.height);
      for (let i = 0; i < d.data.length; i += 4) { d.data[i + 3] = d.data[i]; d.data[i] = d.data[i + 1] = d.data[i + 2] = 255; }
      g.putImageData(d, 0, 0);
      maskUsed = true;
    }
    state.trails = info.handles.map(() => []);
    update(info);
    say(`Placed ${$('preset').value}: adjust the points or the area, then Start.`);
  }));
  $('lr').addEventListener('change', () => guarded(async () => update(await api('PUT', `/faces/${state.face}/settings`, { lr: Number($('lr').value) }))));
  $('latent').addEventListener('change', () => guarded(async () => update(await api('PUT', `/faces/${state.face}/settings`, { latent_space: $('latent').value }))));
  $('start').addEventListener('click', startDrag);
  $('stop').addEventListener('click', stopDrag);
  $('undo').addEventListener('click', () => guarded(async () => update(await api('POST', `/faces/${state.face}/undo`, { steps: 1 }))));
  $('reset').addEventListener('click', () => guarded(async () => update(await api('POST', `/faces/${state.face}/reset`))));
  $('view').addEventListener('click', () => {
    if (state.face == null) return;
    const k = state.face, view = state.view === 'photo' ? 'generator' : 'photo';
    guarded(async () => {
      await api('PUT', `/faces/${k}/view`, { view });
      state.view = view;
      showViewButton();
      // the files come from the session's worker, busy while a drag runs: fetched on the side
      loadBefore(k).then((img) => {
        state.before = img;
        if (!state.info || !state.info.step) state.frame = img;       // no drag yet: the new view's face
        drawCrop();
      });
    });
  });
  $('before').addEventListener('click', () => {
    state.showBefore = !state.showBefore;
    $('before').setAttribute('aria-pressed', String(state.showBefore));
    $('before').textContent = state.showBefore ? 'Show after' : 'Show before';
    drawCrop();
  });
  $('apply').addEventListener('click', applyEdit);
});
