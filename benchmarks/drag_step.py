"""Seconds per drag step and peak memory: DragGAN's reference mode vs our fast modes.

    python benchmarks/drag_step.py [--resolutions 512 256] [--steps 5]

One process, random weights with the FFHQ-512 architecture (channel_base 32768,
channel_max 512), the same drag (two handles, w+ on the first 6 ws) in every mode. The
baseline is the reference mode (what DragGAN's code does: full render every step, features
resized to full resolution), measured in the same run; ratios are mode / reference.
Targets on a 2-core CPU: fp32 time <= 0.6x, bf16 time <= 0.3x, peak memory <= 0.5x.
"""

import argparse
import statistics
import time

import _measure  # noqa: F401  (sets sys.path and malloc behaviour first)
import torch

from photodrag import checkpoints
from photodrag import stylegan
from _measure import PeakRSS, mib, trim
from photodrag.drag import DragConfig, DragSession

MODES = [('reference fp32', dict(mode='reference')),
         ('fast fp32', dict(mode='fast')),
         ('fast bf16', dict(mode='fast', precision='bf16'))]


def run_mode(G, w, points, steps, **config):
    """Median seconds per optimisation step (after one warm-up step) and peak RSS."""
    handles, targets = points
    session = DragSession(G, w, handles, targets, config=DragConfig(max_steps=steps + 1, stop_distance=0, **config))
    session.step()          # warm-up: first forward, reference capture
    times = []
    with PeakRSS() as memory:
        for _ in range(steps):
            t0 = time.perf_counter()
            session.step()
            times.append(time.perf_counter() - t0)
    handles = session.handles
    del session
    trim()
    return statistics.median(times), memory.peak, handles


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--resolutions', type=int, nargs='+', default=[512, 256])
    parser.add_argument('--steps', type=int, default=5)
    args = parser.parse_args()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {args.steps} timed steps per mode')
    print(f'{"res":>5} {"mode":<16} {"s/step":>7} {"peak memory":>12} {"time ratio":>10} {"mem ratio":>9}  handles after')
    for res in args.resolutions:
        G = checkpoints.random_generator(res).eval().requires_grad_(False)
        w = stylegan.w_from_seed(G, 0, truncation_psi=0.7)
        s = res / 512
        points = ([(200 * s, 240 * s), (330 * s, 300 * s)], [(260 * s, 220 * s), (300 * s, 340 * s)])
        base = None
        for name, config in MODES:
            seconds, peak, handles = run_mode(G, w, points, args.steps, **config)
            base = base or (seconds, max(peak, 1))
            shown = ' '.join(f'({x:.0f},{y:.0f})' for x, y in handles)
            print(f'{res:>5} {name:<16} {seconds:7.3f} {mib(peak):>12} {seconds / base[0]:10.2f} '
                  f'{peak / base[1]:9.2f}  {shown}')
        del G
        trim()


if __name__ == '__main__':
    main()
