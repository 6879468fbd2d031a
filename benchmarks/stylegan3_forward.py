"""StyleGAN3 forward time and peak memory: NVIDIA's CPU route vs ours, configs T and R.

    python benchmarks/stylegan3_forward.py [--resolutions 256 512] [--repeat 3] [--nvidia PATH]

Random weights with NVIDIA's FFHQ layouts (T: channel_base 32768, channel_max 512; R:
65536 / 1024, 1x1 convolutions, radial filters), batch 1, on the CPU with torch's default
threads. The baseline, measured in the same run, is NVIDIA's fp32 CPU route restated plainly
(`tests/stylegan3_reference.py`: filtered_lrelu's reference path, upsampling by zero insertion
and full 2-D filtering). With `--nvidia PATH` (a checkout of NVlabs/stylegan3, not shipped:
its licence is non-commercial) the same weights also run through NVIDIA's own code.
Ratios are ours / baseline (lower is better).
"""

import argparse
import sys

import _measure  # noqa: F401  (sets sys.path and malloc behaviour first)
import torch

import stylegan3_reference as reference
from _measure import measure, mib
from photodrag.stylegan.alias_free import AliasFreeGenerator

CONFIGS = {'T': dict(channel_base=32768, channel_max=512),
           'R': dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True)}


def nvidia_copy(G, path):
    """NVIDIA's own Generator with G's weights (their code from `path`)."""
    sys.path.insert(0, path)
    from training.networks_stylegan3 import Generator    # noqa: E402 (their checkout, at run time only)
    k = dict(G.init_kwargs)
    k.pop('architecture')
    theirs = Generator(**k).eval().requires_grad_(False)
    theirs.load_state_dict(G.state_dict())
    return theirs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--resolutions', type=int, nargs='+', default=[256])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--nvidia', metavar='PATH', help='a checkout of NVlabs/stylegan3 to time as well')
    args = parser.parse_args()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads')
    print(f'{"res":>5} {"config":>6} {"path":<30} {"seconds":>8} {"peak memory":>12} {"time ratio":>10} {"mem ratio":>9}')
    for res in args.resolutions:
        for name, cfg in CONFIGS.items():
            torch.manual_seed(0)
            G = AliasFreeGenerator(img_resolution=res, **cfg).eval().requires_grad_(False)
            ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
            runs = {'NVIDIA route (fp32, restated)': lambda: reference.synthesis(G, ws),
                    'photodrag fp32': lambda: G.synthesis(ws),
                    'photodrag bf16 autocast': lambda: G.synthesis(ws, autocast=torch.bfloat16)}
            if args.nvidia:
                theirs = nvidia_copy(G, args.nvidia)
                runs['NVIDIA code (fp32)'] = lambda: theirs.synthesis(ws)
            base = None
            with torch.no_grad():
                for label, fn in runs.items():
                    seconds, peak = measure(fn, args.repeat)
                    base = base or (seconds, max(peak, 1))
                    print(f'{res:>5} {name:>6} {label:<30} {seconds:8.3f} {mib(peak):>12} {seconds / base[0]:10.2f} '
                          f'{peak / base[1]:9.2f}', flush=True)
            del G


if __name__ == '__main__':
    main()
