"""Does a drag bring the content to the target? The handle options against DragGAN's, on the
generator's own faces (no inversion, no paste-back: only the drag is measured).

    python benchmarks/drag_content.py [--checkpoint demo-faces] [--cases 8] [--length 10]
                                      [--variant NAME='{"tracking": "image"}' ...]

For seeds 0, 1, ... (truncation 0.7) dlib finds the 68 landmarks of the sample; each mouth
corner is dragged `--length` px up and outwards (45 degrees), one drag a case, 300 steps at
most. Measured in the pixels, never by the drag's own tracker:

  content   where the 9x9 patch that was under the handle is in the result
            (`evaluation.metrics.content_position`): its distance to the target (px) and the
            share of the way it went;
  landmark  the dragged corner found again by dlib, its distance to the target (px);
  tracker   what the drag's tracker claims (its final distance, px), and steps taken.

--paste also pastes each variant's results into the render enlarged 4x (a "photo" whose crop
is the render itself, so only paste-back is measured) and prints photo/crop: the share of the
way the patch went in the photo over the share in the crop (1 = paste-back kept all the motion).

Every variant runs the same cases in the same process; 'reference' is DragGAN's algorithm
(mode 'reference'), 'default' photodrag's fast mode as shipped. --variant adds DragConfig
fields as JSON (e.g. image='{"tracking": "image"}').
"""

import argparse
import json
import time

import _measure  # noqa: F401  (sets sys.path first)
import numpy as np
import torch

from photodrag import alignment, checkpoints, stylegan
from photodrag.drag import DragConfig, DragSession
from photodrag.evaluation.metrics import content_position, progress_towards, redetected_landmarks

VARIANTS = {
    'reference': {'mode': 'reference'},
    'default': {},
    'image': {'tracking': 'image'},
    'template': {'tracking': 'template'},
    'original': {'supervision': 'original'},
    'confidence 0.6': {'confidence': 0.6},
    'content check': {'content_check': True},
    'check + patience 120': {'content_check': True, 'patience': 120},
}


def cases(G, count, length):
    """(seed, w, image, handle, target, landmark index) for the first `count` mouth corners."""
    detector = alignment.default_detector()
    out, seed = [], 0
    while len(out) < count and seed < 4 * count:
        w = stylegan.w_from_seed(G, seed, truncation_psi=0.7)
        with torch.no_grad():
            image = stylegan.to_uint8(G.synthesis(w, noise_mode='const'))[0]
        lm = redetected_landmarks(image, detector)
        if lm is not None:
            for index, direction in ((48, (-1.0, -1.0)), (54, (1.0, -1.0))):
                step = np.array(direction) / np.sqrt(2) * length
                out.append((seed, w, image, lm[index], lm[index] + step, index))
        seed += 1
    return out[:count]


def paste_ratio(image, edited, handle, target, scale=4):
    """(share of the way in the crop, share in the photo) when `edited` is pasted back into
    `image` enlarged `scale` times (the crop is the whole photo, scaled)."""
    import cv2
    from photodrag.alignment.recipes import AlignedCrop
    from photodrag.alignment.transform import CropTransform
    from photodrag.drag.tracking import patch_half
    from photodrag.pipeline.editing import content_in_crop
    R = image.shape[0]
    photo = cv2.resize(image, (R * scale, R * scale), interpolation=cv2.INTER_CUBIC)
    offset = -0.5 + 0.5 / scale
    tf = CropTransform(np.array([[1 / scale, 0, offset], [0, 1 / scale, offset], [0, 0, 1]]), (R, R), photo.shape[1::-1])
    crop = AlignedCrop(image=image, transform=tf, face=None, recipe='object')
    _, motions = content_in_crop(image, edited, [handle], [target])
    pasted = alignment.paste_back(alignment.Photo(pixels=photo),
                                  [alignment.Edit(crop, edited, reference=image, motions=motions)])
    in_crop, _ = content_position(image, edited, handle, target, patch_half(R))
    hp, tp = tf.to_photo(np.array([handle, target], float))
    in_photo, _ = content_position(photo, pasted.pixels, hp, tp, patch_half(R) * scale)
    return progress_towards(handle, in_crop, target), progress_towards(hp, in_photo, tp)


def run(G, todo, options, detector, paste=False):
    rows = []
    for seed, w, image, handle, target, index in todo:
        session = DragSession(G, w, [tuple(handle)], [tuple(target)], config=DragConfig(**options))
        started = time.perf_counter()
        last = session.run()
        seconds = time.perf_counter() - started
        edited = stylegan.to_uint8(session.render())[0]
        found, _ = content_position(image, edited, handle, target)
        lm = redetected_landmarks(edited, detector)
        rows.append({'content': float(np.hypot(*np.subtract(found, target))),
                     'share': progress_towards(handle, found, target),
                     'landmark': float('nan') if lm is None else float(np.hypot(*(lm[index] - target))),
                     'tracker': float(last.distances[0]), 'steps': last.step, 'seconds': seconds})
        if paste:
            rows[-1]['crop_share'], rows[-1]['photo_share'] = paste_ratio(image, edited, handle, target)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default='demo-faces')
    parser.add_argument('--cases', type=int, default=8)
    parser.add_argument('--length', type=float, default=10.0)
    parser.add_argument('--only', default=None, help='comma-separated variant names to run')
    parser.add_argument('--variant', action='append', default=[], metavar="NAME='{...}'")
    parser.add_argument('--paste', action='store_true', help='also measure what paste-back keeps of the motion')
    args = parser.parse_args()
    variants = dict(VARIANTS)
    for v in args.variant:
        name, _, fields = v.partition('=')
        variants[name] = json.loads(fields)
    if args.only:
        variants = {k: variants[k] for k in args.only.split(',')}
    G = checkpoints.load_generator(args.checkpoint)
    detector = alignment.default_detector()
    todo = cases(G, args.cases, args.length)
    print(f'{args.checkpoint}: {len(todo)} mouth-corner drags of {args.length:g} px, {torch.get_num_threads()} threads')
    print(f'{"variant":<18} {"content px":>10} {"worst":>6} {"share":>6} {"landmark px":>11} {"tracker px":>10} '
          f'{"steps":>6} {"s/drag":>7}')
    for name, options in variants.items():
        rows = run(G, todo, options, detector, args.paste)
        col = lambda key: np.array([r[key] for r in rows], float)  # noqa: E731
        print(f'{name:<18} {col("content").mean():>10.2f} {col("content").max():>6.1f} {col("share").mean():>6.2f} '
              f'{np.nanmean(col("landmark")):>11.2f} {col("tracker").mean():>10.2f} {col("steps").mean():>6.0f} '
              f'{col("seconds").mean():>7.1f}' + (f'  photo/crop {col("photo_share").mean() / col("crop_share").mean():.2f} '
                                                  f'({col("photo_share").mean():.2f} / {col("crop_share").mean():.2f})'
                                                  if args.paste else ''), flush=True)


if __name__ == '__main__':
    main()
