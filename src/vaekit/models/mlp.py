"""The classic MLP VAE (Kingma & Welling 2013): 784-400-20 by default, any hidden layers allowed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vaekit.models.gaussian import GaussianVAE, Posterior


def mlp_layers(sizes: Sequence[int]) -> list[nn.Module]:
    """Linear layers between consecutive sizes, each followed by ReLU."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return layers


class MLPVAE(GaussianVAE):
    name = "mlp"

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 20,
        hidden: Sequence[int] = (400,),
        likelihood: str = "bernoulli",
        decoder_std: float | None = None,
        **parts: Any,
    ) -> None:
        super().__init__(
            image_shape=list(image_shape),
            latent_dim=latent_dim,
            hidden=list(hidden),
            likelihood=likelihood,
            decoder_std=decoder_std,
            **parts,
        )
        n_pixels = math.prod(image_shape)
        encoder_sizes = [n_pixels, *hidden]
        self.encoder = nn.Sequential(nn.Flatten(), *mlp_layers(encoder_sizes))
        # One head for mean and log-variance together: a single matmul instead of two.
        self.posterior = nn.Linear(encoder_sizes[-1], 2 * latent_dim)
        decoder_sizes = [latent_dim, *reversed(hidden)]
        self.decoder = nn.Sequential(
            *mlp_layers(decoder_sizes),
            nn.Linear(decoder_sizes[-1], n_pixels),
            nn.Unflatten(1, tuple(image_shape)),
        )

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        mu, logvar = self.posterior(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)
