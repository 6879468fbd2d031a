"""How well each expression preset works on real faces, measured without trusting the generator.

    python benchmarks/presets.py [--checkpoint demo-faces] [--quality fast] [--steps 300]
                                 [--presets smile,open-eyes] [--photos portrait] [--json OUT]

Runs every preset on the faces of ../shared/data/photos (the portraits, and every face dlib
finds in the group photos) through `pipeline.edit`, one face and one preset at a time (the
inversion of a face is computed once and cached), then re-detects the 68 landmarks on the
output photo (`metrics.photo_landmarks`: sub-pixel, fitted in the face's box as detected in
the input, so a new detection box does not move them; the same on the input) and prints per
preset, over the faces:

  share     how much of the way the moved landmarks went towards their targets, along the
            intended motion (1 = all the way): median over faces (each face: the median of
            its moved landmarks) and the worst face;
  outside   the largest motion of a landmark outside the preset's region, as a share of the
            face width (median face, worst face): what moved that should not have. Measured
            locally: the patch around each landmark found again by cross-correlation. dlib's
            refit of all 68 ('dlib' column) is printed too, but its cascade couples the
            landmarks: edited eyes move its jaw points by several % with every jaw pixel
            unchanged;
  tracker   the share the drag's own point tracking reports in the crop (what the drag
            believes), and crop: the share of the landmarks re-detected in the generator's
            crop before paste-back. tracker high but crop low: the generator does not draw
            the motion its features follow; crop high but share low: lost in paste-back;
  record    the share the edit record reports (drag.content_progress: the handles' content
            found again in the output photo), and photo/crop: share over crop (1 = the
            paste-back kept all the motion the crop got);
  readout   the eye (mean EAR), mouth and smile read-out before -> after (median face);
  time      seconds per face for the drag and paste (the inversion, once per face, apart).

Faces narrower than 100 px are counted in 'all' and left out of 'large': there a 0.07
inter-ocular-distance lid move is about one pixel, below what re-detection resolves.

--on samples runs the presets on the generator's own images instead (seeds 0.., truncation
0.7, landmarks found by dlib on each image): no inversion and no paste-back, so what falls
short there is the generator or the drag settings (--lr, --latent-space, --feature-block,
--r1, --steps vary them; they apply to photos too).
"""

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _measure  # noqa: F401  (sets sys.path first)
import numpy as np

from photodrag import alignment, pipeline
from photodrag.evaluation import metrics
from photodrag.expressions import presets as presets_mod, readout as expression

PHOTOS = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'photos'
LARGE = 100.0


def faces_of(photos):
    for path in photos:
        photo = alignment.read_photo(path)
        for face in alignment.detect_faces(photo):
            yield path, photo, face


def shares(before, after, moved, displacement):
    """Per moved landmark: progress along its intended displacement."""
    out = []
    for index, d in zip(moved, displacement):
        if np.hypot(*d) < 1e-6:
            continue
        out.append(metrics.progress_towards(before[index], after[index], before[index] + d))
    return out


