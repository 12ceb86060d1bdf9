"""Property-based tests (Hypothesis) of the IDX reader: any bytes, a real file cut anywhere or with a
byte changed, either read back as the array they encode or are refused with a one-line VaekitError."""

from __future__ import annotations

import gzip

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.conftest import idx_bytes
from vaekit.data.idx import parse_idx, read_idx
from vaekit.utils.errors import VaekitError

ARRAYS = hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6))


def parses_or_refuses(raw: bytes) -> np.ndarray | None:
    try:
        return parse_idx(raw)
    except VaekitError as exc:
        assert "\n" not in str(exc)
        return None


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=200))
def test_random_bytes_are_an_array_or_a_one_line_refusal(raw):
    parses_or_refuses(raw)


@settings(max_examples=100, deadline=None)
@given(array=ARRAYS, cut=st.integers(min_value=0, max_value=400))
def test_a_real_file_reads_back_whole_and_is_refused_cut_short(array, cut):
    raw = idx_bytes(array)
    assert np.array_equal(parse_idx(raw), array)
    if cut < len(raw):
        assert parses_or_refuses(raw[:cut]) is None  # every prefix is refused: the header says the size
    assert parses_or_refuses(raw + b"\x00") is None


@settings(max_examples=100, deadline=None)
@given(array=ARRAYS, where=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_a_changed_header_byte_is_refused_or_reads_its_own_shape(array, where, flip):
    raw = bytearray(idx_bytes(array))
    header = 4 + 4 * array.ndim
    raw[where % header] ^= flip
    result = parses_or_refuses(bytes(raw))
    assert result is None or result.size * result.itemsize == len(raw) - (4 + 4 * result.ndim)


@settings(max_examples=25, deadline=None)
@given(array=ARRAYS, cut=st.integers(min_value=1, max_value=60))
def test_broken_gzip_is_a_one_line_refusal(tmp_path_factory, array, cut):
    path = tmp_path_factory.mktemp("idx") / "x-idx3-ubyte.gz"
    data = gzip.compress(idx_bytes(array))
    path.write_bytes(data[: max(2, len(data) - cut)])
    try:
        read_idx(path)
    except VaekitError as exc:
        assert "\n" not in str(exc)


def test_a_header_declaring_more_than_2_to_the_63_bytes_is_truncated_not_wrapped():
    raw = bytes([0, 0, 0x08, 3]) + b"\xff\xff\xff\xff" * 3 + b"\x00" * 16
    assert parses_or_refuses(raw) is None
    try:
        parse_idx(raw)
    except VaekitError as exc:
        assert str(exc).startswith("truncated data file")
