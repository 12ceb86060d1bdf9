"""Distributions over one latent vector per image, with one interface; and the KL, decided in one place.

A posterior module (``models/posteriors``) maps an encoder's output to a distribution; a prior module
(``models/priors``) maps class labels, or nothing, to one. Every distribution here answers:

- ``log_prob(z)``: log density at any z [..., B, D] -> [..., B], nats;
- a posterior: ``rsample(k, generator, noise_rows)`` (reparameterised draws), ``rsample_with_log_prob``
  (draws and log q at them, cheaper than both for a flow) and ``mode()``, the point that stands for an
  image;
- a prior: ``sample(n, generator, temperature)``, n draws with standard deviations scaled by
  ``temperature`` (a prior given labels draws one per label).

``kl_divergence(q, p, z, log_q)`` is KL(q(z|x) || p(z)) per image: exact where a rule for the pair of
types is registered (``register_kl``, as torch.distributions does), else the one-draw Monte Carlo
estimate log q(z|x) - log p(z) at a draw z of q. ``has_exact_kl`` answers for a pair of types before
any distribution exists: what the settings check for free bits and beta-TCVAE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch

from vaekit.models.maths import (
    diagonal_mixture_log_prob,
    gaussian_kl_per_dim,
    kl_per_dim_to_mixture,
    log_normal,
    log_standard_normal,
    reparameterize,
)
from vaekit.utils.errors import VaekitError


class Prior(Protocol):
    """What a prior's distribution offers (``StandardNormal``, ``DiagonalMixture``)."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor: ...

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor: ...


