"""What a command will allocate, checked before it allocates: a count too large for the machine is a
one-line error that says the limit and why, not an allocator's traceback after a long wait.

The limits are the machine's own: memory available now (``MemAvailable`` of /proc/meminfo on Linux,
the free memory of a CUDA device) and the free space of the output's disk, with a margin (half the
memory, all but 5% of the disk) for what else runs.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import torch

from vaekit.utils.errors import VaekitError

MEMORY_SHARE = 0.5  # of the memory available now that one allocation may take
DISK_SHARE = 0.95  # of the free space that one output file may take
MAX_GRID_PIXELS = 1 << 28  # a PNG grid this large (268 megapixels) is past what image viewers open
# Bytes per pixel value of images held at once: float32, and a second copy (the grid drawn from them, or
# the decoder's last activation beside its output).
IMAGE_BYTES = 2 * 4


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation on ``device`` now (None where it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def human(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size} TB"


def check_memory(size: int, device: torch.device, what: str, hint: str = "") -> None:
    """Refuse ``what`` if it needs more than MEMORY_SHARE of the memory ``device`` has available now."""
    free = available_memory(device)
    if free is not None and size > MEMORY_SHARE * free:
        raise VaekitError(
            f"{what} needs {human(size)} of memory at once; {device} has {human(free)} available "
            f"and one allocation may take half of it{hint}"
        )


def check_disk(size: int, path: str | os.PathLike, what: str) -> None:
    """Refuse ``what`` if writing ``size`` bytes at ``path`` would fill its disk."""
    folder = Path(path).parent if str(Path(path).parent) else Path(".")
    while not folder.exists() and folder != folder.parent:  # a folder the write will make: its disk
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if size > DISK_SHARE * free:
        raise VaekitError(f"cannot write {path}: {what} is {human(size)}; {folder} has {human(free)} free")


def check_grid(n: int, image_shape: tuple[int, ...], what: str = "a grid") -> None:
    """Refuse a PNG grid of ``n`` images past MAX_GRID_PIXELS."""
    pixels = n * image_shape[-1] * image_shape[-2]
    if pixels > MAX_GRID_PIXELS:
        most = MAX_GRID_PIXELS // (image_shape[-1] * image_shape[-2])
        raise VaekitError(
            f"{what} of {n:,} images is {pixels / 1e6:,.0f} megapixels; one PNG grid holds at most "
            f"{most:,} of these images: write many samples to a .npy file (--out samples.npy), which "
            "streams them to disk in batches"
        )


def check_images(
    n: int, image_shape: tuple[int, ...], device: torch.device, what: str, grid: bool = True, hint: str = ""
) -> None:
    """Refuse ``n`` images of ``image_shape`` held at once on ``device`` (IMAGE_BYTES per value) past
    the memory check, and, with ``grid``, drawn as one PNG past MAX_GRID_PIXELS."""
    if grid:
        check_grid(n, image_shape, what)
    check_memory(IMAGE_BYTES * n * math.prod(image_shape), device, f"{what} of {n:,} images", hint)
