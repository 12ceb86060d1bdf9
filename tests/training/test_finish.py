"""The end of a run (training/finish.py), and its repair: a finished run whose model.safetensors was
damaged or lost is finished again by ``vaekit train --resume`` from its checkpoint, bit for bit (it
answered "already trained" and left the file as it was: found by the run folder's state machine)."""

from __future__ import annotations

import pytest

from tests.conftest import error_of, folder_snapshot, quiet_trainer, tiny_config
from vaekit.cli import main
from vaekit.training import RunDir
from vaekit.training.finish import rebuild_model, saved_model_fault


def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("settings", [{}, {"ema": 0.9}], ids=["trained weights", "their average"])
@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_train_resume_rebuilds_a_finished_run_whose_weights_file_is_damaged(
    tmp_path, capsys, settings, damage
):
    run = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=2, **settings), run).run()
    before = folder_snapshot(run)
    flip_a_byte(run / "model.safetensors") if damage == "flip" else (run / "model.safetensors").unlink()
    assert saved_model_fault(RunDir(run)) is not None
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")]) == 1
    assert f"vaekit train --resume --out {run} writes it again" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{run} has already trained 2 epochs; its model.safetensors is rebuilt" in out
    assert "rebuilt from the checkpoint of epoch 2" in out and "training mlp" not in out  # nothing to train
    after = folder_snapshot(run)
    for name in ("model.safetensors", "config.json", "eval.json", "checkpoints/last.pt", "metrics.jsonl"):
        assert after[name] == before[name], name
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0  # intact: nothing to do
    assert "pass a larger --epochs to extend it" in capsys.readouterr().out
    assert folder_snapshot(run) == after


def test_the_best_epoch_of_early_stopping_is_not_rebuilt_from_a_later_checkpoint(trained_run):
    """With --early-stopping the file held the best epoch's weights; last.pt holds the last epoch's."""
    trainer = quiet_trainer(tiny_config(early_stopping=5), trained_run, resume=True)
    trainer.state.best_epoch = 1
    before = folder_snapshot(trained_run)
    message = error_of(rebuild_model, trainer, "corrupt weights file X")
    assert message == (
        "corrupt weights file X; it held epoch 1's weights (--early-stopping), which no checkpoint keeps: "
        "train the run again with --overwrite"
    )
    assert folder_snapshot(trained_run) == before


def test_a_run_killed_between_its_last_checkpoint_and_its_end_is_finished_by_resume(
    trained_run, tmp_path, monkeypatch, capsys
):
    """The last epoch's checkpoint said 'trained'; eval.json and the fitted prior were not written:
    train --resume answered 'already trained' and left the run without its end."""
    import vaekit.training.loop

    straight = tmp_path / "straight"
    quiet_trainer(tiny_config(epochs=3), straight).run()

    def killed(trainer):
        raise KeyboardInterrupt  # where a SIGKILL could fall: after the last epoch's files

    monkeypatch.setattr(vaekit.training.loop, "finish_run", killed)
    with pytest.raises(KeyboardInterrupt):
        quiet_trainer(tiny_config(epochs=3), trained_run, resume=True).run()
    monkeypatch.undo()
    assert main(["train", "--resume", "--out", str(trained_run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert (
        "has already trained 3 epochs; its end of training (eval.json, the fitted prior) is run again" in out
    )
    finished, expected = folder_snapshot(trained_run), folder_snapshot(straight)
    for name in ("model.safetensors", "eval.json"):  # the weights with their fitted prior, the evaluation
        assert finished[name] == expected[name], name
