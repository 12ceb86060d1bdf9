"""--mlflow: the MLflow run holds the run's settings as params, metrics.jsonl's numbers at step = epoch,
the test evaluation, and eval.json and the pictures as artifacts; a run stopped by Ctrl-C (or killed
before an epoch reached MLflow) and resumed goes on in the same MLflow run with each epoch logged once;
where it logs follows MLFLOW_TRACKING_URI; a missing package or an unusable store is a one-line error
before the run folder is touched."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import error_of, quiet_trainer, signal_at_step, tiny_config
from vaekit.cli import main
from vaekit.training import TrainingInterrupted, resume
from vaekit.training.config_files import read_config_file
from vaekit.training.tracking import MlflowLogger

STEPS = 21  # training steps an epoch of tiny_config on the digits (1,294 images, batches of 64)


@pytest.fixture(autouse=True)
def _mlflow_environment(monkeypatch, tmp_path):
    """Each test logs in its own folder, with none of the reader's MLflow settings; the variable vaekit
    sets for its local store is removed afterwards (monkeypatch then restores any the reader had)."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def mlflow_run(run: Path):
    """The client and the MLflow run recorded in the run folder's mlflow.json."""
    where = json.loads((run / "mlflow.json").read_text())
    client = MlflowClient(tracking_uri=where["tracking_uri"])
    return client, client.get_run(where["run_id"])


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def artifact_paths(client: MlflowClient, run_id: str, folder: str | None = None) -> list[str]:
    paths = []
    for entry in client.list_artifacts(run_id, folder):
        paths += artifact_paths(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return paths


def test_a_run_logs_its_settings_epochs_evaluation_and_pictures_into_mlruns(tmp_path):
    run = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=2, mlflow=True), run).run()
    where = json.loads((run / "mlflow.json").read_text())
    assert where["tracking_uri"] == (tmp_path / "mlruns").resolve().as_uri()  # the default, absolute
    client, found = mlflow_run(run)
    assert found.info.status == "FINISHED" and found.info.run_name == "run"
    assert client.get_experiment(found.info.experiment_id).name == "vaekit"
    assert found.data.tags["vaekit.run_folder"] == str(run.resolve())
    config = json.loads((run / "config.json").read_text())
    params = found.data.params
    flat = {key: value for key, value in config["train"].items() if not isinstance(value, dict)}
    tables = {key: table for key, table in config["train"].items() if isinstance(table, dict)}
    flat |= {f"{key}.{k}": v for key, table in tables.items() for k, v in table.items()}  # part_options.k
    for key, value in flat.items():
        if value is None:  # left to the model's default: no param
            assert key not in params
        else:
            assert params[key] == (json.dumps(value) if isinstance(value, list) else str(value)), key
    assert (params["epochs"], params["hidden"], params["mlflow"]) == ("2", "[32]", "True")
    assert params["lr"] == "0.001"  # filled in by the settings: the model's default
    assert (params["model.name"], params["model.latent_dim"], params["model.image_shape"]) == (
        "mlp", "2", "[1, 8, 8]"
    )  # fmt: skip
    records = metrics(run)
    for key in records[0]:
        if key != "epoch" and records[0][key] is not None:
            expected = [(r["epoch"], pytest.approx(r[key])) for r in records]
            assert history(client, found.info.run_id, key) == expected, key
    evaluation = json.loads((run / "eval.json").read_text())
    assert history(client, found.info.run_id, "test_loss") == [(2, pytest.approx(evaluation["test_loss"]))]
    artifacts = set(artifact_paths(client, found.info.run_id))
    assert {
        "eval.json", "loss_curve.png", "samples.gif", "samples/epoch_001.png", "samples/epoch_002.png",
        "samples/prior.png", "reconstructions/epoch_001.png", "reconstructions/epoch_002.png",
    } == artifacts  # fmt: skip


def test_ctrl_c_then_resume_goes_on_in_the_same_mlflow_run_each_epoch_once(tmp_path):
    run = tmp_path / "run"
    trainer = quiet_trainer(tiny_config(epochs=2, mlflow=True, fit_prior=False), run)
    signal_at_step(trainer, STEPS + 6)  # mid-way through epoch 2
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    client, stopped = mlflow_run(run)
    assert stopped.info.status == "KILLED"
    assert [step for step, _ in history(client, stopped.info.run_id, "train_loss")] == [1]
    resume(run, epochs=3, progress=False, log=lambda line: None)  # --epochs extended on resume
    client, resumed = mlflow_run(run)
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
    records = metrics(run)
    for key in ("train_loss", "val_loss", "train_kl", "seconds"):
        expected = [(r["epoch"], pytest.approx(r[key])) for r in records]
        assert history(client, resumed.info.run_id, key) == expected, key
    # params cannot change in MLflow: the run's first value stays, the new one is a tag
    assert resumed.data.params["epochs"] == "2" and resumed.data.tags["resumed.epochs"] == "3"
    assert len(client.search_runs([resumed.info.experiment_id])) == 1


