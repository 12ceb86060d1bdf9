"""The model registry: vaekit's own models, and models from outside the package (plugins).

A plugin is a VAE subclass in any module. It joins the registry in one of three ways:

- ``@register_model`` on the class, in code that runs before the model is used (a script, a notebook);
- an entry point in the group ``vaekit.models`` of an installed package
  (``resnet = "vaekit_resnet:ResNetVAE"`` under ``[project.entry-points."vaekit.models"]``), loaded the
  first time the name is asked for, so that a broken plugin harms only the runs that use it;
- ``VAEKIT_PLUGINS=module[,module]`` in the environment: modules imported (running their decorators)
  before the command line is read, for a module that is not an installed package.

A registered class's origin (its module, and the package and version it came from) joins every model
config it writes, so that a run whose model is missing names what to install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from typing import Any

from vaekit.models.base import VAE
from vaekit.models.conv import ConvVAE
from vaekit.models.cvae import ConditionalVAE
from vaekit.models.gaussian import GaussianVAE
from vaekit.models.hvae import HierarchicalVAE
from vaekit.models.mlp import MLPVAE
from vaekit.models.vqvae import VQVAE
from vaekit.utils.errors import VaekitError
from vaekit.utils.packages import import_env_plugins, install_hint, installed_entry_points, origin_of

ENTRY_POINT_GROUP = "vaekit.models"
BUILT_IN: dict[str, type[VAE]] = {
    cls.name: cls for cls in (MLPVAE, ConvVAE, ConditionalVAE, VQVAE, HierarchicalVAE)
}
# Every model by name: the built-ins, then plugins as they register.
MODELS: dict[str, type[VAE]] = dict(BUILT_IN)
NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
# What a model class must define beyond its base: a Gaussian-latent model only its networks.
REQUIRED = {GaussianVAE: ("encode", "decode_logits"), VAE: ("encode", "decode_logits", "loss", "sample")}


def register_model(cls: Any) -> Any:
    """Class decorator: add the VAE subclass ``cls`` to the registry under ``cls.name``.

    Raises VaekitError if ``cls`` is not a model class, lacks a method its base leaves to it, or takes a
    name that a built-in or another plugin holds. Registering a class again under its name (a notebook
    cell run twice) replaces the earlier definition.
    """
    _check_model_class(cls)
    taken = MODELS.get(cls.name)
    if cls.name in BUILT_IN and taken is not cls:
        raise VaekitError(f"model name {cls.name!r} of {_qualname(cls)} is a built-in model's: pick another")
    if taken is not None and taken is not cls and _qualname(taken) != _qualname(cls):
        raise VaekitError(f"model name {cls.name!r} of {_qualname(cls)} is taken by {_qualname(taken)}")
    if cls.name not in BUILT_IN:
        cls.plugin = origin_of(cls.__module__)
    MODELS[cls.name] = cls
    return cls


def unregister_model(name: str) -> None:
    """Remove the plugin ``name`` from the registry (built-ins stay)."""
    if name in BUILT_IN:
        raise VaekitError(f"{name!r} is a built-in model: it cannot be unregistered")
    MODELS.pop(name, None)


def model_class(name: str) -> type[VAE]:
    """The model class registered as ``name``, loading an installed plugin's entry point if need be. A
    name claimed twice (two installed packages, a package and a decorated class, a package and a
    built-in) is an error that names both: which one a run would train must not be left to chance."""
    import_env_plugins()
    entries = _claims().get(name, [])
    claimants = _claimants(name, entries)
    if len(claimants) > 1:
        raise VaekitError(
            f"model name {name!r} is claimed twice: by {claimants[0]} and by {claimants[1]}; uninstall "
            "or rename one of them"
        )
    if name not in MODELS:
        if not entries:
            raise VaekitError(f"unknown model {name!r}; choose from {', '.join(model_names())}")
        _load_entry_point(entries[0])
    return MODELS[name]


def require_model(name: Any, plugin: dict[str, Any] | None) -> type[VAE]:
    """``model_class(name)`` for a run's saved config, whose ``plugin`` origin names what to install
    where the model is missing here (``missing_model_error``)."""
    if not isinstance(name, str) or name not in model_names():
        raise missing_model_error(name, plugin if isinstance(plugin, dict) else None)
    return model_class(name)


def model_names() -> list[str]:
    """Every model name, sorted: built-ins, registered plugins and installed entry points (not loaded)."""
    import_env_plugins()
    return sorted(set(MODELS) | set(_entry_points()))


def missing_model_error(name: Any, plugin: dict[str, Any] | None) -> VaekitError:
    """The error for a saved model whose class is not registered here: what to install, if known."""
    if not plugin:
        return VaekitError(f"unknown model {name!r}; choose from {', '.join(model_names())}")
    return install_hint(f"model {name!r}", plugin)


def _check_model_class(cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, VAE)) or cls in (VAE, GaussianVAE):
        raise VaekitError(f"{_qualname(cls)} is not a model class: subclass vaekit.models.GaussianVAE or VAE")
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise VaekitError(
            f"{_qualname(cls)} needs a class attribute name: lower case letters, digits, - or _, got {name!r}"
        )
    base = GaussianVAE if issubclass(cls, GaussianVAE) else VAE
    missing = [m for m in REQUIRED[base] if getattr(cls, m) is getattr(base, m)]
    if missing:
        raise VaekitError(f"model {name!r} ({_qualname(cls)}) does not define {', '.join(missing)}")


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {name: entries[0] for name, entries in _claims().items()}


def _claims() -> dict[str, list[importlib.metadata.EntryPoint]]:
    """The installed entry points by model name, each package's once (a package on the path twice
    declares its entry point twice, but claims the name once)."""
    claims: dict[str, list[importlib.metadata.EntryPoint]] = {}
    seen = set()
    for entry in installed_entry_points(ENTRY_POINT_GROUP):
        key = (entry.name, _package_name(entry), entry.value)
        if key not in seen:
            seen.add(key)
            claims.setdefault(entry.name, []).append(entry)
    return claims


def _claimants(name: str, entries: list[importlib.metadata.EntryPoint]) -> list[str]:
    """Everything that claims the model name ``name``: a built-in, a class registered by decorator
    that no installed entry point provides, and each installed package's entry point."""
    claimants = []
    registered = MODELS.get(name)
    if name in BUILT_IN:
        claimants.append("vaekit's built-in model")
    elif registered is not None and not any(registered.__module__ == entry.module for entry in entries):
        claimants.append(f"{_qualname(registered)}, registered by decorator")
    for entry in entries:
        package = _package_name(entry)
        where = f"the package {package}" if package else "an entry point"
        claimants.append(f"{where} ({entry.value})")
    return claimants


def _package_name(entry: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(entry, "dist", None)
    return dist.name if dist is not None else None


def _load_entry_point(entry: importlib.metadata.EntryPoint) -> None:
    """Load the entry point ``entry``: a model class (registered here if its decorator has not), or a
    module whose decorators register a model named as the entry point."""
    dist = getattr(entry, "dist", None)
    where = f"plugin {entry.name!r} ({entry.value}" + (f", package {dist.name})" if dist else ")")
    try:
        loaded = entry.load()
    except Exception as exc:  # the plugin's own failure, in one line
        raise VaekitError(f"cannot load model {where}: {_oneline(exc)}") from None
    if isinstance(loaded, type):
        try:
            register_model(loaded)
        except VaekitError as exc:
            raise VaekitError(f"model {where}: {exc}") from None
    if entry.name not in MODELS:
        raise VaekitError(
            f"model {where} registers no model named {entry.name!r}: the entry point's name must be the "
            "model class's name"
        )


def _qualname(cls: Any) -> str:
    module = getattr(cls, "__module__", None)
    name = getattr(cls, "__qualname__", None) or repr(cls)
    return f"{module}.{name}" if module else name


def _oneline(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
