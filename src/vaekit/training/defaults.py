"""The training settings a model may take by default (``VAE.training_defaults``: the hvae trains as
NVAE does) and their checks: the optimizer, its schedule, the gradient guard, the weights' average, KL
balancing. ``settings.TrainConfig.validate`` calls these; they take the config as ``Any`` because
settings.py imports this module."""

from __future__ import annotations

import math
from typing import Any

from vaekit.training.optim import OPTIMIZERS
from vaekit.utils.errors import VaekitError

# Training settings a model may default otherwise (``VAE.training_defaults``: the hvae trains as NVAE
# does); None in TrainConfig takes the model's default, else this one.
TRAINING_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "kl_warmup": 0,
    "kl_balance": False,
    "optimizer": "adam",
    "lr_schedule": "constant",
    "grad_clip": 0.0,
    "skip_threshold": 0.0,
    "max_skipped": 0.05,
    "ema": 0.0,
}
LR_SCHEDULES = ("constant", "cosine")


# settings whose option is not their name with dashes (a message names the option the user types)
IRREGULAR_FLAGS = {"model_options": "model-option", "colour": "grey/--rgb", "fit_prior": "no-fit-prior"}


def flag(name: str) -> str:
    """The option of the setting ``name``, without its leading dashes: ``latent_dim`` -> latent-dim."""
    return IRREGULAR_FLAGS.get(name, name.replace("_", "-"))


# the KL term's own settings: a model's defaults for them hold for the elbo objective only
ELBO_SETTINGS = ("kl_warmup", "kl_balance")


def fill_training_defaults(config: Any, model_class: type) -> None:
    """Settings left None take the model's training defaults, else TRAINING_DEFAULTS (the KL term's
    settings take the model's only with the elbo objective: an hvae trained on the IWAE bound has no
    warm-up to refuse)."""
    for name, default in TRAINING_DEFAULTS.items():
        if getattr(config, name) is None:
            own = name not in ELBO_SETTINGS or config.objective == "elbo"
            setattr(config, name, model_class.training_defaults.get(name, default) if own else default)


def check_training_options(config: Any, model_class: type) -> None:
    """The optimizer, its schedule, gradient clipping and skipping, the weights' average, KL balance."""
    if config.optimizer not in OPTIMIZERS:
        raise VaekitError(f"unknown optimizer {config.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    if config.lr_schedule not in LR_SCHEDULES:
        raise VaekitError(
            f"unknown lr schedule {config.lr_schedule!r}; choose from {', '.join(LR_SCHEDULES)}"
        )
    for name in ("grad_clip", "skip_threshold"):
        value = getattr(config, name)
        if isinstance(value, bool) or not (
            isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
        ):
            raise VaekitError(f"{name.replace('_', ' ')} must be a finite number >= 0, got {value!r}")
    for name, top in (("max_skipped", 1.0), ("ema", 1.0)):
        value = getattr(config, name)
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 <= value < top):
            raise VaekitError(f"{flag(name)} must be a number in [0, 1), got {value!r}")
    if not isinstance(config.kl_balance, bool):
        raise VaekitError(f"kl balance must be true or false, got {config.kl_balance!r}")
