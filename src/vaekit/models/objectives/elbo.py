"""The evidence lower bound, with a KL weight (beta-VAE) and free bits.

-ELBO(x) = E_q(z|x)[-log p(x|z)] + KL(q(z|x) || p(z)) (Kingma & Welling 2013, eq. 3), estimated with one
reparameterised z per image and the KL in closed form. The objective weights the KL by ``kl_weight``
(Higgins et al. 2017) and, with ``free_bits`` > 0, floors each dimension's batch-mean KL at that many
nats (Kingma et al. 2016, appendix C.8); the reported ``loss`` stays the plain -ELBO.
"""

from __future__ import annotations

import torch

from vaekit.models.base import VAE, LossOutput
from vaekit.models.maths import free_bits_kl


def elbo(
    model: VAE,  # a GaussianVAE: posterior_of, trained_prior, decode_logits, recon_nll
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    kl_weight: float = 1.0,
    free_bits: float = 0.0,
    generator: torch.Generator | None = None,
    noise_rows: tuple[int, int] | None = None,
) -> LossOutput:
    """The weighted negative ELBO of images x [B, C, H, W]; terms ``loss``, ``recon``, ``kl`` per image."""
    posterior = model.posterior_of(x, labels)
    kl_dims = model.trained_prior.kl_per_dim(posterior, labels)
    kl = kl_dims.sum(dim=1)
    z = posterior.rsample(generator=generator, noise_rows=noise_rows)
    recon = model.recon_nll(model.decode_logits(z, labels), x)
    kl_term = free_bits_kl(kl_dims, free_bits) if free_bits > 0 else kl.mean()
    objective = recon.mean() + kl_weight * kl_term
    terms = {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean()}
    return LossOutput(objective, {k: v.detach() for k, v in terms.items()})
