"""Statistics of a model's latent space: posterior means, active units, KL per dimension, projections.

Pure computations over images and a model (no files): ``evaluation.runs`` reports them, and
``evaluation.pictures`` and the explorer draw them. ``slerp`` is the spherical interpolation that the
interpolation pictures and the explorer's walks share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vaekit.data import unit_float
from vaekit.models import GaussianVAE
from vaekit.utils.errors import VaekitError


@torch.no_grad()
def latent_statistics(
    model: GaussianVAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 1000,
    threshold: float = 0.01,
) -> dict[str, Any]:
    """Active units and the KL per latent dimension over ``images``.

    A unit u is active when Cov_x(E_q(u|x)[u]) > ``threshold`` (Burda et al. 2015, sec. 5.2: the posterior
    mean moves with the input); a unit whose mean does not is unused by the model (posterior collapse).
    ``kl_per_dim``: KL(q(z_j|x) || p(z_j)) against the trained prior (N(0, 1), or a conditional model's
    N(m_yj, 1)) averaged over the images, nats, one per dimension.
    """
    was_training = model.training
    model.eval()
    means, kls = [], []
    for start in range(0, len(images), batch_size):
        y = None if labels is None else labels[start : start + batch_size]
        mu, logvar = (t.float() for t in model.encode(unit_float(images[start : start + batch_size]), y))
        means.append(mu.double())
        kls.append(model.kl_per_dim(mu, logvar, y).double().sum(0))
    model.train(was_training)
    mu = torch.cat(means)
    variance = mu.var(dim=0, unbiased=False)
    kl_per_dim = (torch.stack(kls).sum(0) / len(images)).tolist()
    return {
        "active_units": int((variance > threshold).sum()),
        "latent_dim": model.latent_dim,
        "posterior_mean_variance": variance.tolist(),
        "kl_per_dim": kl_per_dim,
    }


@torch.no_grad()
def latent_means(
    model: GaussianVAE, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000
) -> torch.Tensor:
    """Posterior means E_q(z|x)[z] of ``images`` [N, C, H, W] -> [N, latent_dim] (float32, on the CPU);
    with a flow posterior, the flow applied to its base mean (``GaussianVAE.latents``)."""
    model.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        y = None if labels is None else labels[start : start + batch_size]
        chunks.append(model.latents(unit_float(images[start : start + batch_size]), y).float().cpu())
    return torch.cat(chunks)


def project(points: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """[N, D] -> [N, 2]: the first two principal components (``pca``) or a t-SNE embedding (``tsne``)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(points)
    if method == "tsne":
        perplexity = min(30.0, (len(points) - 1) / 3)
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            points
        )
    raise VaekitError(f"unknown projection {method!r}; choose pca or tsne")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from a to b ([D] each) at fractions t [T] -> [T, D] (White 2016); linear
    where the two are (anti)parallel."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp(min=1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6 or (omega - torch.pi).abs() < 1e-6:
        return a + t[:, None] * (b - a)
    return (torch.sin((1 - t) * omega)[:, None] * a + torch.sin(t * omega)[:, None] * b) / torch.sin(omega)
