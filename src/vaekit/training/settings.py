"""A training run's settings: TrainConfig (every setting, checked by ``validate``), the config of the
model it builds, and what may change when a run is resumed."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vaekit.data import BINARIZE, check_dataset_name
from vaekit.data.folder import COLOURS, parse_image_size
from vaekit.models.base import PRECISIONS
from vaekit.models.parts import require_parts
from vaekit.models.registry import require_model
from vaekit.training.applicability import check_applicability
from vaekit.training.budget import parse_duration
from vaekit.training.defaults import (
    check_training_options,
    fill_training_defaults,
    flag,
)
from vaekit.training.model_settings import MODEL_SETTINGS, check_model_settings, gaussian_models
from vaekit.training.part_settings import (
    check_parts,
    chosen_parts,
    exact_kl,
    fold_part_options,
    inexact,
    objective_takes,
)
from vaekit.utils.devices import DEVICES
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_run_config

DEFAULT_EPOCHS = 10  # a run's length when neither --epochs nor --max-time is given


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are the classic MNIST VAE."""

    dataset: str = "mnist"
    data_dir: str | None = None
    image_size: list[int] | None = None  # [height, width]: folder datasets are resized, shapes drawn so
    colour: str | None = None  # "grey" or "rgb": folder datasets are converted (None: as the images are)
    model: str = "mlp"
    latent_dim: int | None = None
    hidden: list[int] | None = None
    channels: list[int] | None = None
    likelihood: str | None = None
    decoder_std: float | str | None = None  # a number, "calibrated" (gaussian's default) or "learned"
    codebook_size: int | None = None
    model_options: dict[str, Any] | None = None  # the model's own options (a plugin's): name -> value
    scales: int | None = None  # hvae: spatial scales of the hierarchy
    groups: int | None = None  # hvae: latent groups per scale
    latent_channels: int | None = None  # hvae: channels of each latent group
    width: int | None = None  # hvae: channels of the residual blocks
    encoder_blocks: int | None = None  # hvae: residual blocks per scale of the encoder
    stem: int | None = None  # hvae: halvings of the image before the first scale
    logvar_limit: float | None = None  # hvae: soft clamp of the log-variances
    beta: float = 1.0
    kl_warmup: int | None = None  # epochs (None: the model's default, TRAINING_DEFAULTS)
    kl_balance: bool | None = None  # hvae: NVAE's balancing of the groups' KL during the warm-up
    free_bits: float = 0.0
    objective: str = "elbo"  # the parts (models.parts): the objective, the prior trained with, its posterior
    prior: str = "standard"
    posterior: str = "gaussian"
    part_options: dict[str, Any] | None = None  # the parts' options by name (--k, --gamma): part_settings
    epochs: int | None = None  # None: DEFAULT_EPOCHS, or with max_time as many as the time allows
    batch_size: int = 128
    lr: float | None = None  # None: the model's default (1e-3; hvae 1.2e-2)
    optimizer: str | None = None  # adam or adamax
    lr_schedule: str | None = None  # constant or cosine (to 0 over the epochs)
    grad_clip: float | None = None  # clip the gradient's norm to this (0: never)
    skip_threshold: float | None = None  # skip an update whose gradient norm is above (0: never)
    max_skipped: float | None = None  # stop if more than this share of an epoch's updates are skipped
    ema: float | None = None  # decay of the weights' moving average used to evaluate and sample (0: none)
    seed: int = 0
    val_fraction: float = 0.1
    augment: bool = False
    binarize: str = "none"
    precision: str = "fp32"
    early_stopping: int = 0
    device: str = "auto"
    compile: bool | None = None  # the training step's loss through torch.compile (None: the device's default)
    save_every: int = 0
    max_time: float | None = None  # seconds of training (the run's, without epochs; else each invocation's)
    fit_prior: bool = True  # Gaussian-latent models: fit a mixture prior to the training latents at the end
    tensorboard: bool = False  # event files in the run's tb/ folder (needs vaekit[tb])
    mlflow: bool = False  # MLflow tracking: $MLFLOW_TRACKING_URI, else ./mlruns (needs vaekit[mlflow])
    prior_components: int | None = None  # per class (None: vaekit.training.priors.DEFAULT_COMPONENTS)

    def validate(self) -> None:
        """Refuse bad values and options that do not apply to the model; fills in the IWAE k, makes a
        folder dataset's path absolute and the image size [height, width]."""
        self.dataset = check_dataset_name(self.dataset)
        if self.image_size is not None:
            self.image_size = parse_image_size(self.image_size)
        if self.colour is not None and self.colour not in COLOURS:
            raise VaekitError(f"unknown colour {self.colour!r}; choose from {', '.join(COLOURS)}")
        model_class = self._validate_model()
        self._validate_length()
        check_applicability(self)  # before the defaults are filled in: what the user gave
        fill_training_defaults(self, model_class)
        self._validate_optimisation()
        check_training_options(self, model_class)
        self._validate_objective(model_class)
        self._validate_parts(model_class)
        self._validate_run_options()

    def _validate_model(self) -> type:
        """The model family and the settings that shape it; returns the model's class."""
        return check_model_settings(self)

    def _validate_length(self) -> None:
        """The time budget; without it, epochs left unset are DEFAULT_EPOCHS. With it they stay None: the
        run trains until its time is up, its schedules laid over that time (``budget.TimeBudget``)."""
        if isinstance(self.max_time, str):
            self.max_time = parse_duration(self.max_time)
        if self.max_time is not None and not (
            isinstance(self.max_time, (int, float)) and math.isfinite(self.max_time) and self.max_time > 0
        ):
            raise VaekitError(f"max time must be a positive number of seconds, got {self.max_time!r}")
        if self.epochs is None and self.max_time is None:
            self.epochs = DEFAULT_EPOCHS

    def _validate_optimisation(self) -> None:
        """The learning rate, the KL term's weighting and the objective's name."""
        if isinstance(self.lr, bool) or not (
            isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0
        ):
            raise VaekitError(f"learning rate must be a positive finite number, got {self.lr!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise VaekitError(f"beta must be a finite number >= 0, got {self.beta!r}")
        if not isinstance(self.kl_warmup, int) or self.kl_warmup < 0:
            raise VaekitError(f"KL warm-up must be a whole number of epochs >= 0, got {self.kl_warmup!r}")
        if not (math.isfinite(self.free_bits) and self.free_bits >= 0):
            raise VaekitError(f"free bits must be a finite number of nats >= 0, got {self.free_bits!r}")
        chosen_parts(self)  # an unknown prior, posterior or objective: one line that lists the others

    def _validate_run_options(self) -> None:
        """The validation split, early stopping, the fitted prior, checkpoints, binarization, precision and
        device."""
        if not 0.0 <= self.val_fraction < 1.0:
            raise VaekitError(f"val fraction must be in [0, 1), got {self.val_fraction!r}")
        if not isinstance(self.early_stopping, int) or self.early_stopping < 0:
            raise VaekitError(f"early stopping patience must be an integer >= 0, got {self.early_stopping!r}")
        if self.early_stopping and self.val_fraction == 0:
            raise VaekitError("--early-stopping watches the validation loss: it needs --val-fraction > 0")
        if self.prior_components is not None and (
            isinstance(self.prior_components, bool)
            or not isinstance(self.prior_components, int)
            or self.prior_components < 1
        ):
            raise VaekitError(f"prior components must be an integer >= 1, got {self.prior_components!r}")
        if self.prior_components is not None and not self.fit_prior:
            raise VaekitError("--prior-components applies only when training ends by fitting the prior")
        if self.save_every < 0:
            raise VaekitError(f"save every must be >= 0 epochs, got {self.save_every!r}")
        if self.binarize not in BINARIZE:
            raise VaekitError(f"unknown binarization {self.binarize!r}; choose from {', '.join(BINARIZE)}")
        if self.precision not in PRECISIONS:
            raise VaekitError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.device not in DEVICES:
            raise VaekitError(f"unknown device {self.device!r}; choose from {', '.join(DEVICES)}")
        if self.compile is not None and not isinstance(self.compile, bool):
            raise VaekitError(f"compile must be true or false, got {self.compile!r}")

    def _validate_objective(self, model_class: type) -> None:
        elbo_options = [
            flag
            for flag, given in (
                ("--beta", self.beta != 1.0),
                ("--kl-warmup", self.kl_warmup > 0),
                ("--free-bits", self.free_bits > 0),
            )
            if given
        ]
        if not model_class.trains_in_bf16 and self.precision == "bf16":
            models = gaussian_models()
            raise VaekitError(
                f"--precision bf16 applies to the Gaussian-latent models ({models}), not {self.model}"
            )
        if self.free_bits > 0 and not objective_takes(self, "free_bits"):
            raise VaekitError(f"--free-bits applies to the elbo objective, not {self.objective}")
        if elbo_options and not objective_takes(self, "kl_weight"):  # the IWAE bound has no KL weight
            raise VaekitError(f"{elbo_options[0]} applies to the elbo objective, not {self.objective}")

    def _validate_parts(self, model_class: type) -> None:
        """The trained prior, the posterior and the objective, and their options: from their specs
        (``part_settings.check_parts``), which fills in the options' defaults."""
        check_parts(self, model_class)
        if self.free_bits > 0 and not exact_kl(chosen_parts(self)):
            not_with = inexact(chosen_parts(self))
            raise VaekitError(f"--free-bits needs the KL per dimension in closed form: not with {not_with}")

    @classmethod
    def of(cls, **settings: Any) -> TrainConfig:
        """A config from settings by name, a part's options among them by their own names
        (``TrainConfig.of(objective="factorvae", gamma=5.0)``), as flags and config files give them."""
        return cls(**fold_part_options(settings))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The settings of ``values`` (config.json's ``train``; a run's from before ``part_options``
        too, whose part options were settings of their own)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in fold_part_options(values).items() if k in known})


