"""The diagonal Gaussian posterior q(z|x) = N(mean, diag(exp(logvar))) of the Gaussian-latent VAEs."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from vaekit.models.distributions import DiagonalGaussian
from vaekit.models.parts import register_posterior


@register_posterior("gaussian", "a diagonal Gaussian, N(mean, diag(exp(logvar))) (Kingma & Welling 2013)")
class GaussianPosterior(nn.Module):
    """The encoder's (mean, log-variance) as the distribution itself (Kingma & Welling 2013); no
    parameters of its own."""

    distribution: ClassVar[type] = DiagonalGaussian
    has_flow: ClassVar[bool] = False  # the point an image stands for is the mean the encoder gives

    @classmethod
    def for_model(cls, model: Any) -> GaussianPosterior:
        return cls()

    def forward(self, mean: torch.Tensor, logvar: torch.Tensor) -> DiagonalGaussian:
        """q(z|x) of the encoder's output, each [B, D], in float32 also under bf16 autocast (sums over
        latents need it)."""
        return DiagonalGaussian(mean.float(), logvar.float())
