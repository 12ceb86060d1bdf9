"""The sweep file: what a sweep holds fixed, what it searches, and how.

A sweep file is TOML::

    [data]                       # fixed settings, in sections exactly as in vaekit train --config
    dataset = "digits"           # (or one flat [train] table, as earlier releases wrote them)
    [optimization]
    epochs = 10

    [search]                     # what the trials vary, by the names of --config's sections
    optimization.lr = [1e-4, 1e-2]     # two numbers: a range; integers for an integer setting
    model.likelihood = ["bernoulli", "gaussian"]   # any other list: a choice among its values
    parts.beta = {low = 0.5, high = 8, log = false}  # a table sets the scale of a range...
    model.hidden = {choices = ["400", "512,256"]}    # ...or gives a choice (layer sizes as strings)
    model.depth = [1, 3]         # a model's own option (a plugin's), typed by the model
    parts.gamma = [1, 20]        # a part's option, typed by the part
    latent_dim = [2, 16]         # a setting by its flat name, as earlier releases wrote them

    [sweep]                      # optional
    study = "vaekit"             # the study's name in the storage
    pruner = "median"            # "median" (Optuna's MedianPruner) or "none"
    startup_trials = 2           # median pruner: trials run whole before any is pruned
    warmup_epochs = 1            # median pruner: epochs of a trial before it may be pruned
    seed = 0                     # the sampler's seed (a lone worker's sweep then repeats exactly)
    storage = "postgresql://..." # an RDB URL shared by machines (default: DIR/journal.log)
    heartbeat_seconds = 10       # with storage: a trial's worker says it is alive this often, and
    grace_seconds = 30           # one silent this long (killed) has its trial failed and run again

Ranges of the settings in LOG_SCALED (learning rate, KL weight, free bits, decoder std, batch size:
settings that act by ratio, where 1e-4 to 1e-3 matters as much as 1e-3 to 1e-2) are sampled
uniformly in their logarithm; every other range uniformly; ``log = true/false`` overrides. Trials
minimise the validation loss (negative ELBO) of the model each run keeps, and are pruned on the
validation loss after each epoch. The sweep folder DIR holds sweep.toml, journal.log (Optuna's journal,
through which workers on one machine share the study), trials/NNNN/ (trial NNNN's run folder),
trials.md and trials.json (every trial, the best first) and comparison/ (vaekit compare of the
finished trials, with the trials table).
"""

from __future__ import annotations

import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaekit.models import model_class
from vaekit.models.parts import all_options
from vaekit.training.config_files import check_settings, parse_toml, read_text_file, settings_tables
from vaekit.training.model_settings import option_type, own_options
from vaekit.training.part_settings import fold_part_options
from vaekit.training.sections import SECTIONS, sweep_key
from vaekit.training.settings import TrainConfig
from vaekit.utils.errors import VaekitError

LOG_SCALED = ("lr", "beta", "free_bits", "decoder_std", "batch_size")


SWEEP_OPTIONS = {
    "study": str,
    "pruner": str,
    "startup_trials": int,
    "warmup_epochs": int,
    "seed": int,
    "storage": str,
    "heartbeat_seconds": int,
    "grace_seconds": int,
}


PRUNERS = ("median", "none")


OPTION = "model_options."  # a searched model option's name: model_options.depth

# list settings: chosen among strings like "512,256"
SIZE_SETTINGS = ("hidden", "channels", "image_size", "discriminator")


@dataclass
class Dimension:
    """One searched setting: an int or float range (``log``: sampled uniformly in its logarithm), or a
    choice among ``choices``."""

    name: str
    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} in {self.choices}"
        scale = "log-uniform" if self.log else "uniform"
        return (
            f"{self.name} {scale} {'integer ' if self.kind == 'int' else ''}in [{self.low:g}, {self.high:g}]"
        )


@dataclass
class Sweep:
    train: dict[str, Any]
    search: list[Dimension]
    options: dict[str, Any]
    text: str  # the file as given, kept in the sweep folder


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _setting_value(name: str, value: Any) -> Any:
    """A trial's value as TrainConfig takes it (sizes "512,256" -> [512, 256])."""
    if name in SIZE_SETTINGS and isinstance(value, str):
        if name == "image_size":
            return value
        return [int(part) for part in value.split(",")]
    return value


