"""Latent-space analysis: where a trained model puts the images of each class."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit import plots
from vaekit.devices import resolve_device
from vaekit.errors import VaekitError
from vaekit.evaluate import run_split
from vaekit.models import GaussianVAE
from vaekit.saving import load, read_run_config


@torch.no_grad()
def latent_means(
    model: GaussianVAE, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000
) -> torch.Tensor:
    """Posterior means E_q(z|x)[z] of ``images`` [N, C, H, W] -> [N, latent_dim] (float32, on the CPU)."""
    model.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        y = None if labels is None else labels[start : start + batch_size]
        chunks.append(model.encode(images[start : start + batch_size], y)[0].float().cpu())
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


def latent_scatter(
    run: str | os.PathLike,
    out: str | os.PathLike | None = None,
    split: str = "test",
    n: int = 2000,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Scatter the posterior means of ``n`` images of ``split``, coloured by label, into a PNG.

    A 2-D latent is drawn as it is; a larger one twice, by PCA and by t-SNE. Default file:
    RUN/latent.png. Returns the file and the panels drawn.
    """
    run = Path(run)
    if n < 2:
        raise VaekitError(f"--n must be >= 2 images, got {n}")
    model = load(run, device=resolve_device(device))
    if not isinstance(model, GaussianVAE):
        raise VaekitError(f"a latent scatter needs a Gaussian latent; {model.name} has discrete codes")
    images = run_split(read_run_config(run), split, data_dir)
    chosen = images.subset(torch.arange(min(n, len(images))))
    means = latent_means(model, chosen.as_float(model.device), chosen.labels.to(model.device)).numpy()
    labels = chosen.labels.numpy()
    if model.latent_dim == 2:
        panels = [("latent means (z1, z2)", means)]
    else:
        panels = [
            (f"PCA of the {model.latent_dim}-D latent means", project(means, "pca")),
            (f"t-SNE of the {model.latent_dim}-D latent means", project(means, "tsne")),
        ]
    path = Path(out) if out is not None else run / "latent.png"
    plots.save_scatter(panels, labels, path, title=f"{len(labels):,} {split} images of {run.name}")
    return {"path": str(path), "panels": [title for title, _ in panels], "n": len(labels)}
