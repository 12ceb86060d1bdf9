"""The settings of a run that shape its model: the shared ones (MODEL_SETTINGS, each a flag), a model's
own options (``model_options``: a plugin's, say), and the model config a new run builds from them."""

from __future__ import annotations

import inspect
import json
import math
import typing
from typing import Any

from vaekit.models import MODELS, VAE, accepted_options, build_model, model_class
from vaekit.models.base import CALIBRATED, LIKELIHOODS
from vaekit.models.parts import KINDS, parts
from vaekit.training.defaults import flag
from vaekit.training.part_settings import part_model_config
from vaekit.utils.errors import VaekitError
from vaekit.utils.types import describe_type, matches

# Settings that shape the model; None leaves the model's own default (see the model classes).
MODEL_SETTINGS = (
    "latent_dim", "hidden", "channels", "likelihood", "decoder_std", "codebook_size",
    "scales", "groups", "latent_channels", "width", "encoder_blocks", "stem", "logvar_limit",
)  # fmt: skip
# The words --decoder-std takes besides a number.
DECODER_SCALES = (CALIBRATED, "learned")
# Config keys that other settings fill: a model option cannot set them (nor the parts' entries, ``filled``).
FILLED = {
    "name": "--model", "image_shape": "the dataset", "num_classes": "the dataset", "prior": "train-prior",
    "plugin": "the registry", "trained_prior": "--prior", "posterior": "--posterior",
}  # fmt: skip


def filled() -> dict[str, str]:
    """``FILLED`` and the model config entries of every registered part: a prior's or posterior's (a
    VampPrior's ``pseudo_inputs``: ``--pseudo-inputs``; an entry that is no option: ``--posterior iaf``)
    and the module's that a part adds (FactorVAE's ``tc_discriminator``: ``--discriminator``)."""
    found = dict(FILLED)
    for kind in KINDS:
        for spec in parts(kind).values():
            entries = {name: name for name in spec.model_entries()}
            if spec.adds is not None:
                entries[spec.adds.entry] = spec.adds.option
            for name, option in entries.items():
                by = f"--{flag(option)}" if option in spec.option_fields() else f"--{kind} {spec.name}"
                found.setdefault(name, by)
    return found


