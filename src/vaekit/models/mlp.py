"""The classic MLP VAE (Kingma & Welling 2013): 784-400-20 by default, any hidden layers allowed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vaekit.models.gaussian import GaussianVAE, Posterior


def check_hidden(hidden: Sequence[int]) -> list[int]:
    """The hidden layers' sizes as a list, each an integer >= 1 (ValueError otherwise: nn.Linear would
    build a layer of 0 units without a word, and fail on a negative size with torch's own message)."""
    if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"hidden must be sizes >= 1, got {list(hidden)}")
    return list(hidden)


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
        hidden = check_hidden(hidden)
        super().__init__(
            image_shape=list(image_shape),
            latent_dim=latent_dim,
            hidden=hidden,
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