class Posterior(Protocol):
    """What a posterior's distribution offers (``DiagonalGaussian``, ``posteriors.iaf.FlowPosterior``)."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor: ...

    def rsample_with_log_prob(
        self,
        k: int | None = None,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def mode(self) -> torch.Tensor: ...


class DiagonalGaussian(NamedTuple):
    """N(mean, diag(exp(logvar))) for a batch: ``mean`` and ``logvar``, each [B, D] (float32).

    The Gaussian posterior q(z|x) of Kingma & Welling 2013, and a VampPrior's components. A NamedTuple,
    so ``mu, logvar = q`` unpacks as the encoders' (mean, log-variance) pair.
    """

    mean: torch.Tensor
    logvar: torch.Tensor

    def rsample(
        self,
        k: int | None = None,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """z = mean + exp(logvar / 2) * eps: one draw per image [B, D], or ``k`` draws [k, B, D].

        ``noise_rows`` (start, total): this batch is rows start.. of a batch of total images whose
        noise is drawn whole (data-parallel ranks then use one process's noise; see ``reparameterize``).
        """
        if k is None:
            return reparameterize(self.mean, self.logvar, generator, noise_rows)
        mean, logvar = self.mean.expand(k, *self.mean.shape), self.logvar.expand(k, *self.logvar.shape)
        return reparameterize(mean, logvar, generator, noise_rows)

    def rsample_with_log_prob(
        self,
        k: int | None = None,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws (as ``rsample``) and log q(z|x) at them: [B, D] and [B], or [k, B, D] and [k, B]."""
        z = self.rsample(k, generator, noise_rows)
        return z, self.log_prob(z)

    def mode(self) -> torch.Tensor:
        """The mean [B, D], the point that stands for each image."""
        return self.mean

    def moments(
        self, draws: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance per dimension, each [B, D]: in closed form (``draws`` unused)."""
        return self.mean, self.logvar.exp()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; mean, diag(exp(logvar))), nats: z [..., B, D] -> [..., B]."""
        return log_normal(z, self.mean, self.logvar)


class StandardNormal(NamedTuple):
    """N(0, I) over ``latent_dim`` dimensions, or with ``mean`` [B, D] N(m_b, I) for each image b (a
    conditional model's class means). ``device``: where draws are made."""

    latent_dim: int
    device: torch.device
    mean: torch.Tensor | None = None

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), nats: z [..., B, D] (k draws: [k, B, D]) -> [..., B]."""
        return log_standard_normal(z if self.mean is None else z - self.mean.float())

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """n draws [n, D] (with a mean: n is its batch), standard deviations scaled by ``temperature``."""
        z = temperature * torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        return z if self.mean is None else z + self.mean


class DiagonalMixture(NamedTuple):
    """G mixtures of K diagonal Gaussians each (one per class, or G = 1), each image b under the mixture
    of its label: p(z | y) = sum_k pi_yk N(z; m_yk, diag(exp(v_yk))).

    ``means``, ``logvars`` [G, K, D]; ``log_weights`` [G, K], normalised log pi (None: uniform, 1/K, as
    a VampPrior's); ``labels`` [B], each image's group (None where G = 1).
    """

    means: torch.Tensor
    logvars: torch.Tensor
    log_weights: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    def _pick(self, per_group: torch.Tensor) -> torch.Tensor:
        """[..., G] -> [...]: the group of each image's label, or the only group."""
        if len(self.means) == 1:
            return per_group.squeeze(-1)
        if self.labels is None:
            raise VaekitError("a prior with a mixture per class needs the class labels")
        labels = self.labels.long().expand(per_group.shape[:-1])
        return per_group.gather(-1, labels.unsqueeze(-1)).squeeze(-1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) (with labels: log p(z | y)), nats: z [..., B, D] -> [..., B]."""
        return self._pick(diagonal_mixture_log_prob(z.float(), self.means, self.logvars, self.log_weights))

    def groups(self, n: int) -> torch.Tensor:
        """The group each of n draws comes from, [n] (long)."""
        device = self.means.device
        if len(self.means) == 1:
            return torch.zeros(n, dtype=torch.long, device=device)
        if self.labels is None:
            raise VaekitError("a prior with a mixture per class needs the class labels")
        return self.labels.long().to(device)

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """n draws [n, D]: a component of each draw's group (by its weight), then that Gaussian with
        standard deviations scaled by ``temperature``."""
        device = self.means.device
        group = self.groups(n)
        if self.log_weights is None:
            pick = torch.randint(self.means.shape[1], (n,), generator=generator, device=device)
        else:
            probs = self.log_weights.float().softmax(-1)[group]
            pick = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        eps = torch.randn(n, self.means.shape[-1], generator=generator, device=device)
        return self.means[group, pick] + temperature * torch.exp(0.5 * self.logvars[group, pick]) * eps

    def marginal_kl_per_dim(self, q: DiagonalGaussian) -> torch.Tensor:
        """KL(q(z_j|x) || p(z_j)) per dimension against the mixture's marginals, [B, D] nats, by
        quadrature (``maths.kl_per_dim_to_mixture``): not the KL of the joint, which has no closed form,
        but what active units and KL-per-dimension figures read."""
        group = self.groups(len(q.mean))
        rows = []
        for start in range(0, len(q.mean), 256):  # [256, D, K, 16] at a time
            rows_of = slice(start, start + 256)
            g = group[rows_of] if len(self.means) > 1 else 0
            weights = None if self.log_weights is None else self.log_weights[g]
            mu, logvar = q.mean[rows_of], q.logvar[rows_of]
            rows.append(kl_per_dim_to_mixture(mu, logvar, self.means[g], self.logvars[g], weights))
        return torch.cat(rows)


# ------------------------------------------------------------------------------------------ the KL
KLRule = Callable[[object, object], torch.Tensor]  # (q, p) -> KL per dimension [B, D]
_KL_RULES: dict[tuple[type, type], KLRule] = {}


def register_kl(posterior_type: type, prior_type: type) -> Callable[[KLRule], KLRule]:
    """Decorator: ``rule(q, p)`` is KL(q || p) per dimension [B, D] in closed form for q of
    ``posterior_type`` and p of ``prior_type`` (or of subclasses)."""

    def decorate(rule: KLRule) -> KLRule:
        _KL_RULES[posterior_type, prior_type] = rule
        return rule

    return decorate


def _rule(posterior_type: type, prior_type: type) -> KLRule | None:
    for q_type in posterior_type.__mro__:
        for p_type in prior_type.__mro__:
            if (q_type, p_type) in _KL_RULES:
                return _KL_RULES[q_type, p_type]
    return None


def has_exact_kl(posterior_type: type, prior_type: type) -> bool:
    """Whether KL(q || p) has a registered closed form per dimension for these types."""
    return _rule(posterior_type, prior_type) is not None


def exact_kl_per_dim(q: object, p: object) -> torch.Tensor:
    """KL(q(z|x) || p(z)) per dimension [B, D] by the registered rule; an error where there is none."""
    rule = _rule(type(q), type(p))
    if rule is None:
        raise VaekitError(
            f"the KL of a {type(q).__name__} posterior to a {type(p).__name__} prior has no closed form"
        )
    return rule(q, p)


def kl_divergence(q: object, p: object, z: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || p(z)) per image [B]: exact where a rule is registered, else log q(z|x) - log p(z)
    at the draw ``z`` of q [B, D] (``log_q`` = log q(z|x) [B]), unbiased for the KL."""
    rule = _rule(type(q), type(p))
    if rule is not None:
        return rule(q, p).sum(dim=-1)
    return log_q - p.log_prob(z)


@register_kl(DiagonalGaussian, StandardNormal)
def _gaussian_to_standard_normal(q: DiagonalGaussian, p: StandardNormal) -> torch.Tensor:
    """Kingma & Welling 2013, appendix B; against N(m, I) it is the KL against N(0, I) of the posterior
    shifted by -m."""
    shifted = q.mean if p.mean is None else q.mean - p.mean.float()
    return gaussian_kl_per_dim(shifted, q.logvar)
