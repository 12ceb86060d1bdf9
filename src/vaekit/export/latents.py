"""``vaekit encode``: every image of a dataset through a run's encoder, into a table for other programs.

Columns (one row per image, in the dataset's order: training images, then test): ``mean`` and
``logvar`` [N, latent_dim] of the Gaussian posterior q(z|x) (with an IAF posterior, ``mean`` is the
flow's image of the base mean, the point every picture uses, and ``logvar`` the base Gaussian's; a
hierarchy's are its top group's), or a VQ-VAE's ``codes`` [N, H', W'] (the nearest codebook entries);
``label`` where the dataset has labels; ``filename`` (relative to the folder) for ``folder:PATH``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vaekit.data import ImageSet, unit_float
from vaekit.evaluation.likelihood import CPU_BATCH
from vaekit.evaluation.runs import image_columns, model_labels, run_images
from vaekit.models import VAE
from vaekit.models.saving import load
from vaekit.utils import limits
from vaekit.utils.devices import device_batch, resolve_device
from vaekit.utils.tables import check_output, write_table


@torch.no_grad()
def encode_images(
    model: VAE, images: ImageSet, batch_size: int | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """The table of ``images`` encoded by ``model`` (the columns in this module's docstring), in batches
    of ``batch_size`` (None: the device's, ``utils.devices.device_batch``)."""
    model.eval()
    labels = model_labels(model, images)
    batch_size = batch_size or encoding_batch(model, images, labels)
    parts: dict[str, list[torch.Tensor]] = {}
    with tqdm(total=len(images), desc="encoding", unit="image", disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            x = unit_float(images.images[start : start + batch_size].to(model.device))
            y = None if labels is None else labels[start : start + batch_size].to(model.device)
            for name, value in model.encoded_columns(x, y).items():
                parts.setdefault(name, []).append(value.cpu())
            bar.update(len(x))
    columns = {name: torch.cat(values).numpy() for name, values in parts.items()}
    return {**columns, **image_columns(images)}


def encoding_batch(model: VAE, images: ImageSet, labels: torch.Tensor | None) -> int:
    """Images a batch of ``encode_images`` takes on the model's device."""

    def probe(n: int) -> Any:
        y = None if labels is None else labels[:n].to(model.device)
        return model.encoded_columns(unit_float(images.images[:n].to(model.device)), y)

    return device_batch(model.device, CPU_BATCH, probe, len(images))


def encode_run(
    run: str | os.PathLike,
    out: str | os.PathLike,
    dataset: str | None = None,
    split: str = "all",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Encode ``split`` of ``dataset`` (default: the run's own) with the run's model into the table file
    ``out`` (.npy, .npz, .parquet or .csv). Returns what was written: path, dataset, n, columns."""
    out = check_output(out, overwrite)  # an existing file is replaced only with overwrite
    model = load(run, device=resolve_device(device))
    name, images = run_images(run, model, dataset, split, data_dir, progress, log)
    batch = batch_size or encoding_batch(model, images, model_labels(model, images))
    limits.check_images(
        min(batch, len(images)), model.image_shape, model.device, "a batch", grid=False,
        hint="; lower --batch-size",
    )  # fmt: skip
    columns = encode_images(model, images, batch, progress)
    write_table(out, columns)
    return {"path": str(out), "dataset": name, "n": len(images), "columns": list(columns)}
