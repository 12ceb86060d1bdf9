"""A run's parts in its settings: the prior, posterior and objective it trains with (``--prior``,
``--posterior``, ``--objective``) and their options (``part_options``: ``--pseudo-inputs``, ``--gamma``,
...), all checked and filled from the parts' registered specs (``models.parts``), so that a new part
needs no line here.

Before part options had a table of their own they were settings by their own names (``gamma = 5`` in a
TOML file, ``"gamma": 10.0`` in config.json); ``fold_part_options`` reads those as before.
"""

from __future__ import annotations

import inspect
from typing import Any

from vaekit.models.distributions import DiagonalGaussian, has_exact_kl
from vaekit.models.parts import KINDS, REQUIREMENTS, PartSpec, all_options, option_parts, part, parts
from vaekit.utils.errors import VaekitError

DEFAULT_PARTS = {"prior": "standard", "posterior": "gaussian", "objective": "elbo"}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def fold_part_options(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (settings by name, as a TOML table, config.json or keyword arguments give them) with
    every part option found by its own name moved into ``part_options`` (None, a setting left unset,
    dropped); the rest as they were."""
    options = all_options()
    folded = {key: value for key, value in values.items() if key not in options}
    moved = {key: value for key, value in values.items() if key in options and value is not None}
    if moved:
        folded["part_options"] = {**moved, **(values.get("part_options") or {})}
    return folded


def chosen_parts(config: Any) -> dict[str, PartSpec]:
    """The run's parts by kind (an unknown name: one line that lists the known)."""
    return {kind: part(kind, getattr(config, kind)) for kind in KINDS}


def check_parts(config: Any, model_class: type) -> None:
    """The run's parts and their options: every option given belongs to a chosen part, every chosen
    part's requirements hold for the model and the settings, and ``config.part_options`` becomes each
    chosen part's full options (defaults filled, each value checked by its spec)."""
    chosen = chosen_parts(config)
    given = config.part_options if config.part_options is not None else {}
    if not isinstance(given, dict) or not all(isinstance(key, str) for key in given):
        raise VaekitError(f"part options must be a table of name = value, got {given!r}")
    for name in given:
        owners = [spec for kind in KINDS for spec in option_parts(kind, name)]
        if not owners:
            known = ", ".join(all_options())
            raise VaekitError(f"unknown part option {name!r}; the parts' options are: {known}")
        if not any(chosen[spec.kind] is spec for spec in owners):
            kind = owners[0].kind
            names = " or ".join(spec.name for spec in owners)
            raise VaekitError(f"{flag(name)} applies to --{kind} {names}, not {chosen[kind].name}")
    for spec in chosen.values():
        for requirement in sorted(spec.requires):
            refuse_unmet(spec, requirement, chosen, config, model_class)
    filled: dict[str, Any] = {}
    for spec in chosen.values():
        mine = {name: value for name, value in given.items() if name in spec.option_fields()}
        filled.update(spec.check(mine, flag))
    config.part_options = filled


def refuse_unmet(
    spec: PartSpec, requirement: str, chosen: dict[str, PartSpec], config: Any, model: type
) -> None:
    """A one-line error where the chosen ``spec``'s ``requirement`` does not hold."""
    what = f"--{spec.kind} {spec.name}"
    if requirement == "one latent" and model.latent_kind != "vector":
        others = [other.name for other in parts(spec.kind).values() if requirement not in other.requires]
        takes = f" ({spec.kind}s: {', '.join(others)})" if others else ""
        raise VaekitError(f"{what} applies to {REQUIREMENTS[requirement]}, not {config.model}{takes}")
    if requirement == "exact kl" and not exact_kl(chosen):
        raise VaekitError(f"{what} needs {REQUIREMENTS[requirement]}: not with {inexact(chosen)}")
    gaussian = issubclass(chosen["posterior"].distribution, DiagonalGaussian)
    if requirement == "gaussian posterior" and not gaussian:
        posterior = f"--posterior {config.posterior}"
        raise VaekitError(f"{what} needs {REQUIREMENTS[requirement]}: not with {posterior}")
    if requirement == "batch of 2" and config.batch_size < 2:
        raise VaekitError(f"{what} estimates from the other images of a batch: it needs --batch-size >= 2")


def exact_kl(chosen: dict[str, PartSpec]) -> bool:
    """Whether the chosen posterior and prior have the KL per dimension in closed form (a rule in
    ``models.distributions``' registry)."""
    return has_exact_kl(chosen["posterior"].distribution, chosen["prior"].distribution)


def inexact(chosen: dict[str, PartSpec]) -> str:
    """The chosen parts that keep the KL from a closed form, as flags: "--prior vamp or --posterior iaf"
    (each one that has no closed form with the default of the other kind)."""
    defaults = {kind: part(kind, DEFAULT_PARTS[kind]).distribution for kind in ("prior", "posterior")}
    alone = {
        "prior": has_exact_kl(defaults["posterior"], chosen["prior"].distribution),
        "posterior": has_exact_kl(chosen["posterior"].distribution, defaults["prior"]),
    }
    kinds = [kind for kind in ("prior", "posterior") if not alone[kind]] or ["prior", "posterior"]
    return " or ".join(f"--{kind} {chosen[kind].name}" for kind in kinds)


def objective_takes(config: Any, name: str) -> bool:
    """Whether the run's objective's function takes ``name`` (kl_weight, free_bits, beta)."""
    function = part("objective", config.objective).function
    return function is not None and name in inspect.signature(function).parameters


def part_model_config(config: Any) -> dict[str, Any]:
    """What the run's parts add to its model's config (a VampPrior's pseudo-inputs, FactorVAE's
    discriminator), from their specs and ``config.part_options``."""
    values: dict[str, Any] = {}
    for spec in chosen_parts(config).values():
        if spec.model_config is not None:
            mine = {name: config.part_options[name] for name in spec.option_fields()}
            values.update(spec.model_config(mine))
    return values