def measure(path, photo, face, use, config, cache, crop_detector):
    handles, targets = use.preset.displacements(face.landmarks, use.strength)
    displacement = targets - handles
    moved = use.preset.moved_points()
    region = use.preset.mask(face.landmarks, photo.size, use.strength)
    t = time.perf_counter()
    result = pipeline.edit(photo, pipeline.FaceEdit(face=face.index, presets=(use,)), config, cache=cache)
    seconds = time.perf_counter() - t
    frec, fres = result.record.faces[0], result.faces[0]
    before = metrics.photo_landmarks(photo.pixels, face, same_box=True)
    after = metrics.photo_landmarks(result.pixels, face, same_box=True)
    row = {'photo': path.name, 'face': face.index, 'width': face.width, 'preset': use.label,
           'seconds': seconds - frec.timings.get('invert', 0.0), 'invert_seconds': frec.timings.get('invert', 0.0),
           'from_cache': frec.inversion['from_cache'], 'lpips': frec.inversion['lpips'],
           'steps': frec.drag['steps'], 'reason': frec.drag['reason'],
           'content': float(np.median(frec.drag['content_progress']))}   # what the record says, measured in the photo
    # the tracker's own view, in crop pixels
    h0, t0 = np.array(frec.handles_crop), np.array(frec.targets_crop)
    h1 = np.array(frec.drag['handles_crop'])
    row['tracker'] = float(np.median([metrics.progress_towards(a, b, c) for a, b, c in zip(h0, h1, t0)
                                      if np.hypot(*(c - a)) > 1e-6]))
    # the generator's crop before paste-back: landmarks found again in reconstruction and edit
    c0 = metrics.redetected_landmarks(fres.reconstruction, crop_detector)
    c1 = metrics.redetected_landmarks(fres.edited, crop_detector)
    if c0 is not None and c1 is not None:
        row['crop'] = float(np.median(shares(c0, c1, moved, t0 - h0)))
    if before is None or after is None:
        row['lost'] = True
        return row
    row['share'] = float(np.median(shares(before, after, moved, displacement)))
    outside = [j for j in range(68) if region[int(round(before[j][1])), int(round(before[j][0]))] < 0.01
               and j not in moved]
    # outside the region: each landmark's patch found again by cross-correlation (local, like
    # the eye), and dlib's refit (global: its cascade moves the jaw when only the eyes changed)
    half = max(4, int(round(0.03 * face.width)))
    patch = [np.hypot(*np.subtract(metrics.content_shift(photo.pixels, result.pixels, before[j], before[j], half),
                                   np.round(before[j]))) for j in outside
             if half <= before[j][0] < photo.size[0] - half - 1 and half <= before[j][1] < photo.size[1] - half - 1]
    motion = np.hypot(*(after - before).T)
    row['outside'] = float(max(patch) / face.width) if patch else 0.0
    row['outside_dlib'] = float(max(motion[outside]) / face.width) if outside else 0.0
    row['nothing_to_do'] = bool(np.hypot(*(t0 - h0).T).max() <= 1.0)     # the drag skips moves under 1 crop px
    r0, r1 = expression.read(before), expression.read(after)
    row['readout_before'] = r0.to_dict()
    row['readout_after'] = r1.to_dict()
    return row


def measure_sample(G, seed, use, drag_config, detector):
    import torch
    from photodrag import stylegan
    from photodrag.drag import DragSession
    ws = stylegan.w_from_seed(G, seed, truncation_psi=0.7)
    with torch.no_grad():
        image = stylegan.to_uint8(G.synthesis(ws, noise_mode='const'))[0]
    lm = metrics.redetected_landmarks(image, detector)
    if lm is None:
        return None
    handles, targets = use.preset.displacements(lm, use.strength)
    size = G.img_resolution
    targets = np.clip(targets, 0, size - 1)
    t = time.perf_counter()
    session = DragSession(G, ws, [tuple(p) for p in handles], [tuple(p) for p in targets], config=drag_config)
    final = session.run()
    seconds = time.perf_counter() - t
    edited = stylegan.to_uint8(session.render())[0]
    after = metrics.redetected_landmarks(edited, detector)
    row = {'photo': f'seed {seed}', 'face': 0, 'width': float(size), 'preset': use.label, 'seconds': seconds,
           'invert_seconds': 0.0, 'from_cache': True, 'lpips': 0.0, 'steps': final.step, 'reason': final.reason,
           'nothing_to_do': bool(np.hypot(*(targets - handles).T).max() <= 1.0)}
    row['tracker'] = float(np.median([metrics.progress_towards(a, b, c) for a, b, c in
                                      zip(handles, np.array(final.handles), targets) if np.hypot(*(c - a)) > 1e-6]))
    if after is None:
        row['lost'] = True
        return row
    row['share'] = row['crop'] = float(np.median(shares(lm, after, use.preset.moved_points(), targets - handles)))
    region = use.preset.mask(lm, (size, size), use.strength)
    outside = [j for j in range(68) if region[int(np.clip(round(lm[j][1]), 0, size - 1)),
                                              int(np.clip(round(lm[j][0]), 0, size - 1))] < 0.01]
    half = 3
    patch = [np.hypot(*np.subtract(metrics.content_shift(image, edited, lm[j], lm[j], half), np.round(lm[j])))
             for j in outside if half <= lm[j][0] < size - half - 1 and half <= lm[j][1] < size - half - 1]
    row['outside'] = float(max(patch) / size * 2) if patch else 0.0         # face width ~ half the crop
    row['outside_dlib'] = float(np.hypot(*(after - lm)[outside].T).max() / size * 2) if outside else 0.0
    row['readout_before'] = expression.read(lm).to_dict()
    row['readout_after'] = expression.read(after).to_dict()
    return row


