"""Many samples to disk: ``vaekit sample RUN --n N --out FILE.npy`` draws them in batches and streams
each batch into a memory-mapped .npy file (uint8 [N, C, H, W], the pixel means rounded to 0..255), so
that a million samples need one batch of memory, not a million images'."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vaekit.models import VAE
from vaekit.utils.atomic import atomic_write
from vaekit.utils.errors import VaekitError
from vaekit.utils.limits import check_disk, check_memory

BATCH = 10_000


def stream_samples(
    model: VAE,
    n: int,
    out: str | os.PathLike,
    batch_size: int = BATCH,
    progress: bool = False,
    sample: Callable[[int], torch.Tensor] | None = None,
    **options: Any,
) -> Path:
    """Draw ``n`` samples from ``model`` (``model.sample(k, **options)`` per batch, or ``sample(k)``) into
    the .npy file ``out``, written atomically. The disk's free space and one batch's memory are checked
    first."""
    out = Path(out)
    if out.suffix != ".npy":
        raise VaekitError(f"--out {out}: samples stream to a .npy file")
    shape = (n, *model.image_shape)
    check_disk(math.prod(shape) + 128, out, f"{n:,} samples as uint8")
    batch = min(batch_size, n)
    check_memory(4 * batch * math.prod(model.image_shape), model.device, f"a batch of {batch:,} samples")
    draw = sample or (lambda k: model.sample(k, **options))

    def write(tmp: Path) -> None:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        with torch.no_grad(), tqdm(total=n, unit="image", disable=not progress, leave=False) as bar:
            for start in range(0, n, batch):
                images = draw(min(batch, n - start))
                array[start : start + len(images)] = (images * 255).round().to(torch.uint8).cpu().numpy()
                bar.update(len(images))
        array.flush()
        del array

    atomic_write(out, write)
    return out
