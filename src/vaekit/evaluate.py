"""Evaluation of a trained model: the negative ELBO per image and its two parts on a data split."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from vaekit.atomic import write_json
from vaekit.data import load_dataset, split_train_val
from vaekit.devices import resolve_device
from vaekit.errors import VaekitError
from vaekit.models import VAE
from vaekit.saving import load, read_run_config


@torch.no_grad()
def elbo_terms(model: VAE, images: torch.Tensor, batch_size: int = 1000, seed: int = 0) -> dict[str, float]:
    """Per-image means of ``loss`` (negative ELBO), ``recon`` and ``kl`` over ``images`` (float, [0, 1]).

    One z per image from a generator seeded with ``seed``, so the estimate is reproducible and draws
    nothing from the global RNG (training's noise stream is left as it was). Sums are kept in float64.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=images.device).manual_seed(seed)
    totals = torch.zeros(3, dtype=torch.float64, device=images.device)
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        terms = model.loss(batch, generator=generator).terms
        totals += torch.stack([terms["loss"], terms["recon"], terms["kl"]]).double() * len(batch)
    model.train(was_training)
    loss, recon, kl = (totals / max(len(images), 1)).tolist()
    return {"loss": loss, "recon": recon, "kl": kl}


def eval_record(terms: dict[str, float], split: str, n_images: int, epochs: int | None) -> dict[str, Any]:
    """The eval.json entries of one split: ``{split}_loss``, ``{split}_recon``, ``{split}_kl``, and counts."""
    record: dict[str, Any] = {f"{split}_{k}": v for k, v in terms.items()}
    record.update(split=split, n_images=n_images, epochs_trained=epochs)
    return record


def write_eval(path: Path, record: dict[str, Any]) -> None:
    """Merge ``record`` into the eval.json at ``path``, so that a val evaluation keeps the test figures."""
    previous = json.loads(path.read_text()) if path.is_file() else {}
    write_json(path, {**previous, **record})


def evaluate_run(
    run: str | os.PathLike,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    write: bool = True,
) -> dict[str, Any]:
    """Evaluate a run folder's model on its dataset's ``split`` (test or val); write eval.json.

    Keys: ``{split}_loss``, ``{split}_recon``, ``{split}_kl`` (nats per image), ``n_images``, ``split``.
    """
    run = Path(run)
    if split not in ("test", "val"):
        raise VaekitError(f"unknown split {split!r}; choose test or val")
    config = read_run_config(run)
    dev = resolve_device(device)
    model = load(run, device=dev)
    dataset = load_dataset(config["data"]["dataset"], data_dir or config["data"]["data_dir"])
    if split == "test":
        images = dataset.test
    else:
        _, images = split_train_val(dataset.train, config["train"]["val_fraction"], config["train"]["seed"])
        if len(images) == 0:
            raise VaekitError(f"run {run} was trained with no validation split")
    terms = elbo_terms(model, images.as_float(dev), seed=config["train"]["seed"])
    result = eval_record(terms, split, len(images), config.get("epochs_completed"))
    if write:
        write_eval(run / "eval.json", result)
    return result
