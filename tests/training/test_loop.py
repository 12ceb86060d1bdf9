"""The training loop: reproducibility, exact resume (after epochs, Ctrl-C, a hard kill), NaN, folders."""

import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_RUNS, error_of, folder_snapshot, quiet_trainer, signal_at_step, tiny_config
from vaekit.models import MODELS, LossOutput
from vaekit.training import TrainConfig, Trainer, TrainingInterrupted, resume
from vaekit.utils.errors import VaekitError


def weights(run):
    return load_file(str(run / "model.safetensors"))


def metrics(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def assert_same_run(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert metrics(a) == metrics(b)
    assert json.loads((a / "eval.json").read_text()) == json.loads((b / "eval.json").read_text())


def test_run_folder_layout(tmp_path):
    out = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=2, save_every=1), out).run()
    for name in (
        "config.json",
        "model.safetensors",
        "metrics.jsonl",
        "loss_curve.png",
        "eval.json",
        "samples/epoch_001.png",
        "samples/epoch_002.png",
        "samples/prior.png",
        "reconstructions/epoch_002.png",
        "checkpoints/last.pt",
        "checkpoints/epoch_001.pt",
        "checkpoints/epoch_002.pt",
    ):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["seed"] == 0 and config["train"]["lr"] == 1e-3
    assert config["model"] == {
        "name": "mlp",
        "image_shape": [1, 8, 8],
        "latent_dim": 2,
        "hidden": [32],
        "likelihood": "bernoulli",
        "decoder_std": None,
        # fitted at the end of training: a mixture of 8 Gaussians per digit over the 2-D latents
        "prior": {"kind": "gaussian_mixture", "latent_dim": 2, "components": 8, "num_classes": 10},
    }
    assert config["torch_version"] == torch.__version__ and config["vaekit_version"]
    assert config["data"]["data_dir"] == os.environ["VAEKIT_DATA"]  # the default, resolved
    assert config["epochs_completed"] == 2 and config["data"]["n_train"] + config["data"]["n_val"] == 1438
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert set(r) >= {"epoch", "train_loss", "train_recon", "train_kl", "val_loss", "seconds"}
        assert r["train_loss"] == pytest.approx(r["train_recon"] + r["train_kl"])
    assert set(json.loads((out / "eval.json").read_text())) >= {"test_loss", "test_recon", "test_kl"}


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        quiet_trainer(tiny_config(seed=seed), tmp_path / name).run()
    assert_same_run(tmp_path / "a", tmp_path / "b")
    assert metrics(tmp_path / "a") != metrics(tmp_path / "c")


def test_resume_extends_a_finished_run_exactly(tmp_path):
    quiet_trainer(tiny_config(epochs=3), tmp_path / "straight").run()
    quiet_trainer(tiny_config(epochs=1), tmp_path / "resumed").run()
    resume(tmp_path / "resumed", epochs=3, progress=False, log=lambda line: None)
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")
    assert len(list((tmp_path / "resumed" / "samples").glob("epoch_*.png"))) == 3


def test_ctrl_c_saves_the_position_inside_the_epoch_and_resume_is_exact(tmp_path):
    quiet_trainer(tiny_config(epochs=2), tmp_path / "straight").run()
    trainer = quiet_trainer(tiny_config(epochs=2), tmp_path / "stopped")
    signal_at_step(trainer, 27)  # epoch 2 (21 steps an epoch), mid-way
    with pytest.raises(TrainingInterrupted, match="epoch 2 at step 6/21"):
        trainer.run()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    ckpt = torch.load(tmp_path / "stopped" / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 6)
    resume(tmp_path / "stopped", progress=False, log=lambda line: None)
    assert_same_run(tmp_path / "straight", tmp_path / "stopped")


def test_hard_kill_then_resume_is_exact(tmp_path):
    """SIGKILL a real training process between epochs; resuming gives the uninterrupted run's weights."""
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "vaekit",
        "train",
        "--dataset",
        "digits",
        "--hidden",
        "32",
        "--latent-dim",
        "2",
        "--batch-size",
        "64",
        "--epochs",
        "400",
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    done = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    assert 1 <= done < 400, "the process should have been killed part-way"
    resume(out, epochs=done + 1, progress=False, log=lambda line: None)
    quiet_trainer(tiny_config(epochs=done + 1), tmp_path / "straight").run()
    assert_same_run(tmp_path / "straight", out)


