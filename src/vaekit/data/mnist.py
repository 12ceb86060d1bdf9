"""The MNIST family of IDX datasets (MNIST, Fashion-MNIST, KMNIST): where the official files live, finding
them on disk, loading them. All three use the same four file names, so each is looked for in DIR/<name>/
and torchvision's DIR/<Name>/raw/ as well as DIR itself (keep one dataset per folder)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaekit.data.download import download, md5sum
from vaekit.data.idx import read_idx
from vaekit.utils.errors import VaekitError


@dataclass(frozen=True)
class IdxSpec:
    """An IDX dataset: its folder name, mirrors, and the official md5 of each gzip file."""

    name: str
    torchvision_name: str  # the folder torchvision uses: DIR/<torchvision_name>/raw/
    mirrors: tuple[str, ...]
    md5: dict[str, str]
    classes: tuple[str, ...] = tuple(str(d) for d in range(10))
    trouble: str = ""  # said when every mirror fails: what is known about the hosts


MNIST = IdxSpec(
    name="mnist",
    torchvision_name="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

# Zalando Research (Xiao et al. 2017); the class names are theirs.
FASHION_MNIST = IdxSpec(
    name="fashion-mnist",
    torchvision_name="FashionMNIST",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    classes=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
)  # fmt: skip

# Kuzushiji-MNIST (Clanuwat et al. 2018): ten hiragana in cursive script, romanised as in kmnist_classmap.csv.
KMNIST = IdxSpec(
    name="kmnist",
    torchvision_name="KMNIST",
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    md5={
        "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
    },
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    trouble=(
        "codh.rois.ac.jp is known to time out; try again later, set VAEKIT_MIRROR to another copy, or put "
        "the four .gz files in DATA_DIR/kmnist/"
    ),
)

IDX_SPECS = {spec.name: spec for spec in (MNIST, FASHION_MNIST, KMNIST)}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def mirrors_for(spec: IdxSpec) -> tuple[str, ...]:
    """The mirrors to try: ``$VAEKIT_MIRROR`` (a base URL, for institutional mirrors) first, if set."""
    override = os.environ.get("VAEKIT_MIRROR")
    return ((override.rstrip("/") + "/",) if override else ()) + spec.mirrors


def find_file(spec: IdxSpec, root: Path, gz_name: str) -> Path | None:
    """Look for ``gz_name`` (or its uncompressed twin) in root, root/<name>/ and torchvision's layout."""
    for folder in (root, root / spec.name, root / spec.torchvision_name / "raw"):
        for candidate in (folder / gz_name, folder / gz_name.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
    return None


def fetch(spec: IdxSpec, root: Path, gz_name: str) -> Path:
    """Return the local path of ``gz_name``, downloading it into root/<name>/ if it is not on disk."""
    found = find_file(spec, root, gz_name)
    if found is not None:
        return found
    dest = root / spec.name / gz_name
    try:
        return download([m + gz_name for m in mirrors_for(spec)], dest, spec.md5[gz_name])
    except VaekitError as exc:
        if spec.trouble and str(exc).startswith("could not download"):
            raise VaekitError(f"{exc}. {spec.trouble}") from None
        raise


def load_idx_split(spec: IdxSpec, root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8, N x 28 x 28) and labels (N,) of one split, checked against each other."""
    prefix = _SPLIT_PREFIX[split]
    images_path = fetch(spec, root, f"{prefix}-images-idx3-ubyte.gz")
    labels_path = fetch(spec, root, f"{prefix}-labels-idx1-ubyte.gz")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise VaekitError(f"corrupt data file {images_path}: expected uint8 images of 3 dimensions")
    if labels.ndim != 1:
        raise VaekitError(f"corrupt data file {labels_path}: expected labels of 1 dimension")
    if len(images) != len(labels):
        raise VaekitError(
            f"{images_path} holds {len(images)} images but {labels_path.name} {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise VaekitError(f"corrupt data file {labels_path}: label {labels.max()} outside 0-9")
    return images, labels.astype(np.int64)


def verify_files(spec: IdxSpec, root: Path) -> dict[str, bool]:
    """For each official file found under root, whether its md5 is the official one."""
    result = {}
    for gz_name, md5 in spec.md5.items():
        path = find_file(spec, root, gz_name)
        if path is not None and path.suffix == ".gz":
            result[gz_name] = md5sum(path) == md5
    return result
