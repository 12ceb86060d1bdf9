"""A convolutional VAE: strided convolutions down to a small feature map, transposed ones back up.

Default (28x28 MNIST): encoder Conv2d(1,32,4,2,1) ReLU Conv2d(32,64,4,2,1) ReLU, flatten 64x7x7, one
linear head for mu and logvar; decoder Linear(latent, 64x7x7) ReLU, ConvTranspose2d(64,32,4,2,1) ReLU,
ConvTranspose2d(32,1,4,2,1) to logits. Each layer halves (or doubles) the sides; an image whose sides
do not divide by 2^len(channels) is zero-padded on the way in and cropped on the way out (28x28 with
three layers works on 32x32), so any size and any depth work.

``hidden`` puts fully-connected layers (each + ReLU) between the feature map and the latent, mirrored in
the decoder. None by default; the disentanglement papers' network (Higgins et al. 2017, Table 1; Locatello
et al. 2019, whose disentanglement_lib builds it) is ``channels=(32, 32, 64, 64), hidden=(256,)`` at 64x64:
four convolutions, a 256-unit layer, the heads; the decoder 256 then 4x4x64 units, four transposed ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models.gaussian import GaussianVAE, Posterior
from vaekit.models.mlp import check_hidden, mlp_layers


def padding(image_shape: Sequence[int], channels: Sequence[int]) -> tuple[int, int, int, int]:
    """Zero padding (left, right, top, bottom) that makes the sides divide by 2^len(channels), split as
    evenly as it goes: the encoder pads the image by it and the decoder crops its output back."""
    if not channels or any(c < 1 for c in channels):
        raise ValueError(f"channels must be one or more sizes >= 1, got {list(channels)}")
    _, height, width = image_shape
    factor = 2 ** len(channels)
    pad_h, pad_w = -height % factor, -width % factor
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def feature_grid(image_shape: Sequence[int], channels: Sequence[int]) -> tuple[int, int]:
    """The (height, width) left after ``len(channels)`` halvings of the padded image."""
    left, right, top, bottom = padding(image_shape, channels)
    _, height, width = image_shape
    factor = 2 ** len(channels)
    return (height + top + bottom) // factor, (width + left + right) // factor


def pad(x: torch.Tensor, sides: tuple[int, int, int, int]) -> torch.Tensor:
    return F.pad(x, sides) if any(sides) else x


def crop(x: torch.Tensor, sides: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = sides
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right] if any(sides) else x


def downsampling(in_channels: int, channels: Sequence[int]) -> list[nn.Module]:
    """Conv2d(c_in, c_out, 4, 2, 1) + ReLU for each entry of ``channels``: each halves the sides."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip([in_channels, *channels[:-1]], channels, strict=True):
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
    return layers


def upsampling(channels: Sequence[int], out_channels: int) -> list[nn.Module]:
    """ConvTranspose2d(4, 2, 1) layers mirroring ``downsampling``, ReLU between them and none after
    the last, which gives the pixel logits: each doubles the sides."""
    sizes = [*reversed(channels), out_channels]
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
        if i < len(channels) - 1:
            layers.append(nn.ReLU())
    return layers


class ConvVAE(GaussianVAE):
    name = "conv"

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 20,
        channels: Sequence[int] = (32, 64),
        hidden: Sequence[int] = (),
        likelihood: str = "bernoulli",
        decoder_std: float | None = None,
        **parts: Any,
    ) -> None:
        hidden = check_hidden(hidden)
        super().__init__(
            image_shape=list(image_shape),
            latent_dim=latent_dim,
            channels=list(channels),
            hidden=hidden,
            likelihood=likelihood,
            decoder_std=decoder_std,
            **parts,
        )
        self.padding = padding(image_shape, channels)
        self.feature_shape = (channels[-1], *feature_grid(image_shape, channels))
        # With no hidden layers the modules (and so the weights' names) are the ones the conv had before
        # `hidden` existed: its older runs load unchanged.
        encoder_sizes = [math.prod(self.feature_shape), *hidden]
        self.encoder = nn.Sequential(
            *downsampling(image_shape[0], channels), nn.Flatten(), *mlp_layers(encoder_sizes)
        )
        self.posterior = nn.Linear(encoder_sizes[-1], 2 * latent_dim)
        self.decoder = nn.Sequential(
            *mlp_layers([latent_dim, *reversed(encoder_sizes)]),
            nn.Unflatten(1, self.feature_shape),
            *upsampling(channels, image_shape[0]),
        )

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        mu, logvar = self.posterior(self.encoder(pad(x, self.padding))).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return crop(self.decoder(z), self.padding)
