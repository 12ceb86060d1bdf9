"""The evidence lower bound, with a KL weight (beta-VAE) and free bits; and the draw every objective
starts from.

-ELBO(x) = E_q(z|x)[-log p(x|z)] + KL(q(z|x) || p(z)) (Kingma & Welling 2013, eq. 3), estimated with one
reparameterised z per image; the KL in closed form where there is one (Gaussian posterior and prior),
else as log q(z|x) - log p(z) at that z (a flow posterior, a VampPrior); a hierarchy's, the sum of its
groups' KL, each in closed form at the drawn groups above it. The objective weights the KL by
``kl_weight`` (Higgins et al. 2017) and, with ``free_bits`` > 0, floors each dimension's batch-mean KL
at that many nats (Kingma et al. 2016, appendix C.8); the reported ``loss`` stays the plain -ELBO.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from vaekit.models.base import VAE, LossOutput
from vaekit.models.distributions import exact_kl_per_dim
from vaekit.models.maths import free_bits_kl
from vaekit.models.parts import register_objective
from vaekit.utils.errors import VaekitError


class Draw(NamedTuple):
    """One z per image and what the ELBO makes of it: ``posterior`` q(z|x) and ``prior`` p(z) (their
    distributions), ``z`` [B, D], and per image [B] ``log_q``, ``recon`` and ``kl``. A hierarchy's
    (models/hvae.py) has no single q(z|x), p(z) or z (None; the objectives that need them require one
    latent) but each group's KL, ``group_kl`` [B, L] from the top, and the groups' sizes [L]."""

    posterior: Any
    prior: Any
    z: torch.Tensor | None
    log_q: torch.Tensor | None
    recon: torch.Tensor
    kl: torch.Tensor
    group_kl: torch.Tensor | None = None
    group_sizes: torch.Tensor | None = None


def draw(
    model: VAE,  # a GaussianLatentVAE
    x: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator | None,
    noise_rows: tuple[int, int] | None,
) -> Draw:
    """The model's ``draw``: q(z|x), a reparameterised z ~ q(z|x), p(z), -log p(x|z) and the KL term,
    per image."""
    return model.draw(x, labels, generator, noise_rows)


def elbo_terms(d: Draw, **extra: torch.Tensor) -> dict[str, torch.Tensor]:
    """The detached batch means every objective reports: ``loss`` (-ELBO), ``recon``, ``kl``, each
    group's ``kl1``.. (a hierarchy's, from the top) and ``extra``."""
    terms = {"loss": (d.recon + d.kl).mean(), "recon": d.recon.mean(), "kl": d.kl.mean()}
    if d.group_kl is not None:
        terms.update({f"kl{i + 1}": v for i, v in enumerate(d.group_kl.mean(0))})
    return {name: value.detach() for name, value in {**terms, **extra}.items()}


def balanced_kl(kl_per_group: torch.Tensor, group_sizes: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """NVAE's KL balancing (Vahdat & Kautz 2020, appendix A), used during the KL warm-up.

    Each group l gets a weight gamma_l proportional to its batch-mean KL per latent unit
    ((mean_B |KL_l| + 0.01) / alpha_l, alpha_l = the group's size relative to the smallest), scaled so
    that the weights average 1: a group that carries much information is pushed down harder, so that
    none collapses while the others fill up. Returns the batch mean of sum_l gamma_l KL_l, with the
    weights detached. Shapes: kl_per_group [B, L], group_sizes [L] (a tensor on the device spares a copy
    to it each step) -> a scalar.
    """
    alpha = torch.as_tensor(group_sizes, dtype=torch.float32, device=kl_per_group.device)
    alpha = alpha / alpha.min()
    coefficient = kl_per_group.detach().abs().mean(0) + 0.01
    coefficient = coefficient / alpha * coefficient.sum()
    coefficient = coefficient / coefficient.mean()
    return (kl_per_group * coefficient).sum(1).mean()


def while_warming(kl_weight: float | torch.Tensor, during: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """``during`` while the KL weight is below 1 (the warm-up), else ``after``. The weight is a number,
    or a tensor on the device (a compiled step takes it so, so that its changing value compiles once):
    then both are computed and one is selected there, nothing read back."""
    if isinstance(kl_weight, torch.Tensor):
        return torch.where(kl_weight < 1, during, after)
    return during if kl_weight < 1 else after


@register_objective(
    "elbo", "the negative ELBO, its KL weighted by --beta (beta-VAE) and floored by --free-bits"
)  # a model's draw gives its terms: one latent's (gaussian.py), a hierarchy's groups' (hvae.py)
def elbo(
    model: VAE,  # a GaussianVAE: posterior_of, prior_of, decode_logits, recon_nll
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    kl_weight: float = 1.0,
    free_bits: float = 0.0,
    kl_balance: bool = False,
    generator: torch.Generator | None = None,
    noise_rows: tuple[int, int] | None = None,
) -> LossOutput:
    """The weighted negative ELBO of images x [B, C, H, W]; terms ``loss``, ``recon``, ``kl`` (and a
    hierarchy's ``kl1``..) per image. ``kl_balance``: while ``kl_weight`` < 1, NVAE's balancing of a
    hierarchy's groups (``balanced_kl``)."""
    d = draw(model, x, labels, generator, noise_rows)
    kl_term = d.kl.mean()
    if kl_balance and d.group_kl is not None:
        kl_term = while_warming(kl_weight, balanced_kl(d.group_kl, d.group_sizes), kl_term)
    if free_bits > 0:
        if not model.closed_form_kl:
            raise VaekitError(
                "free bits need the KL per dimension in closed form: not with this prior or posterior"
            )
        per_dim = exact_kl_per_dim(d.posterior, d.prior)
        kl_term = free_bits_kl(per_dim, free_bits)
    return LossOutput(d.recon.mean() + kl_weight * kl_term, elbo_terms(d))