RANGE_KEYS = {"low", "high", "log", "choices"}  # a [search] entry's table of how to search


def _dimensions(name: str, spec: Any, train: dict[str, Any], where: str) -> list[Dimension]:
    """The dimensions of one [search] entry: a setting, or ``model_options`` (a table of the model's own
    options, as ``model_options.depth = [1, 3]`` writes it) or one of them (``"model_options.depth"``),
    or a section's table of settings (``optimization.lr = [1e-4, 1e-2]``, ``model.depth = [1, 3]``,
    ``parts.gamma = [1, 20]``: every setting of every section by the name it has there)."""
    if name in SECTIONS and isinstance(spec, dict) and not set(spec) <= RANGE_KEYS:  # not model = {choices..}
        return [d for key, value in spec.items() for d in _dimensions(f"{name}.{key}", value, train, where)]
    if name.split(".")[0] in SECTIONS and "." in name:
        try:
            field, option = sweep_key(name)
        except VaekitError as exc:
            raise VaekitError(f"{where}: [search] {exc}") from None
        return _dimensions(
            f"{OPTION}{option}" if field == "model_options" else option or field, spec, train, where
        )
    if name == "model_options" and isinstance(spec, dict):
        return [d for key, value in spec.items() for d in _dimensions(f"{OPTION}{key}", value, train, where)]
    if name.startswith(OPTION):
        model = model_class(train.get("model", TrainConfig.model))
        option = name[len(OPTION) :]
        if option not in own_options(model):
            takes = ", ".join(own_options(model)) or "none"
            why = f"model {model.name} takes no option {option!r} (its own: {takes})"
            raise VaekitError(f"{where}: [search] {why}")
        hint = option_type(model, option)
        return [_dimension(name, spec, (hint,) if hint is not None else (), where)]
    hints = typing.get_type_hints(TrainConfig)
    options = all_options()  # a part's option by its name (gamma = [1, 20]), typed by the part
    if name in options:
        hint = options[name][1]
        return [_dimension(name, spec, typing.get_args(hint) + (hint,), where)]
    if name not in hints:
        raise VaekitError(f"{where}: unknown setting {name!r} in [search]")
    return [_dimension(name, spec, typing.get_args(hints[name]) + (hints[name],), where)]


def _dimension(name: str, spec: Any, args: tuple, where: str) -> Dimension:
    if isinstance(spec, dict):
        unknown = set(spec) - {"low", "high", "log", "choices"}
        if unknown or ("choices" in spec) == ("low" in spec or "high" in spec):
            raise VaekitError(
                f"{where}: [search] {name} takes either low and high (and log) or choices, got {sorted(spec)}"
            )
        if "choices" in spec:
            return _choice(name, spec["choices"], where)
        if "low" not in spec or "high" not in spec:
            raise VaekitError(f"{where}: [search] {name} needs both low and high")
        log = spec.get("log")
        if log is not None and not isinstance(log, bool):
            raise VaekitError(f"{where}: [search] {name}: log must be true or false")
        return _range(name, spec["low"], spec["high"], log, args, where)
    if isinstance(spec, list) and len(spec) == 2 and all(_is_number(v) for v in spec):
        return _range(name, spec[0], spec[1], None, args, where)
    if isinstance(spec, list):
        return _choice(name, spec, where)
    raise VaekitError(
        f"{where}: [search] {name} must be [low, high], a list of choices or a table, got {spec!r}"
    )


def _range(name: str, low: Any, high: Any, log: bool | None, args: tuple, where: str) -> Dimension:
    if not (_is_number(low) and _is_number(high)):
        raise VaekitError(f"{where}: [search] {name}: low and high must be numbers")
    if float in args:
        kind = "float"
    elif int in args:
        kind = "int"
        if low != int(low) or high != int(high):
            raise VaekitError(f"{where}: [search] {name} is an integer setting; give integer bounds")
        low, high = int(low), int(high)
    else:
        raise VaekitError(f"{where}: [search] {name} is not a number; give a list of choices")
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise VaekitError(f"{where}: [search] {name}: low must be below high, got [{low}, {high}]")
    if log is None:
        log = name in LOG_SCALED and low > 0
    if log and low <= 0:
        raise VaekitError(f"{where}: [search] {name}: a log-scaled range needs low > 0, got {low}")
    return Dimension(name, kind, low, high, log)


