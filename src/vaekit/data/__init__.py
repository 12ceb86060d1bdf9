"""Datasets as whole tensors: a registry of loaders, each returning uint8 images and int64 labels.

Training batches by shuffled index into uint8 tensors (on the device, or memory-mapped from a folder's
cache when they are large); nothing here runs per image. Names: the registered datasets (mnist,
fashion-mnist, kmnist, digits, shapes, shapes-rgb, shapes-dsprites) and ``folder:PATH`` for any
folder of images.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vaekit.data.folder import load_folder, parse_image_size
from vaekit.data.mnist import IDX_SPECS, load_idx_split
from vaekit.utils import limits
from vaekit.utils.errors import VaekitError


@dataclass
class ImageSet:
    """Images as uint8 [N, C, H, W] (perhaps memory-mapped), their labels as int64 [N] (-1: none), for
    generated data the index of each generative factor's value [N, K], and for a folder each image's
    file name (relative to the folder)."""

    images: torch.Tensor
    labels: torch.Tensor
    factors: torch.Tensor | None = None
    names: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise VaekitError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: torch.Tensor) -> ImageSet:
        factors = None if self.factors is None else self.factors[index]
        names = None if self.names is None else [self.names[i] for i in index.tolist()]
        return ImageSet(self.images[index], self.labels[index], factors, names)

    def as_float(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The images on ``device`` as float32 in [0, 1]."""
        return self.images.to(device).float().div_(255.0)


@dataclass
class Dataset:
    """A dataset's splits, its class names ([] for unlabelled data), notes for the user (skipped files,
    resizing), and for generated data the names and values of its factors."""

    name: str
    train: ImageSet
    test: ImageSet
    classes: list[str]
    notes: list[str] = field(default_factory=list)
    factor_names: list[str] | None = None
    factor_values: list[np.ndarray] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

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
    return Dataset(name, train, test, list(spec.classes))


def _load_digits(data_dir: Path) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, offline); a fixed seeded 80/20 train/test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    n_test = len(images) // 5
    test, train = order[:n_test], order[n_test:]
    labels = bunch.target.astype(np.int64)
    classes = [str(d) for d in range(10)]
    return Dataset(
        "digits", _from_numpy(images[train], labels[train]), _from_numpy(images[test], labels[test]), classes
    )


# The generated shapes: dataset name -> its grid in data/shapes.py's GRIDS.
SHAPES_GRIDS = {"shapes": "grey", "shapes-rgb": "rgb", "shapes-dsprites": "dsprites"}


def _load_shapes(name: str, image_size: list[int] | None, size_named: str = "--image-size") -> Dataset:
    """Generated shapes (``name`` in SHAPES_GRIDS) on their full factor grid (data/shapes.py); a seeded
    10% is the test split. The shape is the class label; every factor is in ``factors``. ``size_named``:
    what a size error names (``load_dataset``)."""
    from vaekit.data.shapes import SHAPE_NAMES, factor_grid, make_shapes

    grid = SHAPES_GRIDS[name]
    rgb = grid == "rgb"
    size = 64 if image_size is None else image_size[0]
    if image_size is not None and image_size[0] != image_size[1]:
        raise VaekitError(
            f"shapes are drawn square: give --image-size S, not {image_size[0]}x{image_size[1]}"
        )
    n = math.prod(len(values) for values in factor_grid(rgb, grid=grid).values())
    # drawn in memory, then split into a copy: twice the images' bytes
    bytes_needed = 2 * n * (3 if rgb else 1) * size * size
    lower = f"; lower {size_named}" if size_named == "--image-size" else ""  # a model's size is its own
    limits.check_memory(bytes_needed, torch.device("cpu"), f"{n:,} shapes at {size}x{size}", lower)
    try:
        images, factors, names, values = make_shapes(size, rgb=rgb, grid=grid)
    except ValueError as exc:
        raise VaekitError(f"{size_named}: {exc}") from None
    labels = factors[:, names.index("shape")]
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = len(images) // 10
    everything = ImageSet(torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(factors))
    return Dataset(
        name, everything.subset(order[n_test:]), everything.subset(order[:n_test]), list(SHAPE_NAMES),
        factor_names=names, factor_values=values,
    )  # fmt: skip


def _load_folder(
    path: str, data_dir: Path, image_size: list[int] | None, colour: str | None, progress: bool, log
) -> Dataset:
    folder = load_folder(path, data_dir, image_size, colour, progress=progress, log=log)
    images, labels = torch.from_numpy(folder.images), torch.from_numpy(folder.labels)
    n = folder.n_train
    train = ImageSet(images[:n], labels[:n], names=folder.names[:n])
    test = ImageSet(images[n:], labels[n:], names=folder.names[n:])
    return Dataset(folder_dataset_name(path), train, test, folder.classes, folder.notes)


FOLDER_PREFIX = "folder:"
# Loaders of the named datasets; each takes the data folder. folder:PATH and the options are apart.
DATASETS: dict[str, Callable[[Path], Dataset]] = {
    "mnist": lambda data_dir: _load_idx("mnist", data_dir),
    "fashion-mnist": lambda data_dir: _load_idx("fashion-mnist", data_dir),
    "kmnist": lambda data_dir: _load_idx("kmnist", data_dir),
    "digits": _load_digits,
    **{name: (lambda data_dir, name=name: _load_shapes(name, None)) for name in SHAPES_GRIDS},
}
SIZED = tuple(SHAPES_GRIDS)  # named datasets drawn at any --image-size


