"""The interface every vaekit model shares, and the Gaussian-latent, Bernoulli-pixel VAE built on it."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from vaekit.models.maths import bernoulli_nll, gaussian_kl, reparameterize


class LossOutput(NamedTuple):
    """``objective``: the scalar to minimise (batch mean). ``terms``: detached batch means, per image:
    ``loss`` (the negative ELBO, whatever the KL weight), ``recon`` and ``kl``."""

    objective: torch.Tensor
    terms: dict[str, torch.Tensor]


class VAE(nn.Module):
    """A VAE with z ~ N(0, I) prior, diagonal Gaussian posterior and Bernoulli pixel likelihood.

    Subclasses build their layers in ``__init__`` (after calling ``super().__init__`` with the keyword
    arguments that rebuild them, which become ``self.config``) and define ``encode`` and
    ``decode_logits``; everything else (loss, sampling, reconstruction, saving) comes from here.
    """

    name: ClassVar[str]

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = {"name": self.name, **config}
        self.image_shape = tuple(config["image_shape"])
        self.latent_dim = int(config["latent_dim"])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, C, H, W] in [0, 1] -> posterior mean and log-variance, each [B, latent_dim]."""
        raise NotImplementedError

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [B, latent_dim] -> pixel logits [B, C, H, W]."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [B, latent_dim] -> pixel probabilities [B, C, H, W]."""
        return torch.sigmoid(self.decode_logits(z))

    def loss(
        self, x: torch.Tensor, kl_weight: float = 1.0, generator: torch.Generator | None = None
    ) -> LossOutput:
        """Negative ELBO per image: Bernoulli NLL of x under one z ~ q(z|x), plus KL(q || p).

        The objective weights the KL by ``kl_weight`` (beta-VAE, Higgins et al. 2017); ``generator``
        draws z (the global RNG if None).
        """
        mu, logvar = self.encode(x)
        recon = bernoulli_nll(self.decode_logits(reparameterize(mu, logvar, generator)), x)
        kl = gaussian_kl(mu, logvar)
        objective = (recon + kl_weight * kl).mean()
        terms = {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean()}
        return LossOutput(objective, {k: v.detach() for k, v in terms.items()})

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (pixel probabilities) decoded from z ~ N(0, I)."""
        z = torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities decoded from the posterior mean of each image."""
        return self.decode(self.encode(x)[0])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
