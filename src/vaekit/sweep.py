"""``vaekit sweep``: hyperparameter search with Optuna, every trial a normal run folder.

A sweep file is TOML::

    [train]                      # fixed settings, exactly as in vaekit train --config
    dataset = "digits"
    epochs = 10

    [search]                     # what the trials vary
    lr = [1e-4, 1e-2]            # two numbers: a range; integers for an integer setting (latent_dim)
    likelihood = ["bernoulli", "gaussian"]   # any other list: a choice among its values
    beta = {low = 0.5, high = 8, log = false}  # a table sets the scale of a range...
    hidden = {choices = ["400", "512,256"]}    # ...or gives a choice (layer sizes as strings)

    [sweep]                      # optional
    study = "vaekit"             # the study's name in the storage
    pruner = "median"            # "median" (Optuna's MedianPruner) or "none"
    startup_trials = 2           # median pruner: trials run whole before any is pruned
    warmup_epochs = 1            # median pruner: epochs of a trial before it may be pruned
    seed = 0                     # the sampler's seed (a lone worker's sweep then repeats exactly)
    storage = "postgresql://..." # an RDB URL shared by machines (default: DIR/journal.log)

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
import sys
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaekit.atomic import write_json, write_text
from vaekit.compare import compare_runs, markdown_table
from vaekit.errors import VaekitError
from vaekit.training.config_files import check_settings, parse_toml, read_text_file, tomllib
from vaekit.training.settings import TrainConfig

LOG_SCALED = ("lr", "beta", "free_bits", "decoder_std", "batch_size")
SWEEP_OPTIONS = {
    "study": str,
    "pruner": str,
    "startup_trials": int,
    "warmup_epochs": int,
    "seed": int,
    "storage": str,
}
PRUNERS = ("median", "none")
SIZE_SETTINGS = ("hidden", "channels", "image_size")  # list settings: chosen among strings like "512,256"


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


def _dimension(name: str, spec: Any, where: str) -> Dimension:
    hints = typing.get_type_hints(TrainConfig)
    if name not in hints:
        raise VaekitError(f"{where}: unknown setting {name!r} in [search]")
    args = typing.get_args(hints[name]) + (hints[name],)
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
    others = [key for key in document if key not in ("train", "search", "sweep")]
    if others:
        raise VaekitError(
            f"{path}: unknown table or key {others[0]!r}; a sweep has [train], [search], [sweep]"
        )
    for table in ("train", "search", "sweep"):
        if not isinstance(document.get(table, {}), dict):
            raise VaekitError(f"{path}: {table} must be a table")
    train = check_settings(dict(document.get("train", {})), path)
    search = [_dimension(name, spec, str(path)) for name, spec in document.get("search", {}).items()]
    if not search:
        raise VaekitError(f"{path} has no [search] table: name at least one setting to search")
    fixed = [d.name for d in search if d.name in train]
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
    if options.get("pruner", "median") not in PRUNERS:
        raise VaekitError(f"{path}: [sweep] pruner must be one of {', '.join(PRUNERS)}")
    sweep = Sweep(train, search, options, text)
    for values in _corners(search):  # every bound and every choice makes a valid run
        _trial_config(sweep, values, where=str(path))
    return sweep


def _corners(search: list[Dimension]) -> list[dict[str, Any]]:
    tried = []
    for d in search:
        for value in d.choices if d.kind == "choice" else [d.low, d.high]:
            tried.append({d.name: value})
    return tried


def _trial_config(sweep: Sweep, params: dict[str, Any], where: str = "sweep") -> TrainConfig:
    try:
        values = {**sweep.train, **{k: _setting_value(k, v) for k, v in params.items()}}
        config = TrainConfig(**values)
        config.validate()
    except (TypeError, ValueError, VaekitError) as exc:
        raise VaekitError(f"{where}: the setting {params} does not make a valid run: {exc}") from None
    if config.val_fraction <= 0:
        raise VaekitError(f"{where}: trials are compared on the validation loss; val_fraction must be > 0")
    return config


# ------------------------------------------------------------------------------------------- Optuna
def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise VaekitError("vaekit sweep needs Optuna: pip install 'vaekit[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints its own lines
    return optuna


def suggest(trial: Any, dimension: Dimension) -> Any:
    """The trial's value of ``dimension``, drawn by the study's sampler."""
    if dimension.kind == "choice":
        return trial.suggest_categorical(dimension.name, dimension.choices)
    if dimension.kind == "int":
        return trial.suggest_int(dimension.name, int(dimension.low), int(dimension.high), log=dimension.log)
    return trial.suggest_float(dimension.name, dimension.low, dimension.high, log=dimension.log)


def _storage(folder: Path, url: str | None) -> Any:
    if url:  # an RDB URL (PostgreSQL, MySQL, SQLite) that workers on several machines reach
        return url
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "journal.log")))


def _prepare_folder(folder: Path, sweep: Sweep) -> None:
    """A new sweep folder gets the sweep file; a worker joining one must bring the same file."""
    kept = folder / "sweep.toml"
    if kept.is_file():
        if tomllib.loads(kept.read_text(encoding="utf-8")) != tomllib.loads(sweep.text):
            raise VaekitError(f"{folder} is a sweep of another sweep file ({kept}); give another --out")
        return
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise VaekitError(f"{folder} exists and is not a sweep folder; give another --out")
    (folder / "trials").mkdir(parents=True, exist_ok=True)
    write_text(kept, sweep.text)


def trial_folder(folder: Path, number: int) -> Path:
    return folder / "trials" / f"{number:04d}"


def run_sweep(
    sweep_file: str | os.PathLike,
    out: str | os.PathLike,
    trials: int,
    storage: str | None = None,
    pruner: Any = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``trials`` trials of the sweep in ``sweep_file`` into the sweep folder ``out``, joining the
    study that other workers on the same folder (or ``storage``) run; returns the summary of every
    trial in the study (``summary["best"]``: the best finished one). ``pruner``: an Optuna pruner in
    place of the file's (for the API and tests)."""
    if trials < 1:
        raise VaekitError(f"--trials must be >= 1, got {trials}")
    sweep = read_sweep_file(sweep_file)
    optuna = _optuna()
    folder = Path(out)
    _prepare_folder(folder, sweep)
    options = sweep.options
    if pruner is None:
        pruner = (
            optuna.pruners.MedianPruner(
                n_startup_trials=options.get("startup_trials", 2),
                n_warmup_steps=options.get("warmup_epochs", 1),
            )
            if options.get("pruner", "median") == "median"
            else optuna.pruners.NopPruner()
        )
    study_name = options.get("study", "vaekit")
    url = storage or options.get("storage")
    try:
        shared = _storage(folder, url)
        study = optuna.load_study(study_name=study_name, storage=shared)
        joined = True
    except KeyError:
        joined = False
        study = None
    except Exception as exc:  # an unreachable database, a missing driver
        raise VaekitError(f"cannot open the study storage: {str(exc).splitlines()[0]}") from None
    seed = options.get("seed")
    if seed is not None and joined:  # a second worker with the same seed would repeat the first's draws
        seed += len(study.trials)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(
        study_name=study_name,
        storage=shared,
        sampler=sampler,
        pruner=pruner,
        direction="minimize",
        load_if_exists=True,
    )
    log(f"sweep {study_name} in {folder}: " + "; ".join(d.describe() for d in sweep.search))

    def objective(trial: Any) -> float:
        params = {d.name: suggest(trial, d) for d in sweep.search}
        config = _trial_config(sweep, params)
        run = trial_folder(folder, trial.number)
        trial.set_user_attr("run", str(run.relative_to(folder)))
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        log(f"trial {trial.number}: {shown}")
        return _train_trial(trial, config, run, optuna, log)

    study.optimize(objective, n_trials=trials, catch=(VaekitError,))
    summary = summarise(study, folder)
    _write_summary(folder, summary, log)
    return summary


