"""Pictures of a run's latent space: the scatter of test latents by class, the decoded manifold,
interpolations and traversals (``vaekit latent``, ``manifold``, ``interpolate``, ``traverse``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vaekit.evaluation.latents import latent_means, project, slerp
from vaekit.evaluation.runs import run_split
from vaekit.models import GaussianVAE
from vaekit.models.saving import load
from vaekit.utils import limits, plots
from vaekit.utils.devices import resolve_device
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_run_config


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
    model.require_gaussian_latent("a latent scatter")
    config = read_run_config(run)
    images = run_split(config, split, data_dir)
    chosen = images.subset(torch.arange(min(n, len(images))))
    # uint8 in: the encoder converts batch by batch (a float copy of a large split would be 4x its size)
    means = latent_means(model, chosen.images.to(model.device), chosen.labels.to(model.device)).numpy()
    labels = chosen.labels.numpy()
    if model.latent_dim == 2:
        panels = [("latent means (z1, z2)", means)]
    else:
        panels = [
            (f"PCA of the {model.latent_dim}-D latent means", project(means, "pca")),
            (f"t-SNE of the {model.latent_dim}-D latent means", project(means, "tsne")),
        ]
    path = Path(out) if out is not None else run / "latent.png"
    title = f"{len(labels):,} {split} images of {run.name}"
    plots.save_scatter(panels, labels, path, title=title, class_names=config["data"].get("classes"))
    return {"path": str(path), "panels": [title for title, _ in panels], "n": len(labels)}


def _gaussian_model(run: Path, device: str, what: str) -> GaussianVAE:
    model = load(run, device=resolve_device(device))
    model.require_gaussian_latent(what)
    return model


def _labels_for(model: GaussianVAE, n: int, label: int | None, what: str) -> torch.Tensor | None:
    if model.conditional and label is None:
        raise VaekitError(f"{model.name} is conditional: {what} needs --label")
    if not model.conditional and label is not None:
        raise VaekitError(f"--label applies to a conditional model (cvae), not {model.name}")
    return model.sample_labels(n, label)  # None for an unconditional model


@torch.no_grad()
def manifold(
    run: str | os.PathLike,
    out: str | os.PathLike | None = None,
    n: int = 20,
    label: int | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Decode an n x n grid of latents spread by the inverse normal CDF (Kingma & Welling 2013, fig. 4).

    A 2-D latent is walked along z1 (columns) and z2 (rows, z2 rising upwards) at the quantiles
    (i + 0.5) / n of N(0, 1). A wider latent is walked the same way along the first two principal
    directions of the test images' latent means, around their mean, in units of each direction's
    standard deviation. Default file: RUN/manifold.png.
    """
    run = Path(run)
    if n < 2:
        raise VaekitError(f"--n must be >= 2, got {n}")
    model = _gaussian_model(run, device, "a manifold")
    limits.check_images(n * n, model.image_shape, model.device, f"a {n:,}x{n:,} manifold")
    labels = _labels_for(model, n * n, label, "a manifold")
    steps = torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(n) + 0.5) / n)
    across, down = torch.meshgrid(steps, steps.flip(0), indexing="xy")  # row 0 at the top: highest z2
    grid = torch.stack([across.flatten(), down.flatten()], dim=1)  # [n*n, 2]
    if model.latent_dim == 2:
        z, basis = grid, "z1, z2"
    else:
        images = run_split(read_run_config(run), "test", data_dir)
        means = latent_means(model, images.images.to(model.device), images.labels.to(model.device))
        centre = means.mean(0)
        _, singular, directions = torch.linalg.svd(means - centre, full_matrices=False)
        scale = singular[:2] / (len(means) - 1) ** 0.5  # std of the means along each direction
        z, basis = centre + (grid * scale) @ directions[:2], "the first two principal directions"
    pictures = model.decode(z.to(model.device), labels)
    path = Path(out) if out is not None else run / "manifold.png"
    plots.save_grid(pictures, path, ncol=n)
    return {"path": str(path), "basis": basis, "n": n}


