"""Property-based tests (Hypothesis) of the image-folder decoder: files of random bytes and real images
cut short or with bytes changed, among good ones, are skipped and counted, or the folder is refused with
a one-line VaekitError (too many unreadable), never a traceback or a hang."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vaekit.data.decode import decode_image, open_header
from vaekit.data.folder import load_folder
from vaekit.utils.errors import VaekitError


def png(seed: int, size: int = 12, mode: str = "L") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG" if seed % 2 else "JPEG")
    return buffer.getvalue()


DAMAGED = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda seed, cut: png(seed)[: cut % len(png(seed))], st.integers(0, 50), st.integers(0, 10**6)),
    st.builds(
        lambda seed, at, flip: (
            lambda b: b[: at % len(b)] + bytes([b[at % len(b)] ^ flip]) + b[at % len(b) + 1 :]
        )(png(seed)),
        st.integers(0, 50),
        st.integers(0),
        st.integers(1, 255),
    ),
)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=DAMAGED)
def test_one_damaged_file_decodes_to_its_size_or_raises_an_ordinary_error(tmp_path, data):
    path = tmp_path / "x.png"
    path.write_bytes(data)
    try:
        open_header(path)
        image = decode_image(path, (8, 8), "grey")
    except Exception as exc:  # the decoder's per-image errors: run_chunk records each in one line
        assert not isinstance(exc, (MemoryError, RecursionError, SystemExit, KeyboardInterrupt))
        return
    assert image.shape == (1, 8, 8) and image.dtype == np.uint8


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.lists(DAMAGED, min_size=1, max_size=4), good=st.integers(2, 30))
def test_a_folder_with_damaged_files_skips_them_or_is_refused_in_one_line(tmp_path_factory, bad, good):
    root = tmp_path_factory.mktemp("pictures")
    for i in range(good):
        (root / f"good{i:02d}.png").write_bytes(png(2 * i + 1))
    for i, data in enumerate(bad):
        (root / f"bad{i}.png").write_bytes(data)
    try:
        images = load_folder(
            root, tmp_path_factory.mktemp("cache"), [8, 8], "grey", progress=False, log=lambda s: None
        )
    except VaekitError as exc:
        assert "\n" not in str(exc) and "could not be read" in str(exc)
        return
    assert good <= len(images.images) <= good + len(bad) and images.images.shape[1:] == (1, 8, 8)
    assert len(images.names) == len(images.images)
