"""Anomaly scores: each against an independent computation, detection against scikit-learn's ROC, and a
score that tells another dataset from the run's own."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_curve

import vaekit
from tests.conftest import error_of
from vaekit.cli import main
from vaekit.data import ImageSet, load_dataset
from vaekit.evaluation.anomaly import binarized, detection, image_scores, png_bits_per_dim, score_run
from vaekit.evaluation.likelihood import iwae_nll, reconstruction_errors


@pytest.fixture
def scored(trained_run):
    model = vaekit.load(trained_run)
    test = load_dataset("digits").test.subset(torch.arange(40))
    return model, test, image_scores(model, test, k=20, seed=3, progress=False)


def test_the_bounds_are_the_importance_sampled_ones_and_in_jensens_order(scored):
    model, test, scores = scored
    assert np.allclose(scores["nll"], iwae_nll(model, test.images, k=20, seed=3).numpy(), rtol=1e-12)
    # from the same draws, log-mean-exp >= mean for every image: -L_k <= the Monte Carlo -ELBO
    assert np.all(scores["nll"] <= scores["neg_elbo"] + 1e-9)
    one = image_scores(model, test, k=1, seed=3, progress=False)
    assert np.allclose(one["nll"], one["neg_elbo"], rtol=1e-12)
    assert np.allclose(scores["bits_per_dim"], scores["nll"] / (64 * math.log(2)))
    assert np.allclose(scores["complexity_score"], scores["bits_per_dim"] - scores["complexity"])


def test_reconstruction_errors_per_image_average_to_the_evaluations(scored):
    model, test, scores = scored
    figures = reconstruction_errors(model, test.images)
    assert scores["recon_bce"].mean() == pytest.approx(figures["recon_bce"], rel=1e-6)
    assert scores["recon_mse"].mean() == pytest.approx(figures["recon_mse"], rel=1e-6)


def test_png_length_is_what_pil_writes_and_a_blank_image_is_simpler_than_noise():
    noise = torch.randint(
        0, 256, (1, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    blank = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    bits = png_bits_per_dim(torch.cat([blank, noise]))
    import io

    buffer = io.BytesIO()
    Image.fromarray(noise[0, 0].numpy()).save(buffer, format="PNG", optimize=True)
    assert bits[1] == 8 * len(buffer.getvalue()) / 256
    # a blank image is its ~70 bytes of PNG headers; noise does not compress: more than its 8 bits
    assert bits[0] < 2.5 and bits[1] > 8


def test_a_bernoulli_models_complexity_is_of_the_binary_image_its_likelihood_codes(scored):
    model, test, scores = scored
    assert model.likelihood == "bernoulli"
    binary = binarized(test.images, seed=3)
    assert set(binary.unique().tolist()) <= {0, 255} and torch.equal(binarized(binary, seed=9), binary)
    assert np.array_equal(scores["complexity"], png_bits_per_dim(binary, binary=True))
    # a 1-bit PNG of a binary image is shorter than the 8-bit PNG of the same image
    assert np.all(png_bits_per_dim(binary, binary=True) < png_bits_per_dim(binary))


def test_detection_matches_scikit_learns_roc_curve():
    rng = np.random.default_rng(0)
    reference, other = rng.normal(0, 1, 500), rng.normal(1.5, 1, 300)
    figures = detection(reference, other)
    # in-distribution as positives, scored by -cost: the lowest FPR at a TPR of at least 95%
    truth = np.r_[np.ones(500), np.zeros(300)]
    fpr, tpr, _ = roc_curve(truth, -np.r_[reference, other])
    assert figures["fpr_at_95_tpr"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    from sklearn.metrics import roc_auc_score

    assert figures["auroc"] == pytest.approx(roc_auc_score(1 - truth, np.r_[reference, other]))
    assert detection(reference, reference + 100)["auroc"] == 1.0
    assert "both" in error_of(detection, reference, np.array([]))


def write_images(folder, images: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.png")


def test_inverted_digits_are_told_from_the_runs_own(trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "cache"))
    test = load_dataset("digits").test
    write_images(tmp_path / "inverted", 255 - test.images[:100, 0].numpy())
    out = tmp_path / "scores.npz"
    argv = [
        "score",
        str(trained_run),
        "--dataset",
        f"folder:{tmp_path / 'inverted'}",
        "--reference",
        "digits",
    ]
    assert main([*argv, "--k", "10", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 100 and summary["reference"] == {
        "dataset": "digits",
        "split": "test",
        "n": len(test),
    }
    assert summary["detection"]["nll"]["auroc"] > 0.95  # a model of dark backgrounds: white ones are unlikely
    table = np.load(out)
    assert set(table.files) >= {"index", "filename", "neg_elbo", "nll", "complexity_score"}
    assert "label" not in table.files  # an unlabelled folder


def test_a_background_run_adds_the_likelihood_ratio(trained_run, tmp_path):
    result = score_run(
        trained_run, tmp_path / "s.npz", split="test", k=2, background=trained_run, progress=False
    )
    table = np.load(result["path"])
    assert np.allclose(table["likelihood_ratio"], 0.0)  # a model against itself: log p / p
    assert np.allclose(table["background_nll"], table["nll"])


def test_score_refuses_what_has_no_likelihood_and_a_bad_k(trained_run, tmp_path):
    assert "integer >= 1" in error_of(score_run, trained_run, tmp_path / "s.npz", k=0)
    images = ImageSet(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.tensor([-1, -1]))
    from vaekit.models import build_model

    vq = build_model({"name": "vqvae", "image_shape": [1, 8, 8], "channels": [4], "latent_dim": 2})
    assert (
        error_of(image_scores, vq, images)
        == "anomaly scores need a Gaussian-latent model's likelihood, not vqvae"
    )
    assert not (tmp_path / "s.npz").exists()
