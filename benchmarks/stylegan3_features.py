"""Which StyleGAN3 layer's features should drive a drag: point tracking under exact motions.

    python benchmarks/stylegan3_features.py [--resolution 256] [--points 64] [--seeds 0 1] [--configs T R]

A drag tracks each handle by the nearest neighbour of its first feature in a window around
where it was (DragGAN's point tracking, `drag.tracking.track`, radius r2). A layer is good for
that when its features move with the content and tell nearby pixels apart. StyleGAN3 lets
the image be moved exactly: its Fourier-feature input takes a transform, and the whole
network is built to follow it (translation for config T, translation and rotation for R). So
for each layer this moves the image by known sub-pixel motions of the size a drag step makes
(translations of 1-4 px, rotations of 2-4 degrees about the centre, up to 5 px), tracks 64
points through the layer's features resized to the image (as the drag does) and reports how
far the tracked points land from where the content went (mean error in px, the share
within 1 px) and how clearly each feature picks out the place the content went against every
other pixel of the window (clarity: > 1 is clear). The RGB image is tracked the same way as a
baseline, and a step's generator time to a few layers is timed (forward to the layer and
backward from it).

No trained StyleGAN3 can be downloaded here: the generators are random-weight ones with
NVIDIA's FFHQ layouts (T: 14 layers, channel_base 32768; R: 65536, 1x1 convolutions, radial
filters), so this measures what the architecture gives the tracker (equivariance and
locality), not what training adds (semantics); several seeds show how much it varies.
"""

import argparse
import math
import time

import _measure  # noqa: F401  (sets sys.path first)
import numpy as np
import torch
import torch.nn.functional as F

from photodrag.drag.config import DragConfig
from photodrag.drag.features import FullResFeatures, window
from photodrag.drag.tracking import track
from photodrag.stylegan.alias_free import AliasFreeGenerator

CONFIGS = {'T': dict(channel_base=32768, channel_max=512),
           'R': dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True)}
# (dx px, dy px, degrees): the motions of a few drag steps
# (dx px, dy px, degrees) at 256 px (scaled with the resolution): the motions of a few drag steps
MOTIONS = {'T': [(1.3, 0.6, 0), (-2.4, 1.7, 0), (0.8, -4.1, 0), (3.6, 2.2, 0)],
           'R': [(1.3, 0.6, 0), (-3.4, 1.7, 0), (0, 0, 2.0), (0, 0, -4.0)]}


def motion_matrix(dx: float, dy: float, degrees: float, resolution: int) -> np.ndarray:
    """The motion as a 3x3 matrix on image coordinates in image widths (centre 0): rotation
    about the centre, then a translation of (dx, dy) pixels."""
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), dx / resolution],
                     [math.sin(a), math.cos(a), dy / resolution], [0, 0, 1]])


def to_pixels(m: np.ndarray, xy: np.ndarray, resolution: int) -> np.ndarray:
    """Where pixel centres `xy` [N, 2] go under motion `m` (pixel u is at (u + 0.5) / R - 0.5)."""
    u = (xy + 0.5) / resolution - 0.5
    moved = u @ m[:2, :2].T + m[:2, 2]
    return (moved + 0.5) * resolution - 0.5


def render(G, ws, m: np.ndarray):
    """Every layer's map (image area) and the image, with the content moved by `m`."""
    G.synthesis.input.transform.copy_(torch.from_numpy(np.linalg.inv(m)).float())
    out = G.synthesis.features(ws, return_image=True)
    maps = {k: G.synthesis.image_area(x, k) for k, x in out.features.items()}
    return maps, out.image


def errors(before: torch.Tensor, after: torch.Tensor, points: np.ndarray, expected: np.ndarray, radius: int,
           resolution: int) -> np.ndarray:
    """[N, 2]: the distance from each tracked point to where the content went, and how clearly
    the feature picks it out (the smallest feature distance more than 1.5 px from the true
    place, over the feature distance at the true place: > 1 when no pixel in the window looks
    more like the handle than the place its content went)."""
    f0, f1 = FullResFeatures(before, resolution), FullResFeatures(after, resolution)
    handles = torch.from_numpy(points).float()
    refs = f0.at(handles)
    found = track(f1, handles, refs, radius)
    true = torch.from_numpy(expected).float()
    out = np.hypot(*(found.numpy() - expected).T)
    clarity = []
    for handle, ref, where in zip(handles, refs, true):
        pixels = window(handle, radius, resolution)
        far = (pixels - where).norm(dim=1) > 1.5
        other = (f1.at(pixels[far]) - ref).norm(dim=1).min()
        at_true = (f1.bilinear(where[None])[0] - ref).norm()
        clarity.append(float(other / at_true.clamp_min(1e-12)))
    return np.stack([out, np.array(clarity)], 1)


