"""The bundled demo generator: it loads offline, draws varied faces, inverts a real face and
a drag on it moves the face's content (measured by pixel cross-correlation, not by the
generator's own features)."""

import json

import numpy as np
import pytest
import torch

import checkpoints
import stylegan
from pipeline.cli import DEMO_PHOTO as ASTRONAUT
from pipeline.report import content_shift


def test_content_shift_finds_a_known_move():
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    import cv2
    texture = cv2.GaussianBlur(texture, (0, 0), 1.0)
    moved = np.roll(texture, shift=(-3, 5), axis=(0, 1))          # content moves 5 px right, 3 px up
    assert content_shift(texture, moved, (30, 30), (35, 27)) == (35.0, 27.0)
    assert content_shift(texture, texture, (30, 30), (35, 27)) == (30.0, 30.0)
    with pytest.raises(ValueError, match='border'):
        content_shift(texture, moved, (1, 30), (5, 30))


def test_demo_generator_is_registered_bundled_and_loads_offline(monkeypatch, tmp_path):
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path))          # nothing cached, nothing downloaded
    entry = checkpoints.get_entry('demo-faces')
    assert entry.bundled and entry.alignment == 'digiface' and 'non-commercial' in entry.licence
    G = checkpoints.load_generator('demo-faces')
    assert G.img_resolution == entry.resolution == 128
    assert checkpoints.local_path(entry) == entry.bundled_path
    size = entry.bundled_path.stat().st_size
    assert size <= 40 * 2 ** 20
    meta = json.loads((entry.bundled_path.parent / 'training.json').read_text())
    assert meta['provenance']['teacher'].startswith('gan-face-generate') and meta['training']['steps'] > 1000
    with torch.no_grad():
        img = G(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)), None, noise_mode='const')
    assert img.shape == (2, 3, 128, 128) and bool(torch.isfinite(img).all())


@pytest.mark.slow
def test_demo_samples_are_varied_faces():
    alignment = pytest.importorskip('alignment')
    pytest.importorskip('dlib')
    import cv2

    from inversion import load_lpips
    G = checkpoints.load_generator('demo-faces')
    z = torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(2026))
    with torch.no_grad():
        imgs = G(z, None, noise_mode='const')
    detector = alignment.default_detector()
    faces = [len(detector.detect(cv2.resize(p, (256, 256), interpolation=cv2.INTER_CUBIC)))
             for p in stylegan.to_uint8(imgs)]
    assert sum(n >= 1 for n in faces) >= 12, faces               # dlib sees a face in most samples (16/16 at release)
    lpips = load_lpips('vgg')
    with torch.no_grad():
        spread = [float(lpips(imgs[i:i + 1], imgs[i + 1:i + 2])) for i in range(0, 16, 2)]
    assert np.mean(spread) > 0.25, spread                         # not one face drawn 16 times (0.47 at release)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason='issue 6 is open: the demo generator (7.5k distillation steps) is too weak: '
                   'fast PTI reaches LPIPS(vgg) ~0.44 on the astronaut (target 0.15) and its drag moves the '
                   'features but not the pixels; remove this mark when a better demo generator lands')
def test_demo_inverts_the_astronaut_and_a_drag_moves_the_mouth_corners(tmp_path, monkeypatch):
    alignment = pytest.importorskip('alignment')
    pytest.importorskip('dlib')
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path))
    from drag import DragConfig, DragSession
    from inversion import InversionConfig, invert, load_lpips
    from pipeline.cli import demo_drags

    G = checkpoints.load_generator('demo-faces')
    photo = alignment.read_photo(ASTRONAUT)
    face = max(alignment.detect_faces(photo), key=lambda f: f.score)
    crop = alignment.align(photo, face, size=G.img_resolution, recipe=alignment.recipe_for_checkpoint('demo-faces'))
    inv = invert(G, crop.image, InversionConfig.preset('fast'))
    recon = inv.render(G)
    with torch.no_grad():
        vgg = float(load_lpips('vgg')(recon, stylegan.from_uint8(crop.image)))
    assert vgg <= 0.15, vgg

    lm = crop.transform.to_crop(face.landmarks)
    drags = demo_drags(alignment.Face(box=(0, 0, 1, 1), landmarks=lm, score=0.0), 0.08)
    handles, targets = [d[0] for d in drags], [d[1] for d in drags]
    session = DragSession(inv.generator(G), inv.ws, handles, targets, config=DragConfig(max_steps=120))
    session.run()
    before, after = stylegan.to_uint8(recon)[0], stylegan.to_uint8(session.render())[0]
    for h, t in zip(handles, targets):
        found = content_shift(before, after, h, t)
        way = np.subtract(t, h)
        progress = float(np.dot(np.subtract(found, h), way) / np.dot(way, way))
        assert progress >= 0.5, (h, t, found)                    # the corner's pixels went at least half way
