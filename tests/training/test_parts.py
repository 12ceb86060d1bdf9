"""The model parts from the command line: every prior, posterior and objective trains, resumes exactly,
evaluates, samples and exports (where it changes the model); combinations that mean nothing are refused
in one line; --max-time."""

import json

import pytest
import torch

from tests.conftest import assert_refused, folder_snapshot, quiet_trainer, tiny_config
from tests.training.test_loop import assert_same_run
from vaekit import load
from vaekit.cli import main
from vaekit.models.parts import KINDS, parts
from vaekit.training import resume
from vaekit.training.part_settings import DEFAULT_PARTS
from vaekit.training.settings import parse_duration

# Options that keep a part's run small, or try one of its options; every registered part is run.
SMALL = {
    "vamp": ["--pseudo-inputs", "4"],
    "iaf": ["--flow-steps", "2"],
    "btcvae": ["--beta", "4"],
    "factorvae": ["--gamma", "5", "--discriminator", "32,32"],
    "dip-i": ["--lambda-od", "5"],
    "mmd": ["--mmd-weight", "50", "--beta", "0"],
    "mog": ["--mog-components", "3"],
}
PARTS = {
    name: [f"--{kind}", name, *SMALL.get(name, [])]
    for kind in KINDS
    for name in parts(kind)
    if name != DEFAULT_PARTS[kind] and parts(kind)[name].module.startswith("vaekit.")
} | {
    "cvae-vamp": ["--model", "cvae", "--prior", "vamp", "--pseudo-inputs", "3"],
    "cvae-mog": ["--model", "cvae", "--prior", "mog", "--mog-components", "2"],
    "vamp-iaf-mmd": ["--prior", "vamp", "--pseudo-inputs", "4", "--posterior", "iaf", "--objective", "mmd"],
}

# An objective that adds nothing to the model (no module, no config entry) leaves its exported graphs the
# plain model's, which tests/export checks: the export (seconds a run) is run for the parts that change them.
OBJECTIVES = parts("objective")
CHANGES_THE_MODEL = {
    name for name in PARTS if name not in OBJECTIVES or OBJECTIVES[name].adds or OBJECTIVES[name].model_config
}


def train(out, *options, epochs=1, resume=False):
    base = ["train", "--dataset", "digits", "--hidden", "16", "--latent-dim", "2", "--out", str(out)]
    again = ["--resume"] if resume else []
    return main([*base, *options, "--epochs", str(epochs), "--no-progress", *again])


@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_command_works_with_every_part(part, tmp_path, capsys):
    out, straight = tmp_path / "run", tmp_path / "straight"
    assert train(out, *PARTS[part]) == 0
    assert train(out, *PARTS[part], epochs=2, resume=True) == 0
    assert train(straight, *PARTS[part], epochs=2) == 0
    assert_same_run(out, straight)  # 1 epoch + resume to 2 = 2 epochs straight, bit for bit
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "val", "--json", "--samples", "0", "--iwae-k", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["val_loss"] == pytest.approx(result["val_recon"] + result["val_kl"])
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert result["val_loss"] == pytest.approx(last["val_loss"], abs=1e-4)
    assert result["val_iwae_nll"] < result["val_loss"] + 1.0  # the k=8 estimate is near or below -ELBO
    model = load(out)
    assert model.config["name"] == ("cvae" if part.startswith("cvae") else "mlp")
    for source in ("fitted", "trained"):  # the fitted mixture, and the prior trained with
        picture = tmp_path / f"{source}.png"
        assert main(["sample", str(out), "--n", "6", "--from", source, "--out", str(picture)]) == 0
    assert main(["reconstruct", str(out), "--n", "4", "--out", str(tmp_path / "r.png")]) == 0
    if part in CHANGES_THE_MODEL:
        assert main(["export", str(out), "--out", str(tmp_path / "onnx")]) == 0


def test_the_parts_are_in_the_model_config_and_the_train_settings(tmp_path):
    out = tmp_path / "run"
    assert train(out, "--prior", "vamp", "--posterior", "iaf") == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["trained_prior"] == "vamp" and config["model"]["pseudo_inputs"] == 100
    assert config["model"]["posterior"] == "iaf" and config["model"]["flow_steps"] == 2
    assert config["train"]["prior"] == "vamp"
    assert config["train"]["part_options"] == {"pseudo_inputs": 100, "flow_steps": 2}
    plain = tmp_path / "plain"
    assert train(plain) == 0
    plain_model = json.loads((plain / "config.json").read_text())["model"]
    assert not {"trained_prior", "posterior", "tc_discriminator"} & set(plain_model)


