"""What only a GPU shows, in one short run: a lent GPU session has minutes, not hours.

    python benchmarks/gpu.py [--device cuda] [--checkpoint random:512] [--quality fast balanced]
                             [--drag-steps 200] [--stylegan3 512] [--precision fp32 fp16]

Printed, each on the device given (the first lines say which):
- one whole edit of the bundled astronaut's face per stage (read, load, detect, align,
  invert, drag, paste; `pipeline.edit` with no cache), for each quality preset and inversion
  precision, and the faces per hour that makes. Random weights (`random:512`) give the speed,
  not the quality; with `--checkpoint stylegan2-ffhq-512` (where the file is in the cache) the
  same run gives both;
- drag steps per second on the generator alone (DragSession, fast mode, a drag that does not
  converge), and the same for a StyleGAN3-T and -R (FFHQ layouts, random weights) at the
  `--stylegan3` resolution (0 skips them).
`--projection-steps` / `--tuning-steps` shorten the inversion (a smoke run on the CPU:
`--device cpu --checkpoint random:64 --stylegan3 64 --drag-steps 5 --projection-steps 2
--tuning-steps 2`). A CUDA device is synchronised around every timing.
"""

import argparse
import time

import _measure  # noqa: F401  (sets sys.path first)
import torch


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def whole_edit(checkpoint: str, quality: str, precision: str, device: torch.device, drag_steps: int,
               projection_steps, tuning_steps) -> dict:
    """Seconds per stage of one edit of the demo photo's face (nothing cached)."""
    from photodrag import pipeline
    from photodrag.inversion import InversionConfig
    from photodrag.pipeline import demo
    photo, face = demo.demo_face()
    inversion = InversionConfig.preset(quality, precision=precision)
    steps = {k: v for k, v in (('projection_steps', projection_steps), ('tuning_steps', tuning_steps))
             if v is not None}
    if steps:
        inversion = inversion.replace(**steps)
    config = pipeline.EditConfig(checkpoint=checkpoint, device=str(device), max_steps=drag_steps, inversion=inversion)
    sync(device)
    t = time.perf_counter()
    result = pipeline.edit(photo, pipeline.FaceEdit(face=face.index, drags=demo.demo_drags(face)), config, cache=False)
    sync(device)
    timings = dict(result.record.timings)
    timings['wall'] = time.perf_counter() - t
    timings['drag steps'] = result.record.faces[0].drag['steps']
    return timings


def drag_rate(G, device: torch.device, steps: int) -> float:
    """Drag steps per second of G alone: one handle pulled far across the image."""
    from photodrag.drag import DragConfig, DragSession
    res = G.img_resolution
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)).to(device), None)
    session = DragSession(G, ws, [[0.3 * res, 0.5 * res]], [[0.7 * res, 0.5 * res]],
                          config=DragConfig(max_steps=steps + 3))
    for _ in range(3):                          # warm-up: kernels chosen, caches filled
        session.step()
    sync(device)
    t = time.perf_counter()
    done = 0
    while done < steps and not session.done:
        session.step()
        done += 1
    sync(device)
    return done / (time.perf_counter() - t)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--checkpoint', default='random:512')
    parser.add_argument('--quality', nargs='+', default=['fast', 'balanced'])
    parser.add_argument('--precision', nargs='+', default=['fp32'], help="inversion precision: fp32, bf16, fp16 (CUDA)")
    parser.add_argument('--drag-steps', type=int, default=200)
    parser.add_argument('--stylegan3', type=int, default=512, help='StyleGAN3 resolution for the drag rate (0: skip)')
    parser.add_argument('--projection-steps', type=int, default=None)
    parser.add_argument('--tuning-steps', type=int, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'torch {torch.__version__} on {name}; checkpoint {args.checkpoint}')

    stages = ('read', 'load', 'detect', 'align', 'invert', 'drag', 'paste')
    print(f'\nOne whole edit of the astronaut (demo drags, at most {args.drag_steps} drag steps, no cache), seconds:')
    print(f'{"quality":<10} {"precision":<9} ' + ' '.join(f'{s:>7}' for s in stages)
          + f' {"total":>7} {"steps":>6} {"faces/h":>8}')
    for quality in args.quality:
        for precision in args.precision:
            t = whole_edit(args.checkpoint, quality, precision, device, args.drag_steps, args.projection_steps,
                           args.tuning_steps)
            print(f'{quality:<10} {precision:<9} ' + ' '.join(f'{t.get(s, 0.0):7.2f}' for s in stages)
                  + f' {t["wall"]:7.2f} {t["drag steps"]:>6} {3600 / t["wall"]:8.0f}')

    from photodrag import checkpoints
    G = checkpoints.load_generator(args.checkpoint, device=device)
    print(f'\nDrag steps per second (fast mode, {args.drag_steps} steps):')
    print(f'  {args.checkpoint}: {drag_rate(G, device, args.drag_steps):.1f}')
    if args.stylegan3:
        from photodrag.stylegan.alias_free import AliasFreeGenerator
        layouts = {'T': dict(channel_base=32768, channel_max=512),
                   'R': dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True)}
        for config, kwargs in layouts.items():
            torch.manual_seed(0)
            G3 = AliasFreeGenerator(img_resolution=args.stylegan3, **kwargs).eval().requires_grad_(False).to(device)
            print(f'  StyleGAN3-{config} {args.stylegan3} px (random, FFHQ layout): '
                  f'{drag_rate(G3, device, min(args.drag_steps, 50)):.2f}')


if __name__ == '__main__':
    main()
