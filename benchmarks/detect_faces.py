"""Face detection on the shared test photos: the default detector (RetinaFace boxes, dlib's
landmarks) against dlib's HOG detector, measured in the same run.

    python benchmarks/detect_faces.py [--photos DIR] [--repeat 3] [--people]

Per photo: faces found by each, milliseconds (median of --repeat runs after one warm-up,
landmarks included) and, for every face both find, how far apart the two landmark fits are
(mean over the 68 points, in inter-ocular distances). The last line gives the totals and the
time ratio (RetinaFace / HOG). With --people, each photo's people are found from RetinaFace's
faces too (`alignment.detect_people`, the full-body recipe's boxes): how many, milliseconds
(median, faces not included) and the ratio to finding the faces.
"""

import argparse
import statistics
import time
from pathlib import Path

import _measure  # noqa: F401  (sets sys.path first)
import numpy as np

from photodrag import alignment
from photodrag.pipeline.demo import DEMO_PHOTO

PHOTOS = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'photos'


def timed(photo, detector, repeat):
    alignment.detect_faces(photo, detector=detector)
    times, faces = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        faces = alignment.detect_faces(photo, detector=detector)
        times.append(time.perf_counter() - t)
    return faces, statistics.median(times)


def agreement(a, b):
    """Mean landmark distance of two fits of one face, in inter-ocular distances."""
    la, lb = np.asarray(a.landmarks), np.asarray(b.landmarks)
    iod = float(np.hypot(*(la[36:42].mean(0) - la[42:48].mean(0))))
    return float(np.hypot(*(la - lb).T).mean()) / iod


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--photos', default=str(PHOTOS))
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--people', action='store_true', help="also time finding each face's whole person")
    args = ap.parse_args()
    detectors = {'retinaface': alignment.RetinaFaceDetector(), 'hog': alignment.DlibDetector()}
    paths = [Path(DEMO_PHOTO)] + sorted(p for p in Path(args.photos).glob('*') if p.suffix.lower() in ('.jpg', '.png'))
    total = {name: 0.0 for name in detectors}
    found = {name: 0 for name in detectors}
    print(f'{"photo":34s} {"retinaface":>14s} {"hog":>14s}  landmark gap (IOD)')
    for path in paths:
        photo = alignment.read_photo(path)
        got = {}
        for name, det in detectors.items():
            got[name], seconds = timed(photo, det, args.repeat)
            total[name] += seconds
            found[name] += len(got[name])
            got[name + '_s'] = seconds
        gaps = []
        for f in got['hog']:
            near = min(got['retinaface'], key=lambda g: float(np.hypot(*(g.centre - f.centre))), default=None)
            if near is not None and np.hypot(*(near.centre - f.centre)) < 0.5 * f.width:
                gaps.append(round(agreement(f, near), 3))
        people = ''
        if args.people and got['retinaface']:
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                boxes = alignment.detect_people(photo, got['retinaface'])
                times.append(time.perf_counter() - t)
            seconds = statistics.median(times)
            people = (f'  people: {len(boxes)} in {seconds * 1000:.0f} ms '
                      f'({seconds / got["retinaface_s"]:.2f}x the faces)')
        print(f'{path.name[:34]:34s} {len(got["retinaface"]):3d} {got["retinaface_s"] * 1000:7.0f} ms '
              f'{len(got["hog"]):3d} {got["hog_s"] * 1000:7.0f} ms  {gaps}{people}', flush=True)
    print(f'total: retinaface {found["retinaface"]} faces in {total["retinaface"]:.2f} s, hog {found["hog"]} in '
          f'{total["hog"]:.2f} s; time ratio retinaface / hog {total["retinaface"] / total["hog"]:.2f}')


if __name__ == '__main__':
    main()
