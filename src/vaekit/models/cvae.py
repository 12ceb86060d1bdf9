"""The conditional VAE (Sohn, Lee & Yan 2015): an MLP VAE whose encoder and decoder both see the label.

q(z | x, y) and p(x | z, y) take the one-hot class y beside the image and the latent, so that the latent
may hold style (slant, thickness) while the label fixes the digit: ``sample(n, label=7)`` draws sevens.

That split only happens when the latent is too small to hold the class as well: a wide latent learns
the class from the image, the decoder reads it from z, and z ~ N(0, I) then picks a random class
(at z=16 on MNIST only 27% of such samples are the requested digit). Two things make a wide latent
draw the requested class:
- the prior it trains with is p(z | y) = N(m_y, I), with class means m_y learned with the model (they
  start at 0, where it is the usual N(0, I)): the KL term is measured against the class's own mean,
  so each class's latents gather around it and the ELBO is a little tighter (``class_prior``: the
  standard prior's ``for_model`` builds a ``priors.ClassMeanPrior`` for it);
- samples come from the per-class Gaussian mixture fitted after training (vaekit.models.priors.mixture),
  which covers where each class's latents really are.
benchmarks/priors.py measures both; with them the default latent is 20-D, as the MLP VAE's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vaekit.models.gaussian import GaussianVAE, Posterior
from vaekit.models.mlp import check_hidden, mlp_layers


class ConditionalVAE(GaussianVAE):
    name = "cvae"
    conditional = True
    # the class means before the priors/ parts (release 0.1)
    renamed_weights = {**GaussianVAE.renamed_weights, "class_means": "trained_prior.means"}

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 20,
        hidden: Sequence[int] = (400,),
        num_classes: int = 10,
        likelihood: str = "bernoulli",
        decoder_std: float | None = None,
        class_prior: bool = True,
        **parts: Any,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        hidden = check_hidden(hidden)
        super().__init__(
            image_shape=list(image_shape),
            latent_dim=latent_dim,
            hidden=hidden,
            num_classes=num_classes,
            likelihood=likelihood,
            decoder_std=decoder_std,
            class_prior=class_prior,
            **parts,
        )
        n_pixels = math.prod(image_shape)
        encoder_sizes = [n_pixels + num_classes, *hidden]
        self.encoder = nn.Sequential(*mlp_layers(encoder_sizes))
        self.posterior = nn.Linear(encoder_sizes[-1], 2 * latent_dim)
        decoder_sizes = [latent_dim + num_classes, *reversed(hidden)]
        self.decoder = nn.Sequential(
            *mlp_layers(decoder_sizes),
            nn.Linear(decoder_sizes[-1], n_pixels),
            nn.Unflatten(1, tuple(image_shape)),
        )

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        hidden = self.encoder(torch.cat([x.flatten(1), self.one_hot(labels)], dim=1))
        mu, logvar = self.posterior(hidden).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(torch.cat([z, self.one_hot(labels)], dim=1))