def _train_trial(
    trial: Any, config: TrainConfig, run: Path, optuna: Any, log: Callable[[str], None]
) -> float:
    from vaekit.training import Trainer

    def report(record: dict[str, Any]) -> None:
        trial.report(record["val_loss"], record["epoch"])
        if trial.should_prune():
            log(f"trial {trial.number}: pruned after epoch {record['epoch']} (val {record['val_loss']:.2f})")
            raise optuna.TrialPruned()

    start = time.perf_counter()
    trainer = Trainer(config, run, progress=False, log=lambda line: None, on_epoch=report)
    try:
        trainer.run()
    except VaekitError as exc:
        log(f"trial {trial.number}: failed: {exc}")
        raise
    s = trainer.state
    value = s.best_loss if config.early_stopping else s.history[-1]["val_loss"]
    seconds = time.perf_counter() - start
    log(f"trial {trial.number}: val loss {value:.2f} after {s.epoch} epochs, {seconds:.1f} s")
    return float(value)


# ------------------------------------------------------------------------------------------ reports
def summarise(study: Any, folder: Path) -> dict[str, Any]:
    """Every trial of the study (finished, pruned, failed, running) with its parameters and figures."""
    rows = []
    for t in study.trials:
        run = folder / t.user_attrs.get("run", f"trials/{t.number:04d}")
        metrics = run / "metrics.jsonl"
        epochs = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
        last = max(t.intermediate_values) if t.intermediate_values else None
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "val_loss": t.value
                if t.value is not None
                else (t.intermediate_values[last] if last else None),
                "epochs": epochs,
                "params": t.params,
                "seconds": t.duration.total_seconds() if t.duration else None,
                "run": str(run.relative_to(folder)),
            }
        )
    done = [r for r in rows if r["state"] == "complete"]
    best = min(done, key=lambda r: r["val_loss"]) if done else None
    order = sorted(
        rows,
        key=lambda r: (r["state"] != "complete", r["val_loss"] if r["val_loss"] is not None else math.inf),
    )
    return {"study": study.study_name, "best": best, "trials": order}


