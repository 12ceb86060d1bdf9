"""A convolutional VAE: strided convolutions down to a small feature map, transposed ones back up.

Default (28x28 MNIST): encoder Conv2d(1,32,4,2,1) ReLU Conv2d(32,64,4,2,1) ReLU, flatten 64x7x7, one
linear head for mu and logvar; decoder Linear(latent, 64x7x7) ReLU, ConvTranspose2d(64,32,4,2,1) ReLU,
ConvTranspose2d(32,1,4,2,1) to logits. Each layer halves (or doubles) the sides, so any image whose
sides divide by 2^len(channels) works: 8x8 digits, 28x28, 32x32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vaekit.models.base import GaussianVAE, Posterior


class ConvVAE(GaussianVAE):
    name = "conv"

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 20,
        channels: Sequence[int] = (32, 64),
        likelihood: str = "bernoulli",
        decoder_std: float | None = None,
    ) -> None:
        super().__init__(
            image_shape=list(image_shape),
            latent_dim=latent_dim,
            channels=list(channels),
            likelihood=likelihood,
            decoder_std=decoder_std,
        )
        in_channels, height, width = image_shape
        factor = 2 ** len(channels)
        if not channels or any(c < 1 for c in channels):
            raise ValueError(f"channels must be one or more sizes >= 1, got {list(channels)}")
        if height % factor or width % factor:
            raise ValueError(
                f"{len(channels)} conv layers halve the image {len(channels)} times, so its sides must "
                f"divide by {factor}; got {height}x{width} (use fewer --channels or the mlp model)"
            )
        self.feature_shape = (channels[-1], height // factor, width // factor)
        n_features = channels[-1] * (height // factor) * (width // factor)
        down: list[nn.Module] = []
        for c_in, c_out in zip([in_channels, *channels[:-1]], channels, strict=True):
            down += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Flatten())
        self.posterior = nn.Linear(n_features, 2 * latent_dim)
        up: list[nn.Module] = [
            nn.Linear(latent_dim, n_features),
            nn.ReLU(),
            nn.Unflatten(1, self.feature_shape),
        ]
        reversed_channels = [*reversed(channels), in_channels]
        for i, (c_in, c_out) in enumerate(zip(reversed_channels[:-1], reversed_channels[1:], strict=True)):
            up.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
            if i < len(channels) - 1:  # the last layer gives logits
                up.append(nn.ReLU())
        self.decoder = nn.Sequential(*up)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        mu, logvar = self.posterior(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)
