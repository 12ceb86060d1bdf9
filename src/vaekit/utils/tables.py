"""Per-image tables for other programs: named columns of one row per image, written as NumPy (.npy, a
structured array; .npz, one array per column), Parquet (needs pyarrow: ``vaekit[parquet]``) or CSV.

A column is an array whose first axis is the image: numbers [N] or [N, D] (a latent vector per image),
or strings [N] (file names). Nothing is pickled: .npy and .npz load with ``np.load`` as they are.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from vaekit.utils.atomic import atomic_write
from vaekit.utils.errors import VaekitError
from vaekit.utils.targets import file_target

FORMATS = (".npy", ".npz", ".parquet", ".csv")


def check_output(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``path`` as a table file that can be written (``utils.targets.file_target``: a known suffix, an
    existing writable folder, no file there unless ``overwrite``), and for Parquet pyarrow installed.
    Checked before any work, so that a bad output costs nothing."""
    path = file_target(path, overwrite=overwrite, suffixes=FORMATS)
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise VaekitError("writing Parquet needs pyarrow: pip install 'vaekit[parquet]'") from None
    return path


def write_table(path: str | os.PathLike, columns: dict[str, np.ndarray]) -> Path:
    """Write ``columns`` (equal first axes) to ``path`` in the format its suffix names, atomically."""
    path = check_output(path, overwrite=True)  # the caller checked it before its work
    rows = {len(values) for values in columns.values()}
    if len(rows) > 1:
        raise VaekitError(f"columns of different lengths: {sorted(rows)}")
    writer = {".npy": _write_npy, ".npz": _write_npz, ".parquet": _write_parquet, ".csv": _write_csv}
    atomic_write(path, lambda tmp: writer[path.suffix.lower()](tmp, columns))
    return path


def _write_npy(tmp: Path, columns: dict[str, np.ndarray]) -> None:
    """One structured array: a field per column, a [D] field for a vector column."""
    n = len(next(iter(columns.values()))) if columns else 0
    dtype = [(name, values.dtype, values.shape[1:]) for name, values in columns.items()]
    table = np.empty(n, dtype=dtype)
    for name, values in columns.items():
        table[name] = values
    with open(tmp, "wb") as f:
        np.save(f, table, allow_pickle=False)


def _write_npz(tmp: Path, columns: dict[str, np.ndarray]) -> None:
    with open(tmp, "wb") as f:
        np.savez(f, **columns)


def _write_parquet(tmp: Path, columns: dict[str, np.ndarray]) -> None:
    """A Parquet column per table column; a vector column is a fixed-size list (one list per image)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays: dict[str, Any] = {}
    for name, values in columns.items():
        if values.ndim == 1:
            arrays[name] = pa.array(values)
        else:
            flat = pa.array(np.ascontiguousarray(values).reshape(-1))
            arrays[name] = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(values.shape[1:])))
    pq.write_table(pa.table(arrays), tmp)


def _write_csv(tmp: Path, columns: dict[str, np.ndarray]) -> None:
    """A header and a row per image; a vector column becomes NAME_0 ... NAME_{D-1}."""
    header: list[str] = []
    parts: list[np.ndarray] = []
    for name, values in columns.items():
        flat = values.reshape(len(values), -1)
        header += [name] if values.ndim == 1 else [f"{name}_{i}" for i in range(flat.shape[1])]
        parts.append(flat.astype(object))
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        if parts:
            out.writerows(np.concatenate(parts, axis=1).tolist())