# Settings a run is built on; a resume that asks for another value is refused, not applied.
# (epochs, lr, device, compile, data_dir, save_every, early_stopping, max_time, tensorboard, mlflow may
# change: a larger epochs or, for a run without epochs, a larger max_time extends a run.)
FIXED_ON_RESUME = (
    "dataset",
    "image_size",
    "colour",
    "model",
    *MODEL_SETTINGS,
    "model_options",
    "beta",
    "kl_warmup",
    "kl_balance",
    "optimizer",
    "lr_schedule",
    "ema",
    "free_bits",
    "objective",
    "prior",
    "posterior",
    "part_options",
    "batch_size",
    "seed",
    "val_fraction",
    "augment",
    "binarize",
)


def resumed_config(out: str | os.PathLike, **changes: Any) -> TrainConfig:
    """The stored config of the run in ``out`` with ``changes`` (epochs, lr, device, data_dir, save_every).

    A change to a setting in FIXED_ON_RESUME is an error, as is an unknown setting.
    """
    stored = read_run_config(Path(out))
    try:  # missing: what to install
        require_model(stored["model"].get("name"), stored["model"].get("plugin"))
        require_parts(stored.get("parts"))
    except VaekitError as exc:
        raise VaekitError(f"{out}: {exc}") from None
    config = TrainConfig.from_dict(stored["train"])
    for key, value in fold_part_options(changes).items():
        if key not in TrainConfig.__dataclass_fields__:
            raise VaekitError(f"unknown training setting {key!r}")
        current = getattr(config, key)
        if key == "dataset":  # folder paths compare as absolute paths
            value = check_dataset_name(value)
        if key == "image_size" and value is not None:
            value = parse_image_size(value)
        if current is None and key in MODEL_SETTINGS:  # the run took the model's default
            current = stored["model"].get(key)
        if key == "part_options" and isinstance(value, dict):  # each option given against the run's
            for name, option in value.items():
                if name in (current or {}) and option != current[name]:
                    raise VaekitError(
                        f"--{flag(name)} {option} differs from the run's {current[name]}; it cannot change "
                        "on --resume"
                    )
            value = {**(current or {}), **value}
        if key in FIXED_ON_RESUME and value != current:
            raise VaekitError(
                f"--{flag(key)} {value} differs from the run's {current}; it cannot change on --resume"
            )
        if key not in MODEL_SETTINGS:
            setattr(config, key, value)
    if config.epochs is None and config.max_time is None:  # else it would become a run of DEFAULT_EPOCHS
        raise VaekitError("the run has no --epochs: its length is its --max-time, which a resume keeps")
    return config
