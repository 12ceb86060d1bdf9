"""A run's images as the loop uses them: uint8 tensors (a quarter of float32's memory) gathered by row.

``images`` is the training storage: on the device if it fits there (a memory-mapped folder cache on
the CPU stays mapped, so a dataset larger than memory trains); ``train_rows`` and ``val_rows`` index
it. Validation and test images are gathered once; evaluation converts them batch by batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vaekit.data import Dataset, binarize, default_data_dir, load_dataset, split_rows, unit_float
from vaekit.models import VAE, model_class
from vaekit.training import distributed
from vaekit.training.settings import TrainConfig
from vaekit.utils.errors import VaekitError


def load_training_dataset(
    config: TrainConfig, ranks: distributed.Ranks, progress: bool, log: Callable[[str], None]
) -> tuple[Dataset, Path]:
    """The dataset of ``config`` and the data folder it came from. Under torchrun the first process on
    each machine downloads it (or builds a folder's cache) while the others wait, then they read it."""
    data_dir = Path(config.data_dir) if config.data_dir else default_data_dir()
    first = ranks.local_rank == 0
    if not first:
        distributed.barrier(ranks)
    dataset = load_dataset(
        config.dataset, data_dir, config.image_size, config.colour, progress=progress, log=log
    )
    if first:
        distributed.barrier(ranks)
    for note in dataset.notes:
        log(f"note: {note}")
    if model_class(config.model).conditional and dataset.num_classes < 2:
        raise VaekitError(
            f"the {config.model} is conditioned on class labels; {dataset.name} has "
            f"{dataset.num_classes or 'no'} classes (a folder dataset gets them from class subfolders)"
        )
    return dataset, data_dir


PSEUDO_INPUT_POOL = 20_000  # training images a part that starts from data chooses among


@dataclass
class TrainingData:
    images: torch.Tensor  # uint8 [N, C, H, W]: the training storage
    labels: torch.Tensor
    train_rows: torch.Tensor  # the training split's rows of ``images``
    val_rows: torch.Tensor
    x_val: torch.Tensor  # validation and test images (uint8, or float 0 / 1 when binarized)
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    counts: dict[str, int]  # n_train, n_val, n_test
    device: torch.device

    @property
    def n_train(self) -> int:
        return len(self.train_rows)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images (float in [0, 1], on the device) and labels at positions ``index`` of the split."""
        rows = self.train_rows.index_select(0, index.to(self.train_rows.device))
        x = self.images.index_select(0, rows).to(self.device, non_blocking=True)
        return unit_float(x), self.labels.index_select(0, rows).to(self.device, non_blocking=True)

    def grid_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` validation images (float, [0, 1]) and labels, the per-epoch reconstructions'
        (without a validation split: training images)."""
        if len(self.x_val):
            return unit_float(self.x_val[:n]), self.y_val[:n]
        return self.batch(torch.arange(min(n, self.n_train)))

    def start_from_data(self, model: VAE, seed: int) -> None:
        """A new run's part that starts from the data (a VampPrior's pseudo-inputs: training images),
        before the folder is touched: a bad setting (more pseudo-inputs than images) is refused here."""
        x, y = self.sample_of_train(PSEUDO_INPUT_POOL, seed)
        model.start_from_data(unit_float(x), y.cpu(), torch.Generator().manual_seed(seed))

    def sample_of_train(self, limit: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training split's images (uint8, on the device) and labels, or a seeded choice of ``limit``
        of them: a memory-mapped dataset is gathered into memory no larger than that."""
        rows = self.train_rows
        if len(rows) > limit:
            chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
            rows = rows[chosen[:limit].to(rows.device)]
        return self.images.index_select(0, rows).to(self.device), self.labels[rows].to(self.device)


def place_data(
    dataset: Dataset, val_fraction: float, seed: int, binarization: str, device: torch.device
) -> TrainingData:
    """Split ``dataset``'s training set (seeded), binarize as asked, and put what fits on ``device``."""
    train_rows, val_rows = split_rows(len(dataset.train), val_fraction, seed)
    images, labels = dataset.train.images, dataset.train.labels
    counts = {"n_train": len(train_rows), "n_val": len(val_rows), "n_test": len(dataset.test)}
    x_val, y_val = images[val_rows].to(device), labels[val_rows].to(device)
    x_test, y_test = dataset.test.images.to(device), dataset.test.labels.to(device)
    if binarization != "none":  # evaluation always sees one fixed binarization
        x_val, x_test = binarize(unit_float(x_val), "val"), binarize(unit_float(x_test), "test")
    if binarization == "static":  # one fixed draw of the training split, stored as 0 / 255
        x = binarize(unit_float(images[train_rows].to(device)), "train")
        images, labels = x.mul_(255).to(torch.uint8), labels[train_rows]
        train_rows = torch.arange(len(train_rows))
    # On the CPU .to is a no-op that keeps a mapped cache mapped; a GPU takes the set if it fits.
    if device.type != "cuda" or images.nbytes < 0.5 * torch.cuda.mem_get_info(device)[0]:
        images = images.to(device)
    return TrainingData(
        images, labels.to(images.device), train_rows.to(images.device), val_rows.to(images.device),
        x_val, y_val, x_test, y_test, counts, device,
    )  # fmt: skip
