"""Sweeps across machines on a real database: workers share a study through `--storage postgresql://`
(Debian's PostgreSQL, started here on loopback and stopped after). Every trial runs once, and a worker
killed mid-trial loses nothing: its trial stops beating, another worker fails it and runs its settings
again (Optuna's heartbeat and retry)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.serve.conftest import free_port

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: then run it as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def database():
    if not BIN:
        pytest.skip("PostgreSQL is not installed (the Makefile installs Debian's postgresql)")
    pytest.importorskip("psycopg2")
    # not under pytest's folders, which are the owner's alone: the postgres user must reach this one
    folder = Path(tempfile.mkdtemp(prefix="vaekit-postgres-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run(as_postgres([f"{BIN[-1]}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        as_postgres([f"{BIN[-1]}/postgres", "-D", str(data), "-p", str(port), "-k", str(folder),
                     "-c", "listen_addresses=127.0.0.1"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([f"{BIN[-1]}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:  # fmt: skip
            assert time.monotonic() < deadline and server.poll() is None, "PostgreSQL did not start"
            time.sleep(0.2)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def sweep_file(folder: Path, url: str, study: str, epochs: int) -> Path:
    path = folder / f"{study}.toml"
    path.write_text(
        f'[train]\ndataset = "digits"\nhidden = [16]\nlatent_dim = 2\nepochs = {epochs}\nfit_prior = false\n'
        "[search]\nlr = [1e-3, 3e-2]\n"
        f'[sweep]\nstudy = "{study}"\npruner = "none"\nseed = 0\nstorage = "{url}"\n'
        "heartbeat_seconds = 1\ngrace_seconds = 2\n"
    )
    return path


def worker(config: Path, out: Path, trials: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "vaekit", "sweep", "--config", str(config), "--trials", str(trials),
               "--out", str(out)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_workers_on_postgresql_run_every_trial_once(database, tmp_path):
    config = sweep_file(tmp_path, database, "shared", epochs=2)
    workers = [worker(config, tmp_path / name, 2) for name in ("a", "b")]  # two machines' folders
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    import optuna

    trials = optuna.load_study(study_name="shared", storage=database).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    summaries = [json.loads((tmp_path / name / "trials.json").read_text()) for name in ("a", "b")]
    # each worker's report covers the study as it was when it finished: the last one's, all of it
    assert sorted(len(s["trials"]) for s in summaries)[-1] == 4 and all(
        len(s["trials"]) >= 2 for s in summaries
    )


def test_a_worker_killed_mid_trial_loses_nothing(database, tmp_path):
    import optuna

    long = sweep_file(tmp_path, database, "preempted", epochs=400)
    first = worker(long, tmp_path / "first", 1)
    trial_run = tmp_path / "first" / "trials" / "0000" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not trial_run.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # the machine is gone: no goodbye, the trial stays RUNNING
    first.wait()
    study = optuna.load_study(study_name="preempted", storage=database)
    killed = study.trials[0]
    assert killed.state == optuna.trial.TrialState.RUNNING
    time.sleep(3)  # past the grace period: the trial's heartbeat has stopped
    short = tmp_path / "short.toml"
    short.write_text(long.read_text().replace("epochs = 400", "epochs = 2"))
    second = worker(short, tmp_path / "second", 2)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 0, output
    trials = optuna.load_study(study_name="preempted", storage=database).trials
    states = {t.number: t.state for t in trials}
    assert (
        states[0] == optuna.trial.TrialState.FAIL
        and list(states.values()).count(optuna.trial.TrialState.RUNNING) == 0
    )
    from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

    retried = [t for t in trials if t.number != 0 and Retry.retried_trial_number(t) == 0]
    assert len(retried) == 1 and retried[0].params == killed.params  # the same settings, run again
    assert retried[0].state == optuna.trial.TrialState.COMPLETE
    assert (tmp_path / "second" / "trials.json").is_file()
