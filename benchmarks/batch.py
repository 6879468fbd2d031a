"""Batch throughput: photos per minute of the local and the Ray engine, their per-item
overhead, and where an item's time goes.

    python3 benchmarks/batch.py [--photos 6] [--steps 50] [--quality fast] [--projection-steps N --tuning-steps N]
                                [--checkpoint demo-faces] [--no-ray]

The photos are copies of the bundled astronaut (one face each) in a temporary folder, so
after the first every inversion comes from the cache and what is left is the drag, the
paste, the files and the engine itself. Printed per engine: photos/min with the inversion
cached, the item's wall time against the time its edit reports (the rest is the engine's
overhead: reading, detection, writing the photo, record and manifest, and for Ray the
scheduling and the actor round trip), and the split of one cold item (inversion included)
by stage.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--photos', type=int, default=6)
    ap.add_argument('--steps', type=int, default=50)
    ap.add_argument('--quality', default='fast')
    ap.add_argument('--projection-steps', type=int, default=None)
    ap.add_argument('--tuning-steps', type=int, default=None)
    ap.add_argument('--checkpoint', default='demo-faces')
    ap.add_argument('--no-ray', action='store_true')
    args = ap.parse_args()

    import photodrag
    from photodrag.pipeline.demo import DEMO_PHOTO

    root = Path(tempfile.mkdtemp(prefix='photodrag-batch-bench-'))
    os.environ['PHOTODRAG_CACHE'] = str(root / 'cache')
    (root / 'photos').mkdir()
    for i in range(args.photos):
        shutil.copy(DEMO_PHOTO, root / 'photos' / f'p{i:03d}.png')
    inversion = {k: v for k, v in (('projection_steps', args.projection_steps), ('tuning_steps', args.tuning_steps))
                 if v is not None}

    def recipe(folder, inputs):
        r = {'inputs': inputs, 'faces': 'all', 'edits': [{'preset': 'smile', 'strength': 0.5}],
             'checkpoint': args.checkpoint, 'quality': args.quality, 'drag': {'max_steps': args.steps},
             'output': {'folder': folder}, 'device': 'cpu'}
        if inversion:
            r['inversion'] = inversion
        path = root / f'{folder}.json'
        path.write_text(json.dumps(r))
        return path

    t = time.perf_counter()
    cold = photodrag.batch(recipe('cold', ['photos/p000.png']))
    cold_s = time.perf_counter() - t
    stages = cold.items[0].timings

    def run(engine, folder):
        t0 = time.perf_counter()
        result = photodrag.batch(recipe(folder, ['photos/*.png']), engine=engine)
        wall = time.perf_counter() - t0
        assert result.counts == {'done': args.photos}, result.counts
        edit = statistics.mean(it.timings['total'] for it in result.items)
        return wall, edit

    rows = [('local',) + run('local', 'local')]
    if not args.no_ray:
        import ray
        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - t0
        rows.append(('ray',) + run('ray', 'ray'))
        ray.shutdown()
    print(f'{args.checkpoint}, quality {args.quality} {inversion or ""}, {args.steps} drag steps, {args.photos} '
          f'one-face photos, CPU x{os.cpu_count()}')
    print(f'  cold item (inversion computed): {cold_s:.1f} s; its stages: ' +
          ', '.join(f'{k} {v:.2f} s' for k, v in stages.items() if k not in ('total', 'item')))
    base = rows[0][1] / args.photos
    for name, wall, edit in rows:
        per = wall / args.photos
        print(f'  {name:5s} cached: {60 / per:6.1f} photos/min; {per:.2f} s per item, of which the edit {edit:.2f} s, '
              f'overhead {per - edit:.2f} s' + (f' ({per / base:.2f}x local)' if name != 'local' else ''))
    if not args.no_ray:
        print(f'  (ray.init itself: {ray_start:.1f} s, once per batch)')


if __name__ == '__main__':
    main()
