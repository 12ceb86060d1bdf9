"""Decode requests that arrive together, decoded as one batch, on the server's event loop.

The page sends a decode for every pointer move and slider step; with two runs side by side, or several
tabs, requests overlap. Each request adds its latent to the open batch and awaits its image; the first
schedules the batch's decode ``window`` seconds later (0: at the event loop's next turn, which gathers
the requests whose bodies arrived in this one). The decode runs on the loop itself: for the models
vaekit serves it takes well under a millisecond on a CPU, less than a hand-over to a worker thread, and
a request in flight meanwhile only waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import torch

Decode = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class DecodeBatcher:
    """``await batcher(z, labels)`` -> ``decode(z, labels)``, batched with the requests of the same
    ``window``. ``z`` is one latent [1, ...]; ``labels`` [1] or None, the same kind across a batch."""

    def __init__(self, decode: Decode, window: float = 0.0) -> None:
        self.decode, self.window = decode, window
        self.pending: list[tuple[torch.Tensor, torch.Tensor | None, asyncio.Future]] = []
        self.batches = 0  # decode calls made: fewer than requests when they overlapped

    async def __call__(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((z, labels, future))
        if len(self.pending) == 1:
            loop.call_later(self.window, self._flush) if self.window > 0 else loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        self.batches += 1
        try:
            zs = torch.cat([z for z, _, _ in batch])
            ys = None if batch[0][1] is None else torch.cat([y for _, y, _ in batch])
            with torch.no_grad():
                images = self.decode(zs, ys)
        except Exception as exc:  # every waiting request learns of it, and the next batch starts afresh
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for i, (_, _, future) in enumerate(batch):
            if not future.done():  # a request cancelled meanwhile (client gone) gets nothing
                future.set_result(images[i : i + 1])
