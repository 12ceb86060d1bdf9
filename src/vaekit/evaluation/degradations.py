"""Known degradations of real images, for checking a sample-quality measure: a measure worth trusting
rises with each of them, step by step (``benchmarks/quality_check.py`` runs the suite, ``DEGRADATIONS``,
on both feature extractors; docs/evaluation.md has its figures).

Every function takes images [N, C, H, W] in [0, 1] (and labels [N] where classes matter) and a strength,
and returns images of the same shape (and their labels); strength 0 leaves them as they are. Seeded by
``generator`` where they draw.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian kernel of standard deviation ``sigma`` pixels, radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def smooth(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """``field`` [N, C, H, W] convolved with a separable Gaussian of ``sigma`` pixels (edges reflected
    where the image is wide enough, else replicated)."""
    if sigma <= 0:
        return field
    kernel = gaussian_kernel(sigma).to(field)
    radius = len(kernel) // 2
    channels = field.shape[1]
    mode = "reflect" if min(field.shape[-2:]) > radius else "replicate"
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    field = F.conv2d(F.pad(field, (radius, radius, 0, 0), mode=mode), rows, groups=channels)
    columns = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.pad(field, (0, 0, radius, radius), mode=mode), columns, groups=channels)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``sigma`` pixels: the soft edges of a VAE's pixel means."""
    return smooth(images, sigma)


