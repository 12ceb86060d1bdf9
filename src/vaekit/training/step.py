"""What one training step asks of the settings: the KL weight at this point of the run (warm-up), the
options ``model.loss`` takes, mixed precision, and the weights' memory layout on a CPU."""

from __future__ import annotations

from typing import Any

import torch

from vaekit.models import VAE, GaussianVAE
from vaekit.training.settings import TrainConfig

CONVOLUTIONS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def kl_weight(config: TrainConfig, epochs_done: float) -> float:
    """beta, reached linearly from 0 over the first ``kl_warmup`` epochs; ``epochs_done`` counts the
    epoch in progress by its share of steps, so the weight rises step by step."""
    if not config.kl_warmup:
        return config.beta
    return config.beta * min(1.0, epochs_done / config.kl_warmup)


def loss_options(model: VAE, config: TrainConfig, weight: float) -> dict[str, Any]:
    """The keyword arguments of ``model.loss`` in training: a Gaussian-latent model's objective options
    (a VQ-VAE takes none)."""
    if not isinstance(model, GaussianVAE):
        return {}
    iwae_k = config.k if config.objective == "iwae" else 1
    return {"kl_weight": weight, "free_bits": config.free_bits, "iwae_k": iwae_k}


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
