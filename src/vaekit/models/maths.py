"""The mathematics every Gaussian-latent VAE shares, as pure functions of tensors.

Reference: Kingma & Welling, "Auto-Encoding Variational Bayes" (2013), arXiv:1312.6114.
Each function returns one value per example (reduced over everything but the batch dimension);
averaging over the batch is the caller's choice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw z ~ N(mu, diag(exp(logvar))) as z = mu + exp(logvar / 2) * eps, eps ~ N(0, I).

    Differentiable in mu and logvar (the reparameterisation trick, Kingma & Welling 2013, sec. 2.4).
    Shapes: mu, logvar [B, D] -> z [B, D].
    """
    if generator is None:
        eps = torch.randn_like(mu)
    else:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) = -1/2 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)).

    Kingma & Welling 2013, appendix B. Shapes: mu, logvar [B, D] -> [B], summed over D, in nats.
    """
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | logits) under independent Bernoullis with p = sigmoid(logits), for x in [0, 1].

    = sum_i [ softplus(logits_i) - x_i * logits_i ], the binary cross-entropy summed over pixels;
    computed from logits, which stays finite where sigmoid saturates. For grey-level x this is the
    continuous "BCE" reconstruction term of the classic MNIST VAE. Shapes: [B, ...] -> [B], in nats.
    """
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return bce.flatten(1).sum(dim=1)
