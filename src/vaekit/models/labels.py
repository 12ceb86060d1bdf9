"""Class labels checked against a model's classes, without stalling a training step on the device."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from vaekit.utils.errors import VaekitError

_LABELS_CHECKED: ContextVar[bool] = ContextVar("labels_checked", default=False)


@contextmanager
def labels_checked() -> Iterator[None]:
    """Inside, ``check_labels`` takes the labels as checked already (a training set's, checked once when
    the run starts): the check reads the labels back from the device, which a training step must not
    wait for."""
    token = _LABELS_CHECKED.set(True)
    try:
        yield
    finally:
        _LABELS_CHECKED.reset(token)


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Refuse class labels outside 0..num_classes-1. Not checked while exporting to ONNX (a graph cannot
    raise: export.json asks callers to check) or compiling, nor on the meta device, whose tensors have no
    values (``training.memory`` takes a loss there to measure a step), nor inside ``labels_checked``."""
    if (
        torch.compiler.is_compiling()  # first: a compiled graph neither raises nor reads a context
        or torch.compiler.is_exporting()
        or _LABELS_CHECKED.get()
        or labels.device.type == "meta"
        or not labels.numel()
    ):
        return
    if labels.min() < 0 or labels.max() >= num_classes:
        raise VaekitError(f"labels must be in 0..{num_classes - 1}")
