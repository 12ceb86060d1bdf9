import gzip

import numpy as np
import pytest

from tests.conftest import idx_bytes, write_idx
from vaekit.data.idx import read_idx
from vaekit.utils.errors import VaekitError


@pytest.mark.parametrize("compress", [True, False])
def test_reads_what_was_written(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "x.idx", images, compress=compress)
    got = read_idx(path)
    assert got.dtype == np.uint8 and got.shape == (5, 28, 28)
    np.testing.assert_array_equal(got, images)


def test_reads_labels(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l.gz", labels)), labels)


def test_truncated_file_is_refused(tmp_path):
    data = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(VaekitError, match="truncated"):
        read_idx(path)


def test_truncated_header_is_refused(tmp_path):
    path = tmp_path / "h"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(VaekitError, match="truncated IDX header"):
        read_idx(path)


def test_trailing_bytes_are_refused(tmp_path):
    path = tmp_path / "t"
    path.write_bytes(idx_bytes(np.zeros((2, 3), dtype=np.uint8)) + b"junk")
    with pytest.raises(VaekitError, match="after the data"):
        read_idx(path)


def test_bad_magic_is_refused(tmp_path):
    path = tmp_path / "m"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(VaekitError, match="magic"):
        read_idx(path)


def test_corrupt_gzip_is_refused(tmp_path):
    raw = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8).reshape(2, 100))))
    raw[len(raw) // 2 :] = bytes(len(raw) - len(raw) // 2)
    path = tmp_path / "c.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(VaekitError, match="corrupt"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(VaekitError, match="not found"):
        read_idx(tmp_path / "nope.gz")
