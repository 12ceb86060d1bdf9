"""Evaluation numbers against an independent recomputation from the saved weights."""

import json

import torch
from safetensors.torch import load_file

from vaekit.data import load_dataset, split_train_val
from vaekit.evaluate import elbo_terms, evaluate_run


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


def test_elbo_terms_does_not_touch_the_global_rng(trained_run):
    import vaekit

    model = vaekit.load(trained_run)
    images = torch.rand(20, 1, 8, 8)
    state = torch.get_rng_state()
    elbo_terms(model, images)
    assert torch.equal(torch.get_rng_state(), state)
