"""The named datasets beyond MNIST: Fashion-MNIST and KMNIST (specs, download, local files) and shapes."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import error_of, tiny_digit_images, write_tiny_mnist
from vaekit.data import load_dataset
from vaekit.data import mnist as mnist_module
from vaekit.data.mnist import FASHION_MNIST, IDX_SPECS, KMNIST
from vaekit.data.shapes import SHAPE_NAMES

FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def serve_tiny(root: Path, monkeypatch, name: str, vouch: bool = True) -> None:
    """The four tiny IDX files on the server, and (if ``vouch``) their md5s in ``name``'s spec."""
    write_tiny_mnist(root, n_train=20, n_test=10)
    if vouch:
        for file in FILES:
            md5 = hashlib.md5((root / file).read_bytes()).hexdigest()
            monkeypatch.setitem(IDX_SPECS[name].md5, file, md5)


def no_download(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("downloaded")

    monkeypatch.setattr(mnist_module, "download", refuse)


# ------------------------------------------------------------------------------ Fashion-MNIST, KMNIST
def test_official_checksums():
    assert FASHION_MNIST.md5 == {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    assert KMNIST.md5 == {
        "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
    }


def test_official_hosts_and_folders():
    assert FASHION_MNIST.mirrors == ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    assert KMNIST.mirrors == ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",)
    assert (FASHION_MNIST.name, FASHION_MNIST.torchvision_name) == ("fashion-mnist", "FashionMNIST")
    assert (KMNIST.name, KMNIST.torchvision_name) == ("kmnist", "KMNIST")
    assert IDX_SPECS["fashion-mnist"] is FASHION_MNIST and IDX_SPECS["kmnist"] is KMNIST


@pytest.mark.parametrize(
    ("name", "classes"), [("fashion-mnist", FASHION_CLASSES), ("kmnist", KMNIST_CLASSES)]
)
def test_download_from_a_mirror(http_server, tmp_path, monkeypatch, name, classes):
    url, root = http_server
    serve_tiny(root, monkeypatch, name)
    monkeypatch.setenv("VAEKIT_MIRROR", url)
    cache = tmp_path / "fresh-cache"
    data = load_dataset(name, cache)
    assert data.name == name and data.classes == classes and data.num_classes == 10
    assert data.train.images.shape == (20, 1, 28, 28) and data.test.images.shape == (10, 1, 28, 28)
    assert data.train.images.dtype == torch.uint8 and data.train.labels.dtype == torch.int64
    images, labels = tiny_digit_images(10, seed=1)  # what write_tiny_mnist put in the test files
    assert np.array_equal(data.test.images[:, 0].numpy(), images)
    assert data.test.labels.tolist() == labels.tolist()
    assert sorted(p.name for p in (cache / name).iterdir()) == sorted(FILES)
    for file in FILES:
        assert (cache / name / file).read_bytes() == (root / file).read_bytes()
    for p in root.iterdir():
        p.unlink()  # a second load needs no server
    assert len(load_dataset(name, cache).train) == 20


def test_checksum_mismatch_leaves_nothing(http_server, tmp_path, monkeypatch):
    url, root = http_server
    serve_tiny(root, monkeypatch, "fashion-mnist", vouch=False)  # the official md5s: the tiny files fail
    monkeypatch.setenv("VAEKIT_MIRROR", url)
    cache = tmp_path / "fresh-cache"
    message = error_of(load_dataset, "fashion-mnist", cache)
    assert "checksum mismatch" in message and "train-images-idx3-ubyte.gz" in message
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_failing_kmnist_mirrors_explain_the_known_trouble(http_server, tmp_path, monkeypatch):
    url, _ = http_server
    dead = dataclasses.replace(IDX_SPECS["kmnist"], mirrors=(url + "error/",))
    monkeypatch.setitem(IDX_SPECS, "kmnist", dead)
    cache = tmp_path / "fresh-cache"
    message = error_of(load_dataset, "kmnist", cache)
    assert message.startswith("could not download train-images-idx3-ubyte.gz")
    assert "HTTP 500" in message
    assert "codh.rois.ac.jp is known to time out" in message and "VAEKIT_MIRROR" in message
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_failing_fashion_mirrors_have_no_trouble_note(http_server, tmp_path, monkeypatch):
    url, _ = http_server
    dead = dataclasses.replace(IDX_SPECS["fashion-mnist"], mirrors=(url + "error/",))
    monkeypatch.setitem(IDX_SPECS, "fashion-mnist", dead)
    message = error_of(load_dataset, "fashion-mnist", tmp_path / "fresh-cache")
    assert "HTTP 500" in message and "known to time out" not in message


@pytest.mark.parametrize(
    ("name", "layout"),
    [("fashion-mnist", "fashion-mnist"), ("fashion-mnist", "FashionMNIST/raw"), ("kmnist", "kmnist"),
     ("kmnist", "KMNIST/raw")],
)  # fmt: skip
def test_local_files_are_used_without_download(tmp_path, monkeypatch, name, layout):
    cache = tmp_path / "cache"
    write_tiny_mnist(cache / layout, n_train=12, n_test=6)
    no_download(monkeypatch)
    data = load_dataset(name, cache)
    assert len(data.train) == 12 and len(data.test) == 6 and data.image_shape == (1, 28, 28)
    assert data.classes == (FASHION_CLASSES if name == "fashion-mnist" else KMNIST_CLASSES)


def test_another_datasets_folder_is_not_used(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    write_tiny_mnist(cache / "kmnist", n_train=12, n_test=6)
    no_download(monkeypatch)
    with pytest.raises(AssertionError, match="downloaded"):
        load_dataset("fashion-mnist", cache)


# ------------------------------------------------------------------------------------------- shapes
@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes", image_size=24)


def test_shapes_classes_are_the_shape_factor(shapes):
    assert shapes.classes == list(SHAPE_NAMES) and shapes.image_shape == (1, 24, 24)
    column = shapes.factor_names.index("shape")
    for split in (shapes.train, shapes.test):
        assert split.factors is not None and split.factors.shape == (len(split), len(shapes.factor_names))
        assert torch.equal(split.labels, split.factors[:, column])
    assert set(shapes.test.labels.tolist()) == {0, 1, 2}


def test_shapes_splits_are_disjoint_and_cover_the_grid(shapes):
    sizes = tuple(len(v) for v in shapes.factor_values)

    def cells(split) -> np.ndarray:
        return np.ravel_multi_index(tuple(split.factors.numpy().T), sizes)

    train, test = cells(shapes.train), cells(shapes.test)
    assert len(np.unique(train)) == len(train) and len(np.unique(test)) == len(test)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(int(np.prod(sizes))))
    assert len(test) == int(np.prod(sizes)) // 10


def test_shapes_rgb_has_three_channels():
    data = load_dataset("shapes-rgb", image_size=18)
    assert data.image_shape == (3, 18, 18) and data.classes == list(SHAPE_NAMES)
    assert "colour" in data.factor_names and data.train.factors.shape[1] == len(data.factor_names)


def test_shapes_must_be_square():
    assert "square" in error_of(load_dataset, "shapes", image_size="24x32")


@pytest.mark.parametrize(("name", "size"), [("shapes", 23), ("shapes-rgb", 8)])
def test_shapes_too_small_is_a_vaekit_error(name, size):
    message = error_of(load_dataset, name, image_size=size)
    assert "--image-size" in message


def test_shapes_dsprites_loads_its_own_grid(monkeypatch):
    """--dataset shapes-dsprites draws dSprites' grid (shrunk here: the full one is 737,280 images)."""
    from vaekit.data import shapes as shapes_module

    monkeypatch.setitem(shapes_module.GRIDS, "dsprites", (2, 4, 32))
    data = load_dataset("shapes-dsprites", image_size=50)
    assert data.name == "shapes-dsprites" and data.image_shape == (1, 50, 50)
    assert data.factor_names == ["shape", "scale", "rotation", "x", "y"]
    assert [len(v) for v in data.factor_values] == [3, 2, 4, 32, 32]
    n = 3 * 2 * 4 * 32 * 32
    assert len(data.train) + len(data.test) == n and len(data.test) == n // 10
    message = error_of(load_dataset, "shapes-dsprites", image_size=49)
    assert "--image-size: image size 49 is too small" in message