def check_model_settings(config: Any) -> type[VAE]:
    """The model family of the TrainConfig ``config`` and the settings that shape it; returns its class."""
    model = model_class(config.model)
    accepted = accepted_options(model)
    for name in MODEL_SETTINGS:
        if getattr(config, name) is not None and name not in accepted:
            raise VaekitError(f"--{flag(name)} does not apply to model {config.model}")
    for name in ("epochs", "batch_size", "latent_dim", "codebook_size"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise VaekitError(f"{name.replace('_', ' ')} must be an integer >= 1, got {value!r}")
    for name in ("hidden", "channels"):
        sizes = getattr(config, name)
        if sizes is not None and (not sizes or any(not isinstance(h, int) or h < 1 for h in sizes)):
            raise VaekitError(f"{name} sizes must be integers >= 1, got {sizes!r}")
    if config.likelihood is not None and config.likelihood not in LIKELIHOODS:
        raise VaekitError(f"unknown likelihood {config.likelihood!r}; choose from {', '.join(LIKELIHOODS)}")
    if config.decoder_std is not None:
        if pixel_likelihood(config, model) != "gaussian":
            raise VaekitError("--decoder-std applies to --likelihood gaussian only")
        scale = config.decoder_std
        if isinstance(scale, str) and scale not in DECODER_SCALES:
            words = " or ".join(DECODER_SCALES)
            raise VaekitError(f"decoder std must be a positive number, {words}, got {scale!r}")
        if not isinstance(scale, str) and not (math.isfinite(scale) and scale > 0):
            raise VaekitError(f"decoder std must be a positive number, got {scale!r}")
    check_model_options(config.model_options, model)
    return model


def own_options(model: type[VAE]) -> list[str]:
    """The options of ``model`` that no other setting fills: what ``model_options`` may set."""
    return sorted(accepted_options(model) - set(filled()) - set(MODEL_SETTINGS))


def check_model_options(options: Any, model: type[VAE]) -> None:
    """``options`` (a name -> value table, or None) are options that ``model``'s constructor takes and
    that no other setting fills; values are checked by the model when it is built."""
    if options is None:
        return
    if not isinstance(options, dict) or not all(isinstance(key, str) for key in options):
        raise VaekitError(f"model options must be a table of name = value, got {options!r}")
    for key in options:
        if key in MODEL_SETTINGS:
            raise VaekitError(f"model option {key!r} has its own setting: use --{flag(key)}")
        if key in filled():
            raise VaekitError(f"model option {key!r} is set by {filled()[key]}, not as a model option")
        if key not in accepted_options(model):
            takes = ", ".join(own_options(model)) or "none"
            raise VaekitError(f"model {model.name} takes no option {key!r} (its own options: {takes})")
        expected, value = option_type(model, key), options[key]
        if expected is not None and not matches(value, expected):
            must = describe_type(expected)
            raise VaekitError(f"model option {key!r} of {model.name} must be {must}, got {value!r}")


def option_type(model: type[VAE], name: str) -> Any:
    """The type of ``model``'s own option ``name``: its constructor's annotation, else its default's
    type; None where neither tells (the model checks the value when it is built)."""
    try:
        hints = typing.get_type_hints(model.__init__)
    except Exception:  # an annotation that does not resolve: fall back to the default
        hints = {}
    if name in hints:
        return hints[name]
    default = constructor_default(model, name)
    if default is None:
        return None
    return list if isinstance(default, (list, tuple)) else type(default)


def constructor_default(model: type[VAE], name: str) -> Any:
    """The default of ``model``'s constructor argument ``name`` (None where it has none)."""
    parameter = inspect.signature(model.__init__).parameters.get(name)
    default = None if parameter is None else parameter.default
    return None if default is inspect.Parameter.empty else default


def build_run_model(config_of_model: dict[str, Any], model_options: dict[str, Any] | None) -> VAE:
    """``build_model(config_of_model)``; where it fails on a value that the options' types could not
    tell was wrong (``depth = -1``), the error names the ``model_options`` the run was given."""
    try:
        return build_model(config_of_model)
    except VaekitError as exc:
        if not model_options:
            raise
        given = ", ".join(f"{key}={json.dumps(value)}" for key, value in model_options.items())
        raise VaekitError(f"{exc} (its model options: {given})") from None


def model_config(config: Any, image_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """The config of a new model for the TrainConfig ``config`` on images of ``image_shape`` (settings
    left None are left to the model's defaults)."""
    accepted = accepted_options(model_class(config.model))
    values: dict[str, Any] = {"name": config.model, "image_shape": list(image_shape)}
    if "num_classes" in accepted:
        values["num_classes"] = num_classes
    values.update({k: getattr(config, k) for k in MODEL_SETTINGS if getattr(config, k) is not None})
    values.update(decoder_scale(config, accepted))
    values.update(config.model_options or {})
    values.update(part_model_config(config))  # what the parts add: a VampPrior's pseudo-inputs, ...
    return values


def pixel_likelihood(config: Any, model: type[VAE]) -> str:
    """The run's pixel likelihood: the settings', else the model's own default (a plugin's may be
    gaussian), as the model will take it."""
    return config.likelihood or constructor_default(model, "likelihood") or "bernoulli"


def decoder_scale(config: Any, accepted: set[str]) -> dict[str, Any]:
    """The model config's ``decoder_std`` for the settings' ``decoder_std``: a Gaussian likelihood's scale
    is calibrated unless told (sigma-VAE: a learned std shrinks at the optimizer's pace, and on small
    datasets the posterior collapses first), "learned" leaves the model a learned one (None), a number
    is fixed; nothing for a Bernoulli likelihood or a model that takes no decoder std."""
    if "decoder_std" not in accepted:
        return {}
    if config.decoder_std == "learned":
        return {"decoder_std": None}
    if pixel_likelihood(config, model_class(config.model)) != "gaussian":
        return {}
    return {"decoder_std": CALIBRATED if config.decoder_std is None else config.decoder_std}


def gaussian_models() -> str:
    """The Gaussian-latent models' names, for messages about the options only they take."""
    return ", ".join(n for n, c in sorted(MODELS.items()) if c.latent_kind != "codes")
