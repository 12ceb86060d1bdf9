"""``vaekit sweep``: hyperparameter search with Optuna, every trial a normal run folder.

``run_sweep`` reads the sweep file (``sweep.spec``), opens or joins the study in its storage, trains each
trial as a run folder under DIR/trials/, prunes on the validation loss after each epoch, and ends with
the trials table and comparison report (``sweep.report``).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.sweep.report import summarise, write_summary
from vaekit.sweep.spec import Dimension, Sweep, read_sweep_file, trial_config
from vaekit.training.config_files import parse_toml, read_text_file, tomllib
from vaekit.training.settings import TrainConfig
from vaekit.utils.atomic import DIRECTORY_MODE, missing_folders, remove_made, writing
from vaekit.utils.errors import VaekitError, first_line
from vaekit.utils.files import read_json_lines


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


HEARTBEAT_SECONDS = 10  # a database worker's trial says it is alive this often
GRACE_SECONDS = 30  # ... and one silent this long (a worker killed mid-trial) is failed and retried
# What PostgreSQL answers the second of two workers creating the study's tables at once.
TABLE_RACE = ("duplicate key", "already exists")
RETRIES = 3  # a failed trial's settings are tried again by the next worker, up to this many times


def _storage(folder: Path, url: str | None, options: dict[str, Any]) -> Any:
    optuna = _optuna()
    if url:  # an RDB URL (PostgreSQL, MySQL, SQLite) that workers on several machines reach
        # A worker killed mid-trial (preempted, its machine lost) stops beating: another worker marks its
        # trial failed and runs the same settings again, so no trial of the study is lost.
        import warnings

        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)  # Optuna >= 4.9
        with warnings.catch_warnings():  # "experimental since 2.8": the interface vaekit uses is stable
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            stale = {"heartbeat_stale_trial_callback": retry(max_retry=RETRIES)} if retry else {
                "failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=RETRIES)
            }  # fmt: skip
        for attempt in range(5):  # workers starting together race to create the tables: the loser retries
            try:
                return optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=options.get("heartbeat_seconds", HEARTBEAT_SECONDS),
                    grace_period=options.get("grace_seconds", GRACE_SECONDS),
                    **stale,
                )
            except Exception as exc:
                if attempt == 4 or not any(race in str(exc) for race in TABLE_RACE):
                    raise
                time.sleep(0.5 + attempt)
    from optuna.storages.journal import JournalFileBackend

    journal = folder / "journal.log"
    try:  # Optuna replays it line by line, and fails deep inside a trial on a damaged line
        records = read_json_lines(journal)
        # Optuna ends every record with a line end: a file cut just before one reads as whole records,
        # and the next record appended to that line would make it unreadable
        if records and not journal.read_bytes().endswith(b"\n"):
            raise VaekitError(f"corrupt {journal}: cut short (its last record has no line end)")
    except VaekitError as damaged:
        raise VaekitError(f"{damaged}: the study's record; restore it, or give another --out") from None
    trials = [p for p in (folder / "trials").glob("[0-9]*") if p.is_dir()]
    if not records and trials:  # a new study would number its trials from 0 again, over the old ones
        state = "empty" if journal.exists() else "missing"
        raise VaekitError(
            f"{journal} is {state} but {folder / 'trials'} holds {len(trials)} trials: the study's record is "
            "lost; restore it, or give another --out"
        )
    return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))


def _prepare_folder(folder: Path, sweep: Sweep) -> None:
    """A new sweep folder gets the sweep file; a worker joining one must bring the same file."""
    kept = folder / "sweep.toml"
    if not kept.is_file():
        what = f"{folder} exists and is not a sweep folder (no {kept})"
        not_a_sweep = VaekitError(f"{what}; give another --out")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise not_a_sweep
        _create_folder(folder, sweep)
        if not kept.is_file():  # lost the race to something that is not a sweep
            raise not_a_sweep
    text = read_text_file(kept, "the sweep folder's copy of its sweep file")
    if parse_toml(text, kept) != tomllib.loads(sweep.text):
        raise VaekitError(f"{folder} is a sweep of another sweep file ({kept}); give another --out")


def _create_folder(folder: Path, sweep: Sweep) -> None:
    """The sweep folder, its trials/ and its sweep.toml made beside it and renamed into place at once, so
    that a second worker started at the same moment finds no folder or a whole one, never one without its
    sweep file. A worker that loses the race leaves the winner's folder as it is and joins it."""
    made = missing_folders(folder)
    try:
        with writing(folder):  # a failure names the sweep folder, not the one made beside it
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    except OSError:
        remove_made(made)
        raise
    try:
        with writing(folder):
            (tmp / "trials").mkdir()
            (tmp / "sweep.toml").write_text(sweep.text, encoding="utf-8")
        os.chmod(tmp, DIRECTORY_MODE)
        try:
            os.rename(tmp, folder)  # onto nothing, or an empty folder: atomic
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_made(made)  # nothing left behind (utils.targets)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
    if pruner is None:
        pruner = _file_pruner(optuna, sweep.options)
    study = _open_study(optuna, folder, sweep.options, storage, pruner)
    log(f"sweep {study.study_name} in {folder}: " + "; ".join(d.describe() for d in sweep.search))
    study.optimize(_objective(sweep, folder, optuna, log), n_trials=trials, catch=(VaekitError,))
    summary = summarise(study, folder)
    write_summary(folder, summary, log)
    return summary


def _file_pruner(optuna: Any, options: dict[str, Any]) -> Any:
    """The pruner the sweep file's options name: median (the default) or none."""
    if options.get("pruner", "median") == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=options.get("startup_trials", 2),
            n_warmup_steps=options.get("warmup_epochs", 1),
        )
    return optuna.pruners.NopPruner()


def _open_study(optuna: Any, folder: Path, options: dict[str, Any], storage: str | None, pruner: Any) -> Any:
    """The sweep's study in ``storage`` (else the file's, else the folder's journal), created or joined."""
    study_name = options.get("study", "vaekit")
    url = storage or options.get("storage")
    try:
        shared = _storage(folder, url, options)
        study = optuna.load_study(study_name=study_name, storage=shared)
        joined = True
    except KeyError:
        joined = False
        study = None
    except Exception as exc:  # an unreachable database, a missing driver
        raise VaekitError(f"cannot open the study storage: {first_line(exc)}") from None
    seed = options.get("seed")
    if seed is not None and joined:  # a second worker with the same seed would repeat the first's draws
        seed += len(study.trials)
    sampler = optuna.samplers.TPESampler(seed=seed)
    return optuna.create_study(
        study_name=study_name,
        storage=shared,
        sampler=sampler,
        pruner=pruner,
        direction="minimize",
        load_if_exists=True,
    )


def _objective(sweep: Sweep, folder: Path, optuna: Any, log: Callable[[str], None]) -> Callable[[Any], float]:
    """The study's objective: a trial's settings drawn, trained as a run under DIR/trials/, its val loss."""

    def objective(trial: Any) -> float:
        params = {d.name: suggest(trial, d) for d in sweep.search}
        config = trial_config(sweep, params)
        run = trial_folder(folder, trial.number)
        trial.set_user_attr("run", str(run.relative_to(folder)))
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        log(f"trial {trial.number}: {shown}")
        return _train_trial(trial, config, run, optuna, log)

    return objective


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
