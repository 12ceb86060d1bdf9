"""Preemption: SIGTERM and SIGUSR1 (what Slurm, Kubernetes and torchrun send before they take a machine
back) sent to a real training process save the exact position, exit with 128 + the signal's number,
and ``--resume`` continues bit-identically, as Ctrl-C does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import quiet_trainer, tiny_config
from tests.training.test_loop import assert_same_run
from vaekit.training import Trainer, TrainingInterrupted, resume, resumed_config
from vaekit.training.interrupt import StopSignals

TINY = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "2", "--batch-size", "64", "--no-progress"]


def wait_for(path, process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert path.exists(), "training never wrote its first epoch"


def test_a_preempted_run_saves_its_step_and_resumes_bit_identically(tmp_path):
    stop = signal.SIGTERM  # SIGUSR1 takes the same path: test_a_signal_in_process_stops_the_loop_at_the_step
    out = tmp_path / "preempted"
    command = [sys.executable, "-m", "vaekit", "train", *TINY, "--epochs", "400", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(out / "metrics.jsonl", process)
    time.sleep(0.15)  # somewhere inside a later epoch
    process.send_signal(stop)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + stop, err
    name = signal.Signals(stop).name
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vaekit train: stopped by {name} in epoch"), err
    checkpoint = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    epoch, step = checkpoint["epoch"], checkpoint["step"]
    assert 1 <= epoch < 400 and step >= 1  # saved by the signal, inside an epoch
    assert f"in epoch {epoch + 1} at step {step}/" in lines[0]
    resume(out, epochs=epoch + 1, progress=False, log=lambda line: None)
    quiet_trainer(tiny_config(epochs=epoch + 1), tmp_path / "straight").run()
    assert_same_run(tmp_path / "straight", out)


def test_a_second_sigterm_stops_at_once_and_sigusr1_is_remembered_not_repeated():
    with StopSignals() as stop:
        signal.raise_signal(signal.SIGUSR1)
        signal.raise_signal(signal.SIGUSR1)  # a repeated warning changes nothing
        assert stop.received == signal.SIGUSR1
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)  # the grace period is running out
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back
    assert TrainingInterrupted("x", signal.SIGTERM).exit_status == 143
    assert TrainingInterrupted("x").exit_status == 130


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_signal_in_process_stops_the_loop_at_the_step(tmp_path, stop):
    trainer = quiet_trainer(tiny_config(epochs=2), tmp_path / "run")
    real_loss, calls = trainer.model.loss, []

    def loss_then_sigterm(*args, **kwargs):
        calls.append("generator" not in kwargs)
        if sum(calls) == 5 and calls[-1]:
            signal.raise_signal(stop)
        return real_loss(*args, **kwargs)

    trainer.model.loss = loss_then_sigterm
    name = signal.Signals(stop).name
    with pytest.raises(TrainingInterrupted, match=f"stopped by {name} in epoch 1 at step 5/21") as info:
        trainer.run()
    assert info.value.exit_status == 128 + stop
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["step"]) == (0, 5)


def test_a_resume_stopped_before_its_first_epoch_ends_leaves_a_run_that_loads(tmp_path, capsys):
    """Found by the run folder's state machine (test_run_folder_states.py): the resume dropped the fitted
    prior from config.json at its start while model.safetensors kept it, so a stop before the first
    epoch's save left a folder that sample and evaluate refused ("weights ... do not match its config")."""
    from vaekit.cli import main

    out = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=1), out).run()  # ends by fitting a mixture prior
    trainer = Trainer(resumed_config(out, epochs=3), out, resume=True, progress=False, log=lambda line: None)
    real_loss, calls = trainer.model.loss, []

    def loss_then_sigterm(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGTERM)
        return real_loss(*args, **kwargs)

    trainer.model.loss = loss_then_sigterm
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    capsys.readouterr()
    code = main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.png")])
    assert code == 0, capsys.readouterr().err
    assert "from the fitted prior" in capsys.readouterr().out  # the weights and config.json still agree
    resume(out, epochs=3, progress=False, log=lambda line: None)
    assert json.loads((out / "config.json").read_text())["epochs_completed"] == 3
