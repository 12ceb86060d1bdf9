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
from vaekit.evaluation.likelihood import CPU_BATCH
from vaekit.models import GaussianVAE
from vaekit.utils.devices import device_batch
from vaekit.utils.errors import VaekitError


def encoding_batch(model: Any, images: torch.Tensor, labels: torch.Tensor | None) -> int:
    """Images a batch of encoding takes on their device (``utils.devices.device_batch``)."""

    def probe(n: int) -> Any:
        return model.encode(unit_float(images[:n]), None if labels is None else labels[:n])

    return device_batch(images.device, CPU_BATCH, probe, len(images))


@torch.no_grad()
def latent_statistics(
    model: GaussianVAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int | None = None,
    threshold: float = 0.01,
) -> dict[str, Any]:
    """Active units and the KL per latent dimension over ``images``.

    A unit u is active when Cov_x(E_q(u|x)[u]) > ``threshold`` (Burda et al. 2015, sec. 5.2: the posterior
    mean moves with the input); a unit whose mean does not is unused by the model (posterior collapse).
    ``kl_per_dim``: KL(q(z_j|x) || p(z_j)) against the trained prior (N(0, 1), or a conditional model's
    N(m_yj, 1)) averaged over the images, nats, one per dimension. ``batch_size`` None: the device's.
    """
    was_training = model.training
    model.eval()
    batch_size = batch_size or encoding_batch(model, images, labels)
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
    model: GaussianVAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Posterior means E_q(z|x)[z] of ``images`` [N, C, H, W] -> [N, latent_dim] (float32, on the CPU);
    with a flow posterior, the flow applied to its base mean (``GaussianVAE.latents``)."""
    model.eval()
    batch_size = batch_size or encoding_batch(model, images, labels)
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


@torch.no_grad()
def group_statistics(
    model: Any, images: torch.Tensor, batch_size: int | None = None, threshold: float = 0.01
) -> dict[str, Any]:
    """A hierarchical model's groups (models/hvae.py), from the top: each group's size, its active units
    (as ``latent_statistics``: Cov_x of the posterior mean > ``threshold``) and its KL
    KL(q(z_l | x, z_<l) || p(z_l | z_<l)) averaged over the images, with every group above it at its
    posterior mean (so the figures are deterministic; the ELBO's own per-group KL, at drawn z, is in
    the loss terms ``kl1``..)."""
    was_training = model.training
    model.eval()
    probe = lambda n: model.group_means(unit_float(images[:n]))  # noqa: E731
    batch_size = batch_size or device_batch(images.device, CPU_BATCH // 2, probe, len(images))
    means: list[list[torch.Tensor]] = []
    shapes = model.latent_space.groups
    kls = torch.zeros(len(shapes), dtype=torch.float64)
    for start in range(0, len(images), batch_size):
        groups = model.group_means(unit_float(images[start : start + batch_size]))
        means.append([g.posterior.mean.flatten(1).double().cpu() for g in groups])
        kls += torch.stack([model.group_kl(g).double().sum().cpu() for g in groups])
    model.train(was_training)
    active = []
    for level in range(len(shapes)):
        variance = torch.cat([batch[level] for batch in means]).var(dim=0, unbiased=False)
        active.append(int((variance > threshold).sum()))
    return {
        "group_sizes": [int(np.prod(shape)) for shape in shapes],
        "active_units_per_group": active,
        "kl_per_group": (kls / max(len(images), 1)).tolist(),
    }


@torch.no_grad()
def group_resamples(
    model: Any, image: torch.Tensor, draws: int = 8, seed: int = 0
) -> tuple[torch.Tensor, list[str]]:
    """What each group of a hierarchy changes in one image [1, C, H, W] (pixel means in [0, 1]): a row
    per group, from the top: the image, its reconstruction, then ``draws`` decodings with that group
    drawn anew from its prior (the groups above it at their posterior means, those below at their
    posterior means given the new draw: ``HierarchicalVAE.resample_group``). Returns the tiles
    [groups * (draws + 2), C, H, W] and a label per row."""
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=image.device).manual_seed(seed)
    reconstruction = model.reconstruct(image)
    rows, labels = [], []
    kl = group_statistics(model, image)["kl_per_group"]
    for level, group in enumerate(model.latent_space.groups):
        redrawn = model.resample_group(image.expand(draws, -1, -1, -1), level, generator)
        rows.append(torch.cat([image, reconstruction, redrawn]))
        shape = "x".join(str(n) for n in group)
        labels.append(f"group {level + 1} ({shape})  KL {kl[level]:.1f}")
    model.train(was_training)
    return torch.cat(rows), labels
