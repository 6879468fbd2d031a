"""Generator forward time and peak memory per resolution: NVIDIA's route vs ours (fp32, bf16).

    python benchmarks/generator_forward.py [--resolutions 256 512 1024] [--repeat 3]

Random weights with the FFHQ architecture (channel_base 32768, channel_max 512), batch 1,
noise 'const', on the CPU with torch's default threads. The baseline is NVIDIA's fp32 CPU
route restated op by op (`stylegan.reference`, path='official'), measured in the same run;
ratios are ours / baseline (lower is better).
"""

import argparse

import _measure  # noqa: F401  (sets sys.path and malloc behaviour first)
import torch

from photodrag import checkpoints
import stylegan_reference as reference
from _measure import measure, mib


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--resolutions', type=int, nargs='+', default=[256, 512])
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads')
    print(f'{"res":>5} {"path":<26} {"seconds":>8} {"peak memory":>12} {"time ratio":>10} {"mem ratio":>9}')
    for res in args.resolutions:
        G = checkpoints.random_generator(res)
        G.eval().requires_grad_(False)
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
        runs = {
            'NVIDIA route (fp32)': lambda: reference.synthesis(G, ws, noise_mode='const', path='official'),
            'photodrag fp32': lambda: G.synthesis(ws, noise_mode='const'),
            'photodrag bf16 autocast': lambda: G.synthesis(ws, noise_mode='const', autocast=torch.bfloat16),
        }
        base = None
        with torch.no_grad():
            for name, fn in runs.items():
                seconds, peak = measure(fn, args.repeat)
                base = base or (seconds, max(peak, 1))
                print(f'{res:>5} {name:<26} {seconds:8.3f} {mib(peak):>12} {seconds / base[0]:10.2f} '
                      f'{peak / base[1]:9.2f}')
        del G


if __name__ == '__main__':
    main()
