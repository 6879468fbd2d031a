"""Paste-back evidence: align a face of a group photo, visibly edit the crop, paste it back.

    python benchmarks/alignment_paste.py [--photo PATH] [--face 1] [--out /tmp/photodrag_pasteback.png]

The edit warps the mouth (corners up, like a drag would), brightens it, and optionally
tints the whole crop (`--tint`, a stand-in for a GAN reconstruction's colour cast that
paste-back's colour matching must hide). Writes a before/after PNG: top row the photo
before and after, bottom row zooms of the face before, after, and the blend mask. Prints
the timings, the seam statistics, and whether pixels outside the mask are untouched.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from photodrag import alignment  # noqa: E402

DEFAULT_PHOTO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..', 'shared', 'data',
                             'photos', 'group4_codeformer_02.png')


def edit_mouth(crop: alignment.AlignedCrop, tint: float) -> np.ndarray:
    """The crop with the mouth corners dragged up and out, the mouth brightened, plus a global tint."""
    import cv2
    img = crop.image.astype(np.float32)
    size = img.shape[0]
    mouth = crop.transform.to_crop(crop.face.landmarks[48:68])
    centre = mouth.mean(axis=0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    sigma = 0.09 * size
    # backward map: each output pixel samples from where the content came from
    map_x, map_y = xx.copy(), yy.copy()
    for corner, direction in ((mouth[0], (-1.0, -1.0)), (mouth[6], (1.0, -1.0))):
        g = np.exp(-((xx - corner[0]) ** 2 + (yy - corner[1]) ** 2) / (2 * sigma ** 2))
        map_x -= direction[0] * 0.025 * size * g
        map_y -= direction[1] * 0.035 * size * g
    warped = cv2.remap(img, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    g = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * (0.06 * size) ** 2))[..., None]
    warped = warped * (1 + 0.25 * g) + np.array([tint, tint * 0.4, -tint * 0.5], np.float32)
    return np.clip(np.rint(warped), 0, 255).astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--photo', default=DEFAULT_PHOTO)
    parser.add_argument('--face', type=int, default=1, help='face index, left to right')
    parser.add_argument('--size', type=int, default=512, help='crop size (generator resolution)')
    parser.add_argument('--blend', default='alpha', choices=['alpha', 'poisson'])
    parser.add_argument('--tint', type=float, default=10.0, help='colour cast added to the edited crop (0..255 units)')
    parser.add_argument('--no-colour-match', action='store_true')
    parser.add_argument('--out', default='/tmp/photodrag_pasteback.png')
    args = parser.parse_args(argv)
    import cv2

    if not os.path.exists(args.photo):
        sys.exit(f'no photo at {args.photo}')
    photo = alignment.read_photo(args.photo)
    t0 = time.perf_counter()
    faces = alignment.detect_faces(photo)
    t1 = time.perf_counter()
    face = alignment.select_face(faces, index=args.face)
    crop = alignment.align(photo, face, size=args.size)
    t2 = time.perf_counter()
    edited = edit_mouth(crop, args.tint)
    result = alignment.paste_back(photo, [(crop, edited)], blend=args.blend, colour_match=not args.no_colour_match)
    t3 = time.perf_counter()
    mask = result.mask()
    outside = mask == 0
    untouched = np.array_equal(result.pixels[outside], photo.pixels[outside])
    # seam statistic: mean colour of (after - before) in the outer feather band (mask 0.02..0.3)
    band = (mask > 0.02) & (mask < 0.3)
    band_step = (result.pixels[band].astype(float) - photo.pixels[band]).mean(axis=0)
    print(f'{os.path.basename(args.photo)}: {len(faces)} faces; face {face.index} box {np.round(face.box, 1).tolist()}')
    print(f'detect {t1 - t0:.2f}s  align {t2 - t1:.2f}s  paste {t3 - t2:.2f}s  crop scale {crop.transform.scale:.2f}')
    print(f'outside mask untouched: {untouched}; mean RGB step in the outer band: {np.round(band_step, 2).tolist()}')

    # the figure: photo before | after, then zooms of the face before | after | mask
    before, after = photo.pixels, result.pixels
    x0, y0, x1, y1 = [int(v) for v in result.masks[0].box]
    zb, za = before[y0:y1, x0:x1], after[y0:y1, x0:x1]
    zm = np.repeat((mask[y0:y1, x0:x1] * 255).astype(np.uint8)[..., None], 3, axis=2)
    top = np.concatenate([before, np.full((before.shape[0], 8, 3), 255, np.uint8), after], axis=1)
    zh = 512
    zooms = [cv2.resize(z, (round(z.shape[1] * zh / z.shape[0]), zh), interpolation=cv2.INTER_NEAREST)
             for z in (zb, za, zm)]
    bottom = np.concatenate(sum([[z, np.full((zh, 8, 3), 255, np.uint8)] for z in zooms], [])[:-1], axis=1)
    width = max(top.shape[1], bottom.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
    figure = np.concatenate([pad(top), np.full((8, width, 3), 255, np.uint8), pad(bottom)], axis=0)
    alignment.write_photo(figure, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
