"""DIP-VAE (Kumar, Sattigeri & Balakrishnan 2018, arXiv:1711.00848): the ELBO plus a penalty that moves
the covariance of the aggregate posterior towards I (disentangled inferred prior).

DIP-VAE-I penalises the covariance of the posterior means, Cov_p(x)[mu(x)] (eq. 6), with
lambda_d = 10 lambda_od; DIP-VAE-II that of the whole aggregate posterior,
E_p(x)[Sigma(x)] + Cov_p(x)[mu(x)] (eq. 7), with lambda_d = lambda_od: the paper's settings (sec. 4).
Both over the batch (``maths.covariance``, ``maths.dip_penalty``); they need a Gaussian posterior.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaekit.models.base import VAE, LossOutput
from vaekit.models.distributions import DiagonalGaussian
from vaekit.models.maths import covariance, dip_penalty
from vaekit.models.objectives.elbo import draw, elbo_terms
from vaekit.models.parts import option, register_objective
from vaekit.utils.errors import VaekitError

DIAGONAL_FACTOR = {"i": 10.0, "ii": 1.0}  # lambda_d / lambda_od


def dip(
    model: VAE,  # a GaussianVAE with a Gaussian posterior
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    kind: str = "i",
    lambda_od: float = 10.0,
    kl_weight: float = 1.0,
    generator: torch.Generator | None = None,
    noise_rows: tuple[int, int] | None = None,
) -> LossOutput:
    """recon + kl_weight KL + the DIP penalty of ``kind`` ("i" or "ii"); terms ``loss``, ``recon``,
    ``kl`` (the ELBO's) and ``dip`` (the penalty)."""
    if not issubclass(model.variational_family.distribution, DiagonalGaussian):
        raise VaekitError("DIP-VAE needs the Gaussian posterior's covariance: not with a flow")
    d = draw(model, x, labels, generator, noise_rows)
    objective = d.recon.mean() + kl_weight * d.kl.mean()
    if len(x) < 2:  # one image has no covariance
        return LossOutput(objective, elbo_terms(d))
    mu, logvar = d.posterior.mean, d.posterior.logvar
    cov = covariance(mu)
    if kind == "ii":
        cov = cov + torch.diag(logvar.exp().mean(dim=0))
    penalty = dip_penalty(cov, lambda_od, DIAGONAL_FACTOR[kind] * lambda_od)
    return LossOutput(objective + penalty, elbo_terms(d, dip=penalty))


@dataclass
class DIPOptions:
    lambda_od: float = option(
        10.0, "weight of the off-diagonal covariance (the diagonal's: 10x for I, 1x for II)", minimum=0
    )


DIP_REQUIRES = ("one latent", "gaussian posterior", "batch of 2")


@register_objective(
    "dip-i",
    "DIP-VAE-I: the posterior means' covariance pushed to I (Kumar et al. 2018)",
    DIPOptions,
    requires=DIP_REQUIRES,
)
def dip_i(
    model: VAE,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    lambda_od: float = 10.0,
    kl_weight: float = 1.0,
    generator: torch.Generator | None = None,
    noise_rows: tuple[int, int] | None = None,
) -> LossOutput:
    """DIP-VAE-I: the covariance of the posterior means."""
    return dip(model, x, labels, kind="i", lambda_od=lambda_od, kl_weight=kl_weight, generator=generator,
               noise_rows=noise_rows)  # fmt: skip


@register_objective(
    "dip-ii",
    "DIP-VAE-II: the aggregate posterior's covariance pushed to I (Kumar et al. 2018)",
    DIPOptions,
    requires=DIP_REQUIRES,
)
def dip_ii(
    model: VAE,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    lambda_od: float = 10.0,
    kl_weight: float = 1.0,
    generator: torch.Generator | None = None,
    noise_rows: tuple[int, int] | None = None,
) -> LossOutput:
    """DIP-VAE-II: the covariance of the aggregate posterior."""
    return dip(model, x, labels, kind="ii", lambda_od=lambda_od, kl_weight=kl_weight, generator=generator,
               noise_rows=noise_rows)  # fmt: skip
