"""train_prior: fits a CodePrior to a vqvae run's codes, attaches it, and refuses bad input untouched."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import folder_snapshot, quiet_trainer, tiny_config
from vaekit import load
from vaekit.errors import VaekitError
from vaekit.train_prior import train_prior

QUICK = dict(epochs=2, batch_size=256, device="cpu", progress=False)


@pytest.fixture(scope="session")
def vqvae_run_template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vqvae") / "run"
    config = tiny_config(
        model="vqvae", hidden=None, latent_dim=4, codebook_size=16, channels=[8, 16], epochs=1
    )
    quiet_trainer(config, out).run()
    return out


@pytest.fixture
def vqvae_run(vqvae_run_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(vqvae_run_template, tmp_path / "vq"))


def test_train_prior_attaches_a_prior_and_saves_the_run(vqvae_run):
    before = load(vqvae_run)
    config_before = json.loads((vqvae_run / "config.json").read_text())
    lines = []
    result = train_prior(vqvae_run, **QUICK, log=lines.append)

    assert result["epochs"] == 2 and result["best_epoch"] in (1, 2)
    assert result["uniform_nll"] == pytest.approx(4 * math.log(16))
    assert result["val_nll"] < result["uniform_nll"]  # the codes are far from uniform; the prior sees it
    assert result["val_bits_per_code"] == pytest.approx(result["val_nll"] / (4 * math.log(2)))
    assert len(lines) == 5 and "prior epoch   2/2" in lines[2] and "bits/code" in lines[2]
    # the run's test figures are re-evaluated: the kl term is now -log p(codes) under the prior
    evaluation = json.loads((vqvae_run / "eval.json").read_text())
    assert evaluation["test_kl"] == result["test_kl"] < result["uniform_nll"]
    assert evaluation["test_loss"] == pytest.approx(evaluation["test_recon"] + evaluation["test_kl"])
    assert f"test loss {result['test_loss']:.2f}" in lines[4]

    metrics = [json.loads(line) for line in (vqvae_run / "prior_metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert set(metrics[0]) >= {"train_nll", "train_bits_per_code", "val_nll", "val_bits_per_code", "seconds"}
    assert (vqvae_run / "samples" / "prior.png").stat().st_size > 0

    config = json.loads((vqvae_run / "config.json").read_text())
    assert config["model"]["prior"]["grid"] == [2, 2] and config["model"]["prior"]["num_codes"] == 16
    assert {k: v for k, v in config.items() if k != "model"} == {
        k: v for k, v in config_before.items() if k != "model"
    }
    model = load(vqvae_run)
    assert model.can_sample and model.sample(3).shape == (3, 1, 8, 8)
    for name, value in before.state_dict().items():  # the autoencoder itself is untouched
        assert torch.equal(model.state_dict()[name], value), name
    x = torch.rand(5, 1, 8, 8)
    codes = model.encode(x)
    torch.testing.assert_close(model.loss(x).terms["kl"], -model.prior.log_prob(codes).mean())


def test_the_same_seed_gives_the_same_prior(vqvae_run, tmp_path):
    other = Path(shutil.copytree(vqvae_run, tmp_path / "other"))
    first = train_prior(vqvae_run, **QUICK, log=lambda line: None)
    second = train_prior(other, **QUICK, log=lambda line: None)
    assert first == second
    a, b = load(vqvae_run).state_dict(), load(other).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (vqvae_run / "samples" / "prior.png").read_bytes() == (
        other / "samples" / "prior.png"
    ).read_bytes()


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(epochs=0), "epochs must be an integer >= 1"),
        (dict(batch_size=2.5), "batch size must be an integer >= 1"),
        (dict(lr=-1e-3), "learning rate must be a positive finite number"),
        (dict(lr=float("nan")), "learning rate must be a positive finite number"),
        (dict(seed=-1), "seed must be an integer >= 0"),
        (dict(device="tpu"), "unknown device"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(vqvae_run, settings, message):
    snapshot = folder_snapshot(vqvae_run)
    with pytest.raises(VaekitError, match=message):
        train_prior(vqvae_run, **{**QUICK, **settings}, log=lambda line: None)
    assert folder_snapshot(vqvae_run) == snapshot


def test_a_run_that_has_a_prior_needs_overwrite(vqvae_run):
    train_prior(vqvae_run, **QUICK, log=lambda line: None)
    snapshot = folder_snapshot(vqvae_run)
    with pytest.raises(VaekitError, match="already has a prior; pass --overwrite"):
        train_prior(vqvae_run, **QUICK, log=lambda line: None)
    assert folder_snapshot(vqvae_run) == snapshot
    result = train_prior(vqvae_run, **{**QUICK, "epochs": 1}, overwrite=True, log=lambda line: None)
    assert result["epochs"] == 1
    assert len((vqvae_run / "prior_metrics.jsonl").read_text().splitlines()) == 1


def test_other_runs_are_refused_untouched(trained_run, tmp_path):
    snapshot = folder_snapshot(trained_run)
    with pytest.raises(
        VaekitError, match="holds a mlp model; a prior over codes is trained for vqvae runs only"
    ):
        train_prior(trained_run, **QUICK, log=lambda line: None)
    assert folder_snapshot(trained_run) == snapshot
    with pytest.raises(VaekitError, match="does not exist"):
        train_prior(tmp_path / "missing", **QUICK, log=lambda line: None)


def test_resuming_the_autoencoder_drops_the_prior_and_says_so(vqvae_run):
    from vaekit.train import resume

    train_prior(vqvae_run, **QUICK, log=lambda line: None)
    lines = []
    resume(vqvae_run, epochs=2, progress=False, log=lines.append)
    assert "prior over codes is dropped" in lines[0]
    assert not load(vqvae_run).can_sample
    assert "prior" not in json.loads((vqvae_run / "config.json").read_text())["model"]
