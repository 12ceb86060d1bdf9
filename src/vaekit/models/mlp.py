"""The classic MLP VAE (Kingma & Welling 2013): 784-400-20 by default, any hidden layers allowed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vaekit.models.base import VAE


def _mlp(sizes: Sequence[int]) -> list[nn.Module]:
    """Linear layers between consecutive sizes, each followed by ReLU."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return layers


class MLPVAE(VAE):
    name = "mlp"

    def __init__(
        self, image_shape: Sequence[int] = (1, 28, 28), latent_dim: int = 20, hidden: Sequence[int] = (400,)
    ) -> None:
        super().__init__(image_shape=list(image_shape), latent_dim=latent_dim, hidden=list(hidden))
        n_pixels = int(torch.tensor(image_shape).prod())
        encoder_sizes = [n_pixels, *hidden]
        self.encoder = nn.Sequential(nn.Flatten(), *_mlp(encoder_sizes))
        # One head for mean and log-variance together: a single matmul instead of two.
        self.posterior = nn.Linear(encoder_sizes[-1], 2 * latent_dim)
        decoder_sizes = [latent_dim, *reversed(hidden)]
        self.decoder = nn.Sequential(
            *_mlp(decoder_sizes), nn.Linear(decoder_sizes[-1], n_pixels), nn.Unflatten(1, tuple(image_shape))
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.posterior(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