def summarise(rows, names):
    def med(values):
        return statistics.median(values) if values else float('nan')

    head = (f'{"preset":<12} {"faces":>5} {"share med":>9} {"worst":>6} {"outside med":>11} {"worst":>6} '
            f'{"dlib":>6} {"tracker":>7} {"crop":>5} {"record":>6} {"photo/crop":>10}  {"eyes":>11} {"mouth":>11} {"smile":>11} {"s/face":>6}')
    print(head)
    for subset, keep in (('all faces', lambda r: True), (f'faces >= {LARGE:.0f} px', lambda r: r['width'] >= LARGE)):
        print(f'-- {subset}')
        for name in names:
            rs = [r for r in rows if r['preset'] == name and keep(r)]
            ok = [r for r in rs if 'share' in r and not r['nothing_to_do']]
            if not ok:
                print(f'{name:<12} {0:>3}/{len(rs):<1} nothing to do on these faces (every move under 1 px)')
                continue
            share = [r['share'] for r in ok]
            outside = [r['outside'] for r in ok]

            def readout(key):
                b = med([_key(r['readout_before'], key) for r in ok])
                a = med([_key(r['readout_after'], key) for r in ok])
                return f'{b:.2f}->{a:.2f}'
            print(f'{name:<12} {len(ok):>3}/{len(rs):<1} {med(share):>9.2f} {min(share, default=float("nan")):>6.2f} '
                  f'{100 * med(outside):>10.2f}% {100 * max(outside, default=float("nan")):>5.2f}% '
                  f'{100 * med([r["outside_dlib"] for r in ok]):>5.2f}% '
                  f'{med([r["tracker"] for r in rs]):>7.2f} {med([r["crop"] for r in rs if "crop" in r]):>5.2f} '
                  f'{med([r["content"] for r in rs]):>6.2f} '
                  f'{_ratio(med(share), med([r["crop"] for r in rs if "crop" in r])):>10.2f}  '
                  f'{readout("eyes"):>11} {readout("mouth"):>11} {readout("smile"):>11} '
                  f'{med([r["seconds"] for r in rs]):>6.1f}')


def _ratio(a, b):
    return a / b if b > 0 else float('nan')


