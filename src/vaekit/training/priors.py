"""The second stage of a run: fit a prior to the latents of the run's training images.

A Gaussian-latent model (mlp, conv, cvae) gets a MixturePrior: Gaussian mixtures over the posterior means
of the training images, one per class where the images have labels (seconds of work; ``vaekit train``
ends with it). A VQ-VAE gets a CodePrior, an autoregressive transformer over its code grids, trained by
``training.code_prior.train_prior``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vaekit.data import Dataset, ImageSet, binarize, split_train_val, unit_float
from vaekit.evaluation.latents import encoding_batch
from vaekit.evaluation.runs import load_run_dataset
from vaekit.models import VAE, GaussianVAE
from vaekit.models.priors.mixture import MixturePrior
from vaekit.models.saving import load, save_model
from vaekit.training.group_prior import fit_group_prior, fit_record, temperatures_after_fit
from vaekit.utils import plots
from vaekit.utils.atomic import write_json, write_text
from vaekit.utils.devices import resolve_device
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_run_config
from vaekit.utils.integrity import MANIFEST
from vaekit.utils.targets import all_or_nothing, check_run_writable

N_SAMPLES = 64  # samples/prior.png: an 8 x 8 grid (a conditional model: a row per class)
# Mixture components per class (or in all, for a prior without classes); chosen by benchmarks/priors.py.
DEFAULT_COMPONENTS = {True: 8, False: 40}
# What the mixture is fitted to: the posterior means (the default: the clearer samples), or the aggregate
# posterior E_x q(z|x), the means' spread plus the posterior variances (a closer density: better -log p(x)).
TARGETS = ("means", "aggregate")


FLOW_DRAWS = 16


@torch.no_grad()
def posterior_moments(
    model: GaussianVAE, x: torch.Tensor, labels: torch.Tensor | None, batch_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and variances of images x [N, C, H, W] under the model in eval mode, each
    [N, latent_dim], float32. A flow posterior has neither in closed form: they are the mean and
    variance of FLOW_DRAWS seeded draws z ~ q(z|x) per image. ``batch_size`` None: the device's."""
    model.eval()
    batch_size = batch_size or encoding_batch(model, x, labels)
    means, variances = [], []
    generator = torch.Generator(device=x.device).manual_seed(0)
    for start in range(0, len(x), batch_size):
        y = None if labels is None else labels[start : start + batch_size]
        mean, variance = model.posterior_of(unit_float(x[start : start + batch_size]), y).moments(
            FLOW_DRAWS, generator
        )
        means.append(mean)
        variances.append(variance)
    if not means:
        return (torch.zeros(0, model.latent_dim, device=x.device),) * 2
    return torch.cat(means), torch.cat(variances)


def check_mixture_settings(components: Any, per_class: bool | None, num_classes: int) -> tuple[int, bool]:
    """Resolve a mixture prior's settings: (components, per_class). ``per_class`` None means per class
    whenever the images have labels; ``components`` None the measured default."""
    if per_class and num_classes == 0:
        raise VaekitError("the run's training images have no labels: a per-class prior cannot be fitted")
    per_class = num_classes > 0 if per_class is None else per_class
    components = DEFAULT_COMPONENTS[per_class] if components is None else components
    if isinstance(components, bool) or not isinstance(components, int) or components < 1:
        raise VaekitError(f"mixture components must be an integer >= 1, got {components!r}")
    return components, per_class


def fit_mixture_prior(
    model: GaussianVAE,
    x: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    components: int | None = None,
    per_class: bool | None = None,
    seed: int = 0,
    target: str = "means",
) -> dict[str, Any]:
    """Fit a MixturePrior to the posterior means of images x (with their ``labels``, of ``num_classes``;
    0 for none) and attach it to ``model``; ``target`` "aggregate" widens each component by the posterior
    variances it covers (see ``fit_gaussian_mixture``'s spread). Returns what was fitted: ``components``,
    ``classes`` (0: one mixture), ``target``, ``latents``, ``seconds``, ``em_iterations`` (per mixture),
    ``converged``."""
    components, per_class = check_mixture_settings(components, per_class, num_classes)
    if target not in TARGETS:
        raise VaekitError(f"unknown prior target {target!r}; choose from {', '.join(TARGETS)}")
    if model.latent_space.groups:  # a hierarchy: the mixture is over its groups' noise
        return fit_group_prior(model, x, labels, num_classes, components, per_class, seed, target)
    start = time.perf_counter()
    latents, variances = posterior_moments(model, x, labels)
    classes = num_classes if per_class else 0
    spread = variances if target == "aggregate" else None
    prior, fits = MixturePrior.fit(latents, labels if per_class else None, components, classes, seed, spread)
    model.set_prior(prior)
    return fit_record(fits, components, target, classes, len(latents), start)


def describe_mixture(info: dict[str, Any]) -> str:
    classes = info["classes"]
    shape = f"{classes} classes x {info['components']}" if classes else f"{info['components']}"
    target = "posterior means" if info["target"] == "means" else "aggregate posterior"
    what = f"the {target} of {info['latents']:,} training images"
    if "units" in info:  # a hierarchy's (training.group_prior)
        units, groups = info["units"], info["groups"]
        what += f" (as noise of its groups' priors: {units} informative units, top {groups} groups)"
    shape += " full-covariance components"
    return f"fitted a Gaussian mixture prior ({shape}) to {what} in {info['seconds']:.1f} s"


