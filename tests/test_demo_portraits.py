"""The demo generator inverts real portraits well: the shared test photos (beside the checkout;
skipped where they are absent), fast preset. A file of its own so that parallel workers can
share these long, self-contained inversions out (test_demo_faces.py keeps one worker for its
shared astronaut inversion)."""

import pytest
import torch

from photodrag import checkpoints, stylegan


@pytest.mark.slow
@pytest.mark.spread
# a close-up, a high-resolution photo and a 225 px one (benchmarks/demo_faces.py measures the
# FFHQ-aligned portrait as well: alike the high-resolution one, and a minute of the suite's time)
@pytest.mark.parametrize('name', ['portrait_facexlib_test2.jpg', 'portrait_deepface_img1.jpg',
                                  'portrait_lowres_codeformer_04.jpg'])
def test_demo_inverts_the_shared_portraits(name, monkeypatch, tmp_path):
    """The real portraits beside the checkout (skipped where they are absent), fast preset from
    the shipped encoder's start, as every demo-faces edit inverts (test_demo_faces.py's astronaut
    covers the start at w_avg)."""

    from conftest import shared_photo
    from photodrag.inversion import InversionConfig, invert, load_lpips, psnr
    from photodrag import alignment
    pytest.importorskip('dlib')
    path = shared_photo(name)
    monkeypatch.setenv('PHOTODRAG_CACHE', str(tmp_path))
    G = checkpoints.load_generator('demo-faces')
    photo = alignment.read_photo(path)
    face = alignment.select_face(alignment.detect_faces(photo))
    crop = alignment.align(photo, face, size=128, recipe=alignment.recipe_for_checkpoint('demo-faces'))
    from photodrag.inversion.encoder import for_generator
    inv = invert(G, crop.image, InversionConfig.preset('fast'), encoder=for_generator(G, 'demo-faces'))
    assert inv.encoder is not None
    recon, target = inv.render(G), stylegan.from_uint8(crop.image)
    with torch.no_grad():
        assert float(load_lpips('vgg')(recon, target)) <= 0.15   # 0.06-0.07 at release (w_avg start)
    assert float(psnr(recon, target)) >= 24.0                     # 25.6-29.3 dB at release
