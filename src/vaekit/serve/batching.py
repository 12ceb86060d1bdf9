"""Decode requests that arrive together, decoded as one batch.

The page sends a decode for every pointer move and slider step; with two runs side by side, or several
tabs, requests overlap. Each request's thread joins the open batch; the first waits ``window`` seconds
for company, decodes everything gathered in one call, and hands each its image.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class _Request:
    z: torch.Tensor  # [1, ...]
    labels: torch.Tensor | None  # [1] or None
    done: threading.Event = field(default_factory=threading.Event)
    image: torch.Tensor | None = None
    error: BaseException | None = None


class DecodeBatcher:
    """``batcher(z, labels)`` -> ``decode(z, labels)``, batched with requests arriving within ``window``."""

    def __init__(
        self, decode: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], window: float = 0.002
    ):
        self.decode, self.window = decode, window
        self.lock = threading.Lock()
        self.pending: list[_Request] = []
        self.batches = 0  # decode calls made: fewer than requests when they overlapped

    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        request = _Request(z, labels)
        with self.lock:
            self.pending.append(request)
            leader = len(self.pending) == 1
        if leader:
            time.sleep(self.window)
            with self.lock:
                batch, self.pending = self.pending, []
                self.batches += 1
            try:
                zs = torch.cat([r.z for r in batch])
                ys = None if batch[0].labels is None else torch.cat([r.labels for r in batch])
                with torch.no_grad():
                    images = self.decode(zs, ys)
                for i, r in enumerate(batch):
                    r.image = images[i : i + 1]
            except BaseException as exc:  # every waiting request learns of it, not only the leader
                for r in batch:
                    r.error = exc
            finally:
                for r in batch:
                    r.done.set()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.image is not None
        return request.image
