"""``--mlflow``: a run's settings, epoch metrics, test evaluation and pictures in MLflow (rank 0 only).

Where: ``$MLFLOW_TRACKING_URI`` if set, else a local store ``mlruns/`` in the working folder; the
experiment ``$MLFLOW_EXPERIMENT_NAME``, else "vaekit"; the MLflow run is named after the run folder.
Its id goes in the run folder's mlflow.json, so that a resumed run (``--resume`` after Ctrl-C, a kill or
``--max-time``, or to extend a finished run) goes on in the same MLflow run, in the store it was
recorded in, whatever the working folder or environment then.

MLflow keeps every value logged at a step, so each epoch is logged once: the loop logs an epoch after
its checkpoint is saved, and a resumed run logs the checkpointed epochs its MLflow run lacks (killed
between the two) and no other. MLflow's params cannot change: a setting changed on resume (``--epochs``
extended, ``--lr``) is recorded as the tag ``resumed.<name>``.

The MlflowClient API, not mlflow's fluent one (``mlflow.start_run``), whose active run is process-wide
state that two runs in one process (a sweep's trials, the tests) would share.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vaekit.training.interrupt import TrainingInterrupted
from vaekit.training.run_folder import RunDir
from vaekit.utils.atomic import write_json
from vaekit.utils.errors import VaekitError

DEFAULT_EXPERIMENT = "vaekit"
LOCAL_STORE = "mlruns"  # the store in the working folder when $MLFLOW_TRACKING_URI is not set
PICTURES = (".png", ".gif")
BATCH = 100  # MLflow's most params (and tags) in one log_batch call


class MlflowLogger:
    """``--mlflow``: one MLflow run per run folder, opened by ``open`` before the folder is touched,
    started by ``start``, fed by ``epoch`` and ``finish``, and ended by ``tracked``."""

    def __init__(self, client: Any, run_dir: RunDir, where: dict[str, Any], experiment: str) -> None:
        self.client = client
        self.run_dir = run_dir
        self.where = where  # mlflow.json: tracking_uri, local_store, experiment_id, run_id (None: a new run)
        self.experiment = experiment
        self.started = False
        self.logged: dict[str, set[int]] = {}  # metric name -> the steps the MLflow run holds

    @property
    def run_id(self) -> str | None:
        return self.where.get("run_id")

    @classmethod
    def open(cls, run_dir: RunDir, checkpoint: dict[str, Any] | None) -> MlflowLogger:
        """Import MLflow and reach its store: the experiment of a new run, or the MLflow run that a
        resumed one (``checkpoint`` not None) recorded in mlflow.json. Every error is one line, raised
        before the run folder is touched."""
        try:
            import mlflow  # noqa: F401 (fails at once when MLflow is not installed)
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise VaekitError("--mlflow needs MLflow: pip install 'vaekit[mlflow]'") from None
        where = recorded_where(run_dir) if checkpoint is not None and run_dir.mlflow.is_file() else None
        where = where or new_where()
        if where["local_store"]:
            # MLflow 3 refuses its file store unless MLFLOW_ALLOW_FILE_STORE=true (it steers users to a
            # database). A folder is vaekit's default so that --mlflow works with no server and no
            # database: allowed for that store alone, and a user's own setting of the variable wins.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        with mlflow_errors(f"cannot use MLflow at {where['tracking_uri']}"):
            client = MlflowClient(tracking_uri=where["tracking_uri"])
            logger = cls(client, run_dir, where, experiment)
            logger._check_store()
        return logger

    def _check_store(self) -> None:
        """Reach the store now: the resumed run's MLflow run exists, or a new run's experiment is not
        deleted (MLflow would refuse to log into it)."""
        if self.run_id is not None:
            try:
                gone = self.client.get_run(self.run_id).info.lifecycle_stage == "deleted"
            except Exception as exc:  # an unreachable store is reported as such, by mlflow_errors
                gone = getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"
                if not gone:
                    raise
            if gone:
                raise VaekitError(
                    f"MLflow run {self.run_id} of {self.run_dir.mlflow} is not found or deleted at "
                    f"{self.where['tracking_uri']}; delete that file to log to a new MLflow run"
                )
            return
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None and found.lifecycle_stage == "deleted":
            raise VaekitError(
                f"MLflow experiment {self.experiment!r} is deleted at {self.where['tracking_uri']}: restore "
                "it, or name another with MLFLOW_EXPERIMENT_NAME"
            )
        self.where["experiment_id"] = found.experiment_id if found is not None else None

    def start(self, run_config: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """The MLflow run begins (a new one, its id written to mlflow.json at once so that a resume finds
        it; or the resumed run's, RUNNING again) with the run's settings (``run_config``: config.json)
        and the epochs of ``history`` that it does not hold yet."""
        with mlflow_errors(f"cannot start the MLflow run at {self.where['tracking_uri']}"):
            if self.run_id is None:
                self._create_run()
            else:
                self.client.update_run(self.run_id, status="RUNNING")
            self.started = True
            self._log_params(run_params(run_config))
            self.logged = {
                key: {m.step for m in self.client.get_metric_history(self.run_id, key)}
                for key in self.client.get_run(self.run_id).data.metrics
            }
        for record in history:
            self.epoch(record)

    def _create_run(self) -> None:
        experiment_id = self.where["experiment_id"] or self.client.create_experiment(self.experiment)
        folder = self.run_dir.path.resolve()
        run = self.client.create_run(
            experiment_id, run_name=folder.name, tags={"vaekit.run_folder": str(folder)}
        )
        self.where.update(experiment_id=experiment_id, run_id=run.info.run_id)
        write_json(self.run_dir.mlflow, self.where)

    def _log_params(self, params: dict[str, str]) -> None:
        """``params``; on a resumed MLflow run, those it lacks, and a changed value as a tag (MLflow's
        params cannot change)."""
        from mlflow.entities import Param, RunTag

        held = self.client.get_run(self.run_id).data.params
        new = [Param(k, v) for k, v in params.items() if k not in held]
        changed = [RunTag(f"resumed.{k}", v) for k, v in params.items() if k in held and held[k] != v]
        for i in range(0, max(len(new), len(changed)), BATCH):
            self.client.log_batch(self.run_id, params=new[i : i + BATCH], tags=changed[i : i + BATCH])

    def epoch(self, record: dict[str, Any]) -> None:
        """One epoch's record of metrics.jsonl, the same numbers, at step = epoch (None left out)."""
        self._log_metrics({k: v for k, v in record.items() if k != "epoch"}, record["epoch"])

    def finish(self, result: dict[str, Any], epoch: int) -> None:
        """After the last epoch: eval.json's numbers as metrics at step ``epoch``, and eval.json and the
        run's pictures as artifacts, in the folders they have in the run."""
        self._log_metrics(result, epoch)
        with mlflow_errors(f"cannot log the run's files to MLflow at {self.where['tracking_uri']}"):
            for path in self.artifacts():
                folder = path.parent.relative_to(self.run_dir.path).as_posix()
                self.client.log_artifact(self.run_id, str(path), None if folder == "." else folder)

    def artifacts(self) -> list[Path]:
        """eval.json and every picture in the run folder: the epochs' sample and reconstruction grids, the
        loss curve, the animation, the fitted prior's samples, and what vaekit latent & co. left there
        (not TensorBoard's projector sprite, which belongs to tb/)."""
        root = self.run_dir.path
        pictures = [
            p
            for p in sorted(root.rglob("*"))
            if p.suffix in PICTURES and p.is_file() and not p.name.startswith(".")
            if self.run_dir.tensorboard not in p.parents
        ]
        return [*pictures, self.run_dir.eval] if self.run_dir.eval.is_file() else pictures

    def _log_metrics(self, values: dict[str, Any], step: int) -> None:
        """The numbers of ``values`` at ``step``, except those the MLflow run holds at that step already."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step)
            for key, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            if step not in self.logged.get(key, ())
        ]
        with mlflow_errors(f"cannot log metrics to MLflow at {self.where['tracking_uri']}"):
            for i in range(0, len(metrics), BATCH):
                self.client.log_batch(self.run_id, metrics=metrics[i : i + BATCH])
        for metric in metrics:
            self.logged.setdefault(metric.key, set()).add(step)

    def end(self, status: str) -> None:
        """The MLflow run ends with ``status`` (FINISHED, KILLED, FAILED); a resume reopens it."""
        if self.started:
            with mlflow_errors(f"cannot end the MLflow run at {self.where['tracking_uri']}"):
                self.client.set_terminated(self.run_id, status)
            self.started = False


@contextlib.contextmanager
def tracked(logger: MlflowLogger | None) -> Iterator[None]:
    """Around ``Trainer.run``: the MLflow run, once started, ends FINISHED when training does, KILLED when
    Ctrl-C stops it and FAILED on an error."""
    if logger is None:
        yield
        return
    try:
        yield
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, (TrainingInterrupted, KeyboardInterrupt)) else "FAILED"
        with contextlib.suppress(VaekitError):  # the error already on its way out is the one to report
            logger.end(status)
        raise
    logger.end("FINISHED")


def new_where() -> dict[str, Any]:
    """Where a new run logs: $MLFLOW_TRACKING_URI, else mlruns/ in the working folder as a file: URI
    (absolute, so that a resume from another folder finds it)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return {"tracking_uri": uri, "local_store": False, "experiment_id": None, "run_id": None}
    local = (Path.cwd() / LOCAL_STORE).resolve().as_uri()
    return {"tracking_uri": local, "local_store": True, "experiment_id": None, "run_id": None}


def recorded_where(run_dir: RunDir) -> dict[str, Any]:
    """The MLflow run recorded in a run folder's mlflow.json, or a one-line error naming the file."""
    try:
        where = json.loads(run_dir.mlflow.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VaekitError(f"cannot read {run_dir.mlflow}: {exc}") from None
    keys = ("tracking_uri", "local_store", "experiment_id", "run_id")
    if not isinstance(where, dict) or any(key not in where for key in keys):
        raise VaekitError(f"{run_dir.mlflow} is not vaekit's record of an MLflow run ({', '.join(keys)})")
    return where


def run_params(run_config: dict[str, Any]) -> dict[str, str]:
    """A run's settings as MLflow params: config.json's training settings by their names (epochs, lr, ...)
    and the model's config as ``model.<name>``; nested tables flattened with dots, lists as JSON, None
    (a setting left to the model's default) left out."""
    params: dict[str, str] = {}

    def add(prefix: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                add(f"{prefix}{key}.", value)
            elif value is not None:
                params[prefix + key] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)

    add("", run_config["train"])
    add("model.", run_config["model"])
    return params


@contextlib.contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """MLflow's errors as one line after ``what``: MlflowException, and for a store it cannot reach or
    write, the errors of requests and of the OS."""
    try:
        yield
    except VaekitError:
        raise
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise VaekitError(f"{what}: {message}") from None
