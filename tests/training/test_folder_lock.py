"""One training process per run folder (training/folder_lock.py): a second train into a folder being
trained is refused; one that read the folder before another train changed it is refused; --overwrite
replaces a folder in one step that no other train can get between; and a run stopped with a checkpoint
keeps it. Each of these was found by the run folder's state machine (test_run_folder_states.py)."""

from __future__ import annotations

import fcntl
import json
import os
import signal

import pytest
import torch

import vaekit.training.loop
from tests.conftest import error_of, folder_snapshot, quiet_trainer, signal_at_step, tiny_config
from tests.training.test_loop import metrics, weights
from vaekit.training import TrainingInterrupted, resume

BUSY = "is being trained by another process: wait for it to end, or give another --out"


def test_a_second_train_into_a_folder_being_trained_is_refused_and_harms_nothing(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)  # the lock a training process holds on its folder
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        message = error_of(quiet_trainer(tiny_config(epochs=1), out).run)
    finally:
        os.close(fd)
    assert message == f"{out} {BUSY}"
    assert list(out.iterdir()) == []
    # one that read the folder, then found another run in it when it came to train: refused, no harm
    late = quiet_trainer(tiny_config(epochs=1), out)
    quiet_trainer(tiny_config(epochs=1), out).run()
    before = folder_snapshot(out)
    assert "changed while this run was starting" in error_of(late.run)
    assert folder_snapshot(out) == before
    quiet_trainer(tiny_config(epochs=2), out, resume=True).run()  # the lock is given back
    assert len(metrics(out)) == 2


def test_an_overwrite_started_while_another_overwrite_trains_is_refused(trained_run):
    """--overwrite moves the old folder aside and trains in a new one: the new one is locked before any
    other train can take it (it was not, and a second --overwrite moved the first's folder aside too)."""
    refusals = []

    def start_a_second_overwrite(record):
        if record["epoch"] == 1:  # the first is training in its new folder
            second = quiet_trainer(tiny_config(epochs=1), trained_run, overwrite=True)
            refusals.append(error_of(second.run))

    first = quiet_trainer(tiny_config(epochs=2), trained_run, overwrite=True)
    first.on_epoch = start_a_second_overwrite
    first.run()
    assert refusals == [f"{trained_run} {BUSY}"]
    assert len(metrics(trained_run)) == 2 and json_epochs(trained_run) == 2
    assert [p.name for p in trained_run.parent.iterdir()] == ["run"]  # no folder moved aside is left


def json_epochs(run) -> int:
    return json.loads((run / "config.json").read_text())["epochs_completed"]


def test_a_train_that_read_the_checkpoint_before_another_wrote_a_newer_one_is_refused(
    trained_run, monkeypatch
):
    """The folder's state is taken before the checkpoint is read (it was taken after: a second resume
    that read epoch 2 while another went on to 4 came to train from 2 and lost epochs 3 and 4)."""
    real_open_loggers, calls = vaekit.training.loop.open_loggers, []

    def another_train_meanwhile(trainer, checkpoint):  # called after the checkpoint was read
        calls.append(trainer)
        if len(calls) == 1:  # the late one's: the other starts, and ends, now
            quiet_trainer(tiny_config(epochs=4), trained_run, resume=True).run()
        return real_open_loggers(trainer, checkpoint)

    monkeypatch.setattr(vaekit.training.loop, "open_loggers", another_train_meanwhile)
    late = quiet_trainer(tiny_config(epochs=3), trained_run, resume=True)
    assert late.state.epoch == 2  # what it read: the run before the other went on
    before = folder_snapshot(trained_run)
    assert "changed while this run was starting" in error_of(late.run)
    assert folder_snapshot(trained_run) == before
    assert len(metrics(trained_run)) == 4


def test_a_stop_signal_in_an_overwrite_first_epoch_keeps_the_new_run_it_says_is_saved(trained_run, tmp_path):
    """SIGTERM saves the new run's position and says so: the new run stays, the old one is gone (the
    old was put back, and --resume continued it instead of what the message described)."""
    trainer = quiet_trainer(tiny_config(epochs=2, latent_dim=3), trained_run, overwrite=True)
    signal_at_step(trainer, 5, signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM in epoch 1 at step 5/"):
        trainer.run()
    checkpoint = torch.load(trained_run / "checkpoints" / "last.pt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["step"]) == (0, 5)
    assert [p.name for p in trained_run.parent.iterdir()] == ["run"]
    resume(trained_run, progress=False, log=lambda line: None)  # what the message says to run
    straight = tmp_path / "straight"
    quiet_trainer(tiny_config(epochs=2, latent_dim=3), straight).run()
    assert all(
        torch.equal(a, b)
        for a, b in zip(weights(straight).values(), weights(trained_run).values(), strict=True)
    )
    assert metrics(trained_run) == metrics(straight)
