"""Datasets as whole tensors: a registry of loaders, each returning uint8 images and int64 labels.

Training batches by shuffled index into tensors that live on the device; nothing here runs per image.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaekit.data.mnist import IDX_SPECS, load_idx_split
from vaekit.errors import VaekitError


@dataclass
class ImageSet:
    """Images as uint8 [N, C, H, W] and their labels as int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise VaekitError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])

    def as_float(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The images on ``device`` as float32 in [0, 1]."""
        return self.images.to(device).float().div_(255.0)


@dataclass
class Dataset:
    name: str
    train: ImageSet
    test: ImageSet
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


def default_data_dir() -> Path:
    """``$VAEKIT_DATA`` if set, else the user's cache folder (e.g. ~/.cache/vaekit)."""
    if os.environ.get("VAEKIT_DATA"):
        return Path(os.environ["VAEKIT_DATA"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("vaekit"))


def _from_numpy(images: np.ndarray, labels: np.ndarray) -> ImageSet:
    return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.copy()))


def _load_idx(name: str, data_dir: Path) -> Dataset:
    spec = IDX_SPECS[name]
    train = _from_numpy(*load_idx_split(spec, data_dir, "train"))
    test = _from_numpy(*load_idx_split(spec, data_dir, "test"))
    if train.images.shape[1:] != test.images.shape[1:]:
        raise VaekitError(f"{name}: train and test images differ in size")
    return Dataset(name, train, test, num_classes=10)


def _load_digits(data_dir: Path) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, offline); a fixed seeded 80/20 train/test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    n_test = len(images) // 5
    test, train = order[:n_test], order[n_test:]
    labels = bunch.target.astype(np.int64)
    return Dataset(
        "digits", _from_numpy(images[train], labels[train]), _from_numpy(images[test], labels[test]), 10
    )


DATASETS: dict[str, Callable[[Path], Dataset]] = {
    "mnist": lambda data_dir: _load_idx("mnist", data_dir),
    "digits": _load_digits,
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a registered dataset, downloading it into ``data_dir`` if needed (see default_data_dir)."""
    if name not in DATASETS:
        raise VaekitError(f"unknown dataset {name!r}; choose from {', '.join(sorted(DATASETS))}")
    return DATASETS[name](Path(data_dir) if data_dir is not None else default_data_dir())


def split_train_val(data: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """A seeded random split; ``val_fraction`` of the images (at least one if > 0) go to validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise VaekitError(f"val fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(len(data) * val_fraction))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if n_val >= len(data):
        raise VaekitError(f"val fraction {val_fraction} leaves no training images out of {len(data)}")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.subset(order[n_val:]), data.subset(order[:n_val])


BINARIZE = ("none", "static", "dynamic")
# Fixed binarizations use fixed seeds, not the run's: every run is trained (static) and evaluated on
# the same binary images, so that their log-likelihoods compare.
BINARIZE_SEEDS = {"train": 1, "val": 2, "test": 3}


def binarize(x: torch.Tensor, split: str) -> torch.Tensor:
    """One fixed Bernoulli draw of every pixel of ``x`` (floats in [0, 1]: p = the grey level), seeded by
    ``split``'s entry in BINARIZE_SEEDS: the same binary images every time."""
    generator = torch.Generator(device=x.device).manual_seed(BINARIZE_SEEDS[split])
    return torch.bernoulli(x, generator=generator)