@torch.no_grad()
def interpolate(
    run: str | os.PathLike,
    start: int,
    end: int,
    steps: int = 10,
    spherical: bool = False,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Decode ``steps`` latents between the latent means of test images ``start`` and ``end`` (linear,
    or spherical), shown between the two originals. Default file: RUN/interpolation.png."""
    run = Path(run)
    if steps < 2:
        raise VaekitError(f"--steps must be >= 2, got {steps}")
    model = _gaussian_model(run, device, "an interpolation")
    limits.check_images(steps + 2, model.image_shape, model.device, f"an interpolation of {steps:,} steps")
    if model.conditional:
        raise VaekitError(f"{model.name} is conditional: interpolate between images of unconditional models")
    images = run_split(read_run_config(run), "test", data_dir)
    for index in (start, end):
        if not 0 <= index < len(images):
            raise VaekitError(f"image {index} is outside the test split's 0..{len(images) - 1}")
    pair = images.subset(torch.tensor([start, end])).as_float(model.device)
    a, b = latent_means(model, pair)
    t = torch.linspace(0, 1, steps)
    z = slerp(a, b, t) if spherical else a + t[:, None] * (b - a)
    row = torch.cat([pair[:1].cpu(), model.decode(z.to(model.device)).cpu(), pair[1:].cpu()])
    path = Path(out) if out is not None else run / "interpolation.png"
    plots.save_grid(row, path, ncol=len(row))
    return {"path": str(path), "steps": steps, "spherical": spherical}


@torch.no_grad()
def traverse(
    run: str | os.PathLike,
    index: int = 0,
    steps: int = 9,
    limit: float = 3.0,
    dims: int = 10,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """One row per latent dimension: test image ``index``'s latent mean with that dimension set to
    ``steps`` values from -limit to +limit, decoded. Default file: RUN/traversal.png.

    The rows are the ``dims`` dimensions with the largest KL(q(z_j|x) || N(0, 1)) over the test images,
    largest first, each labelled with its index and KL: in a beta-VAE most dimensions are unused, and
    the informative ones are the ones worth looking at. Returns the file, the dimensions shown and
    their KL (nats per image).
    """
    from vaekit.evaluation.latents import latent_statistics

    run = Path(run)
    if steps < 2 or dims < 1 or not limit > 0:
        raise VaekitError("traverse needs --steps >= 2, --dims >= 1 and --limit > 0")
    model = _gaussian_model(run, device, "a traversal")
    rows = min(dims, model.latent_dim)
    limits.check_images(rows * steps, model.image_shape, model.device, f"a traversal of {rows} x {steps:,}")
    images = run_split(read_run_config(run), "test", data_dir)
    if not 0 <= index < len(images):
        raise VaekitError(f"image {index} is outside the test split's 0..{len(images) - 1}")
    stats = latent_statistics(model, images.images.to(model.device), images.labels.to(model.device))
    kl = torch.tensor(stats["kl_per_dim"], dtype=torch.float64)
    shown = kl.argsort(descending=True, stable=True)[:rows].tolist()
    chosen = images.subset(torch.tensor([index]))
    labels = chosen.labels.to(model.device) if model.conditional else None
    base = latent_means(model, chosen.as_float(model.device), labels)[0]
    values = torch.linspace(-limit, limit, steps)
    z = base.repeat(len(shown) * steps, 1)
    for row, d in enumerate(shown):
        z[row * steps : (row + 1) * steps, d] = values
    repeated = None if labels is None else labels.repeat(len(z))
    path = Path(out) if out is not None else run / "traversal.png"
    row_labels = [f"z{d + 1}  KL {kl[d]:.2f}" for d in shown]
    plots.save_grid(model.decode(z.to(model.device), repeated), path, ncol=steps, row_labels=row_labels)
    return {"path": str(path), "dims": shown, "kl": [kl[d].item() for d in shown], "steps": steps}
