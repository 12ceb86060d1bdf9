"""--tensorboard: the event files hold every step's loss terms (which average to metrics.jsonl's epoch
figures), the epoch scalars, grids and histograms, and the projector's embedding; a resumed run logs no
step twice; a missing package is a one-line error before the folder is touched."""

from __future__ import annotations

import json
import math
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import error_of, quiet_trainer, tiny_config
from vaekit.training import resume


def events(run):
    accumulator = EventAccumulator(
        str(run / "tb"), size_guidance={"scalars": 0, "images": 0, "histograms": 0}
    )
    accumulator.Reload()
    return accumulator


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_logs_steps_epochs_pictures_histograms_and_the_embedding(tmp_path):
    run = tmp_path / "run"
    trainer = quiet_trainer(tiny_config(epochs=2, tensorboard=True), run)
    trainer.run()
    acc = events(run)
    n_batches, batch, n_train = trainer.n_batches, 64, trainer.n_train
    steps = acc.Scalars("step/loss")
    assert [e.step for e in steps] == list(range(2 * n_batches))
    sizes = [min(batch, n_train - i * batch) for i in range(n_batches)]
    history = metrics(run)
    for epoch in range(2):  # the steps' losses, weighted by batch size, are the epoch's train loss
        values = [e.value for e in steps[epoch * n_batches : (epoch + 1) * n_batches]]
        mean = sum(v * n for v, n in zip(values, sizes, strict=True)) / n_train
        assert mean == pytest.approx(history[epoch]["train_loss"], rel=1e-5)
    tags = acc.Tags()
    assert {"step/recon", "step/kl", "step/lr", "step/images_per_second", "step/kl_weight"} <= set(
        tags["scalars"]
    )
    assert [e.value for e in acc.Scalars("epoch/val_loss")] == pytest.approx([h["val_loss"] for h in history])
    assert all(e.value > 0 for e in acc.Scalars("step/images_per_second"))
    assert {"samples", "reconstructions"} <= set(tags["images"])
    assert [e.step for e in acc.Images("samples")] == [1, 2]
    assert {"posterior/mean", "posterior/logvar"} <= set(tags["histograms"])
    projector = next((run / "tb").glob("*/test_latents"))
    n_test = min(1000, len(trainer.data.x_test))
    assert len((projector / "metadata.tsv").read_text().splitlines()) == n_test
    assert len((projector / "tensors.tsv").read_text().splitlines()) == n_test
    assert (projector / "sprite.png").is_file() and (run / "tb" / "projector_config.pbtxt").is_file()


def test_a_resumed_run_continues_its_curves_without_repeating_a_step(tmp_path):
    run = tmp_path / "run"
    trainer = quiet_trainer(tiny_config(epochs=1, tensorboard=True, fit_prior=False), run)
    trainer.run()
    resume(run, epochs=3, progress=False, log=lambda line: None)
    steps = [e.step for e in events(run).Scalars("step/loss")]
    assert steps == list(range(3 * trainer.n_batches))
    assert [e.step for e in events(run).Scalars("epoch/train_loss")] == [1, 2, 3]
    assert not any(math.isnan(e.value) for e in events(run).Scalars("step/loss"))


def test_without_tensorboard_installed_the_error_is_one_line_and_no_folder_is_made(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    out = tmp_path / "run"
    assert "pip install 'vaekit[tb]'" in error_of(quiet_trainer, tiny_config(tensorboard=True), out)
    assert not out.exists()


def test_an_overwrite_with_tensorboard_logs_into_the_new_run(trained_run):
    """The writer made tb/ when the trainer was built, in the old folder that --overwrite then moved
    aside: the run ended in a traceback from TensorBoard's thread and left the old run hidden."""
    trainer = quiet_trainer(tiny_config(epochs=1, tensorboard=True), trained_run, overwrite=True)
    assert not (trained_run / "tb").exists()  # nothing written before training starts
    trainer.run()
    assert [p.name for p in trained_run.parent.iterdir()] == ["run"]
    assert len(events(trained_run).Scalars("step/loss")) == trainer.n_batches
