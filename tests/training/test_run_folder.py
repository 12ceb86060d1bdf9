"""The run folder's checks before a resume (training/run_folder.py): which checkpoint a resume starts
from when last.pt is damaged or gone, and an --epochs that a run stopped inside a later epoch cannot
end at. Both found by the run folder's state machine (test_run_folder_states.py)."""

from __future__ import annotations

import pytest

from tests.conftest import error_of, folder_snapshot, quiet_trainer, signal_at_step, tiny_config
from tests.training.test_loop import assert_same_run
from vaekit.training import TrainingInterrupted, resume


@pytest.mark.parametrize("damage", ["delete", "empty"])
def test_a_resume_without_last_pt_goes_on_from_the_newest_intact_epoch_checkpoint(tmp_path, damage):
    """A missing last.pt was refused ("no checkpoint to resume from") beside intact epoch_NNN.pt files,
    which a damaged one falls back on."""
    quiet_trainer(tiny_config(epochs=3), tmp_path / "straight").run()
    run = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=2, save_every=1), run).run()
    last = run / "checkpoints" / "last.pt"
    last.unlink() if damage == "delete" else last.write_bytes(b"")
    lines = []
    resume(run, epochs=3, progress=False, log=lines.append)
    assert any("resuming from epoch_002.pt, the newest intact checkpoint" in line for line in lines), lines
    assert_same_run(tmp_path / "straight", run)


def test_a_resume_with_no_checkpoint_at_all_says_so(trained_run):
    (trained_run / "checkpoints" / "last.pt").unlink()
    message = error_of(resume, trained_run, epochs=3, progress=False, log=lambda line: None)
    assert message == f"{trained_run} has no checkpoint to resume from ({trained_run}/checkpoints/last.pt)"


def test_epochs_behind_where_a_run_stopped_are_refused(tmp_path):
    """Stopped inside epoch 3, --epochs 2 trained that epoch to its end ("epoch 3/2"), past what was asked."""
    run = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=2), run).run()
    trainer = quiet_trainer(tiny_config(epochs=4), run, resume=True)
    signal_at_step(trainer, 5)
    with pytest.raises(TrainingInterrupted, match="epoch 3 at step 5/"):
        trainer.run()
    before = folder_snapshot(run)
    for epochs in (1, 2):
        message = error_of(resume, run, epochs=epochs, progress=False, log=lambda line: None)
        assert message == (
            f"--epochs {epochs}: {run} stopped inside epoch 3 (at step 5/21); pass --epochs 3 or more to "
            "finish that epoch"
        )
    assert folder_snapshot(run) == before
    resume(run, epochs=3, progress=False, log=lambda line: None)
    quiet_trainer(tiny_config(epochs=3), tmp_path / "straight").run()
    assert_same_run(tmp_path / "straight", run)
