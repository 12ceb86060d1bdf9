"""Evaluation numbers against an independent recomputation from the saved weights."""

import json
import math
import re

import pytest
import torch
from safetensors.torch import load_file
from torch.distributions import MultivariateNormal

import vaekit
from tests.conftest import Z_MISS
from vaekit.data import ImageSet, binarize, load_dataset, split_train_val, unit_float
from vaekit.evaluation.latents import latent_statistics
from vaekit.evaluation.likelihood import (
    bits_per_dim,
    elbo_terms,
    importance_bounds,
    iwae_nll,
    reconstruction_errors,
)
from vaekit.evaluation.report import format_result
from vaekit.evaluation.runs import evaluate_run, evaluated_images
from vaekit.models import GaussianVAE
from vaekit.models.maths import gaussian_nll


def independent_test_loss(run, images, seed):
    """Negative ELBO per image with plain tensor maths from model.safetensors; the same noise draws."""
    w = load_file(str(run / "model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(images), 1000):
        x = images[start : start + 1000].flatten(1)
        h = torch.relu(x @ w["encoder.1.weight"].T + w["encoder.1.bias"])
        mu, logvar = (h @ w["posterior.weight"].T + w["posterior.bias"]).chunk(2, dim=1)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g)
        logits = torch.relu(z @ w["decoder.0.weight"].T + w["decoder.0.bias"]) @ w["decoder.2.weight"].T
        logits = logits + w["decoder.2.bias"]
        recon = (torch.nn.functional.softplus(logits) - x * logits).sum(1)
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
        total += (recon + kl).double().sum()
    return (total / len(images)).item()


def test_eval_json_matches_an_independent_recomputation(trained_run):
    saved = json.loads((trained_run / "eval.json").read_text())
    test = load_dataset("digits").test.as_float()
    assert abs(saved["test_loss"] - independent_test_loss(trained_run, test, seed=0)) < 1e-3
    assert saved["test_loss"] == pytest_approx(saved["test_recon"] + saved["test_kl"])


def pytest_approx(value):
    import pytest

    return pytest.approx(value, rel=1e-6)


def test_reconstruction_errors_match_plain_tensor_maths(trained_run):
    w = load_file(str(trained_run / "model.safetensors"))
    test = load_dataset("digits").test.as_float()
    x = test.flatten(1)
    h = torch.relu(x @ w["encoder.1.weight"].T + w["encoder.1.bias"])
    mu = (h @ w["posterior.weight"].T + w["posterior.bias"]).chunk(2, dim=1)[0]
    logits = torch.relu(mu @ w["decoder.0.weight"].T + w["decoder.0.bias"]) @ w["decoder.2.weight"].T
    r = torch.sigmoid(logits + w["decoder.2.bias"]).double()
    bce = -(x * r.log() + (1 - x) * (1 - r).log()).sum(1).mean().item()
    mse = ((r - x) ** 2).mean().item()
    got = reconstruction_errors(vaekit.load(trained_run), test)
    assert got["recon_bce"] == pytest.approx(bce, rel=1e-4) and got["recon_mse"] == pytest.approx(
        mse, rel=1e-4
    )
    stored = evaluate_run(trained_run, device="cpu")
    assert stored["test_recon_bce"] == pytest.approx(bce, rel=1e-4)
    assert stored["test_recon_mse"] == pytest.approx(mse, rel=1e-4)


def test_evaluate_run_reproduces_the_end_of_training_figures(trained_run):
    saved = json.loads((trained_run / "eval.json").read_text())
    again = evaluate_run(trained_run, device="cpu")
    assert again["test_loss"] == saved["test_loss"] and again["test_n_images"] == 359


def test_val_split_is_added_beside_the_test_figures(trained_run):
    result = evaluate_run(trained_run, split="val", device="cpu")
    _, val = split_train_val(load_dataset("digits").train, 0.1, seed=0)
    assert result["val_n_images"] == len(val) == 144
    stored = json.loads((trained_run / "eval.json").read_text())
    assert {"test_loss", "val_loss"} <= set(stored) and stored["test_n_images"] == 359
    last_epoch = json.loads((trained_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert abs(stored["val_loss"] - last_epoch["val_loss"]) < 1e-4


def test_val_bits_per_dim_of_the_elbo_and_of_the_likelihood_estimate_are_both_kept(trained_run):
    result = evaluate_run(trained_run, split="val", device="cpu", iwae_k=20, write=False)
    assert result["val_bits_per_dim"] == pytest.approx(result["val_loss"] / (64 * math.log(2)))
    assert result["val_iwae_bits_per_dim"] == pytest.approx(result["val_iwae_nll"] / (64 * math.log(2)))
    assert result["val_iwae_bits_per_dim"] < result["val_bits_per_dim"]


def test_elbo_terms_does_not_touch_the_global_rng(trained_run):
    model = vaekit.load(trained_run)
    images = torch.rand(20, 1, 8, 8)
    state = torch.get_rng_state()
    elbo_terms(model, images)
    assert torch.equal(torch.get_rng_state(), state)


# ------------------------------------------------------------------ the log-likelihood estimator
class LinearGaussianVAE(GaussianVAE):
    """x = W z + b + sigma * noise, z ~ N(0, I): log p(x) = log N(x; b, W W^T + sigma^2 I) exactly.

    Its encoder is the exact posterior's mean with a deliberately wider variance, so that importance
    sampling has work to do (with the exact posterior every weight would equal p(x)).
    """

    name = "linear-test"

    def __init__(
        self, n_pixels: int = 6, latent_dim: int = 2, sigma: float = 0.3, widen: float = 2.0
    ) -> None:
        super().__init__(image_shape=[1, 1, n_pixels], latent_dim=latent_dim)
        g = torch.Generator().manual_seed(0)
        self.W = torch.randn(n_pixels, latent_dim, generator=g)
        self.b = torch.randn(n_pixels, generator=g) * 0.1
        self.sigma = sigma
        precision = torch.eye(latent_dim) + self.W.T @ self.W / sigma**2
        self.post_cov = torch.linalg.inv(precision)
        self.gain = self.post_cov @ self.W.T / sigma**2
        self.post_logvar = (self.post_cov.diagonal() * widen).log()  # diagonal, wider than exact
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # .device needs a parameter

    def encode(self, x, labels=None):
        mu = (x.flatten(1) - self.b) @ self.gain.T
        return mu, self.post_logvar.expand_as(mu)

    def decode_logits(self, z, labels=None):
        return (z @ self.W.T + self.b).view(-1, *self.image_shape)

    def recon_nll(self, logits, x):  # an identity mean: the model stays linear
        return gaussian_nll(logits.float(), torch.tensor(math.log(self.sigma)), x)

    def exact_log_likelihood(self, x):
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(len(self.b))
        return MultivariateNormal(self.b, cov).log_prob(x.flatten(1))


def test_iwae_estimate_matches_the_exact_likelihood_of_a_linear_gaussian_model():
    model = LinearGaussianVAE()
    x = (torch.randn(20, 2, generator=torch.Generator().manual_seed(1)) @ model.W.T + model.b).view(
        20, 1, 1, 6
    )
    x = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    exact = -model.exact_log_likelihood(x).double()
    estimate = iwae_nll(model, x, k=5000, max_decodes=4096)
    assert (estimate - exact).abs().max() < 0.1, (estimate - exact).abs().max()
    elbo = -model.loss(x, generator=torch.Generator().manual_seed(0)).terms["loss"]
    # The bounds in order: -log p(x) <= the k=5000 bound <= the -ELBO (here its Monte Carlo mean over 400
    # draws, the k=1 bound's expectation). Each difference, averaged over the images, is checked against
    # Z_MISS standard errors: the first may not fall below, the second must rise clearly above.
    neg_elbo, _ = importance_bounds(model, x, k=400, seed=1)
    above_exact, below_elbo = estimate - exact, neg_elbo - estimate
    assert above_exact.mean() >= -Z_MISS * above_exact.std() / math.sqrt(len(x))
    assert below_elbo.mean() > Z_MISS * below_elbo.std() / math.sqrt(len(x))
    assert abs(-elbo - neg_elbo.mean()) < 1.0  # the loss's own one-draw -ELBO estimate agrees


def test_iwae_estimate_falls_with_k_and_chunks_do_not_change_it(trained_run):
    import vaekit

    model = vaekit.load(trained_run)
    images = load_dataset("digits").test.as_float()[:200]  # enough for the k=1 bound's spread
    # Falls with k in expectation. Each image's estimate at k and at 10k (other seeds: independent) gives
    # a difference whose mean over the images is >= 0; the test allows Z_MISS standard errors of that mean
    # below 0, so that it fails on a real rise, and by chance with probability <= 1e-6 (normal tail).
    per_k = [iwae_nll(model, images, k=k, seed=k).double() for k in (1, 10, 100, 1000)]
    for earlier, later in zip(per_k[:-1], per_k[1:], strict=True):
        fall = earlier - later
        assert fall.mean() >= -Z_MISS * fall.std() / math.sqrt(len(fall)), fall.mean()
    fall = per_k[0] - per_k[-1]  # and clearly, from k=1 to k=1000: more than Z_MISS errors above 0
    assert fall.mean() > Z_MISS * fall.std() / math.sqrt(len(fall)), fall.mean()
    whole = iwae_nll(model, images, k=300, max_decodes=10**6)
    chunked = iwae_nll(model, images, k=300, max_decodes=128)
    assert (whole - chunked).abs().max() < 0.5  # the same estimator, other draws
    state = torch.get_rng_state()
    iwae_nll(model, images[:5], k=10)
    assert torch.equal(torch.get_rng_state(), state)


def test_latent_statistics_find_unused_units():
    model = LinearGaussianVAE(n_pixels=6, latent_dim=2)
    model.gain = model.gain.clone()
    model.gain[1] = 0  # the second unit's mean ignores the input: inactive
    x = torch.randn(500, 1, 1, 6, generator=torch.Generator().manual_seed(0))
    stats = latent_statistics(model, x)
    assert stats["active_units"] == 1 and stats["latent_dim"] == 2
    mu, logvar = model.encode(x)
    expected = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(0)
    assert stats["kl_per_dim"] == pytest.approx(expected.tolist(), rel=1e-5)


def test_bits_per_dim():
    assert bits_per_dim(784 * math.log(2), (1, 28, 28)) == pytest.approx(1.0)


def test_the_terminal_table_labels_every_figure_and_hides_none():
    result = {
        "val_loss": 101.5, "val_recon": 80.25, "val_kl": 21.25, "val_n_images": 1200, "epochs_trained": 7,
        "val_bits_per_dim": 0.18, "val_recon_bce": 79.5, "val_recon_mse": 0.0125,
        "val_active_units": 3, "val_kl_per_dim": [1.5, 0.25, 0.125, 0.0],
        "val_iwae_nll": 99.75, "val_iwae_k": 100, "val_iwae_bits_per_dim": 0.17, "val_perplexity": 55.5,
        "val_frechet_distance": 12.5, "val_class_histogram": [3, 0, 7], "val_mode_coverage": 2,
        "val_class_tv_distance": 0.25, "val_quality_samples": 10, "val_classifier_test_accuracy": 0.99,
    }  # fmt: skip
    table = format_result(result, split="val")
    lines = table.splitlines()
    assert lines[0] == "val split: 1,200 images, after 7 epochs"
    expected = [
        r"-ELBO +101\.50 +0\.1800 bits/dim +recon 80\.25 \+ kl 21\.25$",
        r"-log p\(x\), k=100 +99\.75 +0\.1700 bits/dim$",
        r"BCE per image +79\.50$",
        r"MSE per pixel +0\.0125$",
        r"active units +3 of 4$",
        r"KL per dimension +1\.50 0\.25 0\.12 0\.00$",
        r"Frechet distance +12\.50$",
        r"samples per class +0:3 1:0 2:7$",
        r"mode coverage +2 of 3 classes$",
        r"class mix distance \(TV\) +0\.2500$",
        r"sample quality \(10 samples; the classifier is 99\.00% accurate",
        # figures the table has no place for are listed under their eval.json names
        r"val_perplexity +55\.50$",
    ]
    for pattern in expected:
        assert any(re.search(pattern, line) for line in lines), (pattern, table)


def test_an_evaluation_in_bf16_says_so_in_eval_json(trained_run):
    fp32 = evaluate_run(trained_run, write=False)
    bf16 = evaluate_run(trained_run, precision="bf16")
    assert bf16["test_precision"] == "bf16" and "test_precision" not in fp32  # auto on a CPU: fp32
    assert json.loads((trained_run / "eval.json").read_text())["test_precision"] == "bf16"
    assert abs(bf16["test_loss"] - fp32["test_loss"]) < 0.05


def test_evaluated_images_are_the_bytes_or_the_splits_fixed_binary_draw():
    """A run trained on binarized images is evaluated on each split's one fixed binary draw (not a new
    draw per call, nor the grey bytes); one trained on grey pixels on the bytes themselves."""
    grey = torch.arange(2 * 784, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(2, 1, 28, 28)
    images = ImageSet(grey, torch.zeros(2, dtype=torch.int64))
    as_grey = evaluated_images({"train": {"binarize": "none"}}, images, "test")
    assert as_grey.dtype == torch.uint8 and torch.equal(as_grey, grey)
    dynamic = {"train": {"binarize": "dynamic"}}
    test = evaluated_images(dynamic, images, "test")
    assert set(test.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(test, evaluated_images(dynamic, images, "test"))
    assert torch.equal(test, binarize(unit_float(grey), "test"))
    assert not torch.equal(test, evaluated_images(dynamic, images, "val"))  # each split its own draw
