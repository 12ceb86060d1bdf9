"""What a training step will hold in memory, estimated before anything is allocated, so that a model or a
batch too large for the machine is a one-line error at once, not an allocator's traceback (or the
kernel's OOM killer) after the data has loaded.

The model is built a second time on PyTorch's "meta" device, where tensors have shapes and no storage,
and one loss is taken there at the real batch size: the tensors autograd saves for the backward pass
are the step's activations, whatever the model (plugins included) and objective (batch-statistic
objectives such as beta-TCVAE's grow with the square of the batch, and are measured, not
extrapolated). Nothing is computed, no random number is drawn and the real model is not touched.
"""

from __future__ import annotations

from typing import Any

import torch

from vaekit.data import Dataset
from vaekit.models import VAE, build_model
from vaekit.training.settings import TrainConfig
from vaekit.training.step import loss_options
from vaekit.utils import limits

# Bytes each parameter takes in training: its float32 value, its gradient and Adam's two moments.
OPTIMIZER_BYTES = 4 * 4
EMA_BYTES = 4  # the averaged copy of each weight (--ema)
# The backward pass holds a gradient beside each saved activation as it goes: a step's peak is about
# twice what the forward pass saves (benchmarks/memory_estimate.py measures it: 0.5-1.3x of the peak).
BACKWARD_FACTOR = 2


def saved_activation_bytes(model: VAE, x: torch.Tensor, y: torch.Tensor, options: dict[str, Any]) -> int:
    """Bytes of the tensors autograd saves for the backward pass of ``model.loss(x, y, **options)``,
    each storage once, the model's own parameters left out (they are counted apart)."""
    parameters = {p.untyped_storage()._cdata for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in parameters:
            storages[storage._cdata] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.loss(x, y, **options)
    return sum(storages.values())


def training_bytes(
    config: TrainConfig, config_of_model: dict[str, Any], image_shape: tuple[int, ...], batch: int
) -> tuple[int, int | None]:
    """(bytes of the parameters with their gradients and optimizer state, bytes of one step's
    activations at ``batch`` images, forward and backward, or None where the model cannot take a loss
    on the meta device)."""
    with torch.device("meta"):  # the model, the batch and every tensor the loss makes: shapes only
        model = build_model(config_of_model)
        per_parameter = OPTIMIZER_BYTES + (EMA_BYTES if config.ema else 0)
        weights = per_parameter * sum(p.numel() for p in model.parameters())
        x, y = torch.zeros(batch, *image_shape), torch.zeros(batch, dtype=torch.long)
        try:
            saved = saved_activation_bytes(model, x, y, loss_options(model, config, 0.0, batch))
        except Exception:  # e.g. a plugin that reads a value (.item()) in its loss: no estimate, no refusal
            return weights, None
    return weights, BACKWARD_FACTOR * saved


def check_training_memory(
    config: TrainConfig,
    config_of_model: dict[str, Any],
    dataset: Dataset,
    device: torch.device,
    world_size: int = 1,
) -> None:
    """Refuse a model or a batch whose training step would not fit the memory ``device`` has now (see
    ``utils.limits.check_memory``): the batch is this process's share of ``config.batch_size`` images,
    at most the training set."""
    batch = max(1, -(-min(config.batch_size, len(dataset.train)) // world_size))
    try:
        weights, activations = training_bytes(config, config_of_model, dataset.image_shape, batch)
    except Exception:  # a model that cannot be built on the meta device is built for real, unchecked
        return
    sizes = ("hidden", "channels", "width", "latent_dim", "codebook_size")  # the options that size it
    shape = ", ".join(f"--{k.replace('_', '-')}" for k in sizes if config_of_model.get(k))
    hint = "; make it smaller" + (f": {shape}" if shape else "")
    limits.check_memory(weights, device, "the model with its gradients and Adam's state", hint)
    if activations is not None:
        held = limits.human(activations)
        what = f"a training step of {batch:,} images (the model, and {held} of activations)"
        limits.check_memory(weights + activations, device, what, "; lower --batch-size")
