"""Controlled capacity (Burgess et al. 2018, "Understanding disentangling in beta-VAE",
arXiv:1804.03599): the KL held near a target capacity C that rises from 0 as training goes on.

objective = recon + weight |KL - C|, C = capacity x min(1, step / capacity_steps) (sec. 5): the encoder
may use only C nats at first, which it spends on the factors that lower the reconstruction error most,
and more as C rises, so that the factors enter the latent one by one. The paper trains dSprites with
weight 1000 and C rising to 25 nats over 100,000 steps (appendix A.1). The ``loss`` term is the plain
negative ELBO, as for every objective; ``capacity`` reports C and ``kl_gap`` the batch's KL - C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vaekit.models.base import VAE, LossOutput
from vaekit.models.objectives.elbo import draw, elbo_terms
from vaekit.models.parts import option, register_objective


@dataclass
class CapacityOptions:
    capacity: float = option(25.0, "the KL's target at the end of its rise, nats", minimum=0)
    capacity_steps: int = option(100_000, "steps over which the target rises from 0", minimum=1)
    capacity_weight: float = option(1000.0, "weight of |KL - target|", minimum=0)


def target(options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The step's target C = capacity x min(1, step / capacity_steps), from the step's ``context``."""
    ramp = min(1.0, context["step"] / options["capacity_steps"])
    return {"capacity_now": options["capacity"] * ramp}


@register_objective(
    "capacity",
    "controlled capacity: recon + W |KL - C|, C rising to --capacity (Burgess et al. 2018)",
    CapacityOptions,
    requires=("one latent",),
    per_step=target,
)
def capacity(
    model: VAE,  # a GaussianVAE
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    capacity_now: float | torch.Tensor = 0.0,
    capacity_weight: float = 1000.0,
    generator: torch.Generator | None = None,
    noise_rows: tuple[int, int] | None = None,
) -> LossOutput:
    """recon + capacity_weight |KL - capacity_now| (the batch's mean KL); terms ``loss``, ``recon``,
    ``kl`` (the ELBO's), ``capacity`` (C) and ``kl_gap`` (KL - C)."""
    d = draw(model, x, labels, generator, noise_rows)
    gap = d.kl.mean() - capacity_now
    objective = d.recon.mean() + capacity_weight * gap.abs()
    return LossOutput(objective, elbo_terms(d, capacity=torch.as_tensor(capacity_now).to(gap), kl_gap=gap))