def nan_losses(trainer, poisoned) -> None:
    """Make the model's loss NaN on the training calls (counted from 1) for which ``poisoned(n)`` holds;
    validation calls (they pass a generator) are left alone."""
    real_loss, calls = trainer.model.loss, []

    def loss(*args, **kwargs):
        training = "generator" not in kwargs
        calls.append(training)
        objective, terms = real_loss(*args, **kwargs)
        if training and poisoned(sum(calls)):
            return LossOutput(objective * float("nan"), {k: v * float("nan") for k, v in terms.items()})
        return LossOutput(objective, terms)

    trainer.model.loss = loss


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = quiet_trainer(tiny_config(epochs=3), tmp_path / "run")
    nan_losses(trainer, lambda n: n > 21)  # all of epoch 2 (21 steps an epoch)
    # every update of epoch 2 is skipped, not applied: past --max-skipped (5%) the run stops
    with pytest.raises(
        VaekitError,
        match="2 of 2 updates in epoch 2 were skipped \\(the loss was not finite\\).*after epoch 1",
    ):
        trainer.run()
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "run").values())


def test_one_nan_batch_is_skipped_counted_and_the_run_goes_on(tmp_path):
    trainer = quiet_trainer(tiny_config(epochs=2), tmp_path / "run")
    nan_losses(trainer, lambda n: n == 30)  # one batch of epoch 2
    trainer.run()
    history = metrics(tmp_path / "run")
    assert [h.get("skipped_updates", 0) for h in history] == [0, 1]
    assert math.isfinite(history[1]["train_loss"])
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "run").values())


def test_a_nan_before_the_first_epoch_ends_says_nothing_was_saved_and_the_same_command_starts_afresh(
    tmp_path,
):
    out = tmp_path / "run"
    trainer = quiet_trainer(tiny_config(epochs=2), out)
    nan_losses(trainer, lambda n: True)
    message = error_of(trainer.run)
    assert "No epoch was completed, so nothing was saved: the same command starts afresh" in message
    assert not out.exists()  # a new run that kept nothing leaves no folder (utils.targets)
    assert error_of(resume, out, log=lambda line: None) == f"run folder {out} does not exist"
    quiet_trainer(tiny_config(epochs=2), out).run()  # no --overwrite needed: nothing was there to keep
    assert len(metrics(out)) == 2
    (out / "notes.txt").write_text("mine")  # a folder with anything else in it is still refused
    (out / "checkpoints" / "last.pt").unlink()
    assert "already holds another run" in error_of(quiet_trainer, tiny_config(), out)


def test_existing_run_is_refused_and_left_alone(trained_run):
    before = folder_snapshot(trained_run)
    with pytest.raises(VaekitError, match="already holds another run"):
        quiet_trainer(tiny_config(), trained_run)
    assert folder_snapshot(trained_run) == before


def test_overwrite_that_fails_restores_the_old_run(trained_run):
    before = folder_snapshot(trained_run)
    trainer = quiet_trainer(tiny_config(epochs=1), trained_run, overwrite=True)
    trainer.model.loss = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        trainer.run()
    assert folder_snapshot(trained_run) == before
    assert [p.name for p in trained_run.parent.iterdir()] == ["run"]  # no backup left behind


def test_overwrite_replaces(trained_run):
    quiet_trainer(tiny_config(epochs=1, latent_dim=3), trained_run, overwrite=True).run()
    assert json.loads((trained_run / "config.json").read_text())["model"]["latent_dim"] == 3
    assert not (trained_run / "samples" / "epoch_002.png").exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 0, "epochs must be"),
        ("batch_size", -1, "batch size"),
        ("latent_dim", 0, "latent dim"),
        ("lr", float("nan"), "learning rate"),
        ("lr", 0.0, "learning rate"),
        ("val_fraction", 1.0, "val fraction"),
        ("hidden", [], "hidden"),
        ("device", "tpu", "unknown device"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, field, value, message):
    with pytest.raises(VaekitError, match=message):
        quiet_trainer(tiny_config(**{field: value}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_run_files_get_the_usual_permissions(trained_run_template):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "checkpoints/last.pt"):
        assert (trained_run_template / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_resume_refuses_changes_to_what_the_run_is_built_on(trained_run):
    before = folder_snapshot(trained_run)
    with pytest.raises(VaekitError, match="--beta 4.0 differs from the run's 1.0"):
        resume(trained_run, epochs=3, beta=4.0, progress=False, log=lambda line: None)
    with pytest.raises(VaekitError, match="unknown training setting 'flavour'"):
        resume(trained_run, flavour=True)
    assert folder_snapshot(trained_run) == before


def test_the_loss_curve_and_animation_are_drawn_sparingly_but_always_for_the_last_epoch(
    tmp_path, monkeypatch
):
    from PIL import Image

    import vaekit.training.loggers as loggers
    import vaekit.training.loop as loop

    drawn = []
    original = loop.save_summaries
    monkeypatch.setattr(loggers, "SUMMARY_SECONDS", 1e9)  # only the first epoch, then the end
    monkeypatch.setattr(
        loop,
        "save_summaries",
        lambda run, epoch, history: (drawn.append(epoch), original(run, epoch, history)),
    )
    out = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=4, fit_prior=False), out).run()
    assert drawn == [1, 4]
    assert all((out / "samples" / f"epoch_{e:03d}.png").is_file() for e in range(1, 5))  # every epoch's grid
    with Image.open(out / "samples.gif") as gif:
        assert gif.n_frames == 4
    assert (out / "loss_curve.png").is_file()


