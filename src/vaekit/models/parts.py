"""The parts of a Gaussian-latent model, registered by name: the prior it trains with, its posterior and
the objective it minimises (``--prior``, ``--posterior``, ``--objective``).

A part is one file that declares itself with ``register_part`` (or the decorators ``register_prior``,
``register_posterior``, ``register_objective``): its name, its options (a dataclass whose fields are the
options' names, types, defaults and help; ``option`` adds bounds), what it requires of the model and
the settings (``REQUIREMENTS``), what it adds to the model's config (``model_config``: a VampPrior's
pseudo-inputs, FactorVAE's discriminator's sizes) and to the model (``adds``: FactorVAE's discriminator,
a module trained at its own rate) and what it is: an objective's function, which
``model.loss`` calls, or a prior's or posterior's module class (``for_model`` builds it for a model from
its config entries; ``distribution`` names the type it returns, which decides the KL,
``models.distributions``).
Everything else is generated from these specs: the run settings' ``part_options`` are checked and
filled from them, ``vaekit train`` has a flag for every option, the applicability table a row, and the
training step passes an objective the options its function's signature names.

Parts from outside the package register the same way: the decorators in code that runs first, or an
entry point in the groups ``vaekit.priors``, ``vaekit.posteriors`` and ``vaekit.objectives`` of an
installed package (loaded when the registry is first read, each guarded: a broken one is reported when
it is asked for, and harms nothing else). A part's origin (its module, package and version) is recorded.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import math
import pkgutil
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from vaekit.utils.errors import VaekitError
from vaekit.utils.packages import import_env_plugins, install_hint, installed_entry_points, origin_of
from vaekit.utils.types import describe_type, matches

KINDS = ("prior", "posterior", "objective")
ENTRY_POINT_GROUPS = {kind: f"vaekit.{kind}s" for kind in KINDS}
# What a part may require, in words for the error that refuses it where it is not met.
REQUIREMENTS = {
    "one latent": "a model with one Gaussian latent (mlp, conv, cvae, plugins)",
    "exact kl": "a Gaussian posterior and a prior that factorises (the KL per dimension in closed form)",
    "gaussian posterior": "the Gaussian posterior's covariance",
    "batch of 2": "batches of at least two images (--batch-size >= 2)",
}
NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def option(
    default: Any,
    help: str,
    minimum: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A part option's field: its ``default``, its ``help`` (the flag's), and bounds: ``minimum``
    (inclusive) or ``above`` (exclusive) for a number, or for every size of a list; ``choices``, the
    words a string option may take."""
    bounds = {"minimum": minimum, "above": above, "choices": choices}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata={"help": help, **bounds})
    return field(default=default, metadata={"help": help, **bounds})


@dataclass
class NoOptions:
    """A part that takes no options."""


@dataclass(frozen=True)
class AddedModule:
    """A module that a part adds to the model it is chosen for (FactorVAE's discriminator): built by
    ``build(model, value)`` from the model config ``entry`` that the part's ``model_config`` writes,
    kept as the model's ``attribute`` (its weights saved under that name), and trained in a parameter
    group of its own ``optimizer`` settings (learning rate, betas) where it has them. ``option`` names
    the part's option that sets the entry (messages name its flag), where one does."""

    entry: str
    attribute: str
    build: Callable[[Any, Any], nn.Module]
    optimizer: dict[str, Any] | None = None
    option: str | None = None