def _choice(name: str, values: Any, where: str) -> Dimension:
    if not isinstance(values, list) or len(values) < 2:
        raise VaekitError(f"{where}: [search] {name}: a choice needs a list of at least two values")
    if not all(isinstance(v, (str, int, float, bool)) for v in values):
        raise VaekitError(f"{where}: [search] {name}: choices must be strings, numbers or booleans")
    if len({json.dumps(v) for v in values}) != len(values):
        raise VaekitError(f"{where}: [search] {name}: a choice is listed twice")
    return Dimension(name, "choice", choices=list(values))


def read_sweep_file(path: str | os.PathLike) -> Sweep:
    """Parse and check a sweep file: [train] as in --config, [search], and the optional [sweep]."""
    path = Path(path)
    text = read_text_file(path, "sweep file")
    document = parse_toml(text, path)
    for table in ("search", "sweep"):
        if not isinstance(document.get(table, {}), dict):
            raise VaekitError(f"{path}: {table} must be a table")
    # the fixed settings: in sections ([data], [model], ...) or one [train] table, as in --config
    train = check_settings(dict(settings_tables(document, path, others=("search", "sweep"))), path)
    entries = document.get("search", {}).items()
    search = [d for name, spec in entries for d in _dimensions(name, spec, train, str(path))]
    if not search:
        raise VaekitError(f"{path} has no [search] table: name at least one setting to search")
    fixed_options = {f"{OPTION}{key}" for key in train.get("model_options") or {}}
    fixed_options |= set(train.get("part_options") or {})
    fixed = [d.name for d in search if d.name in train or d.name in fixed_options]
    if fixed:
        raise VaekitError(f"{path}: {fixed[0]} is both fixed in [train] and searched in [search]")
    options = dict(document.get("sweep", {}))
    for key, value in options.items():
        if key not in SWEEP_OPTIONS:
            raise VaekitError(
                f"{path}: unknown option {key!r} in [sweep]; the options are: {', '.join(SWEEP_OPTIONS)}"
            )
        kind = SWEEP_OPTIONS[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise VaekitError(
                f"{path}: [sweep] {key} must be {'a string' if kind is str else 'an integer >= 0'}"
            )
    if options.get("heartbeat_seconds") == 0 or options.get("grace_seconds") == 0:
        raise VaekitError(f"{path}: [sweep] heartbeat_seconds and grace_seconds must be integers >= 1")
    if options.get("pruner", "median") not in PRUNERS:
        raise VaekitError(f"{path}: [sweep] pruner must be one of {', '.join(PRUNERS)}")
    sweep = Sweep(train, search, options, text)
    for values in _corners(search):  # every bound and every choice makes a valid run
        trial_config(sweep, values, where=str(path))
    return sweep


def _corners(search: list[Dimension]) -> list[dict[str, Any]]:
    tried = []
    for d in search:
        for value in d.choices if d.kind == "choice" else [d.low, d.high]:
            tried.append({d.name: value})
    return tried


def trial_config(sweep: Sweep, params: dict[str, Any], where: str = "sweep") -> TrainConfig:
    try:
        settings = {k: _setting_value(k, v) for k, v in params.items() if not k.startswith(OPTION)}
        values = fold_part_options({**sweep.train, **settings})
        options = {k[len(OPTION) :]: v for k, v in params.items() if k.startswith(OPTION)}
        if options:
            values["model_options"] = {**(sweep.train.get("model_options") or {}), **options}
        config = TrainConfig(**values)
        config.validate()
    except (TypeError, ValueError, VaekitError) as exc:
        raise VaekitError(f"{where}: the setting {params} does not make a valid run: {exc}") from None
    if config.val_fraction <= 0:
        raise VaekitError(f"{where}: trials are compared on the validation loss; val_fraction must be > 0")
    return config
