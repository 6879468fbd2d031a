"""Closed eyes fixed from another shot, against the generator's preset fix, on a real photo.

    python benchmarks/reference_fix.py [--photo PATH] [--face 1] [--scale 1] [--out before_after.png] [--no-generator]

A burst is made from the photo (tests/bursts.py): the photo is the reference shot; the frame
to fix is the photo moved (9, -6 px), turned 3°, scaled x1.05, re-lit x0.9, with face
`--face`'s eyes closed (skin drawn over them, a lash line). Then:
- reference: `fix_with_references(frame, [photo], ['closed-eyes'])` (photodrag fix --reference);
- generator: `photodrag fix --closed-eyes` without a reference (the open-eyes preset dragged on
  the generator, quality fast), as today's fallback.
Printed per method: the eye aspect ratios after (and as a share of the reference's), the
normalised cross-correlation of each eye box with where the reference's eye belongs, the
pixels changed farther than half a face width from the eyes, and seconds.
`--out` writes frame | reference fix | generator fix | reference, cropped to the face.
"""

import argparse
import os
import time

import _measure  # noqa: F401  (sets sys.path first: tests/ for bursts)

import numpy as np


def measure(name, out, frame, aligned, eyes, ref_readout, face_width, seconds):
    from photodrag import alignment
    from photodrag.expressions import readout
    import bursts
    centre = np.mean([e.mean(0) for e in eyes], axis=0)
    face = min(alignment.detect_faces(out), key=lambda f: np.hypot(*(f.centre - centre)))
    r = readout.read(face.landmarks)
    ncc = [bursts.eye_ncc(out, aligned, e) for e in eyes]
    yy, xx = np.mgrid[:out.shape[0], :out.shape[1]]
    near = np.zeros(out.shape[:2], bool)
    for e in eyes:
        c = e.mean(0)
        near |= np.hypot(xx - c[0], yy - c[1]) <= 0.5 * face_width
    far_changed = int(np.any(out[~near] != frame[~near], axis=-1).sum())
    print(f'{name:10s} EAR {r.left_eye:.2f}/{r.right_eye:.2f} ({r.left_eye / ref_readout.left_eye:.2f}/'
          f'{r.right_eye / ref_readout.right_eye:.2f} of the reference)  eye NCC {ncc[0]:.2f}/{ncc[1]:.2f}  '
          f'pixels changed beyond half a face width {far_changed}  {seconds:.1f} s', flush=True)


def main():
    import cv2
    from photodrag import alignment
    from photodrag.expressions import readout
    from photodrag.pipeline import edit, FaceEdit
    from photodrag.pipeline.fixes import fix_with_references
    import bursts
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--photo', default=os.path.join(root, '..', 'shared', 'data', 'photos', 'group2_codeformer_06.png'))
    ap.add_argument('--face', type=int, default=1)
    ap.add_argument('--scale', type=float, default=1.0, help='enlarge the photo first (small faces)')
    ap.add_argument('--out', default=None)
    ap.add_argument('--no-generator', action='store_true')
    args = ap.parse_args()
    reference = alignment.read_photo(args.photo).pixels
    if args.scale != 1:
        reference = cv2.resize(reference, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_CUBIC)
    faces = alignment.detect_faces(reference)
    target = faces[args.face]
    frame, aligned, A = bursts.blink_burst(reference, target.centre, close=[args.face])
    eyes = [target.landmarks[list(idx)] @ A[:, :2].T + A[:, 2] for idx in (range(36, 42), range(42, 48))]
    ref_readout = readout.read(target.landmarks)
    width = float(target.box[2] - target.box[0]) * bursts.SCALE
    before = readout.read(min(alignment.detect_faces(frame), key=lambda f: np.hypot(
        *(f.centre - np.mean([e.mean(0) for e in eyes], axis=0)))).landmarks)
    print(f'{os.path.basename(args.photo)} x{args.scale:g}, face {args.face} ({width:.0f} px wide): reference EAR '
          f'{ref_readout.left_eye:.2f}/{ref_readout.right_eye:.2f}, closed frame {before.left_eye:.2f}/'
          f'{before.right_eye:.2f}')
    t = time.perf_counter()
    fixed = fix_with_references(alignment.Photo(pixels=frame), [alignment.Photo(pixels=reference)], ['closed-eyes'],
                                fallback=False)
    measure('reference', fixed.pixels, frame, aligned, eyes, ref_readout, width, time.perf_counter() - t)
    for line in fixed.lines:
        print('  ' + line)
    shown = [frame, fixed.pixels]
    if not args.no_generator:
        t = time.perf_counter()
        k = min(alignment.detect_faces(frame), key=lambda f: np.hypot(*(f.centre - np.mean([e.mean(0) for e in eyes],
                                                                                             axis=0)))).index
        gen = edit(alignment.Photo(pixels=frame), [FaceEdit(face=k, presets=['open-eyes'])], quality='fast',
                   device='cpu')
        measure('generator', gen.pixels, frame, aligned, eyes, ref_readout, width, time.perf_counter() - t)
        shown.append(gen.pixels)
    if args.out:
        x0, y0, x1, y1 = (int(v) for v in target.box)
        pad = (x1 - x0) // 4
        y0, y1, x0, x1 = max(0, y0 - pad), y1 + pad, max(0, x0 - pad), x1 + pad
        strip = np.concatenate([im[y0:y1, x0:x1] for im in shown + [aligned]], axis=1)
        alignment.write_photo(strip, args.out)
        print(f'wrote {args.out}: frame | reference fix | ' + ('generator fix | ' if len(shown) > 2 else '') +
              'reference (aligned)')


if __name__ == '__main__':
    main()
