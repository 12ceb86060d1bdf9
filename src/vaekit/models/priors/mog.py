"""A mixture-of-Gaussians prior trained with the model: p(z) = sum_k pi_k N(z; m_k, diag(exp(v_k))), with
the K means, log-variances and weights learned by the ELBO along with the encoder and decoder (the
mixture-of-Gaussians prior Tomczak & Welling 2018 compare their VampPrior with; Dilokthanakul et al.
2016 and Jiang et al. 2017 cluster with one). A conditional model (the cvae) gets K components per
class, and p(z | y) is class y's mixture.

It is not the mixture vaekit fits after training (``priors.mixture.MixturePrior``, ``train --fit-prior``,
``sample --prior fitted``): that one has full covariances and is fitted by EM to the latents of a model
trained against another prior, leaving the model as it was; this one is the prior of the ELBO, so the
KL term pulls the posteriors towards it as it moves towards them. Its KL has no closed form: objectives
estimate it as log q(z|x) - log p(z) at the draw, and free bits and beta-TCVAE, which need it per
dimension, refuse it.

The means start as K draws from N(0, I) (of the model's seeded generator), spread over where N(0, I)
has its mass; the log-variances at 0 and the weights equal, so that at the start it is close to the
standard prior's scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from vaekit.models.distributions import DiagonalMixture
from vaekit.models.parts import option, register_prior


@dataclass
class MoGOptions:
    mog_components: int = option(10, "learned Gaussians of the mixture, per class for a cvae", minimum=1)


@register_prior(
    "mog",
    "a mixture of K Gaussians, their means, variances and weights trained with the model",
    MoGOptions,
    requires=("one latent",),
    model_config=lambda options: {"trained_prior": "mog", "mog_components": options["mog_components"]},
)
class MixtureOfGaussiansPrior(nn.Module):
    """K diagonal Gaussians (per class for a conditional model) and their weights, all parameters."""

    distribution: ClassVar[type] = DiagonalMixture

    def __init__(self, latent_dim: int, components: int, num_classes: int = 0) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"a mixture prior needs at least 1 component, got {components}")
        self.latent_dim, self.components, self.num_classes = latent_dim, components, num_classes
        self.has_classes = num_classes > 0
        groups = max(num_classes, 1)
        self.means = nn.Parameter(torch.randn(groups, components, latent_dim))
        self.logvars = nn.Parameter(torch.zeros(groups, components, latent_dim))
        self.weight_logits = nn.Parameter(torch.zeros(groups, components))

    @classmethod
    def for_model(cls, model: Any, *, mog_components: int) -> MixtureOfGaussiansPrior:
        classes = model.num_classes if model.conditional else 0
        return cls(model.latent_dim, int(mog_components), classes)

    def forward(self, labels: torch.Tensor | None = None) -> DiagonalMixture:
        """p(z), the mixture (of each image's class, with ``labels``), in float32."""
        log_weights = torch.log_softmax(self.weight_logits.float(), dim=-1)
        return DiagonalMixture(
            self.means.float(), self.logvars.float(), log_weights, labels if self.has_classes else None
        )

    def describe(self) -> str:
        per = " per class" if self.has_classes else ""
        return f"a mixture of {self.components} learned Gaussians{per}"
