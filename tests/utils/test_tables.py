"""Per-image tables: every format read back by its own reader, and bad outputs refused before work."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

from tests.conftest import error_of
from vaekit.utils import tables
from vaekit.utils.tables import check_output, write_table

COLUMNS = {
    "mean": np.arange(12, dtype=np.float32).reshape(4, 3) / 7,
    "label": np.array([3, 1, -1, 0]),
    "filename": np.array(["a.png", "b/c.png", "d é.png", "e.png"]),
}


def test_npy_is_one_structured_array_that_loads_without_pickle(tmp_path):
    table = np.load(write_table(tmp_path / "t.npy", COLUMNS), allow_pickle=False)
    assert table.dtype.names == ("mean", "label", "filename")
    assert np.array_equal(table["mean"], COLUMNS["mean"]) and np.array_equal(table["label"], COLUMNS["label"])
    assert table["filename"].tolist() == COLUMNS["filename"].tolist()


def test_npz_parquet_and_csv_hold_the_same_columns(tmp_path):
    npz = np.load(write_table(tmp_path / "t.npz", COLUMNS), allow_pickle=False)
    assert all(np.array_equal(npz[k], v) for k, v in COLUMNS.items())
    import pyarrow.parquet as pq

    parquet = pq.read_table(write_table(tmp_path / "t.parquet", COLUMNS)).to_pydict()
    assert np.allclose(np.array(parquet["mean"]), COLUMNS["mean"])
    assert (
        parquet["label"] == COLUMNS["label"].tolist() and parquet["filename"] == COLUMNS["filename"].tolist()
    )
    with open(write_table(tmp_path / "t.csv", COLUMNS), encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["mean_0", "mean_1", "mean_2", "label", "filename"]
    assert [float(v) for v in rows[2][:3]] == pytest.approx(COLUMNS["mean"][1].tolist())
    assert rows[3][3:] == ["-1", "d é.png"]


def test_bad_outputs_are_refused_before_any_work(tmp_path, monkeypatch):
    assert "must end in .npy, .npz, .parquet, .csv" in error_of(check_output, tmp_path / "t.txt")
    assert check_output(tmp_path / "nowhere" / "t.npz") == tmp_path / "nowhere" / "t.npz"  # made on writing
    (tmp_path / "file").write_text("x")
    assert "is not a folder" in error_of(check_output, tmp_path / "file" / "t.npz")
    (tmp_path / "t.npz").write_text("x")
    assert "already exists; pass --overwrite" in error_of(check_output, tmp_path / "t.npz")
    (tmp_path / "dir.npz").mkdir()
    assert "is a folder" in error_of(check_output, tmp_path / "dir.npz")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert error_of(check_output, tmp_path / "t.parquet") == (
        "writing Parquet needs pyarrow: pip install 'vaekit[parquet]'"
    )


def test_a_write_that_fails_leaves_neither_a_file_nor_a_temporary(tmp_path, monkeypatch):
    (tmp_path / "t.npz").write_bytes(b"the old file")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tables.np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_table(tmp_path / "t.npz", COLUMNS)
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]
    assert (tmp_path / "t.npz").read_bytes() == b"the old file"