BAD = [
    (["--prior", "flat"], "invalid choice"),
    (["--model", "vqvae", "--posterior", "iaf"], "--posterior iaf applies to the one-latent Gaussian models"),
    (["--model", "vqvae", "--prior", "vamp"], "--prior vamp applies to the one-latent Gaussian models"),
    (["--model", "vqvae", "--objective", "btcvae"], "--objective btcvae applies to the Gaussian-latent"),
    (["--prior", "vamp", "--pseudo-inputs", "0"], "--pseudo-inputs: must be >= 1"),
    (["--pseudo-inputs", "10"], "--pseudo-inputs applies to --prior vamp, not standard"),
    (["--prior", "vamp", "--pseudo-inputs", "100000"], "--pseudo-inputs 100000 is more than the"),
    (["--flow-steps", "2"], "--flow-steps applies to --posterior iaf, not gaussian"),
    (["--objective", "factorvae", "--gamma", "-1"], "--gamma: must be >= 0"),
    (["--objective", "mmd", "--mmd-weight", "-2"], "--mmd-weight: must be >= 0"),
    (["--gamma", "3"], "--gamma applies to --objective factorvae, not elbo"),
    (["--discriminator", "8,8"], "--discriminator applies to --objective factorvae, not elbo"),
    (["--objective", "factorvae", "--discriminator", "8,0"], "--discriminator: expected sizes"),
    (["--objective", "dip-i", "--mmd-weight", "3"], "--mmd-weight applies to --objective mmd, not dip-i"),
    (["--objective", "btcvae", "--batch-size", "1"], "it needs --batch-size >= 2"),
    (["--objective", "btcvae", "--tc-estimator", "sampled"], "--tc-estimator: invalid choice: 'sampled'"),
    (["--tc-estimator", "weighted"], "--tc-estimator applies to --objective btcvae, not elbo"),
    (["--objective", "btcvae", "--kl-form", "analytic"], "--kl-form: invalid choice: 'analytic'"),
    (["--kl-form", "exact"], "--kl-form applies to --objective btcvae, not elbo"),
    (["--objective", "btcvae", "--prior", "vamp"], "--objective btcvae needs a Gaussian posterior"),
    (["--objective", "dip-ii", "--posterior", "iaf"], "needs the Gaussian posterior's covariance"),
    (["--free-bits", "0.5", "--posterior", "iaf"], "--free-bits needs the KL per dimension in closed form"),
    (["--objective", "mmd", "--free-bits", "0.5"], "--free-bits applies to the elbo objective, not mmd"),
    (["--max-time", "soon"], "--max-time: expected a duration"),
    (["--max-time", "0s"], "--max-time: must be more than 0 seconds"),
]


@pytest.mark.parametrize("args, message", BAD)
def test_bad_part_options_are_one_line_before_anything_is_written(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "digits", "--out", str(out), "--no-progress", *args])
    assert_refused(code, capsys.readouterr().err, message)
    assert not out.exists()


def test_a_bad_part_on_resume_leaves_the_run_as_it_was(trained_run, capsys):
    before = folder_snapshot(trained_run)
    code = main(["train", "--out", str(trained_run), "--resume", "--prior", "vamp"])
    assert_refused(code, capsys.readouterr().err, "cannot change on --resume")
    assert folder_snapshot(trained_run) == before


@pytest.mark.parametrize(
    "text, seconds", [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("1.5h", 5400), ("2d", 172800)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_max_time_stops_at_a_step_saved_evaluated_and_resume_goes_on_exactly(tmp_path):
    quiet_trainer(tiny_config(epochs=2), tmp_path / "straight").run()
    lines = []
    stopped = tmp_path / "stopped"
    trainer = quiet_trainer(tiny_config(epochs=2, max_time=1e-9), stopped)
    trainer.log = lines.append
    result = trainer.run()  # the budget runs out after the first step
    assert any("--max-time 1e-09s reached in epoch 1 at step 1/" in line for line in lines)
    checkpoint = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["step"]) == (0, 1)
    assert result["test_loss"] > 0
    assert json.loads((stopped / "eval.json").read_text())["test_loss"] == result["test_loss"]
    assert load(stopped).fitted_prior is not None  # the run ended as runs end: evaluated, its prior fitted
    resume(stopped, max_time=None, progress=False, log=lambda line: None)
    assert_same_run(tmp_path / "straight", stopped)


def test_max_time_at_an_epoch_boundary_and_each_resume_extends_the_budget(tmp_path, monkeypatch):
    out = tmp_path / "run"
    clock = iter(range(1000))
    monkeypatch.setattr("vaekit.training.budget.time.monotonic", lambda: float(next(clock)))
    # every call to the clock advances it a second: some steps in, each invocation stops
    trainer = quiet_trainer(tiny_config(epochs=50, max_time=30), out)
    trainer.run()
    first = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    resume(out, progress=False, log=lambda line: None)
    second = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert (second["epoch"], second["step"]) > (first["epoch"], first["step"])
    assert second["epoch"] < 50
