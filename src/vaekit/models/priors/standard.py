"""The priors a Gaussian-latent VAE trains with: N(0, I), or a conditional model's N(m_y, I).

Each is an ``nn.Module`` with the calls the objectives and sampling use: ``log_prob(z, labels)``,
``sample(n, labels, generator, temperature)`` and, since both have one in closed form, the KL of a
diagonal Gaussian posterior per dimension, ``kl_per_dim(posterior, labels)`` (Kingma & Welling 2013,
appendix B: against N(m, I) it is the KL against N(0, I) of the posterior shifted by -m).
"""

from __future__ import annotations

import torch
from torch import nn

from vaekit.models.maths import check_labels, gaussian_kl_per_dim, log_standard_normal
from vaekit.models.parts import register_prior
from vaekit.models.posteriors import DiagonalGaussian
from vaekit.utils.errors import VaekitError


@register_prior("standard", "N(0, I) (a cvae: N(m_y, I), its class means learned)", closed_form=True)
class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I) over ``latent_dim`` dimensions; no parameters."""

    has_classes = False
    closed_form = True  # the KL of a diagonal Gaussian posterior against it is exact (kl_per_dim)

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def mean(self, labels: torch.Tensor | None = None) -> torch.Tensor | None:
        """The prior's mean per image, [B, D]; None where it is 0."""
        return None

    def kl_per_dim(
        self, posterior: DiagonalGaussian, labels: torch.Tensor | None = None, components: None = None
    ) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per dimension, [B, D] nats, in closed form. (``components``: the VampPrior's
        argument, unused here.)"""
        mean = self.mean(labels)
        shifted = posterior.mean if mean is None else posterior.mean - mean.float()
        return gaussian_kl_per_dim(shifted, posterior.logvar)

    def log_prob(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, components: None = None
    ) -> torch.Tensor:
        """log p(z), nats: z [..., B, D] (k draws: [k, B, D]) -> [..., B]."""
        mean = self.mean(labels)
        return log_standard_normal(z if mean is None else z - mean.float())

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        device: torch.device | None = None,
        components: None = None,
    ) -> torch.Tensor:
        """n draws [n, D], standard deviations scaled by ``temperature``; ``labels`` [n] pick the means."""
        z = temperature * torch.randn(n, self.latent_dim, generator=generator, device=device)
        mean = self.mean(labels)
        return z if mean is None else z + mean


class ClassMeanPrior(StandardNormalPrior):
    """p(z | y) = N(m_y, I), the class means m_y [C, D] learned with the model (Sohn et al. 2015's
    conditional prior with a fixed covariance). They start at 0, where it is N(0, I)."""

    has_classes = True

    def __init__(self, latent_dim: int, num_classes: int) -> None:
        super().__init__(latent_dim)
        self.num_classes = num_classes
        self.means = nn.Parameter(torch.zeros(num_classes, latent_dim))

    def mean(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise VaekitError("a prior with a mean per class needs the class labels")
        check_labels(labels, self.num_classes)
        return nn.functional.one_hot(labels.long(), self.num_classes).float() @ self.means