def pixel_noise(images: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Independent Gaussian noise of ``std`` on every pixel, clipped to [0, 1]."""
    noise = torch.randn(images.shape, generator=generator, device=images.device)
    return (images + std * noise).clamp(0, 1)


def binarize(images: torch.Tensor, share: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A ``share`` of the pixels (drawn at random) replaced by a Bernoulli draw of their grey level: 1 is
    dynamic binarization, what a Bernoulli decoder's samples look like."""
    draws = torch.rand(images.shape, generator=generator, device=images.device)
    chosen = torch.rand(images.shape, generator=generator, device=images.device) < share
    return torch.where(chosen, (draws < images).to(images.dtype), images)


def elastic(
    images: torch.Tensor, alpha: float, sigma: float = 4.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Elastic distortion (Simard, Steinkraus & Platt 2003): every pixel moved by a random displacement
    field, uniform in [-1, 1], smoothed by a Gaussian of ``sigma`` pixels and scaled to ``alpha`` pixels;
    bilinear resampling. The wobbly strokes of a model that has not learned the shapes."""
    if alpha == 0:
        return images
    n, _, height, width = images.shape
    field = torch.rand(n, 2, height, width, generator=generator, device=images.device) * 2 - 1
    field = smooth(field, sigma)
    field = field / field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-8) * alpha
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, height, device=images.device),
        torch.linspace(-1, 1, width, device=images.device),
        indexing="ij",
    )
    grid = torch.stack((xs, ys), dim=-1).expand(n, -1, -1, -1).clone()
    grid[..., 0] += field[:, 0] * 2 / max(width - 1, 1)
    grid[..., 1] += field[:, 1] * 2 / max(height - 1, 1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def drop_classes(
    images: torch.Tensor, labels: torch.Tensor, count: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of ``count`` classes (the last ones) replaced by images of the others drawn at random:
    as many images, ``count`` modes missing."""
    classes = int(labels.max()) + 1
    kept = labels < classes - count
    pool = kept.nonzero().squeeze(1)
    replace = (~kept).nonzero().squeeze(1)
    drawn = pool[torch.randint(len(pool), (len(replace),), generator=generator, device=pool.device)]
    index = torch.arange(len(labels), device=labels.device)
    index[replace] = drawn
    return images[index], labels[index]


def repeat_class(
    images: torch.Tensor, labels: torch.Tensor, share: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``share`` of the images (drawn at random) replaced by images of one class (class 0): one mode
    drawn far too often, the others too rarely."""
    n = len(labels)
    chosen = torch.randperm(n, generator=generator, device=labels.device)[: round(share * n)]
    pool = (labels == 0).nonzero().squeeze(1)
    index = torch.arange(n, device=labels.device)
    index[chosen] = pool[torch.randint(len(pool), (len(chosen),), generator=generator, device=pool.device)]
    return images[index], labels[index]


# The suite: each degradation by name, its strengths in rising order (0: none) and how to apply one,
# (images, labels, strength, generator) -> images. On MNIST, each level's Frechet distance rises above
# the one before on both extractors, measured against another random half of the test images.
DEGRADATIONS: dict[str, tuple[tuple[float, ...], Any]] = {
    "blur": ((0, 0.5, 1.0, 1.5, 2.0, 3.0), lambda x, y, s, g: blur(x, s)),
    "pixel noise": ((0, 0.05, 0.1, 0.2, 0.3, 0.5), lambda x, y, s, g: pixel_noise(x, s, g)),
    "binarization": ((0, 0.25, 0.5, 0.75, 1.0), lambda x, y, s, g: binarize(x, s, g)),
    "elastic distortion": ((0, 1.0, 2.0, 3.0, 4.0, 6.0), lambda x, y, s, g: elastic(x, s, generator=g)),
    "dropped classes": ((0, 1, 2, 4, 6, 8), lambda x, y, s, g: drop_classes(x, y, int(s), g)[0]),
    "one class repeated": ((0, 0.1, 0.2, 0.4, 0.6, 0.8), lambda x, y, s, g: repeat_class(x, y, s, g)[0]),
}


def degradation_suite(
    extractors: dict[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int = 0,
    suite: dict[str, tuple[tuple[float, ...], Any]] = DEGRADATIONS,
    splits: int = 1,
) -> dict[str, Any]:
    """Each degradation of ``suite`` at each of its strengths, measured by each feature extractor.

    ``images`` [N, C, H, W] in [0, 1] (real ones, e.g. the test set) and ``labels`` [N] are split at
    random (seeded) into two halves: the reference, and the half that is degraded, the same draws at
    every strength. A random split, not the first and last halves: MNIST's test set is two populations
    of writers, 5,000 each, whose halves lie further apart than mild blur moves them. With ``splits`` > 1
    every figure is the mean over that many splits (seeds ``seed``, ``seed + 1``, ...).

    Per degradation: ``strengths``, and per extractor (by name) ``frechet_distance`` at each strength,
    its ``spread`` (the standard deviation over the splits; with one split, none) and whether it is
    ``monotone`` (each mean above the one before); for the first extractor also ``precision``,
    ``recall``, ``density`` and ``coverage``.
    """
    runs = [_suite_once(extractors, images, labels, seed + i, suite) for i in range(splits)]
    result: dict[str, Any] = {}
    for degradation, (strengths, _) in suite.items():
        entry: dict[str, Any] = {"strengths": list(strengths)}
        for name in extractors:
            figures = {
                key: torch.tensor([run[degradation][name][key] for run in runs])
                for key in runs[0][degradation][name]
            }
            entry[name] = {key: values.mean(0).tolist() for key, values in figures.items()}
            fd = entry[name]["frechet_distance"]
            entry[name]["monotone"] = all(b > a for a, b in zip(fd, fd[1:], strict=False))
            if splits > 1:
                entry[name]["spread"] = figures["frechet_distance"].std(0).tolist()
        result[degradation] = entry
    return result


def _suite_once(
    extractors: dict[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
    suite: dict[str, tuple[tuple[float, ...], Any]],
) -> dict[str, Any]:
    """``degradation_suite`` on one random split: figures per degradation, extractor and strength."""
    from vaekit.evaluation.classifier import classify
    from vaekit.evaluation.quality import NEIGHBOURS, frechet_distance, gaussian_statistics, manifold_figures

    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    half = len(images) // 2
    reference, degraded, degraded_labels = images[order[:half]], images[order[half:]], labels[order[half:]]
    real = {name: classify(model, reference)["features"] for name, model in extractors.items()}
    statistics = {name: gaussian_statistics(features) for name, features in real.items()}
    first = next(iter(extractors))
    result: dict[str, Any] = {}
    for degradation, (strengths, apply) in suite.items():
        figures: dict[str, dict[str, list[float]]] = {name: {"frechet_distance": []} for name in extractors}
        for strength in strengths:
            batch = apply(degraded, degraded_labels, strength, torch.Generator().manual_seed(seed + 1))
            for name, model in extractors.items():
                features = classify(model, batch)["features"]
                fd = frechet_distance(*gaussian_statistics(features), *statistics[name])
                figures[name]["frechet_distance"].append(fd)
                if name == first:
                    for key, value in manifold_figures(real[name], features, NEIGHBOURS).items():
                        figures[name].setdefault(key, []).append(value)
        result[degradation] = figures
    return result