def _key(readout, key):
    if key == 'eyes':
        return (readout['left_eye'] + readout['right_eye']) / 2
    return readout[key]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--checkpoint', default='demo-faces')
    ap.add_argument('--quality', default='fast')
    ap.add_argument('--steps', type=int, default=None, help='drag step cap (default: the drag default, 300)')
    ap.add_argument('--presets', default=None, help='comma-separated preset names (default: all built-in)')
    ap.add_argument('--photos', default='portrait,group', help='comma-separated file-name prefixes')
    ap.add_argument('--json', default=None, help='also write every row as JSON here')
    ap.add_argument('--fresh', action='store_true', help='invert every face again (default: reuse the inversion cache)')
    ap.add_argument('--on', choices=['photos', 'samples'], default='photos',
                    help="'samples': the generator's own images (no inversion, no paste-back)")
    ap.add_argument('--seeds', type=int, default=8, help='how many samples with --on samples')
    ap.add_argument('--lr', type=float, default=None, help='drag learning rate (default: DragConfig)')
    ap.add_argument('--latent-space', default=None, choices=['w', 'w+'], help='drag latent space (default: DragConfig)')
    ap.add_argument('--feature-block', type=int, default=None, help='drag feature block (default: DragConfig)')
    ap.add_argument('--r1', type=float, default=None, help='motion supervision radius, px at 512 (default: 3)')
    ap.add_argument('--drag-mode', default=None, choices=['fast', 'reference'], help='drag mode (default: fast)')
    ap.add_argument('--tracking', default=None, choices=['features', 'template', 'image'],
                    help="how handles are found again (default: the mode's)")
    ap.add_argument('--supervision', default=None, choices=['shift', 'original'], help="default: the mode's")
    ap.add_argument('--content-check', default=None, choices=['on', 'off'], help="default: the mode's")
    ap.add_argument('--residual', default=None, choices=['disoccluded', 'all', 'none'],
                    help="what the paste-back adds beyond motion (default: PasteConfig's, 'disoccluded')")
    args = ap.parse_args(argv)
    if not PHOTOS.is_dir():
        sys.exit(f'{PHOTOS} is missing: the benchmark runs on the shared test photos')
    names = args.presets.split(',') if args.presets else list(presets_mod.builtin())
    uses = [presets_mod.use(n) for n in names]
    photos = sorted(p for p in PHOTOS.iterdir() if any(p.name.startswith(x) for x in args.photos.split(',')))
    from photodrag.drag import DragConfig
    changes = {k: v for k, v in (('lr', args.lr), ('latent_space', args.latent_space), ('max_steps', args.steps),
                                 ('feature_block', args.feature_block), ('r1', args.r1), ('mode', args.drag_mode),
                                 ('tracking', args.tracking), ('supervision', args.supervision),
                                 ('content_check', None if args.content_check is None else args.content_check == 'on'))
               if v is not None}
    drag_config = DragConfig().replace(**changes)
    paste = alignment.PasteConfig(**({'residual': args.residual} if args.residual else {}))
    config = pipeline.EditConfig(checkpoint=args.checkpoint, quality=args.quality, drag=drag_config, paste=paste)
    rows = []
    crop_detector = alignment.default_detector()
    if args.on == 'samples':
        from photodrag import checkpoints
        G = checkpoints.load_generator(args.checkpoint)
        print(f'{args.seeds} samples of {args.checkpoint}; presets: {", ".join(names)}; drag {changes or "defaults"}',
              flush=True)
        for seed in range(args.seeds):
            for use in uses:
                row = measure_sample(G, seed, use, drag_config, crop_detector)
                if row is None:
                    print(f'  seed {seed}: no face found in the sample', flush=True)
                    break
                rows.append(row)
                print(f'  seed {seed} {use.label:<12} share {row.get("share", float("nan")):5.2f} tracker '
                      f'{row["tracker"]:4.2f} {row["steps"]} steps {row["seconds"]:.1f}s', flush=True)
        summarise(rows, [u.label for u in uses])
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
    # cache True: the user's inversion cache ($PHOTODRAG_CACHE/inversions), so a rerun reuses the inversions
    with tempfile.TemporaryDirectory() if args.fresh else contextlib.nullcontext(True) as cache:
        faces = list(faces_of(photos))
        print(f'{len(faces)} faces in {len(photos)} photos; presets: {", ".join(names)}; {args.checkpoint}, '
              f'{args.quality}', flush=True)
        for path, photo, face in faces:
            for use in uses:
                row = measure(path, photo, face, use, config, cache, crop_detector)
                rows.append(row)
                print(f'  {path.name[:30]:<30} face {face.index} ({face.width:.0f} px) {use.label:<12} '
                      f'share {row.get("share", float("nan")):5.2f} outside {100 * row.get("outside", float("nan")):5.2f}% '
                      f'tracker {row["tracker"]:4.2f} crop {row.get("crop", float("nan")):5.2f} '
                      f'{row["steps"]} steps {row["seconds"]:.1f}s', flush=True)
    first = {}
    for r in rows:                      # a face's first edit inverted it (or found it in the cache)
        first.setdefault((r['photo'], r['face']), r)
    inv = [r['invert_seconds'] for r in first.values()]
    cached = sum(r['from_cache'] for r in first.values())
    print(f'\ninversion ({args.quality}): {statistics.median(inv):.1f} s per face (median of {len(inv)}; '
          f'{cached} from the cache), LPIPS(vgg) {statistics.median([r["lpips"] for r in first.values()]):.3f}')
    summarise(rows, [u.label for u in uses])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
