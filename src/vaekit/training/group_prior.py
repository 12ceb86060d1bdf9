"""A hierarchy's fitted prior (``models.priors.groups``): Gaussian mixtures fitted to the training images'
group noise, and the per-group temperatures ``sample`` uses, chosen on held-out images by the measuring
classifier's Frechet distance (docs/hvae.md, "Samples").

NVAE (Vahdat & Kautz 2020, sec. 5) and VDVAE (Child 2021) draw their samples at temperatures below 1, a
group at a time, chosen by eye; here they are chosen by measurement: a coordinate search over
``TEMPERATURE_GRID``, first one temperature for every group, then each group's in turn from the top,
keeping a change only where it lowers the distance. Every candidate is scored on the same seeded draws
(common random numbers), so that a change of temperature is not mistaken for a change of luck.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from vaekit.data import unit_float
from vaekit.models import VAE
from vaekit.models.priors.groups import ACTIVE_VARIANCE, GroupNoisePrior, temperature_line
from vaekit.models.priors.mixture import MixturePrior
from vaekit.utils.errors import VaekitError

TEMPERATURE_GRID = (1.0, 0.9, 0.8, 0.7, 0.6)
SEARCH_SAMPLES = 2000  # samples per candidate (the same draws for each)
BATCH = 500
LABEL_ACCURACY = 0.95  # of samples drawn by class that should read as their class


@torch.no_grad()
def training_noise(model: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's ``group_noise`` of images x [N, C, H, W] (uint8 or float), BATCH at a time."""
    model.eval()
    pairs = [model.group_noise(unit_float(x[start : start + BATCH])) for start in range(0, len(x), BATCH)]
    if not pairs:
        raise VaekitError("there are no training images to fit a prior to")
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def fit_group_prior(
    model: Any,
    x: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    components: int,
    per_class: bool,
    seed: int = 0,
    target: str = "means",
) -> dict[str, Any]:
    """Fit a GroupNoisePrior to the group noise of images x (``labels``, ``num_classes``: one mixture per
    class where ``per_class``) and attach it to ``model``: the mixture over the informative units of the
    groups from the top to the last that has one; ``target`` "aggregate" widens it by the posterior
    variances. Returns what ``training.priors.fit_mixture_prior`` does, with ``units`` and ``groups``."""
    start = time.perf_counter()
    noise, variances = training_noise(model, x)
    informative = noise.var(0) > ACTIVE_VARIANCE if len(noise) > 1 else torch.zeros(0, dtype=torch.bool)
    if not informative.any():
        raise VaekitError("no unit of any group varies over the training images: there is nothing to fit")
    sizes = [math.prod(shape) for shape in model.latent_space.groups]
    ends = torch.tensor(sizes).cumsum(0)
    covered = int((ends <= int(informative.nonzero().max())).sum()) + 1  # down to the last informative
    units = informative[: int(ends[covered - 1])].nonzero().squeeze(1)
    mixture, fits = MixturePrior.fit(
        noise[:, units], labels if per_class else None, components, num_classes if per_class else 0, seed,
        spread=variances[:, units] if target == "aggregate" else None,
    )  # fmt: skip
    prior = GroupNoisePrior(sizes[:covered], len(units), components, num_classes if per_class else 0)
    prior.mixture.load_state_dict(mixture.state_dict())
    prior.units.copy_(units)
    model.set_prior(prior)
    record = fit_record(fits, components, target, num_classes if per_class else 0, len(noise), start)
    return {**record, "units": len(units), "groups": covered}


def fit_record(
    fits: Sequence[Any], components: int, target: str, classes: int, latents: int, start: float
) -> dict[str, Any]:
    """What a fitted mixture prior reports (``training.priors.fit_mixture_prior``): its ``components``,
    ``target``, ``classes`` (0: one mixture), ``latents`` fitted, ``seconds`` since ``start``,
    ``em_iterations`` (per mixture) and ``converged``."""
    return {
        "components": components,
        "target": target,
        "classes": classes,
        "latents": latents,
        "seconds": round(time.perf_counter() - start, 3),
        "em_iterations": [f.iterations for f in fits],
        "converged": all(f.converged for f in fits),
    }


