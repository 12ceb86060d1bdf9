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
from vaekit.models.objectives import OBJECTIVES
from vaekit.models.objectives.factorvae import DEFAULT_DISCRIMINATOR
from vaekit.models.posteriors import POSTERIORS
from vaekit.models.priors import TRAINED_PRIORS
from vaekit.models.registry import require_model
from vaekit.training.applicability import check_applicability
from vaekit.training.budget import parse_duration
from vaekit.training.defaults import (
    check_training_options,
    fill_training_defaults,
    flag,
    refuse_one_latent_options,
)
from vaekit.training.model_settings import MODEL_SETTINGS, check_model_settings, gaussian_models
from vaekit.utils.devices import DEVICES
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_run_config

DEFAULT_IWAE_K = 5
# The Gaussian-latent models' parts (models/gaussian.py) and the objectives' own weights, with the
# defaults they take when their part or objective is chosen.
# Tomczak & Welling used K = 500; on MNIST 100 gave 3.5 of 500's 4.3 nats at 1.7x, not 4x, the time per
# step of the plain model (docs/models.md)
DEFAULT_PSEUDO_INPUTS = 100
DEFAULT_FLOW_STEPS = 2
OBJECTIVE_WEIGHTS = {"gamma": ("factorvae",), "lambda_od": ("dip-i", "dip-ii"), "mmd_weight": ("mmd",)}
DEFAULT_WEIGHTS = {"gamma": 10.0, "lambda_od": 10.0, "mmd_weight": 100.0}
BATCH_OBJECTIVES = ("btcvae", "factorvae", "dip-i", "dip-ii", "mmd")  # estimate from the batch: B >= 2


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
    decoder_std: float | None = None
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
    objective: str = "elbo"
    k: int | None = None
    prior: str = "standard"  # the prior trained with: standard (N(0, I); a cvae: N(m_y, I)) or vamp
    pseudo_inputs: int | None = None  # vamp: pseudo-inputs (per class for a cvae)
    posterior: str = "gaussian"  # gaussian or iaf (a flow on top of it)
    flow_steps: int | None = None  # iaf: steps of the flow
    gamma: float | None = None  # factorvae: weight of the total correlation
    discriminator: list[int] | None = None  # factorvae: the discriminator's hidden layers
    lambda_od: float | None = None  # dip-i, dip-ii: weight of the off-diagonal covariance
    mmd_weight: float | None = None  # mmd: weight of the MMD between q(z) and p(z)
    epochs: int = 10
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
    max_time: float | None = None  # seconds of training in this invocation; stops at a step boundary
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
        if self.objective not in OBJECTIVES:
            raise VaekitError(f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")

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
        if self.free_bits > 0 and self.objective not in ("elbo", "iwae"):
            raise VaekitError(f"--free-bits applies to the elbo objective, not {self.objective}")
        if self.objective == "iwae":
            if elbo_options:
                raise VaekitError(f"{elbo_options[0]} applies to the elbo objective, not iwae")
            self.k = DEFAULT_IWAE_K if self.k is None else self.k
            if not isinstance(self.k, int) or self.k < 1:
                raise VaekitError(f"--k must be an integer >= 1, got {self.k!r}")
        elif self.k is not None:
            raise VaekitError("--k (importance samples) applies to --objective iwae only")

    def _validate_parts(self, model_class: type) -> None:
        """The trained prior, the posterior and the objectives' own weights: known, positive, given only
        with what they belong to, and combinations that have a meaning; fills in their defaults."""
        if self.prior not in TRAINED_PRIORS:
            raise VaekitError(f"unknown prior {self.prior!r}; choose from {', '.join(TRAINED_PRIORS)}")
        if self.posterior not in POSTERIORS:
            raise VaekitError(f"unknown posterior {self.posterior!r}; choose from {', '.join(POSTERIORS)}")
        if model_class.latent_kind == "hierarchy":
            refuse_one_latent_options(self)
        self.pseudo_inputs = _part_count(
            "--pseudo-inputs", self.pseudo_inputs, self.prior == "vamp", "--prior vamp", DEFAULT_PSEUDO_INPUTS
        )
        self.flow_steps = _part_count(
            "--flow-steps", self.flow_steps, self.posterior == "iaf", "--posterior iaf", DEFAULT_FLOW_STEPS
        )
        sizes = self.discriminator
        if sizes is not None and self.objective != "factorvae":
            raise VaekitError(f"--discriminator applies to --objective factorvae, not {self.objective}")
        if sizes is not None and (
            not sizes or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in sizes)
        ):
            raise VaekitError(f"discriminator sizes must be integers >= 1, got {sizes!r}")
        if sizes is None and self.objective == "factorvae":
            self.discriminator = list(DEFAULT_DISCRIMINATOR)
        for name, objectives in OBJECTIVE_WEIGHTS.items():
            value = getattr(self, name)
            if value is not None and self.objective not in objectives:
                raise VaekitError(
                    f"--{flag(name)} applies to --objective {' or '.join(objectives)}, not {self.objective}"
                )
            if value is not None and not (
                isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
            ):
                raise VaekitError(f"{name.replace('_', ' ')} must be a finite number >= 0, got {value!r}")
            if value is None and self.objective in objectives:
                setattr(self, name, DEFAULT_WEIGHTS[name])
        self._refuse_meaningless_combinations()

    def _refuse_meaningless_combinations(self) -> None:
        exact_kl = self.prior == "standard" and self.posterior == "gaussian"
        if self.free_bits > 0 and not exact_kl:
            raise VaekitError(
                "--free-bits needs the KL per dimension in closed form: "
                "not with --prior vamp or --posterior iaf"
            )
        if self.objective == "btcvae" and not exact_kl:
            raise VaekitError(
                "--objective btcvae needs a Gaussian posterior and a prior that factorises: "
                "not with --prior vamp or --posterior iaf"
            )
        if self.objective in ("dip-i", "dip-ii") and self.posterior != "gaussian":
            raise VaekitError(
                f"--objective {self.objective} needs the Gaussian posterior's covariance: "
                "not with --posterior iaf"
            )
        if self.objective in BATCH_OBJECTIVES and self.batch_size < 2:
            raise VaekitError(
                f"--objective {self.objective} estimates from the other images of a batch: "
                "it needs --batch-size >= 2"
            )
        if isinstance(self.max_time, str):
            self.max_time = parse_duration(self.max_time)
        if self.max_time is not None and not (
            isinstance(self.max_time, (int, float)) and math.isfinite(self.max_time) and self.max_time > 0
        ):
            raise VaekitError(f"max time must be a positive number of seconds, got {self.max_time!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _part_count(option: str, value: int | None, chosen: bool, part: str, default: int) -> int | None:
    """A part's count (pseudo-inputs, flow steps): an integer >= 1, given only with its part."""
    if not chosen:
        if value is not None:
            raise VaekitError(f"{option} applies to {part} only")
        return None
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise VaekitError(f"{option} must be an integer >= 1, got {value!r}")
    return value


# Settings a run is built on; a resume that asks for another value is refused, not applied.
# (epochs, lr, device, compile, data_dir, save_every, early_stopping, max_time, tensorboard, mlflow may
# change.)
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
    "k",
    "prior",
    "pseudo_inputs",
    "posterior",
    "flow_steps",
    "gamma",
    "discriminator",
    "lambda_od",
    "mmd_weight",
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
    require_model(stored["model"].get("name"), stored["model"].get("plugin"))  # missing: what to install
    config = TrainConfig.from_dict(stored["train"])
    for key, value in changes.items():
        if key not in TrainConfig.__dataclass_fields__:
            raise VaekitError(f"unknown training setting {key!r}")
        current = getattr(config, key)
        if key == "dataset":  # folder paths compare as absolute paths
            value = check_dataset_name(value)
        if key == "image_size" and value is not None:
            value = parse_image_size(value)
        if current is None and key in MODEL_SETTINGS:  # the run took the model's default
            current = stored["model"].get(key)
        if key in FIXED_ON_RESUME and value != current:
            raise VaekitError(
                f"--{flag(key)} {value} differs from the run's {current}; it cannot change on --resume"
            )
        if key not in MODEL_SETTINGS:
            setattr(config, key, value)
    return config
