"""The Gaussian-latent VAE: a network, a posterior, a prior and an objective, composed.

- the **network** is the subclass (mlp.py, conv.py, cvae.py): ``encode`` gives the posterior's mean and
  log-variance, ``decode_logits`` the pixel logits;
- the **posterior** q(z|x) is a ``posteriors.DiagonalGaussian`` of the encoder's output (``posterior_of``);
- the **trained prior** p(z) (``self.trained_prior``) is a ``priors.StandardNormalPrior``, or a
  conditional model's ``priors.ClassMeanPrior``; the **fitted prior** (``self.prior``, a
  ``priors.MixturePrior`` fitted after training) is what ``sample`` draws from when there is one;
- the **objective** is one of ``objectives.OBJECTIVES``: the ELBO (with KL weight and free bits), or the
  IWAE bound when ``iwae_k`` > 1.

``loss`` is the one call the training loop makes; everything else serves evaluation and sampling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vaekit.models.base import VAE, LossOutput
from vaekit.models.objectives import OBJECTIVES, log_weights
from vaekit.models.posteriors import DiagonalGaussian
from vaekit.models.priors.mixture import MixturePrior
from vaekit.models.priors.standard import StandardNormalPrior
from vaekit.utils.errors import VaekitError

Posterior = tuple[torch.Tensor, torch.Tensor]  # what encoders return: mean and log-variance, each [B, D]


class GaussianVAE(VAE):
    """A VAE with a diagonal Gaussian posterior q(z|x) = N(mu, diag(exp(logvar))) and a Gaussian prior.

    Subclasses build their layers after ``super().__init__`` and define ``encode`` (-> mu, logvar, each
    [B, latent_dim]) and ``decode_logits``; a subclass with another trained prior replaces
    ``self.trained_prior`` (the cvae's class means).
    """

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.trained_prior: StandardNormalPrior = StandardNormalPrior(self.latent_dim)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        """Images [B, C, H, W] in [0, 1] -> posterior mean and log-variance, each [B, latent_dim]."""
        raise NotImplementedError

    def posterior_of(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> DiagonalGaussian:
        """q(z|x) of images x, in float32 also under bf16 autocast (sums over latents need it)."""
        mu, logvar = self.encode(x, labels)
        return DiagonalGaussian(mu.float(), logvar.float())

    def loss(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        kl_weight: float = 1.0,
        free_bits: float = 0.0,
        iwae_k: int = 1,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
    ) -> LossOutput:
        """The objective and its terms per image: the ELBO weighted by ``kl_weight`` with ``free_bits``
        (``objectives.elbo``), or with ``iwae_k`` > 1 the negative IWAE bound (``objectives.iwae``).

        ``generator`` draws z (the global RNG if None); ``noise_rows`` (start, total): this batch is rows
        start.. of a batch of total images whose noise is drawn whole (see ``reparameterize``).
        """
        noise = {"generator": generator, "noise_rows": noise_rows}
        if iwae_k > 1:
            return OBJECTIVES["iwae"](self, x, labels, k=iwae_k, **noise)
        return OBJECTIVES["elbo"](self, x, labels, kl_weight=kl_weight, free_bits=free_bits, **noise)

    def kl_per_dim(self, mu: torch.Tensor, logvar: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per dimension against the trained prior. [B, D] -> [B, D], nats."""
        return self.trained_prior.kl_per_dim(DiagonalGaussian(mu, logvar), labels)

    def log_prior(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, prior: str = "standard"
    ) -> torch.Tensor:
        """log p(z) under the trained prior ("standard": N(0, I), or N(m_y, I) for a model that learns
        class means) or the fitted prior ("fitted"; for a conditional model whose fitted prior has
        classes, log p(z | y)). z [..., D] (k draws: [k, B, D]), labels [B] -> [...], nats."""
        if not self.uses_fitted_prior(prior):
            return self.trained_prior.log_prob(z, labels if self.conditional else None)
        by_class = self.conditional and self.prior.has_classes
        flat = z.reshape(-1, z.shape[-1])
        if by_class and labels is not None:
            labels = labels.repeat(len(flat) // len(labels))  # z [k, B, D] are k draws for each of B labels
        return self.prior.log_prob(flat, labels if by_class else None).view(z.shape[:-1]).to(z.dtype)

    def log_weights(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        k: int,
        generator: torch.Generator | None = None,
        posterior: Posterior | None = None,
        prior: str = "standard",
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Importance weights log w_i and recon_i = -log p(x | z_i), both [k, B]: see
        ``objectives.iwae.log_weights``. ``posterior``: an already computed (mu, logvar)."""
        q = None if posterior is None else DiagonalGaussian(*(t.float() for t in posterior))
        return log_weights(self, x, labels, k, generator, posterior=q, prior=prior, noise_rows=noise_rows)

    # ------------------------------------------------------------------------------ fitted priors
    @classmethod
    def prior_from_config(cls, config: dict[str, Any]) -> nn.Module:
        return MixturePrior(**config)

    def check_prior(self, prior: nn.Module) -> None:
        if not isinstance(prior, MixturePrior):
            raise VaekitError(
                f"a {self.name} model takes a Gaussian mixture prior, not {type(prior).__name__}"
            )
        if prior.latent_dim != self.latent_dim:
            raise VaekitError(
                f"the prior is over {prior.latent_dim}-D latents; "
                f"this {self.name} model's are {self.latent_dim}-D"
            )
        if self.conditional and prior.has_classes and prior.num_classes != self.num_classes:
            raise VaekitError(f"the prior has {prior.num_classes} classes; this model has {self.num_classes}")

    # ---------------------------------------------------------------------- sampling, reconstruction
    @torch.no_grad()
    def sample(
        self,
        n: int,
        label: int | None = None,
        generator: torch.Generator | None = None,
        prior: str | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n images (pixel means) decoded from z ~ the fitted prior (if the model has one and ``prior`` is
        not "standard") or z ~ the trained prior (N(0, I); a cvae: N(m_y, I)), with standard deviations
        scaled by ``temperature``. ``label``: the class to draw, for a conditional model or a fitted
        prior with classes (p(z | y)); without one a conditional model draws every class in turn."""
        self.check_temperature(temperature)
        fitted = self.uses_fitted_prior(prior)
        classes = self.sample_classes(n, label, prior)
        own_classes = classes if self.conditional else None
        if fitted:
            z = self.prior.sample(n, classes if self.prior.has_classes else None, generator, temperature)
        else:
            z = self.trained_prior.sample(n, own_classes, generator, temperature, device=self.device)
        return self.decode(z, own_classes)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel means decoded from the posterior mean of each image."""
        return self.decode(self.encode(x, labels)[0], labels)
