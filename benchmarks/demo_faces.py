"""Does the bundled demo generator do its job? Samples, inversion of real faces, a drag.

    python benchmarks/demo_faces.py [--checkpoint demo-faces] [--quality balanced] [--out DIR]

1. Samples: 16 random faces (truncation 1): how many dlib finds a face in, and their
   diversity (mean pairwise LPIPS-vgg; a collapsed generator scores near 0).
2. Inversion: the scikit-image astronaut (bundled with photodrag) and the portraits in
   ../shared/data/photos, aligned with the checkpoint's crop recipe and inverted at the
   demo resolution: LPIPS (vgg) and PSNR after projection and after pivotal tuning.
   Target: LPIPS(vgg) <= 0.15.
3. Drag: on the inverted astronaut, both mouth corners up and outward by 8 % of the face
   width. Measured independently of the generator's features: the 9x9 pixel patch under
   each handle in the reconstruction is found again in the edited crop by normalised cross-
   correlation (OpenCV matchTemplate) near the target, and the mouth-corner landmarks are
   re-detected by dlib in both; reported as how far the content moved towards its target.

Writes before/after images under --out (default /tmp/photodrag_demo_eval) to look at.
"""

import argparse
import sys
import time
from pathlib import Path

import _measure  # noqa: F401  (sets sys.path first)
import numpy as np
import torch

import alignment
import checkpoints
import stylegan
from drag import DragConfig, DragSession
from inversion import InversionConfig, invert, load_lpips
from pipeline.cli import DEMO_PHOTO, demo_drags
from pipeline.report import content_shift, progress_towards, redetected_landmarks

PHOTOS = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'photos'
PORTRAITS = ['portrait_facexlib_test2.jpg', 'portrait_deepface_img1.jpg', 'portrait_lowres_codeformer_04.jpg',
             'portrait_aligned1024_e4e_input.jpg']


def sample_report(G, lpips_vgg, n=16):
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(2026))
    with torch.no_grad():
        imgs = G(z, None, noise_mode='const')
    pixels = stylegan.to_uint8(imgs)
    det = alignment.default_detector()
    import cv2
    found = sum(1 for p in pixels if len(det.detect(cv2.resize(p, (256, 256), interpolation=cv2.INTER_CUBIC))) >= 1)
    with torch.no_grad():
        d = [float(lpips_vgg(imgs[i:i + 1], imgs[j:j + 1])) for i in range(n) for j in range(i + 1, n)]
    return found, float(np.mean(d))


def crop_for(G, path, recipe):
    photo = alignment.read_photo(path)
    faces = alignment.detect_faces(photo)
    if not faces:
        return None
    face = alignment.select_face(faces)
    return alignment.align(photo, face, size=G.img_resolution, recipe=recipe)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default='demo-faces')
    parser.add_argument('--quality', default='balanced')
    parser.add_argument('--out', type=Path, default=Path('/tmp/photodrag_demo_eval'))
    parser.add_argument('--skip-portraits', action='store_true')
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    G = checkpoints.load_generator(args.checkpoint)
    recipe = alignment.recipe_for_checkpoint(args.checkpoint) if args.checkpoint in checkpoints.REGISTRY else 'ffhq'
    lpips_vgg = load_lpips('vgg')
    print(f'{args.checkpoint}: {G.img_resolution} px, {sum(p.numel() for p in G.parameters()) / 1e6:.1f} M weights, '
          f'{torch.get_num_threads()} threads')

    found, diversity = sample_report(G, lpips_vgg)
    print(f'samples: dlib finds a face in {found}/16; mean pairwise LPIPS(vgg) {diversity:.3f}')

    config = InversionConfig.preset(args.quality)
    paths = [DEMO_PHOTO] + ([] if args.skip_portraits else [PHOTOS / p for p in PORTRAITS if (PHOTOS / p).is_file()])
    print(f'\n{"photo":<40} {"proj LPIPS":>10} {"PTI LPIPS(vgg)":>15} {"PSNR":>6} {"s":>6}')
    astro = None
    for path in paths:
        crop = crop_for(G, path, recipe)
        if crop is None:
            print(f'{path.name:<40} no face found')
            continue
        t0 = time.perf_counter()
        inv = invert(G, crop.image, config)
        recon = inv.render(G)
        target = torch.tensor(crop.image).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            final = float(lpips_vgg(recon, target))
        print(f'{path.name:<40} {inv.metrics["projection"].lpips:>10.3f} {final:>15.3f} '
              f'{inv.metrics["tuning"].psnr:>6.1f} {time.perf_counter() - t0:>6.0f}')
        alignment.write_photo(np.concatenate([crop.image, stylegan.to_uint8(recon)[0]], 1),
                              args.out / f'invert_{path.stem}.png')
        if astro is None:
            astro = (crop, inv)

    if astro is None:
        sys.exit('no face to drag')
    crop, inv = astro
    Gt = inv.generator(G)
    lm = crop.transform.to_crop(crop.face.landmarks)
    width = float(np.linalg.norm(lm[16] - lm[0]))
    face_in_crop = alignment.Face(box=(0, 0, 1, 1), landmarks=lm, score=0.0)
    drags = demo_drags(face_in_crop, 0.08)             # the smile `photodrag demo` asks for
    handles, targets = [d[0] for d in drags], [d[1] for d in drags]
    session = DragSession(Gt, inv.ws, handles, targets, config=DragConfig(max_steps=200))
    t0 = time.perf_counter()
    last = session.run()
    before = stylegan.to_uint8(inv.render(G))[0]
    after = stylegan.to_uint8(session.render())[0]
    print(f'\ndrag: mouth corners up/out by 8% of face width ({0.08 * width:.1f} px), {last.step} steps, '
          f'{last.reason}, {time.perf_counter() - t0:.0f} s')
    lm0, lm1 = redetected_landmarks(before), redetected_landmarks(after)
    if lm0 is None or lm1 is None:
        print('  dlib finds no single face in the reconstruction or the edit: landmarks not measured')
    for corner, h, t, tracked in zip((48, 54), handles, targets, last.handles):
        if lm0 is not None and lm1 is not None:
            way = progress_towards(lm0[corner], lm1[corner], lm0[corner] + np.subtract(t, h))
            print(f'  landmark {corner} (re-detected by dlib): moved {way:.2f} of the way')
        found = content_shift(before, after, h, t)
        start = np.hypot(t[0] - h[0], t[1] - h[1])
        end = np.hypot(t[0] - found[0], t[1] - found[1])
        moved = progress_towards(h, found, t) * start
        print(f'  handle ({h[0]:.1f},{h[1]:.1f}) -> target ({t[0]:.1f},{t[1]:.1f}): content found at '
              f'({found[0]:.0f},{found[1]:.0f}), moved {moved:.1f} of {start:.1f} px towards it, '
              f'{end:.1f} px from it (tracker says {np.hypot(t[0] - tracked[0], t[1] - tracked[1]):.1f})')
    import cv2
    big = lambda a: cv2.resize(a, (a.shape[1] * 3, a.shape[0] * 3), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    alignment.write_photo(np.concatenate([big(crop.image), big(before), big(after)], 1), args.out / 'drag.png')
    print(f'\nimages in {args.out}')


if __name__ == '__main__':
    main()