def test_an_epoch_checkpointed_but_not_logged_before_a_kill_is_logged_once_on_resume(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_epoch = MlflowLogger.epoch

    def killed_before_epoch_2(self, record):  # the process dies between the checkpoint and MLflow
        if record["epoch"] == 2:
            raise RuntimeError("killed")
        real_epoch(self, record)

    monkeypatch.setattr(MlflowLogger, "epoch", killed_before_epoch_2)
    with pytest.raises(RuntimeError, match="killed"):
        quiet_trainer(tiny_config(epochs=3, mlflow=True, fit_prior=False), run).run()
    client, failed = mlflow_run(run)
    assert failed.info.status == "FAILED"
    assert [step for step, _ in history(client, failed.info.run_id, "train_loss")] == [1]
    monkeypatch.setattr(MlflowLogger, "epoch", real_epoch)
    resume(run, progress=False, log=lambda line: None)
    client, resumed = mlflow_run(run)
    assert resumed.info.status == "FINISHED"
    expected = [(r["epoch"], pytest.approx(r["train_loss"])) for r in metrics(run)]
    assert [e for e, _ in expected] == [1, 2, 3]
    assert history(client, resumed.info.run_id, "train_loss") == expected


def test_mlflow_may_be_turned_on_when_resuming_and_logs_the_epochs_before(tmp_path):
    run = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=1, fit_prior=False), run).run()
    assert not (run / "mlflow.json").exists()
    resume(run, epochs=2, mlflow=True, progress=False, log=lambda line: None)
    client, found = mlflow_run(run)
    assert [step for step, _ in history(client, found.info.run_id, "val_loss")] == [1, 2]
    assert found.data.params["mlflow"] == "True"


def test_the_cli_flag_logs_where_mlflow_tracking_uri_says(tmp_path, monkeypatch):
    store = tmp_path / "elsewhere" / "store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store of the user's own: their choice
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "digits-experiments")
    out = tmp_path / "cli-run"
    argv = ["train", "--dataset", "digits", "--hidden", "32", "--latent-dim", "2", "--epochs", "1"]
    argv += ["--batch-size", "64", "--no-fit-prior", "--no-progress", "--mlflow", "--out", str(out)]
    assert main(argv) == 0
    assert not (tmp_path / "mlruns").exists()
    client, found = mlflow_run(out)
    assert json.loads((out / "mlflow.json").read_text())["tracking_uri"] == store.as_uri()
    assert client.get_experiment(found.info.experiment_id).name == "digits-experiments"
    assert found.info.status == "FINISHED" and found.data.params["latent_dim"] == "2"
    assert store.is_dir()


def test_a_config_file_turns_it_on(tmp_path):
    (tmp_path / "exp.toml").write_text('[train]\ndataset = "digits"\nmlflow = true\n')
    assert read_config_file(tmp_path / "exp.toml") == {"dataset": "digits", "mlflow": True}


def test_without_mlflow_installed_the_error_is_one_line_and_no_folder_is_made(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails as if not installed
    out = tmp_path / "run"
    message = error_of(quiet_trainer, tiny_config(mlflow=True), out)
    assert message == "--mlflow needs MLflow: pip install 'vaekit[mlflow]'"
    assert not out.exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(
    "uri, says",
    [
        ("bogus://nowhere", "bogus://nowhere"),
        ("http://127.0.0.1:1", "Connection refused"),  # nothing listens on port 1
        ("file-store", "MLFLOW_ALLOW_FILE_STORE"),  # MLflow 3's refusal of a file store not allowed
    ],
)
def test_an_unusable_tracking_uri_is_a_one_line_error_before_the_folder(tmp_path, monkeypatch, uri, says):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's retries would take minutes
    out = tmp_path / "run"
    message = error_of(quiet_trainer, tiny_config(mlflow=True), out)
    assert message.startswith(f"cannot use MLflow at {uri}: ") and says in message
    assert not out.exists()


def test_a_resume_whose_mlflow_run_is_gone_says_how_to_go_on(tmp_path):
    run = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=1, mlflow=True, fit_prior=False), run).run()
    client, found = mlflow_run(run)
    client.delete_run(found.info.run_id)
    message = error_of(quiet_trainer, tiny_config(epochs=2, mlflow=True, fit_prior=False), run, resume=True)
    assert "not found or deleted" in message and "mlflow.json" in message
