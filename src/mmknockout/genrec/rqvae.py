"""RQ-VAE item tokeniser (TIGER's recipe): an MLP auto-encoder whose latent is quantised by ``levels``
residual codebooks of ``codebook_size`` codes each.

For an item embedding x: z = E(x), r_1 = z; per level l, c_l = argmin_k ||r_l - e^l_k||^2 and
r_{l+1} = r_l - e^l_{c_l}; the quantised latent is z_q = sum_l e^l_{c_l}, passed to the decoder with
the straight-through estimator (z + sg[z_q - z]). The loss is

    ||x - D(z_q)||^2 + sum_l ( ||sg[r_l] - e^l_{c_l}||^2 + beta ||r_l - sg[e^l_{c_l}]||^2 ).

Each codebook is initialised by k-means on the first batch's residuals at its level. The semantic ID
of an item is (c_1, ..., c_m); :func:`dedup_digit` adds the digit that makes IDs unique.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import InputError


@dataclass(frozen=True)
class RQVAEConfig:
    hidden: tuple[int, ...] = (512, 256, 128)
    latent: int = 32
    levels: int = 3
    codebook_size: int = 256
    beta: float = 0.25
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    steps: int = 20000


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    def __init__(self, in_dim: int, cfg: RQVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = _mlp([in_dim, *cfg.hidden, cfg.latent])
        self.decoder = _mlp([cfg.latent, *reversed(cfg.hidden), in_dim])
        self.codebooks = nn.Parameter(torch.randn(cfg.levels, cfg.codebook_size, cfg.latent) / math.sqrt(cfg.latent))

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(codes [n, levels], z_q [n, latent], codebook + commitment loss) of latents ``z``."""
        residual, z_q = z, torch.zeros_like(z)
        codes, loss = [], z.new_zeros(())
        for level in range(self.cfg.levels):
            book = self.codebooks[level]
            c = torch.cdist(residual.detach(), book.detach()).argmin(dim=1)
            e = book[c]
            loss = loss + ((residual.detach() - e) ** 2).sum(1).mean()
            loss = loss + self.cfg.beta * ((residual - e.detach()) ** 2).sum(1).mean()
            codes.append(c)
            z_q = z_q + e
            residual = residual - e
        return torch.stack(codes, dim=1), z_q, loss

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, codes) of a batch."""
        z = self.encoder(x)
        codes, z_q, vq_loss = self.quantise(z)
        x_hat = self.decoder(z + (z_q - z).detach())
        return ((x - x_hat) ** 2).sum(1).mean() + vq_loss, codes

    @torch.no_grad()
    def kmeans_init(self, x: torch.Tensor, seed: int) -> None:
        """Each level's codebook = the k-means centroids of that level's residuals on ``x``."""
        from sklearn.cluster import KMeans

        residual = self.encoder(x)
        for level in range(self.cfg.levels):
            data = residual.cpu().double().numpy()
            with warnings.catch_warnings():  # fewer distinct points than codes (constant features)
                warnings.simplefilter("ignore")
                km = KMeans(self.cfg.codebook_size, n_init=1, random_state=seed).fit(data)
            centres = torch.as_tensor(km.cluster_centers_, dtype=x.dtype, device=x.device)
            self.codebooks[level] = centres
            residual = residual - centres[torch.cdist(residual, centres).argmin(dim=1)]

    @torch.no_grad()
    def codes(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        return torch.cat([self.quantise(self.encoder(b))[0] for b in x.split(batch_size)])


def train_rqvae(
    features: np.ndarray, cfg: RQVAEConfig, seed: int, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, list[float]]:
    """Train an RQ-VAE on ``features`` [n_items, dim] for ``cfg.steps`` steps of random mini-batches
    (AdamW); returns the items' codes [n_items, levels] and the loss of every 100th step."""
    n = len(features)
    if cfg.codebook_size > n:
        raise InputError(f"rqvae.codebook_size {cfg.codebook_size} exceeds the number of items {n}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32), device=device)
    model = RQVAE(x.shape[1], cfg).to(device)
    first = torch.as_tensor(rng.permutation(n)[: max(cfg.batch_size, cfg.codebook_size)], device=device)
    model.kmeans_init(x[first], seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    losses = []
    for step in range(cfg.steps):
        batch = torch.as_tensor(rng.integers(0, n, cfg.batch_size), device=device)
        loss, _ = model(x[batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            losses.append(float(loss.detach()))
    model.eval()
    return model.codes(x).cpu().numpy().astype(np.int64), losses


def dedup_digit(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """The digit that tells apart items with the same code tuple (0, 1, ... in item order within each
    group) and its range: the size of the largest collision group (1 when every ID is unique)."""
    _, group = np.unique(codes, axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    first = np.cumsum(sizes) - sizes
    digit = np.empty(len(codes), dtype=np.int64)
    digit[order] = np.arange(len(codes)) - np.repeat(first, sizes)
    return digit, int(sizes.max()) if len(sizes) else 0
