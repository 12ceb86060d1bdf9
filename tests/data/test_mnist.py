import numpy as np
import pytest
import torch

from tests.conftest import write_idx, write_tiny_mnist
from vaekit.data import load_dataset, split_train_val
from vaekit.data.mnist import MNIST, find_file, verify_files
from vaekit.utils.errors import VaekitError


@pytest.mark.parametrize("layout", ["", "mnist", "MNIST/raw"])
def test_finds_files_in_each_layout(tmp_path, layout):
    write_tiny_mnist(tmp_path / layout, n_train=20, n_test=10)
    data = load_dataset("mnist", tmp_path)
    assert data.train.images.shape == (20, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert data.test.labels.shape == (10,) and data.test.labels.dtype == torch.int64
    assert data.image_shape == (1, 28, 28)


def test_uncompressed_files_are_found(tmp_path):
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images, compress=False)
    assert find_file(MNIST, tmp_path, "train-images-idx3-ubyte.gz") == tmp_path / "train-images-idx3-ubyte"


def test_image_and_label_counts_must_agree(tmp_path):
    write_tiny_mnist(tmp_path, n_train=20, n_test=10)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(VaekitError, match="20 images but .* 19 labels"):
        load_dataset("mnist", tmp_path)


def test_labels_out_of_range_are_refused(tmp_path):
    write_tiny_mnist(tmp_path, n_train=20, n_test=10)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(10, 11, dtype=np.uint8))
    with pytest.raises(VaekitError, match="label 11"):
        load_dataset("mnist", tmp_path)


def test_unknown_dataset():
    with pytest.raises(VaekitError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_digits_are_offline_and_split():
    data = load_dataset("digits")
    assert data.image_shape == (1, 8, 8)
    assert len(data.train) + len(data.test) == 1797
    assert int(data.train.images.max()) == 255 and set(data.test.labels.tolist()) == set(range(10))


def test_split_is_seeded_disjoint_and_sized():
    data = load_dataset("digits").train
    train_a, val_a = split_train_val(data, 0.25, seed=3)
    train_b, val_b = split_train_val(data, 0.25, seed=3)
    assert torch.equal(val_a.images, val_b.images) and torch.equal(train_a.labels, train_b.labels)
    assert len(val_a) == round(len(data) * 0.25) and len(train_a) + len(val_a) == len(data)
    _, val_c = split_train_val(data, 0.25, seed=4)
    assert not torch.equal(val_a.images, val_c.images)
    assert len(split_train_val(data, 0.0, seed=0)[1]) == 0
    with pytest.raises(VaekitError):
        split_train_val(data, 1.0, seed=0)


def test_shared_mnist_subset(shared_mnist):
    data = load_dataset("mnist", shared_mnist)
    assert data.train.images.shape == (12000, 1, 28, 28) and data.test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.test.labels).tolist()[:3] == [980, 1135, 1032]  # the official test counts
    pixels = data.test.as_float()
    assert pixels.min() == 0.0 and pixels.max() == 1.0
    checks = verify_files(MNIST, shared_mnist)
    assert checks["t10k-images-idx3-ubyte.gz"] and checks["t10k-labels-idx1-ubyte.gz"]
    assert not checks["train-images-idx3-ubyte.gz"]  # a re-packed 12,000-image prefix, not the official file
