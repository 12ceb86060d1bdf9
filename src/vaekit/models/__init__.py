"""The model registry: every model is a VAE subclass, rebuilt from its config dict by name."""

from __future__ import annotations

import inspect
from typing import Any

from vaekit.models.base import VAE, LossOutput
from vaekit.models.conv import ConvVAE
from vaekit.models.cvae import ConditionalVAE
from vaekit.models.gaussian import GaussianVAE
from vaekit.models.hvae import HierarchicalVAE
from vaekit.models.mlp import MLPVAE
from vaekit.models.vqvae import VQVAE
from vaekit.utils.errors import VaekitError

MODELS: dict[str, type[VAE]] = {
    cls.name: cls for cls in (MLPVAE, ConvVAE, ConditionalVAE, VQVAE, HierarchicalVAE)
}


def build_model(config: dict[str, Any]) -> VAE:
    """Rebuild a model from its ``config`` (as stored in config.json or a checkpoint)."""
    config = dict(config)
    name = config.pop("name", None)
    prior = config.pop("prior", None)  # fitted after training: attached, then filled by loading
    if name not in MODELS:
        raise VaekitError(f"unknown model {name!r}; choose from {', '.join(sorted(MODELS))}")
    unknown = sorted(set(config) - accepted_options(MODELS[name]))
    if unknown:
        raise VaekitError(f"invalid config for model {name!r}: unexpected {', '.join(unknown)}")
    try:
        model = MODELS[name](**config)
        if prior is not None:
            model.set_prior(model.prior_from_config(prior))
    except (TypeError, ValueError) as exc:
        raise VaekitError(f"invalid config for model {name!r}: {exc}") from None
    return model


def accepted_options(cls: type[VAE]) -> set[str]:
    """The config keys a model class takes: its constructor's arguments, and where it passes ``**parts``
    on to ``GaussianVAE``, the parts' options (GaussianVAE's own keyword arguments)."""

    def named(init: Any) -> tuple[set[str], bool]:
        parameters = inspect.signature(init).parameters.values()
        names = {p.name for p in parameters if p.kind is not p.VAR_KEYWORD and p.name != "self"}
        return names, any(p.kind is p.VAR_KEYWORD for p in parameters)

    own, takes_more = named(cls.__init__)
    if takes_more and issubclass(cls, GaussianVAE) and cls is not GaussianVAE:
        own |= named(GaussianVAE.__init__)[0]
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
    "build_model",
]
