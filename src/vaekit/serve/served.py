"""What every endpoint of vaekit serve shares: the loaded runs, the device they decode on, the checks
of a request's run, latent and label, and decoding (single decodes batched, see batching.py)."""

from __future__ import annotations

import time

import torch
from fastapi import HTTPException

from vaekit.serve.batching import DecodeBatcher
from vaekit.serve.requests import MAX_ABS_Z
from vaekit.serve.state import RunState


class ServedRuns:
    """The loaded runs and the device they decode on, shared by every endpoint: the checks of a
    request's run, latent and label (each a 4xx with a one-line detail), and decoding."""

    def __init__(self, runs: list[RunState], device: torch.device, batch_window: float | None) -> None:
        self.runs, self.device, self.batch_window = runs, device, batch_window
        self.batchers = [
            DecodeBatcher(lambda z, y, run=run: self.decode(run, z, y)[0], batch_window or 0.0)
            for run in runs
        ]

    def run(self, index: int) -> RunState:
        """Run ``index``, or a 404 naming how many this server has."""
        if not 0 <= index < len(self.runs):  # -1 is not "the last run": an index out of range is a 404
            raise HTTPException(404, f"no run {index}: this server has {len(self.runs)}")
        return self.runs[index]

    def check_z(self, run: RunState, z: list[float]) -> torch.Tensor:
        """One latent from a request as the batch of one that ``run`` decodes (a VQ-VAE: its codes)."""
        if len(z) != run.latent_dim:
            raise HTTPException(422, f"z has {len(z)} values; run {run.name} takes {run.latent_dim}")
        values = torch.tensor(z, dtype=torch.float64)
        if not torch.isfinite(values).all():
            raise HTTPException(422, "z must be finite numbers (no NaN or infinity)")
        if not run.gaussian:
            latent = run.model.latent_space
            size = latent.codebook_size
            if (values != values.round()).any() or values.min() < 0 or values.max() >= size:
                raise HTTPException(422, f"a VQ-VAE's z is its codes: whole numbers in 0..{size - 1}")
            return values.long().view(1, *latent.grid).to(self.device)
        if values.abs().max() > MAX_ABS_Z:
            raise HTTPException(422, f"z values must be within +-{MAX_ABS_Z:g}")
        return values.float().view(1, -1).to(self.device)

    def check_label(self, run: RunState, label: int | None, n: int) -> torch.Tensor | None:
        """A request's label repeated ``n`` times for a conditional run; None for any other."""
        if not run.model.conditional:
            if label is not None:
                raise HTTPException(422, f"run {run.name} ({run.model.name}) takes no label")
            return None
        if label is None:
            raise HTTPException(422, f"run {run.name} is conditional: give a label")
        if not 0 <= label < run.model.num_classes:
            raise HTTPException(422, f"label must be in 0..{run.model.num_classes - 1}, got {label}")
        return torch.full((n,), label, dtype=torch.long, device=self.device)

    def decode(
        self, run: RunState, z: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, float]:
        """Latents -> images on the CPU (which waits for a GPU to finish), and the seconds it took."""
        start = time.perf_counter()
        with torch.no_grad():
            images = run.model.decode(z, labels).cpu()
        return images, time.perf_counter() - start

    async def decode_one(
        self, index: int, z: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, float]:
        """One latent of run ``index`` decoded with those that arrive with it (alone when the batch
        window is None), and the seconds it took, the wait for the batch included."""
        if self.batch_window is None:
            return self.decode(self.runs[index], z, labels)
        start = time.perf_counter()
        images = await self.batchers[index](z, labels)
        return images, time.perf_counter() - start
