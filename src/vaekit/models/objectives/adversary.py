"""What the adversarial objectives share (FactorVAE's discriminator, WAE-GAN's adversary): the network
that tells two sets of codes apart, its loss, and the frozen reading through which the encoder is
trained against it.

Both objectives train the VAE and the discriminator in one backward pass: the discriminator's loss sees
only detached codes (``cross_entropy``), and the VAE's term reads the discriminator through detached
weights (``read_frozen``), so each part gets exactly its own gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class Discriminator(nn.Module):
    """An MLP with LeakyReLU(0.2) from z [B, D] to a logit [B]."""

    def __init__(self, latent_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        if not hidden or min(hidden) < 1:
            raise ValueError(f"discriminator hidden sizes must be integers >= 1, got {list(hidden)}")
        sizes = [latent_dim, *hidden]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


def cross_entropy(logits_of_ones: torch.Tensor, logits_of_zeros: torch.Tensor) -> torch.Tensor:
    """A discriminator's loss, -mean log D(a) - mean log(1 - D(b)), from its logits on the set labelled 1
    [B] and on the set labelled 0 [B'] (D the sigmoid of the logit): log 4 = 1.39 when it cannot tell."""
    ones = F.binary_cross_entropy_with_logits(logits_of_ones, torch.ones_like(logits_of_ones))
    return ones + F.binary_cross_entropy_with_logits(logits_of_zeros, torch.zeros_like(logits_of_zeros))


def read_frozen(discriminator: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The discriminator's logits [B] on z [B, D] through detached weights: a term built on them trains
    what made z, never the discriminator."""
    frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
    return functional_call(discriminator, frozen, (z,))
