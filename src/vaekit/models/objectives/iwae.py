"""The importance-weighted bound (Burda, Grosse & Salakhutdinov 2015, arXiv:1509.00519).

log p(x) >= E[log (1/k) sum_i w_i], w_i = p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x) (eq. 8): the ELBO
at k = 1, tighter as k grows. The same weights give the importance-sampled -log p(x) of
``vaekit.evaluation.likelihood.iwae_nll`` at large k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaekit.models.base import VAE, LossOutput
from vaekit.models.distributions import Posterior
from vaekit.models.maths import iwae_bound
from vaekit.models.parts import option, register_objective


def log_weights(
    model: VAE,  # a GaussianVAE: posterior_of, prior_of, decode_logits, recon_nll
    x: torch.Tensor,
    labels: torch.Tensor | None,
    k: int,
    generator: torch.Generator | None = None,
    posterior: Posterior | None = None,
    prior: str = "trained",
    noise_rows: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x) for k draws z_i ~ q(z|x).

    Returns (log_weights, recon) with recon_i = -log p(x | z_i), both [k, B]. ``posterior`` passes an
    already computed q(z|x); ``prior`` picks p(z): "trained", the prior the model trained with, or
    "fitted", its fitted prior (see ``GaussianVAE.log_prior``).
    """
    posterior = posterior if posterior is not None else model.posterior_of(x, labels)
    batch = len(x)
    z, log_q = posterior.rsample_with_log_prob(k, generator, noise_rows)  # [k, B, D], [k, B]
    repeated = None if labels is None else labels.repeat(k)
    logits = model.decode_logits(z.reshape(k * batch, -1), repeated)
    recon = model.recon_nll(logits, x.repeat(k, *([1] * (x.dim() - 1)))).view(k, batch)
    log_w = -recon + model.log_prior(z, labels, prior) - log_q
    return log_w, recon


@dataclass
class IWAEOptions:
    k: int = option(5, "importance samples of the bound", minimum=1)


@register_objective("iwae", "the importance-weighted bound with k samples (Burda et al. 2015)", IWAEOptions)
def iwae(
    model: VAE,  # a GaussianLatentVAE: importance_context, log_weights, exact_kl
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    k: int = 5,
    generator: torch.Generator | None = None,
    noise_rows: tuple[int, int] | None = None,
) -> LossOutput:
    """The negative IWAE bound with ``k`` samples, reported as the term ``iwae``; ``loss``, ``recon`` and
    ``kl`` are the negative ELBO's terms, recon averaged over the k draws. One function for every
    Gaussian-latent model: its ``log_weights`` give the bound (a hierarchy's over every group)."""
    context = model.importance_context(x, labels)
    weights, recon = model.log_weights(x, labels, k, generator, posterior=context, noise_rows=noise_rows)
    # the ELBO's KL: exact where it has a closed form, else averaged over the k draws' log q - log p
    kl = model.exact_kl(context, labels)
    if kl is None:
        kl = (weights + recon).neg().mean(dim=0)
    bound = iwae_bound(weights)
    recon = recon.mean(dim=0)
    terms = {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean(), "iwae": -bound.mean()}
    return LossOutput(-bound.mean(), {name: v.detach() for name, v in terms.items()})