def test_conv_models_train_on_channels_last_weights_and_save_them_as_they_are(tmp_path):
    import vaekit

    config = tiny_config(model="conv", hidden=None, channels=[4, 8], epochs=1)
    trainer = quiet_trainer(config, tmp_path / "run")
    convs = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert not convs[1].weight.is_contiguous()  # the layout really differs from the default
    trainer.run()
    loaded = vaekit.load(tmp_path / "run").state_dict()
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_a_conv_run_resumes_exactly(tmp_path):
    config = dict(model="conv", hidden=None, channels=[4, 8], fit_prior=False)
    quiet_trainer(tiny_config(epochs=2, **config), tmp_path / "whole").run()
    quiet_trainer(tiny_config(epochs=1, **config), tmp_path / "parts").run()
    resume(tmp_path / "parts", epochs=2, progress=False, log=lambda line: None)
    assert_same_run(tmp_path / "whole", tmp_path / "parts")


def test_bf16_on_a_cpu_without_bf16_units_is_called_out(tmp_path, monkeypatch):
    from vaekit.training import loop, step

    lines = []
    monkeypatch.setattr(step, "cpu_has_bf16", lambda: False)
    loop.Trainer(tiny_config(precision="bf16"), tmp_path / "run", progress=False, log=lines.append)
    assert any("no native bfloat16" in line for line in lines)
    monkeypatch.setattr(step, "cpu_has_bf16", lambda: True)
    lines.clear()
    loop.Trainer(tiny_config(precision="bf16"), tmp_path / "run2", progress=False, log=lines.append)
    assert not any("bfloat16" in line for line in lines)


READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "numpy")


class ReadsBack(torch.overrides.TorchFunctionMode):
    """Records every call that reads a tensor's value into Python, with where it was made."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in READS:
            caller = traceback.extract_stack()[-2]
            # torch.optim's Adamax reads its step counts on a CPU, where they are no device's: on a GPU it
            # runs capturable, from the counts on the device (optim.Adamax); the flag too is read on a CPU
            if f"torch{os.sep}optim{os.sep}" not in caller.filename:
                self.reads.append(f"{func.__name__} at {caller.filename}:{caller.lineno}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_training_step_reads_nothing_back_from_the_device(tmp_path, name):
    """Issue 33: between the loop's reads (every 20 steps on an accelerator) a step leaves every decision
    on the device, so that a GPU never waits for Python: no value is read back into Python, by the loss,
    the guard, the update or the sums. (tests/gpu/ checks the same on CUDA, where a read synchronises.)"""
    config = tiny_config(model=name, grad_clip=100.0, ema=0.9, **TINY_RUNS[name])
    trainer = quiet_trainer(config, tmp_path / "r")
    trainer.updates.optimizer.decides_on_device = True  # as on an accelerator
    trainer.state.perm = torch.randperm(trainer.n_train)
    with ReadsBack() as reads:
        for step in range(3):
            trainer.step(trainer.state.perm[step * 64 : (step + 1) * 64])
    assert reads.reads == []


def test_a_collapsed_posterior_is_named_at_the_end_of_training_and_the_default_scale_learns(tmp_path):
    """A Gaussian likelihood whose learned std shrinks too slowly on the digits: the KL collapses, and
    the end of training says why; the calibrated std (the default) and a fixed one keep the latent."""
    from vaekit.evaluation.report import COLLAPSED_KL, kl_collapse_warning

    def train(name: str, **scale: object) -> tuple[float, list[str]]:
        lines: list[str] = []
        settings = {"dataset": "digits", "likelihood": "gaussian", "epochs": 30, "fit_prior": False}
        Trainer(TrainConfig(**settings, **scale), tmp_path / name, progress=False, log=lines.append).run()
        kl = json.loads((tmp_path / name / "eval.json").read_text())["test_kl"]
        return kl, [line for line in lines if line.startswith("warning: the test KL")]

    kl, warning = train("learned", decoder_std="learned")
    assert kl < COLLAPSED_KL and warning == [kl_collapse_warning(kl, "gaussian", learned_std=True)]
    assert "--decoder-std 0.1" in warning[0]
    for name, scale in (("calibrated", {}), ("fixed", {"decoder_std": 0.1})):
        kl, warning = train(name, **scale)
        assert kl > 10 * COLLAPSED_KL and not warning, name
    stored = json.loads((tmp_path / "calibrated" / "config.json").read_text())["model"]
    assert stored["decoder_std"] == "calibrated"
    assert kl_collapse_warning(0.2, "bernoulli", learned_std=False).endswith("before the latent was used)")