def step_seconds(G, blocks) -> dict:
    """Seconds of one drag step's generator work with features from each block: the forward
    pass to the block and the backward pass of a loss on its map to w (what motion supervision
    costs; the image is finished from the block once per step either way)."""
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None).detach()
    out = {}
    for k in blocks:
        times = []
        for _ in range(2):
            w = ws.clone().requires_grad_(True)
            t = time.perf_counter()
            x = G.synthesis.features(w, stop_after=k, collect=[k]).features[k]
            x.square().mean().backward()
            times.append(time.perf_counter() - t)
        out[k] = min(times)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--resolution', type=int, default=256)
    parser.add_argument('--points', type=int, default=64)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--configs', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    res = args.resolution
    radius = DragConfig().search_radius(res)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {res} px, tracking radius r2 = '
          f'{radius} px ({DragConfig().r2:g} at 512), {args.points} points x {len(MOTIONS["T"])} motions x '
          f'{len(args.seeds)} seeds')
    for name in args.configs:
        table = {}
        t0 = time.perf_counter()
        for seed in args.seeds:
            torch.manual_seed(seed)
            G = AliasFreeGenerator(img_resolution=res, **CONFIGS[name]).eval().requires_grad_(False)
            ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed)), None)
            rng = np.random.default_rng(seed)
            with torch.no_grad():
                maps0, img0 = render(G, ws, np.eye(3))
                for dx, dy, deg in MOTIONS[name]:
                    m = motion_matrix(dx * res / 256, dy * res / 256, deg, res)
                    maps1, img1 = render(G, ws, m)
                    # points in the middle, where a rotation moves them at most ~5 px
                    points = rng.integers(int(0.25 * res), int(0.75 * res), size=(args.points, 2)).astype(np.float64)
                    expected = to_pixels(m, points, res)
                    for k in sorted(maps0):
                        table.setdefault(k, []).append(errors(maps0[k], maps1[k], points, expected, radius, res))
                    table.setdefault('RGB', []).append(errors(img0, img1, points, expected, radius, res))
            del G
        G = AliasFreeGenerator(img_resolution=res, **CONFIGS[name]).eval().requires_grad_(False)
        plan = G.synthesis.plan
        cost = step_seconds(G, [k for k in (4, 6, 8, 10, 12) if k <= G.synthesis.num_layers])
        print(f'\nconfig {name} ({time.perf_counter() - t0:.0f} s): block (layer): map size, channels -> '
              'mean tracking error px, within 1 px, '
              'median clarity, share < 1 (a pixel elsewhere looks more like the handle), a step\'s generator '
              'time to the block')
        best = max((k for k in table if k != 'RGB'), key=lambda k: float(np.median(np.concatenate(table[k])[:, 1])))
        for k in [k for k in table if k != 'RGB'] + ['RGB']:
            e, clear = np.concatenate(table[k]).T
            mark = ''
            if k == 'RGB':
                label = 'image (RGB)'
            else:
                layer = plan.layers[k - 1]
                label = f"{k:>2} (L{k - 1}): {layer.out_rate:>4} px, {layer.out_channels:>4} ch"
                if k in cost and 6 in cost:
                    mark = f'  step {cost[k]:.1f} s ({cost[k] / cost[6]:.2f}x L5)'
            mark += '  <- clearest' if k == best else ('  <- default (DragGAN: L5)' if k == 6 else '')
            print(f'  {label:<30} {e.mean():6.2f} px  {100 * (e <= 1).mean():5.1f} %  {np.median(clear):6.2f}  '
                  f'{100 * (clear < 1).mean():5.1f} %{mark}')


if __name__ == '__main__':
    main()
