"""The evidence lower bound, with a KL weight (beta-VAE) and free bits; and the draw every objective
starts from.

-ELBO(x) = E_q(z|x)[-log p(x|z)] + KL(q(z|x) || p(z)) (Kingma & Welling 2013, eq. 3), estimated with one
reparameterised z per image; the KL in closed form where there is one (Gaussian posterior and prior),
else as log q(z|x) - log p(z) at that z (a flow posterior, a VampPrior). The objective weights the KL by
``kl_weight`` (Higgins et al. 2017) and, with ``free_bits`` > 0, floors each dimension's batch-mean KL
at that many nats (Kingma et al. 2016, appendix C.8); the reported ``loss`` stays the plain -ELBO.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from vaekit.models.base import VAE, LossOutput
from vaekit.models.distributions import exact_kl_per_dim, kl_divergence
from vaekit.models.maths import free_bits_kl
from vaekit.models.parts import register_objective
from vaekit.utils.errors import VaekitError


class Draw(NamedTuple):
    """One z per image and what the ELBO makes of it: ``posterior`` q(z|x) and ``prior`` p(z) (their
    distributions), ``z`` [B, D], and per image [B] ``log_q``, ``recon`` and ``kl``."""

    posterior: Any
    prior: Any
    z: torch.Tensor
    log_q: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


def draw(
    model: VAE,  # a GaussianVAE
    x: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator | None,
    noise_rows: tuple[int, int] | None,
) -> Draw:
    """q(z|x), a reparameterised z ~ q(z|x), p(z), -log p(x|z) and the KL term, per image."""
    posterior = model.posterior_of(x, labels)
    z, log_q = posterior.rsample_with_log_prob(None, generator, noise_rows)
    prior = model.prior_of(labels)  # a VampPrior encodes its pseudo-inputs here, once
    recon = model.recon_nll(model.decode_logits(z, labels), x)
    kl = kl_divergence(posterior, prior, z, log_q)
    return Draw(posterior, prior, z, log_q, recon, kl)


def elbo_terms(d: Draw, **extra: torch.Tensor) -> dict[str, torch.Tensor]:
    """The detached batch means every objective reports: ``loss`` (-ELBO), ``recon``, ``kl``, ``extra``."""
    terms = {"loss": (d.recon + d.kl).mean(), "recon": d.recon.mean(), "kl": d.kl.mean(), **extra}
    return {name: value.detach() for name, value in terms.items()}


@register_objective(
    "elbo", "the negative ELBO, its KL weighted by --beta (beta-VAE) and floored by --free-bits"
)
def elbo(
    model: VAE,  # a GaussianVAE: posterior_of, prior_of, decode_logits, recon_nll
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    kl_weight: float = 1.0,
    free_bits: float = 0.0,
    generator: torch.Generator | None = None,
    noise_rows: tuple[int, int] | None = None,
) -> LossOutput:
    """The weighted negative ELBO of images x [B, C, H, W]; terms ``loss``, ``recon``, ``kl`` per image."""
    d = draw(model, x, labels, generator, noise_rows)
    kl_term = d.kl.mean()
    if free_bits > 0:
        if not model.closed_form_kl:
            raise VaekitError(
                "free bits need the KL per dimension in closed form: not with this prior or posterior"
            )
        per_dim = exact_kl_per_dim(d.posterior, d.prior)
        kl_term = free_bits_kl(per_dim, free_bits)
    return LossOutput(d.recon.mean() + kl_weight * kl_term, elbo_terms(d))
