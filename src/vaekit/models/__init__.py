"""Models: every model is a VAE subclass, rebuilt from its config dict by name (``registry.py`` holds
the names: the built-ins and plugins from outside the package)."""

from __future__ import annotations

import inspect
from typing import Any

from vaekit.models.base import VAE, LossOutput
from vaekit.models.conv import ConvVAE
from vaekit.models.cvae import ConditionalVAE
from vaekit.models.gaussian import GaussianVAE
from vaekit.models.gaussian_latent import GaussianLatentVAE, added_modules
from vaekit.models.hvae import HierarchicalVAE
from vaekit.models.mlp import MLPVAE
from vaekit.models.network import NetworkVAE, check_networks
from vaekit.models.registry import (
    MODELS,
    missing_model_error,
    model_class,
    model_names,
    register_model,
    unregister_model,
)
from vaekit.models.vqvae import VQVAE
from vaekit.utils.errors import VaekitError


def build_model(config: dict[str, Any]) -> VAE:
    """Rebuild a model from its ``config`` (as stored in config.json or a checkpoint)."""
    config = dict(config)
    name = config.pop("name", None)
    prior = config.pop("prior", None)  # fitted after training: attached, then filled by loading
    plugin = config.pop("plugin", None)  # where a plugin model came from: named if it is missing
    try:
        cls = model_class(name) if isinstance(name, str) else None
    except VaekitError:
        cls = None
    if cls is None:
        raise missing_model_error(name, plugin if isinstance(plugin, dict) else None)
    unknown = sorted(set(config) - accepted_options(cls))
    if unknown:
        raise VaekitError(f"invalid config for model {name!r}: unexpected {', '.join(unknown)}")
    try:
        model = cls(**config)
        if prior is not None:
            model.set_prior(model.prior_from_config(prior))
    except (TypeError, ValueError) as exc:
        raise VaekitError(f"invalid config for model {name!r}: {exc}") from None
    except VaekitError:
        raise
    except Exception as exc:  # a plugin's own failure while building: one line that names it
        if cls.plugin is None:
            raise
        message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        raise VaekitError(f"model {name!r} ({cls.__module__}) failed to build: {message}") from None
    if cls.plugin is not None:
        check_networks(model)
    return model


def accepted_options(cls: type[VAE]) -> set[str]:
    """The config keys a model class takes: its constructor's arguments, and where it passes ``**parts``
    on to ``GaussianVAE``, the parts' options (GaussianVAE's own keyword arguments) and the pixel
    likelihood's (the VAE base's)."""

    def named(init: Any) -> tuple[set[str], bool]:
        parameters = inspect.signature(init).parameters.values()
        names = {p.name for p in parameters if p.kind is not p.VAR_KEYWORD and p.name != "self"}
        return names, any(p.kind is p.VAR_KEYWORD for p in parameters)

    own, takes_more = named(cls.__init__)
    if takes_more and issubclass(cls, GaussianVAE) and cls is not GaussianVAE:
        own |= named(GaussianVAE.__init__)[0] | GaussianVAE.part_entries() | {"likelihood", "decoder_std"}
    if takes_more and issubclass(cls, GaussianLatentVAE):  # the modules parts add (FactorVAE's, ...)
        own |= {adds.entry for adds in added_modules()}
    return own


__all__ = [
    "MODELS",
    "VAE",
    "GaussianVAE",
    "LossOutput",
    "MLPVAE",
    "ConvVAE",
    "ConditionalVAE",
    "VQVAE",
    "HierarchicalVAE",
    "NetworkVAE",
    "accepted_options",
    "build_model",
    "model_class",
    "model_names",
    "register_model",
    "unregister_model",
]
