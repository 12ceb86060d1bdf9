"""Evaluating a run folder: its model on its dataset's test or validation split, merged into eval.json.

``evaluate_run`` gathers the figures of ``evaluation.likelihood`` (ELBO, -log p(x)), ``evaluation.latents``
(active units, KL per dimension), ``evaluation.quality`` (samples) and ``evaluation.disentanglement``
(MIG, FactorVAE score) for one run, as ``vaekit evaluate`` prints them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.data import (
    Dataset,
    ImageSet,
    binarize,
    images_for_shape,
    load_dataset,
    split_train_val,
    unit_float,
)
from vaekit.evaluation.latents import group_resamples, group_statistics, latent_statistics
from vaekit.evaluation.likelihood import (
    bits_per_dim,
    elbo_terms,
    evaluation_precision,
    iwae_nll,
    nll_bits_key,
    reconstruction_errors,
)
from vaekit.models import VAE, GaussianVAE
from vaekit.models.saving import load
from vaekit.utils import limits
from vaekit.utils.atomic import write_json
from vaekit.utils.devices import resolve_device
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_json, read_run_config


def eval_options(train_config: dict[str, Any]) -> dict[str, Any]:
    """The ``model.loss`` options an evaluation of a run uses: its IWAE k, if it trained on that bound
    (config.json's ``part_options``, or its ``k`` before there were part options)."""
    if train_config.get("objective") == "iwae":
        return {"iwae_k": (train_config.get("part_options") or {}).get("k", train_config.get("k"))}
    return {}


def eval_record(
    terms: dict[str, float], split: str, n_images: int, epochs: int | None, precision: str = "fp32"
) -> dict[str, Any]:
    """The eval.json entries of one split: ``{split}_{term}`` for each term and ``{split}_n_images``, and
    ``{split}_precision`` where the networks ran in other than fp32."""
    record: dict[str, Any] = {f"{split}_{k}": v for k, v in terms.items()}
    record.update({f"{split}_n_images": n_images, "epochs_trained": epochs})
    if precision != "fp32":
        record[f"{split}_precision"] = precision
    return record


def write_eval(
    path: Path, record: dict[str, Any], drop: Iterable[str] = (), log: Callable[[str], None] | None = None
) -> None:
    """Merge ``record`` into the eval.json at ``path``, so that a val evaluation keeps the test figures;
    entries named in ``drop`` (figures this evaluation withheld) go, so that no earlier ones outlive it.
    eval.json is output: a damaged one is replaced (``log`` is told), never the cause of lost work."""
    try:
        previous = read_json(path)
    except FileNotFoundError:
        previous = {}
    except VaekitError as damaged:
        (log or print)(f"note: {damaged}; replaced by this evaluation")
        previous = {}
    drop = set(drop)
    write_json(path, {**{k: v for k, v in previous.items() if k not in drop}, **record})


def run_data_dir(config: dict[str, Any], data_dir: str | os.PathLike | None = None) -> str | None:
    """The data folder of a run: ``data_dir`` if given, else the one it trained from (None: the default)."""
    return data_dir or config["data"]["data_dir"]


def load_run_dataset(
    config: dict[str, Any],
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """The dataset of a run (its config.json), prepared as for training (image size, colour)."""
    train = config["train"]
    return load_dataset(
        config["data"]["dataset"],
        run_data_dir(config, data_dir),
        image_size=train.get("image_size"),
        colour=train.get("colour"),
        log=log or (lambda line: None),
    )


def run_split(
    config: dict[str, Any],
    split: str,
    data_dir: str | os.PathLike | None = None,
    dataset: Dataset | None = None,
) -> ImageSet:
    """The test or validation images of a run (its config.json), as it was split for training."""
    if split not in ("test", "val"):
        raise VaekitError(f"unknown split {split!r}; choose test or val")
    if dataset is None:
        dataset = load_run_dataset(config, data_dir)
    if split == "test":
        return dataset.test
    _, images = split_train_val(dataset.train, config["train"]["val_fraction"], config["train"]["seed"])
    if len(images) == 0:
        raise VaekitError("the run was trained with no validation split")
    return images


def evaluated_images(
    config: dict[str, Any], images: ImageSet, split: str, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """A run's ``split`` images as its evaluation takes them, on ``device``: uint8 (the evaluators convert
    batches), or where it trained on binarized images the split's fixed binary images (the same ones
    each call: ``data.binarize(..., split)``)."""
    x = images.images.to(device)
    if config["train"].get("binarize", "none") != "none":
        x = binarize(unit_float(x), split)
    return x


def evaluate_run(
    run: str | os.PathLike,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    write: bool = True,
    iwae_k: int = 0,
    samples: int = 0,
    log: Callable[[str], None] | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Evaluate a run folder's model on its dataset's ``split`` (test or val); merge it into eval.json.

    Keys: ``{split}_loss``, ``{split}_recon``, ``{split}_kl`` and the model's other terms (nats per
    image), ``{split}_n_images``, ``epochs_trained``, ``{split}_bits_per_dim`` (of the negative ELBO),
    ``{split}_recon_bce`` and ``{split}_recon_mse``; for Gaussian-latent models ``active_units`` and
    ``kl_per_dim``, and with ``iwae_k`` > 0 the importance-sampled ``iwae_nll`` (nats per image,
    k = ``iwae_k``) and its ``bits_per_dim`` (see ``nll_bits_key``). With ``samples`` > 0, the sample
    quality of that many samples against the split's images (see ``evaluation.quality.sample_quality``:
    ``frechet_distance``, ``class_histogram``, ``mode_coverage``, ``class_tv_distance``, conditional
    models ``label_accuracy``) and the measuring classifier's ``classifier_test_accuracy``; where that
    is below ``evaluation.quality.MIN_CLASSIFIER_ACCURACY``, the accuracy alone: the figures are withheld
    (and dropped from eval.json). Keys without a split prefix are the test split's; a val evaluation
    prefixes them with ``val_``. ``log`` gets notes (training the classifier, a model that cannot sample
    yet, figures withheld and why). ``precision``: of the networks (``likelihood.evaluation_precision``).
    """
    run, config = Path(run), read_run_config(Path(run))
    dataset = load_run_dataset(config, data_dir, log)
    images = run_split(config, split, dataset=dataset)
    dev = resolve_device(device)
    model = load(run, device=dev)
    if iwae_k and not model.has_likelihood:
        raise VaekitError(f"--iwae-k applies to the Gaussian-latent models, not {model.name}")
    if samples:  # checked now, not after the minutes of the figures before it (grid=False: no picture)
        limits.check_images(samples, model.image_shape, dev, "sample quality", False, "; lower --samples")
    x, labels = evaluated_images(config, images, split, dev), images.labels.to(dev)
    seed = config["train"]["seed"]
    terms = elbo_terms(model, x, labels, seed=seed, precision=precision, **eval_options(config["train"]))
    resolved = evaluation_precision(precision, dev)
    result = eval_record(terms, split, len(images), config.get("epochs_completed"), resolved)
    prefix = "" if split == "test" else f"{split}_"
    result[f"{split}_bits_per_dim"] = bits_per_dim(terms["loss"], model.image_shape)
    result.update({f"{split}_{k}": v for k, v in reconstruction_errors(model, x, labels).items()})
    if model.latent_space.gaussian:
        result.update(_latent_figures(model, x, labels, prefix, run if write else None, seed))
        if iwae_k:
            result.update(_iwae_figures(model, x, labels, split, iwae_k, seed, precision))
    if dataset.factor_names and model.latent_space.gaussian:
        scores = disentanglement_scores(model, x, labels, images.factors, dataset.factor_names)
        result.update({f"{prefix}{k}": v for k, v in scores.items()})
    withheld: list[str] = []
    if samples:
        quality = _sample_figures(model, dataset, images, samples, seed, dev, log)
        result.update({f"{prefix}{k}": v for k, v in quality.items()})
        withheld = [prefix + key for key in _withheld(quality)]
    if write:
        write_eval(run / "eval.json", result, drop=withheld, log=log)
    return result


def _latent_figures(
    model: GaussianVAE, x: torch.Tensor, labels: torch.Tensor, prefix: str, run: Path | None, seed: int
) -> dict[str, Any]:
    """Active units and the KL per dimension; for a hierarchy (of its top group, then) every group's
    size, active units and KL, and with a ``run`` to write to, its groups.png."""
    stats = latent_statistics(model, x, labels)
    figures = {f"{prefix}active_units": stats["active_units"], f"{prefix}kl_per_dim": stats["kl_per_dim"]}
    if model.latent_space.kind == "hierarchy":
        figures.update({f"{prefix}{k}": v for k, v in group_statistics(model, x).items()})
        if run is not None:
            _save_group_picture(model, x, run / GROUPS_PICTURE, seed)
    return figures


GROUPS_PICTURE = "groups.png"  # a hierarchy's groups, each redrawn (written by evaluate)


def _save_group_picture(model: Any, x: torch.Tensor, path: Path, seed: int) -> None:
    """RUN/groups.png: what each group changes in the split's first image (``group_resamples``)."""
    from vaekit.utils import plots

    tiles, labels = group_resamples(model, unit_float(x[:1]).float(), seed=seed)
    plots.save_grid(tiles, path, ncol=len(tiles) // len(labels), row_labels=labels)


def _iwae_figures(
    model: GaussianVAE, x: torch.Tensor, labels: torch.Tensor, split: str, k: int, seed: int, precision: str
) -> dict[str, Any]:
    """-log p(x) of images ``x`` by importance sampling with ``k`` samples (nats per image, and bits per
    dimension), and where the model has a fitted prior, the same with it as p(z); keys as eval.json's."""
    prefix = "" if split == "test" else f"{split}_"
    nll = iwae_nll(model, x, labels, k=k, seed=seed, precision=precision).mean().item()
    figures = {
        f"{prefix}iwae_nll": nll,
        f"{prefix}iwae_k": k,
        nll_bits_key(split): bits_per_dim(nll, model.image_shape),
    }
    if model.fitted_prior is not None:  # the same estimate with the fitted mixture as p(z)
        fitted = iwae_nll(model, x, labels, k=k, seed=seed, prior="fitted", precision=precision).mean().item()
        figures[f"{prefix}fitted_iwae_nll"] = fitted
    return figures


def _withheld(quality: dict[str, Any]) -> tuple[str, ...]:
    """The classifier's figures (unprefixed eval.json names) if ``quality`` withheld them, else none."""
    from vaekit.evaluation.quality import CLASSIFIER_FIGURES

    withheld = "classifier_test_accuracy" in quality and "quality_samples" not in quality
    return CLASSIFIER_FIGURES if withheld else ()


def _sample_figures(
    model: Any,
    dataset: Dataset,
    images: ImageSet,
    samples: int,
    seed: int,
    device: torch.device,
    log: Callable[[str], None] | None,
) -> dict[str, Any]:
    """The sample quality of ``samples`` samples measured against ``images`` (keys without the split
    prefix), or none, with a note to ``log``, where the run cannot sample or the data has no classes;
    only ``classifier_test_accuracy``, with a note, where the classifier is not accurate enough."""
    if not model.can_sample:
        if log:
            log(f"no sample quality: this {model.name} run cannot sample until vaekit train-prior has run")
        return {}
    if dataset.num_classes == 0:
        if log:
            log(
                f"no sample quality: {dataset.name} has no classes to train the measuring classifier on "
                "(give the folder class subfolders to have it)"
            )
        return {}
    from vaekit.evaluation.classifier import SECOND_RECIPE, SECOND_SEED, load_classifier
    from vaekit.evaluation.quality import classifier_shortfall, label_swap_accuracy, sample_quality

    classifier, info = load_classifier(dataset, device=device, log=log)
    shortfall = classifier_shortfall(info["test_accuracy"], dataset.name)
    if shortfall:
        if log:
            log(shortfall)
        return {"classifier_test_accuracy": info["test_accuracy"]}
    # A Gaussian-latent model is measured with the prior it trained with (unprefixed keys) and with its
    # fitted prior (fitted_*); a vqvae with its prior over codes, the only one it has.
    priors = [("", "trained" if model.fits_prior else None)]
    if model.fits_prior and model.fitted_prior is not None:
        priors.append(("fitted_", "fitted"))
    # the second, independently trained classifier: its Frechet distance checks the first's ranking
    second, second_info = load_classifier(dataset, None, SECOND_SEED, device, log, SECOND_RECIPE)
    figures: dict[str, Any] = {}
    for key_prefix, prior in priors:
        quality = sample_quality(
            model, classifier, images, n_samples=samples, seed=seed, prior=prior,
            second=second,
        )  # fmt: skip
        figures.update({f"{key_prefix}{k}": v for k, v in quality.items()})
    figures["classifier_test_accuracy"] = info["test_accuracy"]
    figures["second_classifier_test_accuracy"] = second_info["test_accuracy"]
    if model.conditional:
        figures.update(label_swap_accuracy(model, classifier, images, seed=seed))
    return figures


def disentanglement_scores(
    model: GaussianVAE, x: torch.Tensor, labels: torch.Tensor, factors: torch.Tensor, names: list[str]
) -> dict[str, Any]:
    """MIG and the FactorVAE score of the posterior means of images ``x`` against their known ``factors``
    [N, K] (value indices), each with its figure per factor by name, as in
    vaekit.evaluation.disentanglement."""
    from vaekit.evaluation.disentanglement import factor_vae_score, mig
    from vaekit.evaluation.latents import latent_means

    means = latent_means(model, x, labels).double().numpy()
    gap = mig(means, factors.numpy())
    votes = factor_vae_score(means, factors.numpy(), seed=0)
    return {
        "mig": gap["mig"],
        "mig_per_factor": dict(zip(names, gap["per_factor"], strict=True)),
        "factor_vae_score": votes["factor_vae_score"],
        "factor_vae_per_factor": dict(zip(names, votes["per_factor"], strict=True)),
    }


def run_images(
    run: str | os.PathLike,
    model: VAE,
    dataset: str | None,
    split: str,
    data_dir: str | os.PathLike | None,
    progress: bool,
    log: Callable[[str], None],
) -> tuple[str, ImageSet]:
    """The ``split`` of ``dataset`` (the run's own if None) as ``model`` takes them: resized for a folder,
    binarized as the run trained (with the test split's fixed draw). Returns the dataset's name too."""
    config = read_run_config(Path(run))
    name = dataset or config["data"]["dataset"]
    folder = data_dir or config["data"].get("data_dir")
    _, images = images_for_shape(name, model.image_shape, split, folder, progress, log)
    if config["train"].get("binarize", "none") != "none":  # the model knows only binary pixels
        binary = (binarize(unit_float(images.images), "test") * 255).to(torch.uint8)
        images = ImageSet(binary, images.labels, images.factors, images.names)
    return name, images


def model_labels(model: VAE, images: ImageSet) -> torch.Tensor | None:
    """The labels a conditional model needs (an error if the dataset has none); None for the others."""
    if not model.conditional:
        return None
    labels = images.labels
    if len(labels) and (labels.min() < 0 or labels.max() >= model.num_classes):
        raise VaekitError(
            f"model {model.name} is conditional: it needs labels 0..{model.num_classes - 1} for every image"
        )
    return labels


def image_columns(images: ImageSet) -> dict[str, Any]:
    """What tells a table's rows apart for another program: ``label`` where the images have labels and
    ``filename`` (relative to the folder) where they came from one (numpy arrays, one row per image)."""
    columns: dict[str, Any] = {}
    if len(images) and images.labels.min() >= 0:
        columns["label"] = images.labels.numpy().astype(np.int64)
    if images.names is not None:
        columns["filename"] = np.asarray(images.names, dtype=str)
    return columns
