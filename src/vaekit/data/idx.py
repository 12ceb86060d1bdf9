"""Reader for the IDX format of LeCun's MNIST files (and Fashion-MNIST, KMNIST, which share it).

Layout (big-endian): two zero bytes, a type code (0x08 = uint8), the number of dimensions, one
uint32 size per dimension, then the data in C order. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from vaekit.utils.errors import VaekitError

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or ``.gz``) into a numpy array of its declared shape.

    Raises VaekitError for a file that is truncated, has trailing bytes, a bad header, or broken gzip.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise VaekitError(f"data file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise VaekitError(f"corrupt data file {path}: {exc}") from None
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file; see read_idx."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise VaekitError(f"corrupt data file {name}: not an IDX file (bad magic number)")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise VaekitError(f"corrupt data file {name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(shape) * dtype.itemsize  # exact: numpy's product would wrap at 2^63
    if len(raw) < expected:
        raise VaekitError(
            f"truncated data file {name}: {len(raw)} bytes, its header {shape} needs {expected}"
        )
    if len(raw) > expected:
        raise VaekitError(f"corrupt data file {name}: {len(raw) - expected} bytes after the data")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