def folder_dataset_name(path: str | os.PathLike) -> str:
    """``folder:`` and the folder's absolute path: a run names its data wherever it was started."""
    return FOLDER_PREFIX + str(Path(path).expanduser().resolve())


def check_dataset_name(name: str) -> str:
    """The canonical form of a dataset name (folder paths made absolute); an error for unknown names."""
    if name.startswith(FOLDER_PREFIX):
        if not name[len(FOLDER_PREFIX) :]:
            raise VaekitError("folder: needs a path, e.g. --dataset folder:~/Pictures/faces")
        return folder_dataset_name(name[len(FOLDER_PREFIX) :])
    if name not in DATASETS:
        raise VaekitError(
            f"unknown dataset {name!r}; choose from {', '.join(sorted(DATASETS))} or folder:PATH"
        )
    return name


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    image_size: str | int | list[int] | None = None,
    colour: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    size_named: str = "--image-size",
) -> Dataset:
    """Load a dataset, downloading it (or decoding a folder) into ``data_dir`` if needed (see
    default_data_dir). ``image_size`` (S, [H, W] or "HxW") resizes a folder's images or draws the shapes
    at that size; ``colour`` ("grey" or "rgb") converts a folder's images. ``size_named``: where the
    size came from, as a shapes size error names it (a command that draws them at a model's size says
    so, not --image-size)."""
    name = check_dataset_name(name)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    size = None if image_size is None else parse_image_size(image_size)
    folder = name.startswith(FOLDER_PREFIX)
    if colour is not None and not folder:
        raise VaekitError(f"--grey/--rgb apply to folder: datasets, not {name}")
    if size is not None and not folder and name not in SIZED:
        raise VaekitError(f"--image-size applies to folder: datasets and {', '.join(SIZED)}, not {name}")
    if folder:
        return _load_folder(name[len(FOLDER_PREFIX) :], data_dir, size, colour, progress, log)
    if name in SIZED:
        return _load_shapes(name, size, size_named)
    return DATASETS[name](data_dir)


def unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images as float32 in [0, 1] (exactly ``as_float``'s values); float images unchanged. The
    evaluators call it on each batch, so whole sets can stay uint8 (a quarter of the memory)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def split_rows(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of a seeded random split of ``n`` images: (training rows, validation rows);
    ``val_fraction`` of them (at least one if > 0) go to validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise VaekitError(f"val fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if n_val >= n:
        raise VaekitError(f"val fraction {val_fraction} leaves no training images out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:], order[:n_val]


def split_train_val(data: ImageSet, val_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """The split of ``split_rows`` as two image sets (copies of the rows)."""
    train_rows, val_rows = split_rows(len(data), val_fraction, seed)
    return data.subset(train_rows), data.subset(val_rows)


BINARIZE = ("none", "static", "dynamic")
# Fixed binarizations use fixed seeds, not the run's: every run is trained (static) and evaluated on
# the same binary images, so that their log-likelihoods compare.
BINARIZE_SEEDS = {"train": 1, "val": 2, "test": 3}


def binarize(x: torch.Tensor, split: str) -> torch.Tensor:
    """One fixed Bernoulli draw of every pixel of ``x`` (floats in [0, 1]: p = the grey level), seeded by
    ``split``'s entry in BINARIZE_SEEDS: the same binary images every time."""
    generator = torch.Generator(device=x.device).manual_seed(BINARIZE_SEEDS[split])
    return torch.bernoulli(x, generator=generator)


SPLITS = ("all", "train", "test")


def images_for_shape(
    name: str,
    image_shape: tuple[int, ...],
    split: str = "all",
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[Dataset, ImageSet]:
    """The ``split`` ("all", "train" or "test") of dataset ``name`` for a model of ``image_shape``
    [C, H, W]: a folder is resized and converted to it, generated shapes are drawn at its size, and any
    other dataset must have it (a one-line error names both shapes)."""
    if split not in SPLITS:
        raise VaekitError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    name = check_dataset_name(name)
    channels, height, width = image_shape
    folder = name.startswith(FOLDER_PREFIX)
    if folder and channels not in (1, 3):
        raise VaekitError(f"a folder's images are grey or RGB; this model takes {channels} channels")
    size = [height, width] if folder or name in SIZED else None
    colour = ("grey" if channels == 1 else "rgb") if folder else None
    if name in SIZED and height != width:
        raise VaekitError(f"--dataset {name}: shapes are drawn square; the model takes {height}x{width}")
    # the size is the model's here, not an --image-size the user gave
    named = f"--dataset {name} cannot be drawn at the model's {height}x{width}"
    dataset = load_dataset(
        name, data_dir, image_size=size, colour=colour, progress=progress, log=log, size_named=named
    )
    if tuple(dataset.image_shape) != tuple(image_shape):
        raise VaekitError(
            f"the images of {name} are {list(dataset.image_shape)} (channels, height, width); "
            f"the model takes {list(image_shape)}"
        )
    if split != "all":
        return dataset, getattr(dataset, split)
    train, test = dataset.train, dataset.test
    names = None if train.names is None or test.names is None else train.names + test.names
    factors = None if train.factors is None else torch.cat([train.factors, test.factors])
    labels = torch.cat([train.labels, test.labels])
    return dataset, ImageSet(torch.cat([train.images, test.images]), labels, factors, names)