@torch.no_grad()
def choose_temperatures(
    model: VAE,
    reference: torch.Tensor,
    classifier: torch.nn.Module,
    seed: int = 0,
    samples: int = SEARCH_SAMPLES,
    grid: Sequence[float] = TEMPERATURE_GRID,
) -> dict[str, Any]:
    """Choose the per-group temperatures of ``model``'s fitted group prior that give the smallest Frechet
    distance between ``classifier``'s features of ``samples`` samples and of ``reference`` (held-out
    images, float [0, 1]), save them in the prior, and return ``temperatures``, ``frechet_distance`` (at
    them), ``frechet_distance_at_1``, ``candidates`` (how many were scored), ``seconds``."""
    from vaekit.evaluation.classifier import classify
    from vaekit.evaluation.quality import draw_samples, feature_distance

    start = time.perf_counter()
    real = classify(classifier, reference)["features"]
    scored: dict[tuple[float, ...], float] = {}

    def distance(temperatures: tuple[float, ...]) -> float:
        if temperatures not in scored:
            images, _ = draw_samples(model, samples, seed, prior="fitted", temperature=list(temperatures))
            scored[temperatures] = feature_distance(classify(classifier, images)["features"], real)
        return scored[temperatures]

    groups = len(model.latent_space.groups)
    best = min((tuple([t] * groups) for t in grid), key=distance)
    for group in range(groups):
        candidates = (best[:group] + (t,) + best[group + 1 :] for t in grid)
        best = min([best, *candidates], key=distance)
    by_class = label_temperatures(model, classifier, best, seed, samples, grid)
    model.fitted_prior.set_temperatures(best, by_class and by_class["temperatures"])
    model.set_prior(model.fitted_prior)  # the model's config takes the prior's, temperatures included
    return {
        "temperatures": list(best),
        "frechet_distance": scored[best],
        "frechet_distance_at_1": scored[tuple([1.0] * groups)],
        "candidates": len(scored),
        "reference": len(reference),
        "label": by_class,
        "seconds": round(time.perf_counter() - start, 1),
    }


@torch.no_grad()
def label_temperatures(
    model: VAE,
    classifier: torch.nn.Module,
    temperatures: Sequence[float],
    seed: int,
    samples: int,
    grid: Sequence[float],
) -> dict[str, Any] | None:
    """For a prior with classes: the chosen ``temperatures`` scaled by the first factor of ``grid`` (from
    1 down) at which ``classifier`` reads LABEL_ACCURACY of ``samples`` samples drawn by class as their
    class (a requested class should come out as that class: at 1, about 7% of a 10-minute hvae's do
    not), else by the factor that comes nearest. Returns ``temperatures``, ``label_accuracy`` (at them)
    and ``label_accuracy_at_1`` (at the chosen ``temperatures`` unscaled); None without classes."""
    from vaekit.evaluation.classifier import classify
    from vaekit.evaluation.quality import draw_samples

    if not model.samples_by_class("fitted"):
        return None
    accuracies: dict[float, float] = {}
    for factor in sorted(set(grid) | {1.0}, reverse=True):
        scaled = [factor * t for t in temperatures]
        images, labels = draw_samples(model, samples, seed, prior="fitted", by_class=True, temperature=scaled)
        accuracies[factor] = (classify(classifier, images)["predictions"] == labels).double().mean().item()
        if accuracies[factor] >= LABEL_ACCURACY:
            break
    factor = next((f for f, a in accuracies.items() if a >= LABEL_ACCURACY), None)
    factor = max(accuracies, key=accuracies.__getitem__) if factor is None else factor
    return {
        "temperatures": [factor * t for t in temperatures],
        "label_accuracy": accuracies[factor],
        "label_accuracy_at_1": accuracies[1.0],
    }


def describe_temperatures(info: dict[str, Any], where: str) -> str:
    line = (
        f"sample temperatures {temperature_line(info['temperatures'])} chosen on {info['reference']:,} "
        f"{where} images by the measuring classifier's Frechet distance ({info['frechet_distance_at_1']:.2f} "
        f"at 1 -> {info['frechet_distance']:.2f}; {info['candidates']} candidates, {info['seconds']:.0f} s)"
    )
    label = info["label"]
    if label:
        line += (
            f"; by class {temperature_line(label['temperatures'])}, read as their class "
            f"{label['label_accuracy']:.1%} (at the others: {label['label_accuracy_at_1']:.1%})"
        )
    return line


def temperatures_after_fit(
    model: VAE,
    dataset: Any,
    reference: torch.Tensor,
    where: str,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any] | None:
    """After fitting a group prior: choose its temperatures on ``reference`` (``where`` they come from)
    with the dataset's measuring classifier (trained once and cached), or say why they stay 1."""
    from vaekit.evaluation.classifier import load_classifier
    from vaekit.evaluation.quality import classifier_shortfall

    if dataset.num_classes == 0 or len(reference) < 2:
        why = "the images have no classes" if dataset.num_classes == 0 else f"{where} images are too few"
        log(f"note: sample temperatures stay 1: {why} to train the measuring classifier on")
        return None
    classifier, record = load_classifier(dataset, device=model.device, log=log)
    shortfall = classifier_shortfall(record["test_accuracy"], dataset.name)
    if shortfall:
        log(f"note: sample temperatures stay 1: {shortfall}")
        return None
    info = choose_temperatures(model, unit_float(reference), classifier, seed)
    log(describe_temperatures(info, where))
    return info
