"""The diagonal Gaussian posterior q(z|x) = N(mean, diag(exp(logvar))) of the Gaussian-latent VAEs."""

from __future__ import annotations

from typing import NamedTuple

import torch

from vaekit.models.maths import log_normal, reparameterize
from vaekit.models.parts import register_posterior


@register_posterior(
    "gaussian", "a diagonal Gaussian, N(mean, diag(exp(logvar))) (Kingma & Welling 2013)", closed_form=True
)
class DiagonalGaussian(NamedTuple):
    """q(z|x) for a batch of images: ``mean`` and ``logvar``, each [B, D] (float32).

    A NamedTuple, so ``mu, logvar = posterior`` still unpacks as the encoders' (mean, log-variance) pair.
    """

    mean: torch.Tensor
    logvar: torch.Tensor

    def rsample(
        self,
        k: int | None = None,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """z = mean + exp(logvar / 2) * eps: one draw per image [B, D], or ``k`` draws [k, B, D].

        ``noise_rows`` (start, total): this batch is rows start.. of a batch of total images whose
        noise is drawn whole (data-parallel ranks then use one process's noise; see ``reparameterize``).
        """
        if k is None:
            return reparameterize(self.mean, self.logvar, generator, noise_rows)
        mean, logvar = self.mean.expand(k, *self.mean.shape), self.logvar.expand(k, *self.logvar.shape)
        return reparameterize(mean, logvar, generator, noise_rows)

    def rsample_with_log_prob(
        self,
        k: int | None = None,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws (as ``rsample``) and log q(z|x) at them: [B, D] and [B], or [k, B, D] and [k, B]."""
        z = self.rsample(k, generator, noise_rows)
        return z, self.log_prob(z)

    def mode(self) -> torch.Tensor:
        """The posterior mean [B, D], the point that stands for each image."""
        return self.mean

    def moments(
        self, draws: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance per dimension, each [B, D]: in closed form (``draws`` unused)."""
        return self.mean, self.logvar.exp()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x), nats: z [..., B, D] -> [..., B]."""
        return log_normal(z, self.mean, self.logvar)
