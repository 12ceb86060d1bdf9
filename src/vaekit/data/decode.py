"""Decoding image files for a folder's cache: headers, one image to uint8 [C, H, W], and many in worker
processes streamed into a memory-mapped .npy (see vaekit.data.folder for the cache around it)."""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm  # a widget in Jupyter, the console bar elsewhere

CHUNK = 64  # images per task of a worker process
MAX_WORKERS = 16
# PIL modes without colour; every other mode (RGB, P, CMYK, ...) is treated as colour.
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"}


def open_header(path: Path) -> tuple[tuple[int, int], str]:
    """The (width, height) and mode of an image, from its header alone; refuses decompression bombs."""
    with Image.open(path) as image:
        width, height = image.size
        if width * height > Image.MAX_IMAGE_PIXELS:
            raise ValueError(
                f"{width}x{height} pixels is over the {Image.MAX_IMAGE_PIXELS:,} pixel limit "
                "(a decompression bomb?)"
            )
        return (width, height), image.mode


def decode_image(path: Path, size: tuple[int, int], colour: str) -> np.ndarray:
    """One image as uint8 [C, H, W]: alpha composited onto black, converted to grey or RGB, centre-cropped
    to the target aspect and resized with antialiasing (``size`` is (height, width))."""
    height, width = size
    with Image.open(path) as image:
        if image.width * image.height > Image.MAX_IMAGE_PIXELS:
            raise ValueError("over the pixel limit (a decompression bomb?)")
        image.draft("RGB" if colour == "rgb" else "L", (width, height))  # JPEG: decode at a reduced scale
        if "A" in image.getbands() or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
        image = image.convert("L" if colour == "grey" else "RGB")
        if image.size != (width, height):
            image = ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)
        array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def run_chunk(function: Callable, items: list) -> list[tuple[Any, str | None]]:
    """``function`` over ``items``; each result is (value, None) or (None, the error in one line)."""
    results: list[tuple[Any, str | None]] = []
    for item in items:
        try:
            results.append((function(item), None))
        except Exception as exc:  # noqa: BLE001 - any failure of one image is that image's, reported later
            results.append((None, f"{type(exc).__name__}: {exc}".splitlines()[0]))
    return results


def parallel(function: Callable, items: list, desc: str, progress: bool) -> Iterator[tuple[Any, str | None]]:
    """``function`` over ``items`` in worker processes, ``CHUNK`` items a task, results in order as they
    come (a few chunks ahead at most, so decoded images do not pile up in memory).

    Processes, not threads: for small images most of the time is PIL's Python code, which holds the GIL.
    On Linux they are forked (the children run PIL and numpy only, never torch); elsewhere spawned.
    """
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    workers = min(len(chunks), os.cpu_count() or 1, MAX_WORKERS)
    with tqdm(total=len(items), desc=desc, disable=not progress, leave=False) as bar:
        if workers <= 1:
            for chunk in chunks:
                yield from run_chunk(function, chunk)
                bar.update(len(chunk))
            return
        context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            pending: deque = deque()
            for chunk in chunks:
                pending.append((pool.submit(run_chunk, function, chunk), len(chunk)))
                if len(pending) >= 2 * workers:
                    future, n = pending.popleft()
                    yield from future.result()
                    bar.update(n)
            while pending:
                future, n = pending.popleft()
                yield from future.result()
                bar.update(n)


def choose_settings(
    headers: list, rows: list[int], size: list[int] | None, colour: str | None
) -> tuple[list[int], str, str | None]:
    """The image size and colour to decode ``rows`` at: as given, else from their headers (RGB if any
    image has colour; the most common size, with a note when there are several)."""
    note = None
    if colour is None:
        colour = "rgb" if any(headers[i][0][1] not in GREY_MODES for i in rows) else "grey"
    if size is None:
        sizes = Counter(headers[i][0][0] for i in rows)
        (width, height), count = sizes.most_common(1)[0]
        size = [height, width]
        if len(sizes) > 1:
            note = (
                f"the images have {len(sizes)} sizes; all were resized to the most common, {height}x{width} "
                f"({count:,} images); choose another with --image-size"
            )
    return size, colour, note


def decode_into(
    tmp: Path, files: list[Path], rows: list[int], size: list[int], colour: str, progress: bool
) -> tuple[list[int], list[tuple[Path, str]]]:
    """Decode ``files[rows]`` into a new .npy at ``tmp``, without the rows that fail; returns the rows
    kept and the failures."""
    shape = (len(rows), 1 if colour == "grey" else 3, *size)
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    ok = np.zeros(len(rows), dtype=bool)
    decode = functools.partial(decode_image, size=(size[0], size[1]), colour=colour)
    failed = []
    for row, (array, error) in enumerate(parallel(decode, [files[i] for i in rows], "decoding", progress)):
        if error is None:
            out[row], ok[row] = array, True
        else:
            failed.append((files[rows[row]], error))
    kept = [i for i, flag in zip(rows, ok, strict=True) if flag]
    if failed and kept:  # compact: the unreadable rows go
        compact = np.lib.format.open_memmap(
            tmp.with_suffix(".compact"), mode="w+", dtype=np.uint8, shape=(len(kept), *shape[1:])
        )
        compact[:] = out[ok]
        compact.flush()
        del compact
        os.replace(tmp.with_suffix(".compact"), tmp)
    else:
        out.flush()
    del out
    return kept, failed
