"""Evaluation of a trained model: the negative ELBO per image, its parts and the model's own terms."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from vaekit.atomic import write_json
from vaekit.data import ImageSet, load_dataset, split_train_val
from vaekit.devices import resolve_device
from vaekit.errors import VaekitError
from vaekit.models import VAE
from vaekit.saving import load, read_run_config


@torch.no_grad()
def elbo_terms(
    model: VAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 1000,
    seed: int = 0,
    **options: Any,
) -> dict[str, float]:
    """Per-image means of every term of ``model.loss`` (``loss`` = negative ELBO, ``recon``, ``kl``, and
    the model's own, e.g. ``iwae``) over ``images`` (float, [0, 1]) with their ``labels``.

    ``options`` go to ``model.loss`` (e.g. ``iwae_k``). z is drawn from a generator seeded with ``seed``,
    so the estimate is reproducible and draws nothing from the global RNG (training's noise stream is
    left as it was). Sums are kept in float64.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=images.device).manual_seed(seed)
    totals: dict[str, torch.Tensor] = {}
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        batch_labels = None if labels is None else labels[start : start + batch_size]
        terms = model.loss(batch, batch_labels, generator=generator, **options).terms
        for name, value in terms.items():
            totals[name] = totals.get(name, 0.0) + value.double() * len(batch)
    model.train(was_training)
    return {name: (total / max(len(images), 1)).item() for name, total in totals.items()}


def eval_options(train_config: dict[str, Any]) -> dict[str, Any]:
    """The ``model.loss`` options an evaluation of a run uses: its IWAE k, if it trained on that bound."""
    if train_config.get("objective") == "iwae":
        return {"iwae_k": train_config["k"]}
    return {}


def eval_record(terms: dict[str, float], split: str, n_images: int, epochs: int | None) -> dict[str, Any]:
    """The eval.json entries of one split: ``{split}_{term}`` for each term and ``{split}_n_images``."""
    record: dict[str, Any] = {f"{split}_{k}": v for k, v in terms.items()}
    record.update({f"{split}_n_images": n_images, "epochs_trained": epochs})
    return record


def write_eval(path: Path, record: dict[str, Any]) -> None:
    """Merge ``record`` into the eval.json at ``path``, so that a val evaluation keeps the test figures."""
    previous = json.loads(path.read_text()) if path.is_file() else {}
    write_json(path, {**previous, **record})


def run_split(config: dict[str, Any], split: str, data_dir: str | os.PathLike | None = None) -> ImageSet:
    """The test or validation images of a run (its config.json), as it was split for training."""
    if split not in ("test", "val"):
        raise VaekitError(f"unknown split {split!r}; choose test or val")
    dataset = load_dataset(config["data"]["dataset"], data_dir or config["data"]["data_dir"])
    if split == "test":
        return dataset.test
    _, images = split_train_val(dataset.train, config["train"]["val_fraction"], config["train"]["seed"])
    if len(images) == 0:
        raise VaekitError("the run was trained with no validation split")
    return images


def evaluate_run(
    run: str | os.PathLike,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    write: bool = True,
) -> dict[str, Any]:
    """Evaluate a run folder's model on its dataset's ``split`` (test or val); merge it into eval.json.

    Keys: ``{split}_loss``, ``{split}_recon``, ``{split}_kl`` and the model's other terms (nats per
    image), ``{split}_n_images``, ``epochs_trained``.
    """
    run = Path(run)
    config = read_run_config(run)
    images = run_split(config, split, data_dir)
    dev = resolve_device(device)
    model = load(run, device=dev)
    terms = elbo_terms(
        model,
        images.as_float(dev),
        images.labels.to(dev),
        seed=config["train"]["seed"],
        **eval_options(config["train"]),
    )
    result = eval_record(terms, split, len(images), config.get("epochs_completed"))
    if write:
        write_eval(run / "eval.json", result)
    return result
