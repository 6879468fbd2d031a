"""A tiny generator fitted in seconds whose features mean something: it draws an orange
blob on blue, at a position that is a linear function of w. Dragging must move the blob;
random-weight generators cannot show that (their tracking "converges" while nothing moves).
"""

import torch

from photodrag import stylegan

R = 32                       # image size
SPREAD = 10.0                # the blob centre is 15.5 + SPREAD * p for p in [-1, 1]^2


class BlobWorld:
    """make: builds the (untrained) generator to fit, any family with w_dim 512 and 32 px
    (default: a small StyleGAN2)."""

    def __init__(self, seed: int = 0, steps: int = 400, make=None, lr: float = 0.01):
        g = torch.Generator().manual_seed(seed)
        u, v = torch.randn(512, generator=g), torch.randn(512, generator=g)
        self.u, self.v = u / u.norm() * 4, v / v.norm() * 4
        yy, xx = torch.meshgrid(torch.arange(R).float(), torch.arange(R).float(), indexing='ij')
        self.xx, self.yy = xx, yy
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.G = make() if make is not None else stylegan.Generator(
                img_resolution=R, channel_base=512, channel_max=64, mapping_kwargs=dict(num_layers=2))
            self._fit(steps, lr)
        self.G.eval().requires_grad_(False)

    def latent(self, p: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        """ws [N, num_ws, 512] for blob positions p [N, 2] in [-1, 1]."""
        w = p[:, :1] * self.u + p[:, 1:] * self.v
        if noise:
            w = w + noise * torch.randn_like(w)
        return w[:, None].repeat(1, self.G.num_ws, 1)

    def image(self, p: torch.Tensor, sigma: float = 2.5) -> torch.Tensor:
        c = 15.5 + SPREAD * p
        d2 = (self.xx[None] - c[:, :1, None]) ** 2 + (self.yy[None] - c[:, 1:, None]) ** 2
        blob = torch.exp(-d2 / (2 * sigma ** 2))
        return torch.stack([blob, blob * 0.5, 1 - blob], 1) * 2 - 1

    def _fit(self, steps: int, lr: float) -> None:
        # Off-manifold noise in w teaches the network to ignore the other directions.
        opt = torch.optim.Adam(self.G.synthesis.parameters(), lr=lr, betas=(0.5, 0.99))
        for _ in range(steps):
            p = torch.rand(16, 2) * 2 - 1
            out = self.G.synthesis(self.latent(p, noise=0.15), noise_mode='const')
            loss = (out - self.image(p)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.final_loss = float(loss.detach())

    def locate(self, img: torch.Tensor) -> torch.Tensor:
        """Centre (x, y) of the blob in a rendered image [1, 3, R, R], from its red channel."""
        m = ((img[0, 0] + 1) / 2).clamp(0, 1)
        m = (m - 0.5 * m.max()).clamp(min=0)
        return torch.stack([(m * self.xx).sum() / m.sum(), (m * self.yy).sum() / m.sum()])
