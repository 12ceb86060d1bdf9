"""train_prior: fits a CodePrior to a vqvae run's codes, or a mixture to a Gaussian-latent run's latents
(also at the end of training), attaches it, and refuses bad input untouched."""

import json
import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import folder_snapshot, quiet_trainer, tiny_config
from vaekit import load
from vaekit.data import DATASETS, Dataset, load_dataset, split_train_val
from vaekit.models.priors.mixture import MixturePrior
from vaekit.training import Trainer
from vaekit.training.code_prior import train_prior
from vaekit.training.priors import fit_run_prior, posterior_moments
from vaekit.utils.errors import VaekitError

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
    torch.testing.assert_close(model.loss(x).terms["kl"], -model.fitted_prior.log_prob(codes).mean())


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
    from vaekit.training import resume

    train_prior(vqvae_run, **QUICK, log=lambda line: None)
    lines = []
    resume(vqvae_run, epochs=2, progress=False, log=lines.append)
    assert "prior over codes is dropped" in lines[0]
    assert not load(vqvae_run).can_sample
    assert "prior" not in json.loads((vqvae_run / "config.json").read_text())["model"]


# ------------------------------------------------------------------- Gaussian-latent runs: a mixture
def test_training_ends_with_a_fitted_prior_per_class(tmp_path):
    lines = []
    out = tmp_path / "run"
    Trainer(tiny_config(), out, progress=False, log=lines.append).run()
    model = load(out)
    assert model.config["prior"] == {
        "kind": "gaussian_mixture",
        "latent_dim": 2,
        "components": 8,
        "num_classes": 10,
    }
    assert json.loads((out / "config.json").read_text())["model"]["prior"] == model.config["prior"]
    assert (out / "samples" / "prior.png").is_file()
    assert any("fitted a Gaussian mixture prior (10 classes x 8" in line for line in lines)
    # the fit is of the training split's posterior means: refitting them by hand gives the same prior
    dataset = load_dataset("digits")
    train_set, _ = split_train_val(dataset.train, 0.1, 0)
    means, _ = posterior_moments(model, train_set.as_float(), train_set.labels)
    again, _ = MixturePrior.fit(means, train_set.labels, components=8, num_classes=10, seed=0)
    torch.testing.assert_close(again.means, model.fitted_prior.means)
    # the test loss is the trained prior's ELBO: fitting changed nothing in eval.json
    plain = tmp_path / "plain"
    quiet_trainer(tiny_config(fit_prior=False), plain).run()
    assert load(plain).fitted_prior is None and not (plain / "samples" / "prior.png").exists()
    assert json.loads((plain / "eval.json").read_text()) == json.loads((out / "eval.json").read_text())


def test_the_aggregate_target_widens_every_component_by_the_posterior_variances(trained_run):
    means_only = load(trained_run).fitted_prior
    info = fit_run_prior(trained_run, target="aggregate", overwrite=True, log=lambda line: None)
    assert info["target"] == "aggregate"
    wider = load(trained_run).fitted_prior
    torch.testing.assert_close(wider.means, means_only.means)  # the same EM fit, then widened
    covariance = lambda p: p.scale_tril @ p.scale_tril.transpose(-1, -2)  # noqa: E731
    added = (covariance(wider) - covariance(means_only)).diagonal(dim1=-2, dim2=-1)
    assert (added > 0).all()
    off_diagonal = covariance(wider) - covariance(means_only) - torch.diag_embed(added)
    assert off_diagonal.abs().max() < 1e-5
    with pytest.raises(VaekitError, match="unknown prior target 'best'"):
        fit_run_prior(trained_run, target="best", overwrite=True, log=lambda line: None)


