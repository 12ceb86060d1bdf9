"""Training options of the model family: beta, KL warm-up, free bits, IWAE, augmentation, early stopping,
and the refusal of options that do not apply to a model."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import vaekit.training
from tests.conftest import quiet_trainer, tiny_config
from vaekit import load
from vaekit.data import load_dataset
from vaekit.models import GaussianVAE
from vaekit.training import resume
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_checkpoint


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def record_loss_calls(monkeypatch):
    """Record the options of every training call to model.loss (evaluation calls pass a generator)."""
    calls = []
    real = GaussianVAE.loss

    def spy(self, *args, **kwargs):
        if "generator" not in kwargs and args[0].device.type != "meta":  # not the memory estimate's
            calls.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GaussianVAE, "loss", spy)
    return calls


def test_kl_warmup_raises_the_weight_linearly_to_beta(tmp_path, monkeypatch):
    calls = record_loss_calls(monkeypatch)
    quiet_trainer(tiny_config(epochs=3, kl_warmup=2, beta=2.0), tmp_path / "run").run()
    weights = [c["kl_weight"] for c in calls]
    steps = len(weights) // 3  # 23 steps per epoch on digits at batch 64
    assert weights[0] == 0.0 and weights[steps] == pytest.approx(1.0)
    assert weights[: 2 * steps] == sorted(weights[: 2 * steps]) and weights[2 * steps :] == [2.0] * steps
    assert [m["kl_weight"] for m in metrics(tmp_path / "run")] == pytest.approx([1.0, 2.0, 2.0])


def test_btcvae_kl_weight_is_the_ramp_alone_and_beta_goes_to_the_total_correlation(tmp_path, monkeypatch):
    calls = record_loss_calls(monkeypatch)
    run = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=2, kl_warmup=1, beta=6.0, objective="btcvae"), run).run()
    assert {c["beta"] for c in calls} == {6.0}
    assert calls[0]["kl_weight"] == 0.0 and calls[-1]["kl_weight"] == 1.0  # the ramp, not 6 x the ramp
    assert [m["kl_weight"] for m in metrics(run)] == pytest.approx([1.0, 1.0])


def test_free_bits_and_beta_reach_the_objective(tmp_path, monkeypatch):
    calls = record_loss_calls(monkeypatch)
    quiet_trainer(tiny_config(epochs=1, free_bits=0.25, beta=0.5), tmp_path / "run").run()
    assert {(c["objective"], c["kl_weight"], c["free_bits"]) for c in calls} == {("elbo", 0.5, 0.25)}


def test_iwae_objective_is_trained_and_reported(tmp_path, monkeypatch):
    calls = record_loss_calls(monkeypatch)
    out = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=2, objective="iwae", part_options={"k": 4}), out).run()
    assert {(c["objective"], c["k"]) for c in calls} == {("iwae", 4)}
    last = metrics(out)[-1]
    assert last["val_iwae"] <= last["val_loss"]  # the negative IWAE bound is below the negative ELBO
    result = json.loads((out / "eval.json").read_text())
    assert result["test_iwae"] <= result["test_loss"]
    assert json.loads((out / "config.json").read_text())["train"]["part_options"] == {"k": 4}


def test_iwae_k_defaults_to_5():
    config = tiny_config(objective="iwae")
    config.validate()
    assert config.part_options == {"k": 5}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model": "vqvae", "hidden": None, "beta": 4.0}, "--beta applies to the Gaussian-latent models"),
        ({"model": "vqvae", "hidden": None, "kl_warmup": 2}, "--kl-warmup applies to the Gaussian-latent"),
        ({"model": "vqvae", "hidden": None, "objective": "iwae"}, "--objective iwae applies to the Gaussian"),
        ({"model": "vqvae", "hidden": None, "part_options": {"k": 5}}, "--k applies to the Gaussian-latent"),
        ({"model": "vqvae", "hidden": None, "precision": "bf16"}, "--precision bf16 applies to the Gaussian"),
        ({"part_options": {"k": 5}}, "--k applies to --objective iwae, not elbo"),
        ({"objective": "iwae", "beta": 2.0}, "--beta applies to the elbo objective, not iwae"),
        ({"objective": "iwae", "free_bits": 0.5}, "--free-bits applies to the elbo objective"),
        ({"objective": "iwae", "part_options": {"k": 0}}, "--k must be >= 1, got 0"),
        ({"objective": "iwae", "part_options": {"k": 2.5}}, "--k must be an integer, got 2.5"),
        (
            {"objective": "btcvae", "part_options": {"tc_estimator": "sampled"}},
            "--tc-estimator must be one of stratified, weighted, got 'sampled'",
        ),
        ({"objective": "btcvae", "part_options": {"tc_estimator": 1}}, "--tc-estimator must be a string"),
        ({"objective": "vimco"}, "unknown objective"),
        ({"channels": [8]}, "--channels does not apply to model mlp"),
        ({"model": "vqvae"}, "--hidden does not apply to model vqvae"),
        ({"codebook_size": 16}, "--codebook-size does not apply to model mlp"),
        ({"decoder_std": 0.1}, "--decoder-std applies to --likelihood gaussian only"),
        ({"likelihood": "poisson"}, "unknown likelihood"),
        ({"kl_warmup": -1}, "KL warm-up"),
        ({"free_bits": float("inf")}, "free bits"),
        ({"beta": -1.0}, "beta must be"),
        ({"early_stopping": 2, "val_fraction": 0.0}, "needs --val-fraction > 0"),
        ({"model": "resnet"}, "unknown model 'resnet'"),
    ],
)
def test_options_that_do_not_apply_are_refused(tmp_path, overrides, message):
    with pytest.raises(VaekitError, match=message):
        quiet_trainer(tiny_config(**overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_conv_deeper_than_the_image_halves_trains_on_padded_images(tmp_path):
    """8x8 digits through four halvings: padded to 16x16 on the way in, cropped on the way out."""
    trainer = quiet_trainer(tiny_config(model="conv", hidden=None, channels=[4, 4, 4, 4]), tmp_path / "run")
    assert trainer.model.padding == (4, 4, 4, 4) and trainer.model.feature_shape == (4, 1, 1)
    result = trainer.run()
    assert math.isfinite(result["test_loss"]) and trainer.model.reconstruct(trainer.grid_images).shape[
        1:
    ] == (1, 8, 8)


def test_augment_changes_training_reproducibly_and_resumes_exactly(tmp_path):
    quiet_trainer(tiny_config(epochs=2), tmp_path / "plain").run()
    quiet_trainer(tiny_config(epochs=2, augment=True), tmp_path / "a").run()
    quiet_trainer(tiny_config(epochs=1, augment=True), tmp_path / "b").run()
    resume(tmp_path / "b", epochs=2, progress=False, log=lambda line: None)
    plain, a, b = (load_file(str(tmp_path / r / "model.safetensors")) for r in ("plain", "a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], plain[k]) for k in a)
    assert metrics(tmp_path / "a")[-1]["train_loss"] > metrics(tmp_path / "plain")[-1]["train_loss"]


def scripted_val_losses(monkeypatch, losses):
    """Replace the validation loss by a script (the real terms otherwise), to steer early stopping."""
    real, script, n_val = vaekit.training.loop.elbo_terms, iter(losses), 144

    def scripted(model, images, *args, **kwargs):
        terms = real(model, images, *args, **kwargs)
        if len(images) == n_val:
            terms["loss"] = next(script)
        return terms

    monkeypatch.setattr(vaekit.training.loop, "elbo_terms", scripted)


def test_early_stopping_keeps_the_best_model_and_the_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    scripted_val_losses(monkeypatch, [50.0, 40.0, 45.0, 41.0, 39.0, 42.0, 43.0, 44.0])
    lines = []
    trainer = vaekit.training.Trainer(
        tiny_config(epochs=10, early_stopping=2, save_every=1), out, progress=False, log=lines.append
    )
    result = trainer.run()
    assert [m["epoch"] for m in metrics(out)] == [1, 2, 3, 4]  # no improvement in epochs 3 and 4
    assert any("has not improved for 2 epochs" in line and "epoch 2" in line for line in lines)
    best = read_checkpoint(out / "checkpoints" / "epoch_002.pt")["model"]
    held = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(best[k], held[k]) for k in best)  # held also has the fitted prior
    last = read_checkpoint(out / "checkpoints" / "last.pt")
    assert last["epoch"] == 4 and not all(torch.equal(last["model"][k], held[k]) for k in last["model"])
    assert result["best_epoch"] == 2 and json.loads((out / "eval.json").read_text())["best_epoch"] == 2
    # the test figures are those of the model the folder holds
    from vaekit.evaluation.runs import evaluate_run

    assert evaluate_run(out, device="cpu", write=False)["test_loss"] == pytest.approx(result["test_loss"])

    # a resume with the same patience has nothing to do; a longer one goes on from epoch 4 (best: 5)
    assert vaekit.training.Trainer(vaekit.training.resumed_config(out), out, resume=True).finished
    resume(out, early_stopping=3, progress=False, log=lambda line: None)
    assert [m["epoch"] for m in metrics(out)] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert json.loads((out / "eval.json").read_text())["best_epoch"] == 5


def test_conditional_run_draws_a_row_per_class(tmp_path):
    out = tmp_path / "run"
    quiet_trainer(tiny_config(model="cvae", epochs=1), out).run()
    with Image.open(out / "samples" / "epoch_001.png") as picture:
        width, height = picture.size
    assert height / width == pytest.approx((10 * 10 + 2) / (8 * 10 + 2))  # 10 rows of 8: one per class


def test_cvae_samples_are_the_requested_digits(tmp_path):
    """A classifier trained on the digits' training images recognises the CVAE's samples of each class."""
    from sklearn.linear_model import LogisticRegression

    out = tmp_path / "run"
    quiet_trainer(
        tiny_config(model="cvae", hidden=[256], latent_dim=4, epochs=10, lr=3e-3, batch_size=32), out
    ).run()
    data = load_dataset("digits")
    classifier = LogisticRegression(max_iter=2000).fit(
        data.train.as_float().flatten(1).numpy(), data.train.labels.numpy()
    )
    test_accuracy = classifier.score(data.test.as_float().flatten(1).numpy(), data.test.labels.numpy())
    model = load(out)
    generator = torch.Generator().manual_seed(0)
    wanted = np.repeat(np.arange(10), 50)
    samples = torch.cat([model.sample(50, label=d, generator=generator) for d in range(10)])
    accuracy = (classifier.predict(samples.flatten(1).numpy()) == wanted).mean()
    assert test_accuracy > 0.9 and accuracy > 0.9, (test_accuracy, accuracy)


def test_a_vqvae_run_without_prior_has_reconstructions_but_no_samples(tmp_path):
    out = tmp_path / "run"
    quiet_trainer(
        tiny_config(model="vqvae", hidden=None, channels=[8, 16], codebook_size=16, latent_dim=4, epochs=1),
        out,
    ).run()
    assert (out / "reconstructions" / "epoch_001.png").is_file()
    assert not (out / "samples" / "epoch_001.png").exists()
    last = metrics(out)[-1]
    assert {"train_perplexity", "val_perplexity", "train_dead_codes"} <= set(last)
    assert last["kl_weight"] is None


def test_bf16_mixed_precision_trains_to_a_similar_loss_and_evaluates_in_float32(tmp_path):
    quiet_trainer(tiny_config(epochs=3), tmp_path / "fp32").run()
    quiet_trainer(tiny_config(epochs=3, precision="bf16"), tmp_path / "bf16").run()
    fp32, bf16 = (json.loads((tmp_path / r / "eval.json").read_text()) for r in ("fp32", "bf16"))
    assert fp32["test_loss"] != bf16["test_loss"]
    assert abs(fp32["test_loss"] - bf16["test_loss"]) < 0.03 * fp32["test_loss"]
    assert all(v.dtype == torch.float32 for v in load(tmp_path / "bf16").state_dict().values())
    with pytest.raises(VaekitError, match="unknown precision"):
        quiet_trainer(tiny_config(precision="fp8"), tmp_path / "fp8")


def test_binarized_training_and_evaluation(tmp_path, monkeypatch):
    """static: one fixed binary training set; dynamic: a new draw per batch; evaluation: fixed images."""
    seen = []
    real = GaussianVAE.loss

    def spy(self, x, *args, **kwargs):
        if "generator" not in kwargs and x.device.type != "meta":  # not the memory estimate's
            seen.append(x.clone())
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(GaussianVAE, "loss", spy)
    runs = {}
    for mode in ("static", "dynamic"):
        seen.clear()
        out = tmp_path / mode
        trainer = quiet_trainer(tiny_config(epochs=2, binarize=mode, batch_size=2000), out)
        trainer.run()
        runs[mode] = out
        assert all(set(x.unique().tolist()) <= {0.0, 1.0} for x in seen)
        assert set(trainer.data.x_test.unique().tolist()) == {0.0, 1.0}
        first, second = seen  # one batch per epoch: the whole shuffled training set
        if mode == "static":  # the same binary images in another order
            assert torch.equal(first.sum(0), second.sum(0))
        else:  # new draws
            assert not torch.equal(first.sum(0), second.sum(0))
    # vaekit evaluate binarizes the test images the same way: it reproduces the end-of-training figure
    from vaekit.evaluation.runs import evaluate_run

    for out in runs.values():
        stored = json.loads((out / "eval.json").read_text())["test_loss"]
        assert evaluate_run(out, device="cpu", write=False)["test_loss"] == pytest.approx(stored, rel=1e-6)
    with pytest.raises(VaekitError, match="unknown binarization"):
        quiet_trainer(tiny_config(binarize="otsu"), tmp_path / "bad")
