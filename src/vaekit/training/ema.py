"""An exponential moving average of the weights, for evaluation and sampling (Polyak & Juditsky 1992;
NVAE and VDVAE evaluate and sample with it): w_ema = d_t * w_ema + (1 - d_t) * w after update t, with
d_t = min(decay, (1 + t) / (10 + t)), TensorFlow's ExponentialMovingAverage warm-up: a run of a few
thousand updates does not average in its random start (0.999^1000 would still weigh it by 37%).

The run trains the raw weights; validation, the saved model (model.safetensors), its pictures and the
test evaluation use the average. Checkpoints keep both, so a resumed run goes on exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """The moving average of ``model``'s parameters with ``decay`` in [0, 1)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        named = list(model.named_parameters())
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.average = [p.detach().clone() for p in self.params]
        # updates averaged in so far, counted on the device (in float64, as the warm-up's ratio is taken)
        self.count = torch.zeros((), dtype=torch.float64, device=self.average[0].device)

    @property
    def updates(self) -> int:
        return int(self.count.item())

    @torch.no_grad()
    def update(self, applied: torch.Tensor | None = None) -> None:
        """Average in the weights after an update; ``applied`` (a bool tensor on the device): False for an
        update that was skipped, which then changes nothing (decided on the device, as the update was)."""
        t = self.count
        weight = 1.0 - torch.clamp((1 + t) / (10 + t), max=self.decay)
        if applied is not None:
            weight = weight * applied
        weight = weight.to(self.average[0].dtype)
        # the same float32 weight as a Python number would give the kernel, as one tensor for every shape
        weights = [weight.expand_as(w) for w in self.average]
        torch._foreach_lerp_(self.average, [p.detach() for p in self.params], weights)
        self.count += 1 if applied is None else applied

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its trained ones again after it."""
        trained = [p.detach().clone() for p in self.params]
        self.copy_into_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, w in zip(self.params, trained, strict=True):
                    p.copy_(w)

    @torch.no_grad()
    def copy_into_model(self) -> None:
        for p, w in zip(self.params, self.average, strict=True):
            p.copy_(w)

    def state_dict(self) -> dict[str, object]:
        return {
            "updates": self.updates,
            "weights": {name: w.cpu() for name, w in zip(self.names, self.average, strict=True)},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, object]) -> None:
        weights = state["weights"]
        if sorted(weights) != sorted(self.names):
            raise ValueError("the averaged weights are for another model")
        for name, w in zip(self.names, self.average, strict=True):
            w.copy_(weights[name])
        self.count.fill_(int(state["updates"]))