def test_fit_run_prior_fits_refits_with_overwrite_and_pools_on_request(trained_run):
    before = load(trained_run)
    with pytest.raises(VaekitError, match="already has a fitted prior; pass --overwrite"):
        fit_run_prior(trained_run, log=lambda line: None)
    lines = []
    info = fit_run_prior(trained_run, components=3, per_class=False, overwrite=True, log=lines.append)
    assert info["classes"] == 0 and info["components"] == 3 and info["latents"] == 1294
    after = load(trained_run)
    assert after.config["prior"]["num_classes"] == 0 and after.fitted_prior.means.shape == (1, 3, 2)
    assert all(
        torch.equal(before.state_dict()[k], after.state_dict()[k])
        for k in before.state_dict()
        if "prior" not in k
    )
    assert "fitted a Gaussian mixture prior (3 full-covariance components) to the posterior means" in lines[0]
    with pytest.raises(VaekitError, match="its prior has no classes"):
        after.sample(4, label=1)


def test_a_refit_killed_between_the_weights_and_config_json_still_loads(trained_run):
    """``--overwrite`` fits a prior of another size; a SIGKILL after model.safetensors and before
    config.json leaves config.json the old prior's, which the weights no longer fit: the run loads with
    the prior written beside the weights, the one config.json would have got."""
    old = json.loads((trained_run / "config.json").read_text())["model"]["prior"]
    kill_before_config = (
        "import os, signal, sys; import vaekit.training.priors as p; "
        "p.write_json = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL); "
        "p.fit_run_prior(sys.argv[1], components=3, per_class=False, overwrite=True, log=print)"
    )
    done = subprocess.run([sys.executable, "-c", kill_before_config, str(trained_run)], capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert json.loads((trained_run / "config.json").read_text())["model"]["prior"] == old
    model = load(trained_run)
    assert model.config["prior"]["num_classes"] == 0 and model.fitted_prior.means.shape == (1, 3, 2)
    alone = load(trained_run / "model.safetensors")
    draw = lambda m: m.sample(8, generator=torch.Generator().manual_seed(1))  # noqa: E731
    assert torch.equal(draw(model), draw(alone))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"components": 0}, "components must be an integer >= 1"),
        ({"components": 500}, "fewer than the 500 components"),
        ({"components": 2000, "per_class": False}, "2000 mixture components are more than the 1294 latents"),
    ],
)
def test_bad_mixture_settings_leave_the_run_untouched(trained_run, settings, message):
    snapshot = folder_snapshot(trained_run)
    with pytest.raises(VaekitError, match=message):
        fit_run_prior(trained_run, overwrite=True, log=lambda line: None, **settings)
    assert folder_snapshot(trained_run) == snapshot


def test_a_per_class_prior_needs_labels(tmp_path, monkeypatch):
    digits = load_dataset("digits")
    unlabelled = lambda data_dir: Dataset("unlabelled", digits.train, digits.test, [])  # noqa: E731
    monkeypatch.setitem(DATASETS, "unlabelled", unlabelled)
    out = tmp_path / "run"
    quiet_trainer(tiny_config(dataset="unlabelled"), out).run()
    assert load(out).config["prior"]["num_classes"] == 0  # training fits one mixture over all images
    snapshot = folder_snapshot(out)
    with pytest.raises(VaekitError, match="have no labels: a per-class prior cannot be fitted"):
        fit_run_prior(out, per_class=True, overwrite=True, log=lambda line: None)
    assert folder_snapshot(out) == snapshot


def test_a_vqvae_takes_no_mixture_and_a_mlp_no_code_prior(vqvae_run, trained_run):
    with pytest.raises(VaekitError, match="a mixture prior is for Gaussian latents"):
        fit_run_prior(vqvae_run, log=lambda line: None)
    with pytest.raises(VaekitError, match="a prior over codes is trained for vqvae runs only"):
        train_prior(trained_run, **QUICK, log=lambda line: None)


def test_resuming_a_gaussian_run_refits_its_prior_without_a_note(trained_run):
    from vaekit.training import resume

    lines = []
    resume(trained_run, epochs=3, progress=False, log=lines.append)
    assert not any("dropped" in line for line in lines)
    assert any("fitted a Gaussian mixture prior" in line for line in lines)
    assert load(trained_run).fitted_prior is not None
