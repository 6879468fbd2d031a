"""Which StyleGAN3 layer should drive a drag? Each layer's features against the others, on a
small StyleGAN3 fitted to draw a movable blob (no pretrained StyleGAN3 can be downloaded here).

    python benchmarks/stylegan3_feature_block.py [--steps 600] [--layers 8] [--config T]

A 32 px AliasFreeGenerator (`--layers` layers, 2 critically sampled, margin 4) is fitted for
`--steps` Adam steps to draw an orange blob on blue whose position is a linear function of w
(`tests/blobs.py`, as the drag tests' StyleGAN2 world). Then, for each feature block (layer
L{k-1}), the same drags as `tests/test_drag_content.py` (8 px, four directions, DragGAN's
options, 100 steps at most): the share of the way the blob went, measured in the image.
DragGAN takes layer L5 (block 6) of its 14-layer models: the same relative depth here is
given for comparison.
"""

import argparse

import _measure  # noqa: F401  (sets sys.path first)
import torch

from blobs import BlobWorld
from photodrag.drag import DragConfig, DragSession
from photodrag.stylegan.alias_free import AliasFreeGenerator

CASES = [((-0.3, -0.2), (8, 4)), ((0.3, 0.2), (-8, -4)), ((0.0, 0.0), (0, 8)), ((0.2, -0.3), (-6, 6))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=600)
    ap.add_argument('--layers', type=int, default=8)
    ap.add_argument('--config', choices=['T', 'R'], default='T')
    args = ap.parse_args()
    extra = dict(conv_kernel=1, use_radial_filters=True) if args.config == 'R' else {}

    def make():
        return AliasFreeGenerator(z_dim=512, w_dim=512, img_resolution=32, channel_base=2048, channel_max=64,
                                  num_layers=args.layers, margin_size=4, mapping_kwargs=dict(num_layers=2), **extra)
    world = BlobWorld(seed=0, steps=args.steps, make=make, lr=0.005)
    print(f'StyleGAN3-{args.config}, {args.layers} layers, fitted in {args.steps} steps: image MSE {world.final_loss:.4f}')
    rates = [lp.out_rate for lp in world.G.synthesis.plan.layers[:-1]]
    print(f'{"block":>5} {"layer":>12} {"rate":>5} {"share of the way (4 drags)":>30} {"mean":>6}')
    for block in range(1, args.layers + 1):
        config = DragConfig(feature_block=block, r1=48, r2=96, latent_space='w', lr=0.02, max_steps=100,
                            stop_distance=1, tracking='features', supervision='shift', content_check=False, patience=0)
        shares = []
        for start, move in CASES:
            w = world.latent(torch.tensor([start]))
            before = world.locate(world.G.synthesis(w))
            target = before + torch.tensor(move, dtype=torch.float32)
            session = DragSession(world.G, w, [tuple(before.round().tolist())], [tuple(target.round().tolist())],
                                  config=config)
            session.run()
            wanted = torch.tensor(move, dtype=torch.float32)
            shares.append(float((world.locate(session.render()) - before) @ wanted / wanted.norm() ** 2))
        name = world.G.synthesis.layer_names[block - 1]
        print(f'{block:>5} {name:>12} {rates[block - 1]:>5} {" ".join(f"{v:6.2f}" for v in shares):>30} '
              f'{sum(shares) / len(shares):6.2f}', flush=True)
    print(f'DragGAN\'s L5 of 14 layers is at {6 / 14:.2f} of the depth: block {round(6 / 14 * args.layers)} here')


if __name__ == '__main__':
    main()