def save_prior_samples(model: VAE, path: Path, seed: int) -> None:
    """samples/prior.png: 8 x 8 samples from the model's prior (a conditional model: a row per class)."""
    rows = model.num_classes if model.conditional else N_SAMPLES // 8
    samples = model.sample(rows * 8, generator=torch.Generator(device=model.device).manual_seed(seed))
    plots.save_grid(samples, path, ncol=8)


def fit_run_prior(
    run: str | os.PathLike,
    components: int | None = None,
    per_class: bool | None = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    target: str = "means",
) -> dict[str, Any]:
    """Fit the mixture prior of the Gaussian-latent run in ``run`` (see ``fit_mixture_prior``) to its
    training split, attach it and save the run (model.safetensors, config.json, samples/prior.png)."""
    run = Path(run)
    config = read_run_config(run)
    dev = resolve_device(device)
    model = load(run, dev)
    if not model.fits_prior:
        raise VaekitError(f"{run} holds a {model.name} model; a mixture prior is for Gaussian latents")
    if model.fitted_prior is not None and not overwrite:
        raise VaekitError(f"{run} already has a fitted prior; pass --overwrite to fit a new one")
    check_run_writable(run, "the prior")
    x, labels, num_classes = training_split(run, config, dev)
    info = fit_mixture_prior(model, x, labels, num_classes, components, per_class, seed, target)
    log(describe_mixture(info))
    if model.latent_space.groups:
        dataset, train_set, val_set = run_splits(run, config)
        # the images as they are, not binarized: samples are measured against them (as evaluate does)
        where, images = ("validation", val_set.images) if len(val_set) else ("training", train_set.images)
        chosen = temperatures_after_fit(model, dataset, images.to(dev), where, seed, log)
        info["temperatures"] = None if chosen is None else chosen["temperatures"]
    save_run_with_prior(run, model, config, seed)
    log(f"saved in {run}")
    return info


def fit_prior_after_training(
    run: Path,
    model: GaussianVAE,
    config: dict[str, Any],
    x: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    components: int | None,
    seed: int,
    log: Callable[[str], None],
    held_out: tuple[Dataset, torch.Tensor] | None = None,
) -> None:
    """The end of ``vaekit train``: fit the mixture prior to the training images ``x`` and save the run
    (``config``: its config.json) with it; a hierarchy's temperatures are chosen on ``held_out`` (the
    dataset and its validation images) where given. A dataset too small for the mixture gets fewer
    components, or (with a note) no prior, rather than failing the finished run."""
    try:
        components, per_class = check_mixture_settings(components, None, num_classes)
        # a tiny dataset: no more components than the rarest class (or the whole set) has images
        smallest = int(torch.bincount(labels, minlength=num_classes).min()) if per_class else len(labels)
        if 0 < smallest < components:
            where = "per class, but a class has" if per_class else "but there are"
            log(f"note: {components} prior components {where} {smallest} images")
            components = smallest
        info = fit_mixture_prior(model, x, labels, num_classes, components, per_class, seed)
    except VaekitError as exc:
        log(f"note: no prior fitted ({exc}); samples come from N(0, I)")
        return
    log(describe_mixture(info) + "; vaekit sample draws from it")
    if model.latent_space.groups and held_out is not None:
        dataset, images = held_out  # images as they are; without a validation split, the training ones
        where = "validation" if len(images) else "training"
        images = images if len(images) else dataset.train.images
        temperatures_after_fit(model, dataset, images.to(model.device), where, seed, log)
    save_run_with_prior(run, model, config, seed)


def run_splits(run: Path, config: dict[str, Any]) -> tuple[Dataset, ImageSet, ImageSet]:
    """The run's dataset and its training and validation images, split as training split them."""
    try:
        dataset = load_run_dataset(config)
        val_fraction, split_seed = config["train"]["val_fraction"], config["train"]["seed"]
    except (KeyError, TypeError) as exc:
        raise VaekitError(f"corrupt {run / 'config.json'}: no data or train setting {exc}") from None
    return dataset, *split_train_val(dataset.train, val_fraction, split_seed)


def training_split(
    run: Path, config: dict[str, Any], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The run's training images (one fixed draw if it binarized), their labels, and the class count."""
    dataset, train_set, _ = run_splits(run, config)
    x = train_set.images.to(device)  # uint8; posterior_moments converts batches
    if config["train"].get("binarize", "none") != "none":
        x = binarize(unit_float(x), "train")
    return x, train_set.labels.to(device), dataset.num_classes


def save_run_with_prior(
    run: Path, model: VAE, config: dict[str, Any], seed: int, texts: dict[str, str] | None = None
) -> None:
    """The pictures first, the model last: config.json and model.safetensors change together, with the
    files of ``texts`` (name: content) beside them; a write that fails leaves every one as it was."""
    texts = texts or {}
    names = [*texts, "samples/prior.png", "model.safetensors", "config.json", MANIFEST]
    with all_or_nothing([run / name for name in names]):
        for name, text in texts.items():
            write_text(run / name, text)
        save_prior_samples(model, run / "samples" / "prior.png", seed)
        save_model(model, run / "model.safetensors")
        write_json(run / "config.json", {**config, "model": model.config})