def trials_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = sorted({k for r in summary["trials"] for k in r["params"]})
    header = ["trial", "state", "val loss", "epochs", *names, "seconds", "run folder"]
    rows = []
    best = summary["best"]["trial"] if summary["best"] else None
    for r in summary["trials"]:
        values = [r["params"].get(n) for n in names]
        rows.append(
            [
                f"{r['trial']}" + (" (best)" if r["trial"] == best else ""),
                r["state"],
                f"{r['val_loss']:.2f}" if r["val_loss"] is not None else "-",
                str(r["epochs"]),
                *[f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v)) for v in values],
                f"{r['seconds']:.1f}" if r["seconds"] is not None else "-",
                r["run"],
            ]
        )
    return header, rows


def _write_summary(folder: Path, summary: dict[str, Any], log: Callable[[str], None]) -> None:
    header, rows = trials_table(summary)
    table = markdown_table(header, rows)
    best = summary["best"]
    if best:
        headline = (
            f"best: trial {best['trial']}, val loss {best['val_loss']:.2f}, {best['params']} ({best['run']})"
        )
    else:
        headline = "no trial has finished yet"
    write_text(folder / "trials.md", f"# Sweep {summary['study']}\n\n{headline}\n\n{table}")
    write_json(folder / "trials.json", summary)
    log(table.rstrip())
    log(headline)
    finished = [folder / r["run"] for r in summary["trials"] if r["state"] == "complete"]
    if finished:
        try:
            compare_runs(
                finished, out=folder / "comparison", overwrite=True, extra=("Sweep trials", header, rows)
            )
        except (OSError, VaekitError) as exc:  # another worker writing it at the same moment
            print(f"note: the comparison report was not written ({exc})", file=sys.stderr)
            return
        log(f"trials.md, trials.json and comparison/report.html written to {folder}")