@dataclass(frozen=True)
class PartSpec:
    """One registered part (see the module's docstring)."""

    kind: str
    name: str
    summary: str
    options: type = NoOptions
    requires: frozenset[str] = frozenset()
    model_config: Callable[[Any], dict[str, Any]] | None = None  # its options -> model config entries
    target: Any = None  # an objective's function; a prior's or posterior's module class
    per_step: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None  # values a step needs
    module: str = "vaekit"  # where it is defined
    origin: dict[str, str] | None = None  # a part from outside the package: module, package, version
    adds: AddedModule | None = None  # a module it adds to the model

    @property
    def function(self) -> Callable[..., Any] | None:
        """An objective's function (None for the other kinds)."""
        return self.target if self.kind == "objective" else None

    @property
    def distribution(self) -> type | None:
        """The distribution type a prior's or posterior's module returns (None for an objective)."""
        return None if self.kind == "objective" else self.target.distribution

    def model_entries(self) -> list[str]:
        """The model config entries a prior's or posterior's ``for_model`` reads (a VampPrior's
        ``pseudo_inputs``), after the model."""
        if self.kind == "objective":
            return []
        parameters = list(inspect.signature(self.target.for_model).parameters.values())
        return [p.name for p in parameters[1:]]

    def take_entries(self, config: dict[str, Any]) -> dict[str, Any]:
        """The entries of a model's ``config`` that are this part's, taken out of it."""
        return {name: config.pop(name) for name in self.model_entries() if name in config}

    def build(self, model: Any, entries: dict[str, Any]) -> Any:
        """A prior's or posterior's module for ``model`` from its config ``entries``; a ValueError names
        a missing one."""
        parameters = list(inspect.signature(self.target.for_model).parameters.values())[1:]
        required = [p.name for p in parameters if p.default is inspect.Parameter.empty]
        missing = [name for name in required if name not in entries]
        if missing:
            raise ValueError(f"the {self.kind} {self.name} needs {', '.join(missing)}")
        return self.target.for_model(model, **entries)

    def option_fields(self) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(self.options)}

    def defaults(self) -> dict[str, Any]:
        return dataclasses.asdict(self.options())

    def check(self, values: dict[str, Any], flag: Callable[[str], str]) -> dict[str, Any]:
        """Its full options: ``values`` (those given) over the defaults, each checked against its type and
        bounds; a one-line error names the option as ``flag(name)`` gives it."""
        hints = typing.get_type_hints(self.options)
        checked = self.defaults()
        for name, value in values.items():
            meta = self.option_fields()[name].metadata
            if not matches(value, hints[name]):
                raise VaekitError(f"{flag(name)} must be {describe_type(hints[name])}, got {value!r}")
            numbers = value if isinstance(value, list) else [value]
            if any(not math.isfinite(v) for v in numbers if isinstance(v, float)):
                raise VaekitError(f"{flag(name)} must be finite, got {value!r}")
            low, above, choices = meta.get("minimum"), meta.get("above"), meta.get("choices")
            if choices is not None and value not in choices:
                raise VaekitError(f"{flag(name)} must be one of {', '.join(choices)}, got {value!r}")
            if isinstance(value, list) and not value:
                raise VaekitError(f"{flag(name)} needs at least one value")
            if (low is not None and min(numbers) < low) or (above is not None and min(numbers) <= above):
                bound = f">= {low:g}" if low is not None else f"> {above:g}"
                raise VaekitError(f"{flag(name)} must be {bound}, got {value!r}")
            checked[name] = float(value) if float in typing.get_args(hints[name]) + (hints[name],) and \
                isinstance(value, int) else value  # fmt: skip
        return checked

    def loss_options(self, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of an objective's function for one step: those its signature names,
        from its ``options``, the step's ``context`` (kl_weight, beta, free_bits, dataset_size, step)
        and what its ``per_step`` hook makes of both (a target that rises with the step)."""
        if self.function is None:
            return {}
        values = {**context, **options}
        if self.per_step is not None:
            values.update(self.per_step(options, context))
        parameters = inspect.signature(self.function).parameters
        return {name: values[name] for name in parameters if name in values}


# Every part by kind and name: the built-ins (imported below, each file registering its own), then
# parts from outside the package as they register.
PARTS: dict[str, dict[str, PartSpec]] = {kind: {} for kind in KINDS}
_loaded_entry_points = False
_broken: dict[tuple[str, str], str] = {}  # (kind, name) -> why its entry point could not load


def register_part(spec: PartSpec) -> PartSpec:
    """Add ``spec`` to the registry; a name that a part of another module holds, or an option whose
    name another part of the kind uses with another type or default, is a one-line error."""
    if spec.kind not in KINDS:
        raise VaekitError(f"a part is a {', '.join(KINDS)}, not a {spec.kind!r}")
    if not isinstance(spec.name, str) or not NAME.fullmatch(spec.name):
        raise VaekitError(f"a {spec.kind}'s name is lower case letters, digits, - or _, got {spec.name!r}")
    if not dataclasses.is_dataclass(spec.options):
        raise VaekitError(f"the {spec.kind} {spec.name!r}'s options must be a dataclass")
    module_class = isinstance(spec.target, type) and issubclass(spec.target, nn.Module)
    if spec.kind != "objective" and not (
        module_class and hasattr(spec.target, "for_model") and hasattr(spec.target, "distribution")
    ):
        raise VaekitError(
            f"the {spec.kind} {spec.name!r} must be an nn.Module class with for_model(model, ...) and "
            f"a distribution type (see vaekit.models.{spec.kind}s)"
        )
    unknown = set(spec.requires) - set(REQUIREMENTS)
    if unknown:
        known = ", ".join(REQUIREMENTS)
        raise VaekitError(f"the {spec.kind} {spec.name!r} requires {sorted(unknown)}: not among {known}")
    taken = PARTS[spec.kind].get(spec.name)
    if taken is not None and taken.module != spec.module:
        raise VaekitError(f"the {spec.kind} name {spec.name!r} of {spec.module} is taken by {taken.module}")
    for other in PARTS[spec.kind].values():
        if other.name == spec.name:
            continue
        shared = set(other.option_fields()) & set(spec.option_fields())
        for name in shared:
            if other.defaults()[name] != spec.defaults()[name]:
                raise VaekitError(
                    f"the {spec.kind} {spec.name!r}'s option {name!r} is the {other.name!r}'s, with another "
                    "default: name it otherwise"
                )
    PARTS[spec.kind][spec.name] = spec
    return spec


def _decorator(kind: str) -> Callable[..., Callable[[Any], Any]]:
    def register(
        name: str,
        summary: str,
        options: type = NoOptions,
        requires: tuple[str, ...] = (),
        model_config: Callable[[Any], dict[str, Any]] | None = None,
        per_step: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
        adds: AddedModule | None = None,
    ) -> Callable[[Any], Any]:
        def decorate(target: Any) -> Any:
            module = target.__module__
            origin = None if module.startswith("vaekit.") else origin_of(module)
            register_part(PartSpec(
                kind, name, summary, options, frozenset(requires), model_config, target, per_step, module,
                origin, adds,
            ))  # fmt: skip
            return target

        return decorate

    register.__doc__ = f"Decorator: register the {kind} ``name`` (see ``register_part``)."
    return register


register_prior = _decorator("prior")
register_posterior = _decorator("posterior")
register_objective = _decorator("objective")


def parts(kind: str) -> dict[str, PartSpec]:
    """The registered parts of ``kind`` by name, installed ones and those of VAEKIT_PLUGINS' modules
    included."""
    _load_built_ins()
    _load_entry_points()
    import_env_plugins()
    return PARTS[kind]


class PartView(Mapping):
    """The registered parts of one kind as a read-only mapping by name (``OBJECTIVES``: an objective's
    function; ``TRAINED_PRIORS``, ``POSTERIORS``: their specs), read when used, so that parts registered
    later are in it."""

    def __init__(self, kind: str, functions: bool = False) -> None:
        self.kind, self.functions = kind, functions

    def __getitem__(self, name: str) -> Any:
        spec = parts(self.kind)[name]
        return spec.function if self.functions else spec

    def __iter__(self) -> Iterator[str]:
        return iter(list(parts(self.kind)))

    def __len__(self) -> int:
        return len(parts(self.kind))

    def __repr__(self) -> str:
        return f"PartView({self.kind!r}: {', '.join(self)})"


def part(kind: str, name: Any) -> PartSpec:
    """The ``kind`` part called ``name``; an unknown one is a one-line error listing the others."""
    known = parts(kind)
    if name in known:
        return known[name]
    if (kind, name) in _broken:
        raise VaekitError(f"cannot load the {kind} {name!r}: {_broken[kind, name]}")
    raise VaekitError(f"unknown {kind} {name!r}; choose from {', '.join(known)}")


def require_parts(saved: dict[str, Any] | None) -> None:
    """A run's parts from outside the package (config.json's ``parts``: each kind's name and origin) are
    registered here; a missing one is a one-line error naming what to install."""
    for kind, entry in (saved or {}).items():
        if kind in KINDS and isinstance(entry, dict) and entry.get("name") not in parts(kind):
            raise install_hint(f"the {kind} {entry.get('name')!r}", entry)


def origins(chosen: dict[str, PartSpec]) -> dict[str, dict[str, str]]:
    """config.json's ``parts``: the name and origin of each chosen part from outside the package."""
    return {kind: {"name": spec.name, **spec.origin} for kind, spec in chosen.items() if spec.origin}


def option_parts(kind: str, option_name: str) -> list[PartSpec]:
    """The ``kind`` parts that take the option ``option_name``."""
    return [spec for spec in parts(kind).values() if option_name in spec.option_fields()]


def all_options() -> dict[str, tuple[str, Any, dataclasses.Field]]:
    """Every part option by name: (its kind, its type, its field), for the flags and the checks."""
    found: dict[str, tuple[str, Any, dataclasses.Field]] = {}
    for kind in KINDS:
        for spec in parts(kind).values():
            hints = typing.get_type_hints(spec.options)
            for name, spec_field in spec.option_fields().items():
                found.setdefault(name, (kind, hints[name], spec_field))
    return found


_built_ins_loaded = False


def _load_built_ins() -> None:
    """Import every module of models/priors, models/posteriors and models/objectives: each registers
    its parts, so that a new part is one file."""
    global _built_ins_loaded
    if _built_ins_loaded:
        return
    _built_ins_loaded = True
    for package in ("priors", "posteriors", "objectives"):
        path = importlib.import_module(f"vaekit.models.{package}").__path__
        for module in pkgutil.iter_modules(path):
            importlib.import_module(f"vaekit.models.{package}.{module.name}")


def _load_entry_points() -> None:
    """Load the installed parts of the entry point groups, once; a broken one is kept to report."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for kind, group in ENTRY_POINT_GROUPS.items():
        for entry in installed_entry_points(group):
            try:
                entry.load()
            except Exception as exc:  # the part's own failure: reported when its name is asked for
                _broken[kind, entry.name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                continue
            if entry.name not in PARTS[kind]:
                _broken[kind, entry.name] = f"{entry.value} registers no {kind} named {entry.name!r}"
