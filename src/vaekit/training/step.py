"""What one training step asks of the settings: the KL weight at this point of the run (warm-up), the
options ``model.loss`` takes, the batch's loss (augmented, binarized, in the run's precision), and the
weights' memory layout on a CPU."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from vaekit.data.augment import random_affine
from vaekit.models import VAE
from vaekit.models.labels import labels_checked
from vaekit.models.parts import part
from vaekit.training import distributed
from vaekit.training.part_settings import objective_takes
from vaekit.training.settings import TrainConfig
from vaekit.utils.devices import cpu_has_bf16
from vaekit.utils.errors import VaekitError

CONVOLUTIONS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def warmup(config: TrainConfig, epochs_done: float) -> float:
    """The KL warm-up's ramp: from 0 to 1 linearly over the first ``kl_warmup`` epochs; ``epochs_done``
    counts the epoch in progress by its share of steps, so it rises step by step."""
    if not config.kl_warmup:
        return 1.0
    return min(1.0, epochs_done / config.kl_warmup)


def kl_weight(config: TrainConfig, epochs_done: float) -> float:
    """The KL term's weight: beta times the warm-up's ramp. An objective that takes beta itself
    (beta-TCVAE's weighs the total correlation alone) has the ramp alone as its KL weight (on all three
    of the KL's parts)."""
    ramp = warmup(config, epochs_done)
    return ramp if objective_takes(config, "beta") else config.beta * ramp


def loss_options(model: VAE, config: TrainConfig, epochs_done: float, dataset_size: int) -> dict[str, Any]:
    """The keyword arguments of ``model.loss`` in training: a Gaussian-latent model's objective and what
    its function takes (``PartSpec.loss_options``) of its options and the step's KL weight, beta, free
    bits, KL balancing (a hierarchy's) and ``dataset_size`` (the training images: beta-TCVAE's estimate
    of q(z) needs it); a VQ-VAE takes none."""
    if not model.takes_objectives:
        return {}
    spec = part("objective", config.objective)
    steps = epochs_done * math.ceil(dataset_size / config.batch_size)  # the optimizer's steps so far
    context = {
        "kl_weight": kl_weight(config, epochs_done),
        "beta": config.beta,
        "free_bits": config.free_bits,
    }
    context.update(kl_balance=bool(config.kl_balance), dataset_size=dataset_size, step=round(steps))
    return {"objective": spec.name, **spec.loss_options(config.part_options, context)}


def batch_loss(
    trainer: Any, index: torch.Tensor, loss_of: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
    """The objective and terms of ``loss_of`` (the model's loss, compiled or not) on the training images
    of a ``loop.Trainer`` (typed Any: loop.py imports this module) at positions ``index`` (under torchrun,
    this rank's share: with the fraction of the batch it is), augmented and binarized as the run asks, in
    its precision."""
    cfg, model, ranks = trainer.config, trainer.model, trainer.ranks
    mine, first_row, fraction = distributed.share(index, ranks)  # this rank's part
    x, y = trainer.train_batch(mine)
    if cfg.augment:
        x = random_affine(x)
    if cfg.binarize == "dynamic":  # a fresh binary draw of every image, every time it is seen
        x = torch.bernoulli(x)
    with autocast(cfg, trainer.device), labels_checked():  # the labels were checked at the start
        options = loss_options(model, cfg, trainer.epochs_done, trainer.n_train)
        if ranks.enabled and model.splits_noise:  # one process's noise
            options["noise_rows"] = (first_row, len(index))
        objective, terms = loss_of(x, y, options)
    if ranks.enabled:  # DDP averages gradients over ranks: weigh each by its share
        objective = objective * (fraction * ranks.world_size)
    return objective, terms, fraction


def autocast(config: TrainConfig, device: torch.device) -> torch.autocast:
    """bf16 mixed precision for the training step's convolutions and matmuls, if asked for.

    Weights, optimizer state and the loss terms stay float32 (the models compute their likelihoods
    and KL in float32), and evaluation always runs in float32.
    """
    enabled = config.precision == "bf16"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def place_model(model: VAE, device: torch.device) -> VAE:
    """The model on ``device``; on a CPU, convolution weights channels-last: oneDNN's convolutions run
    ~20% faster so (benchmarks/conv_speed.py), and the saved weights are the same numbers, contiguous."""
    model = model.to(device)
    if device.type == "cpu" and any(isinstance(m, CONVOLUTIONS) for m in model.modules()):
        model.to(memory_format=torch.channels_last)
    return model


def check_finite(value: float, epochs_done: int, last_checkpoint: Path) -> None:
    """A one-line error if the training loss ``value`` is not finite (the last good checkpoint stays)."""
    if not math.isfinite(value):
        raise VaekitError(
            f"the training loss became {value} in epoch {epochs_done + 1}; stopped. The last good "
            f"checkpoint (after epoch {epochs_done}) is kept in {last_checkpoint}; try a lower --lr"
        )


SLOW_BF16_NOTE = (
    "note: this CPU has no native bfloat16 arithmetic (no AVX512-BF16 or AMX): "
    "--precision bf16 runs many times slower than fp32 here"
)


def slow_bf16(config: TrainConfig, device: torch.device) -> bool:
    """Whether bf16 was asked for on a CPU that emulates it (SLOW_BF16_NOTE says so)."""
    return config.precision == "bf16" and device.type == "cpu" and not cpu_has_bf16()
