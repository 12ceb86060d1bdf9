"""The prior a Gaussian-latent VAE trains with unless told otherwise: N(0, I), or for a conditional model
that learns its class means (the cvae's ``class_prior``) N(m_y, I).

Both give a ``distributions.StandardNormal``, whose KL from a diagonal Gaussian posterior is in closed
form (Kingma & Welling 2013, appendix B; against N(m, I) it is the KL against N(0, I) of the posterior
shifted by -m): the rule registered in ``models.distributions``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from vaekit.models.distributions import StandardNormal
from vaekit.models.labels import check_labels
from vaekit.models.parts import register_prior
from vaekit.utils.errors import VaekitError


@register_prior("standard", "N(0, I) (a cvae: N(m_y, I), its class means learned)")
class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I) over ``latent_dim`` dimensions; no parameters."""

    distribution: ClassVar[type] = StandardNormal
    has_classes = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        # where draws are made: a buffer moves with the model (empty, and not saved)
        self.register_buffer("anchor", torch.zeros(0), persistent=False)

    @classmethod
    def for_model(cls, model: Any) -> StandardNormalPrior:
        """N(0, I); N(m_y, I) for a conditional model whose config asks for learned class means."""
        if model.conditional and model.config.get("class_prior", False):
            return ClassMeanPrior(model.latent_dim, model.num_classes)
        return cls(model.latent_dim)

    def mean(self, labels: torch.Tensor | None = None) -> torch.Tensor | None:
        """The prior's mean per image, [B, D]; None where it is 0."""
        return None

    def forward(self, labels: torch.Tensor | None = None) -> StandardNormal:
        """p(z) (per image of ``labels``, for class means)."""
        return StandardNormal(self.latent_dim, self.anchor.device, self.mean(labels))

    def describe(self) -> str:
        return "N(m_y, I)" if self.has_classes else "N(0, I)"


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
