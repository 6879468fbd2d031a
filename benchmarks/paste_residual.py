"""What the paste adds beyond motion, on real edits: each residual rule against pure motion.

    python benchmarks/paste_residual.py [--checkpoint demo-faces] [--quality fast]
                                        [--cases demo group4_codeformer_02.png:1:smile ...]

Each case is one edit made once through `pipeline.edit` (its inversion cached): 'demo' is
`photodrag demo`'s drag (the astronaut's mouth corners), PHOTO:FACE:PRESET a preset on a face
of a photo in ../shared/data/photos. Its crop-space result is then pasted into the photo with
each residual rule (`PasteConfig.residual`): 'none' (the photo's own pixels moved, nothing
else: the baseline, measured in the same run), 'disoccluded' (the default: the generator's
change where the motion uncovered something, less its colour drift) and 'all'. Printed per
case and rule, inside the edit's local region: what the motion does not explain
(`evaluation.metrics.unexplained_change`, mean and 99th percentile in grey levels) and the
mean over the baseline's. A drag that only moves pixels scores near the baseline; a grey
blotch or a painted shadow scores high.
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PHOTOS = os.path.join(ROOT, '..', 'shared', 'data', 'photos')
DEFAULT_CASES = ['demo', 'group4_codeformer_02.png:1:smile', 'group4_codeformer_02.png:2:open-mouth',
                 'group3_family_gfpgan_10045.png:1:smile', 'group2_codeformer_06.png:0:relax']
RULES = ('none', 'disoccluded', 'all')


def edit_case(case: str, checkpoint: str, quality: str):
    """(photo pixels, the pipeline's result) of one case."""
    from photodrag import alignment, pipeline
    from photodrag.pipeline import demo
    if case == 'demo':
        photo, face = demo.demo_face()
        job = pipeline.FaceEdit(face=face.index, drags=demo.demo_drags(face, expression=demo.default_demo_expression(
            checkpoint)))
        return photo.pixels, pipeline.edit(photo, job, checkpoint=checkpoint, quality=quality)
    name, face, preset = case.split(':')
    photo = alignment.read_photo(os.path.join(PHOTOS, name))
    return photo.pixels, pipeline.edit(photo, face=int(face), presets=[preset], checkpoint=checkpoint,
                                       quality=quality)


def measure(photo: np.ndarray, result) -> dict:
    from photodrag import alignment
    from photodrag.evaluation.metrics import unexplained_change
    r = result.faces[0]
    edit = alignment.Edit(r.crop, r.edited, reference=r.reconstruction, limit=r.region, motions=r.motions)
    region = r.region if r.region is not None else result.blend_mask
    ys, xs = np.nonzero(region > 0.5)
    y0, y1 = max(ys.min() - 8, 0), min(ys.max() + 9, photo.shape[0])
    x0, x1 = max(xs.min() - 8, 0), min(xs.max() + 9, photo.shape[1])
    where = region[y0:y1, x0:x1] > 0.5
    out = {}
    for rule in RULES:
        pixels = alignment.paste_back(photo, [edit], alignment.PasteConfig(residual=rule)).pixels
        if rule == 'disoccluded' and not np.array_equal(pixels, result.pixels):
            raise SystemExit('the default paste here is not the pipeline\'s: the benchmark is out of date')
        out[rule] = unexplained_change(photo[y0:y1, x0:x1], pixels[y0:y1, x0:x1], where)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--checkpoint', default='demo-faces')
    ap.add_argument('--quality', default='fast')
    ap.add_argument('--cases', nargs='+', default=DEFAULT_CASES)
    args = ap.parse_args()
    print(f'{args.checkpoint}, {args.quality}; unexplained change inside the local region, grey levels '
          '(mean / 99th percentile; x: mean over the baseline none)')
    print(f'{"case":42s} ' + ' '.join(f'{rule:>20s}' for rule in RULES))
    ratios = {rule: [] for rule in RULES}
    for case in args.cases:
        photo, result = edit_case(case, args.checkpoint, args.quality)
        m = measure(photo, result)
        base = max(m['none'][0], 1e-6)
        cells = []
        for rule in RULES:
            ratios[rule].append(m[rule][0] / base)
            cells.append(f'{m[rule][0]:5.2f} / {m[rule][1]:5.1f} {m[rule][0] / base:4.2f}x')
        print(f'{case:42s} ' + ' '.join(f'{c:>20s}' for c in cells), flush=True)
    print(f'{"median":42s} ' + ' '.join(f'{np.median(ratios[rule]):19.2f}x' for rule in RULES))


if __name__ == '__main__':
    main()
