"""FactorVAE (Kim & Mnih 2018, arXiv:1802.05983): the ELBO plus gamma times the total correlation, as a
discriminator estimates it.

A discriminator D tells draws z ~ q(z) from draws of prod_j q(z_j) (the batch's z with each dimension
shuffled on its own, ``maths.permute_dims``); TC(z) ~= log D(z) / (1 - D(z)), its logit (eq. 3). The
VAE minimises recon + KL + gamma TC; D minimises its cross-entropy. Both are in one objective: D's loss
sees only detached z, and the TC term reads D through detached weights, so one backward pass gives each
part exactly its own gradient. The registration adds the discriminator to the model (``adds``), with its
own Adam settings as a parameter group of the run's optimizer (``GaussianVAE.parameter_groups``): saved
in every checkpoint, so resume stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaekit.models.base import VAE, LossOutput
from vaekit.models.maths import permute_dims
from vaekit.models.objectives.adversary import Discriminator, cross_entropy, read_frozen
from vaekit.models.objectives.elbo import draw, elbo_terms
from vaekit.models.parts import AddedModule, option, register_objective
from vaekit.utils.errors import VaekitError

DEFAULT_DISCRIMINATOR = (1000,) * 5  # the paper's six layers of 1000 units (appendix, table 4)
DISCRIMINATOR_ADAM = {"lr": 1e-4, "betas": (0.5, 0.9)}  # the paper's


@dataclass
class FactorVAEOptions:
    gamma: float = option(10.0, "weight of the total correlation", minimum=0)
    discriminator: list[int] = option(DEFAULT_DISCRIMINATOR, "the discriminator's hidden layers", minimum=1)


@register_objective(
    "factorvae",
    "FactorVAE: + gamma x the total correlation a discriminator estimates (Kim & Mnih 2018)",
    FactorVAEOptions,
    requires=("one latent", "batch of 2"),
    model_config=lambda options: {"tc_discriminator": list(options["discriminator"])},
    adds=AddedModule(
        "tc_discriminator",
        "discriminator",
        lambda model, hidden: Discriminator(model.latent_dim, hidden),
        optimizer=DISCRIMINATOR_ADAM,
        option="discriminator",
    ),
)
def factorvae(
    model: VAE,  # a GaussianVAE with the discriminator this objective adds (tc_discriminator in its config)
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    gamma: float = 10.0,
    kl_weight: float = 1.0,
    generator: torch.Generator | None = None,
    noise_rows: tuple[int, int] | None = None,
) -> LossOutput:
    """recon + kl_weight KL + gamma TC for the VAE, plus the discriminator's cross-entropy; terms
    ``loss``, ``recon``, ``kl`` (the ELBO's), ``tc`` (the discriminator's estimate) and
    ``discriminator`` (its loss: log 4 = 1.39 when it cannot tell the two apart)."""
    discriminator = getattr(model, "discriminator", None)
    if discriminator is None:
        raise VaekitError(
            "the factorvae objective needs a model built with a discriminator (tc_discriminator)"
        )
    d = draw(model, x, labels, generator, noise_rows)
    tc = read_frozen(discriminator, d.z)  # the logit of "drawn from q(z)"
    objective = d.recon.mean() + kl_weight * d.kl.mean() + gamma * tc.mean()
    terms = elbo_terms(d, tc=tc.mean())
    if len(x) >= 2:  # a shuffle of one image is itself: nothing for the discriminator to learn
        z = d.z.detach()
        loss_d = cross_entropy(discriminator(z), discriminator(permute_dims(z, generator)))
        objective = objective + loss_d
        terms["discriminator"] = loss_d.detach()
    return LossOutput(objective, terms)
