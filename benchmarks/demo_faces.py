"""Does the bundled demo generator do its job? Samples, inversion of real faces, a drag.

    python benchmarks/demo_faces.py [--checkpoint demo-faces] [--quality balanced] [--out DIR]

1. Samples: 16 random faces (truncation 1): how many dlib finds a face in, and their
   diversity (mean pairwise LPIPS-vgg; a collapsed generator scores near 0).
2. Inversion: the scikit-image astronaut (bundled with photodrag) and the portraits in
   ../shared/data/photos, aligned with the checkpoint's crop recipe and inverted at the
   demo resolution: LPIPS (vgg) and PSNR after projection and after pivotal tuning.
   Target: LPIPS(vgg) <= 0.15.
3. Drag: on every inverted face, both mouth corners moved by 8 % of the face width, in and
   down ('relax', what `photodrag demo` asks of the demo generator) and out and up
   ('smile'), 300 steps. Measured independently of the generator's features: the mouth-
   corner landmarks are re-detected by dlib in the reconstruction and the edit, and the 9x9
   pixel patch under each handle is found again near its target by normalised cross-
   correlation (OpenCV matchTemplate); reported as how far each moved towards its target
   (1 = all the way), with the mean over faces.

Writes before/after images under --out (default /tmp/photodrag_demo_eval) to look at.
"""

import argparse
import sys
import time
from pathlib import Path

import _measure  # noqa: F401  (sets sys.path first)
import numpy as np
import torch

from photodrag import alignment
from photodrag import checkpoints
from photodrag import stylegan
from photodrag.drag import DragConfig, DragSession
from photodrag.inversion import InversionConfig, invert, load_lpips
from photodrag.pipeline.demo import DEMO_PHOTO, demo_drags
from photodrag.evaluation.metrics import content_shift, progress_towards, redetected_landmarks

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
    recipe = alignment.recipe_for(args.checkpoint, G)
    lpips_vgg = load_lpips('vgg')
    print(f'{args.checkpoint}: {G.img_resolution} px, {sum(p.numel() for p in G.parameters()) / 1e6:.1f} M weights, '
          f'{torch.get_num_threads()} threads')

    found, diversity = sample_report(G, lpips_vgg)
    print(f'samples: dlib finds a face in {found}/16; mean pairwise LPIPS(vgg) {diversity:.3f}')

    config = InversionConfig.preset(args.quality)
    paths = [DEMO_PHOTO] + ([] if args.skip_portraits else [PHOTOS / p for p in PORTRAITS if (PHOTOS / p).is_file()])
    print(f'\n{"photo":<40} {"proj LPIPS":>10} {"PTI LPIPS(vgg)":>15} {"PSNR":>6} {"s":>6}')
    inverted = []
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
        inverted.append((path.stem, crop, inv))

    if not inverted:
        sys.exit('no face to drag')
    print(f'\n{"drag (300 steps)":<40} {"expression":>10} {"landmarks 48/54":>16} {"pixels 48/54":>13} '
          f'{"tracker":>8} {"steps":>6} {"s":>4}')
    import cv2
    big = lambda a: cv2.resize(a, (a.shape[1] * 3, a.shape[0] * 3), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    summary = {}
    for name, crop, inv in inverted:
        Gt = inv.generator(G)
        lm = crop.transform.to_crop(crop.face.landmarks)
        face_in_crop = alignment.Face(box=(0, 0, 1, 1), landmarks=lm, score=0.0)
        before = stylegan.to_uint8(inv.render(G))[0]
        lm0 = redetected_landmarks(before)
        row = [big(crop.image), big(before)]
        for expression in ('relax', 'smile'):
            drags = demo_drags(face_in_crop, 0.08, expression=expression)
            handles, targets = [d[0] for d in drags], [d[1] for d in drags]
            session = DragSession(Gt, inv.ws, handles, targets, config=DragConfig(max_steps=300))
            t0 = time.perf_counter()
            last = session.run()
            after = stylegan.to_uint8(session.render())[0]
            row.append(big(after))
            lm1 = redetected_landmarks(after)
            marks = ([progress_towards(lm0[c], lm1[c], lm0[c] + np.subtract(t, h))
                      for c, h, t in zip((48, 54), handles, targets)] if lm0 is not None and lm1 is not None
                     else [float('nan')] * 2)
            pixels = [progress_towards(h, content_shift(before, after, h, t), t) for h, t in zip(handles, targets)]
            tracked = [progress_towards(h, p, t) for h, p, t in zip(handles, last.handles, targets)]
            summary.setdefault(expression, []).append(marks + pixels)
            print(f'{name:<40} {expression:>10} {marks[0]:>7.2f} {marks[1]:>6.2f}   {pixels[0]:>5.2f} {pixels[1]:>5.2f}  '
                  f'{np.mean(tracked):>8.2f} {last.step:>6} {time.perf_counter() - t0:>4.0f}'
                  + ('' if lm1 is not None else '  (dlib finds no single face in the edit)'))
        alignment.write_photo(np.concatenate(row, 1), args.out / f'drag_{name}.png')
    for expression, rows in summary.items():
        m = np.nanmean(np.array(rows), axis=0)
        print(f'{"mean over " + str(len(rows)) + " faces":<40} {expression:>10} {m[0]:>7.2f} {m[1]:>6.2f}   '
              f'{m[2]:>5.2f} {m[3]:>5.2f}')
    print(f'\nimages in {args.out} (drag_*.png: photo crop, reconstruction, relaxed, smiling)')


if __name__ == '__main__':
    main()
