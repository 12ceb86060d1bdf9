"""Sample quality: the Frechet distance against closed forms, the cached classifier, and the measures on
real digit images standing in for a model's samples (good, one-class and mislabelled "models")."""

import json
import re

import numpy as np
import pytest
import scipy.linalg
import torch

from tests.conftest import quiet_trainer, tiny_config
from vaekit.cli import main
from vaekit.data import ImageSet, load_dataset
from vaekit.evaluation.classifier import (
    CLASSIFIER_RECIPE,
    SECOND_RECIPE,
    classifier_path,
    fit_classifier,
    load_classifier,
)
from vaekit.evaluation.likelihood import iwae_nll
from vaekit.evaluation.quality import (
    CLASSIFIER_FIGURES,
    MIN_CLASSIFIER_ACCURACY,
    classifier_shortfall,
    draw_samples,
    frechet_distance,
    gaussian_statistics,
    label_swap_accuracy,
    sample_quality,
)
from vaekit.evaluation.runs import evaluate_run
from vaekit.utils.errors import VaekitError


# ------------------------------------------------------------------------------ Frechet distance
def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    var1, var2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    # per dimension: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s
    expected = ((mu1 - mu2) ** 2 + (var1.sqrt() - var2.sqrt()) ** 2).sum().item()
    assert frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2)) == pytest.approx(expected)
    assert frechet_distance(mu1, torch.diag(var1), mu1, torch.diag(var1)) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_of_full_covariances_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    reference = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    got = frechet_distance(*(torch.from_numpy(t) for t in (m1, s1, m2, s2)))
    assert got == pytest.approx(reference, rel=1e-8)
    # symmetric, and a rank-deficient covariance (fewer samples than features) stays real and finite
    assert got == pytest.approx(frechet_distance(*(torch.from_numpy(t) for t in (m2, s2, m1, s1))))
    low_rank = torch.from_numpy(rng.normal(size=(3, 6)))
    assert np.isfinite(frechet_distance(*gaussian_statistics(low_rank), *gaussian_statistics(low_rank * 2)))


def test_gaussian_statistics_match_numpy():
    features = torch.randn(50, 4, dtype=torch.float64)
    mean, cov = gaussian_statistics(features)
    assert np.allclose(mean.numpy(), features.numpy().mean(0))
    assert np.allclose(cov.numpy(), np.cov(features.numpy(), rowvar=False))
    with pytest.raises(VaekitError, match="at least 2"):
        gaussian_statistics(features[:1])


# ------------------------------------------------------------------------------ the classifier
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def classifier(digits, _digits_classifier_cache):
    return load_classifier(digits, _digits_classifier_cache)


def test_classifier_is_cached_in_the_data_folder_and_recognises_digits(digits, digits_classifier_dir):
    notes = []
    classifier, info = load_classifier(digits, digits_classifier_dir, log=notes.append)
    assert notes == []  # loaded from the cache, not trained again
    assert classifier_path(digits, digits_classifier_dir).is_file()
    assert info["path"] == str(classifier_path(digits, digits_classifier_dir))
    assert info["test_accuracy"] >= 0.95 and info["train_images"] == len(digits.train) == 1438
    assert info["recipe"] == CLASSIFIER_RECIPE
    # the stored accuracy is the loaded classifier's
    logits = classifier(digits.test.as_float())
    assert (logits.argmax(1) == digits.test.labels).double().mean().item() == info["test_accuracy"]


def test_classifier_training_is_seeded_and_leaves_the_global_rng(digits):
    recipe = dict(CLASSIFIER_RECIPE, steps=20)
    state = torch.get_rng_state()
    first = fit_classifier(digits.train, 10, seed=3, recipe=recipe)
    assert torch.equal(torch.get_rng_state(), state)
    second = fit_classifier(digits.train, 10, seed=3, recipe=recipe)
    other = fit_classifier(digits.train, 10, seed=4, recipe=recipe)
    for name, weights in first.state_dict().items():
        assert torch.equal(weights, second.state_dict()[name]), name
    assert not torch.equal(first.head[1].weight, other.head[1].weight)


def test_another_training_set_gets_its_own_cache_file(digits, tmp_path):
    fewer = type(digits)(digits.name, digits.train.subset(torch.arange(500)), digits.test, digits.classes)
    assert classifier_path(fewer, tmp_path) != classifier_path(digits, tmp_path)
    assert classifier_path(digits, tmp_path, seed=1) != classifier_path(digits, tmp_path)


def test_a_corrupt_cache_file_is_a_clear_error(digits, tmp_path):
    path = classifier_path(digits, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not safetensors")
    with pytest.raises(VaekitError, match="corrupt"):
        load_classifier(digits, tmp_path)


# ------------------------------------------------------------------ the measures, on real images
class ImagePool:
    """A stand-in model whose 'samples' are real images: drawn at random from a pool, optionally only
    from some classes; a conditional one returns images of the requested class shifted by ``offset``."""

    name = "pool"
    can_sample = True
    device = torch.device("cpu")

    def __init__(self, data: ImageSet, classes=range(10), conditional=False, offset=0):
        keep = torch.isin(data.labels, torch.tensor(list(classes)))
        self.images, self.labels = data.as_float()[keep], data.labels[keep]
        self.conditional, self.num_classes, self.offset = conditional, 10, offset

    def sample_labels(self, n, label):
        return torch.arange(n) * self.num_classes // n if self.conditional else None

    def samples_by_class(self, prior=None):
        return self.conditional

    def sample_temperature(self, prior=None, by_class=False):
        return 1.0

    def sample(self, n, label=None, generator=None, prior=None, temperature=1.0):
        pool = torch.arange(len(self.images))
        if label is not None:
            pool = pool[self.labels == (label + self.offset) % 10]
        return self.images[pool[torch.randint(len(pool), (n,), generator=generator)]]


def test_real_images_score_near_zero_and_one_class_scores_far(digits, classifier):
    model, _ = classifier
    real = sample_quality(ImagePool(digits.train), model, digits.test, n_samples=2000)
    only_ones = sample_quality(ImagePool(digits.train, classes=[1]), model, digits.test, n_samples=2000)
    # 359 test images: each class share is known to about +-1.6%, so TV is noisy at the 0.05 level
    assert real["mode_coverage"] == 10 and real["class_tv_distance"] < 0.12
    assert sum(real["class_histogram"]) == real["quality_samples"] == 2000
    assert only_ones["mode_coverage"] == 1 and only_ones["class_tv_distance"] > 0.85
    assert only_ones["class_histogram"][1] > 1900
    assert only_ones["frechet_distance"] > 10 * real["frechet_distance"]
    assert "label_accuracy" not in real


def test_label_accuracy_of_conditional_models(digits, classifier):
    model, info = classifier
    right = sample_quality(ImagePool(digits.train, conditional=True), model, digits.test, n_samples=1000)
    wrong = sample_quality(
        ImagePool(digits.train, conditional=True, offset=1), model, digits.test, n_samples=1000
    )
    assert right["label_accuracy"] > 0.95 and wrong["label_accuracy"] < 0.05
    assert len(right["label_accuracy_per_class"]) == 10 and min(right["label_accuracy_per_class"]) > 0.8
    assert right["mode_coverage"] == wrong["mode_coverage"] == 10  # every class drawn, if mislabelled


def test_draw_samples_is_seeded_and_blocks_the_classes(digits):
    pool = ImagePool(digits.train, conditional=True)
    images, labels = draw_samples(pool, 2500, seed=5, batch_size=1000)
    again, _ = draw_samples(pool, 2500, seed=5, batch_size=1000)
    assert images.shape == (2500, 1, 8, 8) and torch.equal(images, again)
    assert torch.equal(labels, torch.arange(2500) * 10 // 2500)
    # each sample is an image of its requested class, across the batch boundaries
    lookup = {img.numpy().tobytes(): int(y) for img, y in zip(pool.images, pool.labels, strict=True)}
    assert all(lookup[img.numpy().tobytes()] == int(y) for img, y in zip(images, labels, strict=True))


# ------------------------------------------------------------------------- through evaluate_run
def test_evaluate_run_measures_the_samples_of_a_trained_cvae(tmp_path, digits_classifier_dir, capsys):
    out = tmp_path / "cvae"
    quiet_trainer(tiny_config(model="cvae", epochs=3), out).run()
    result = evaluate_run(out, samples=1000)
    stored = json.loads((out / "eval.json").read_text())
    for key in ("frechet_distance", "class_histogram", "mode_coverage", "label_accuracy"):
        assert stored[key] == result[key]
    assert sum(stored["class_histogram"]) == 1000 and 0 <= stored["label_accuracy"] <= 1
    assert stored["classifier_test_accuracy"] >= 0.95
    # the terminal table shows them
    assert main(["evaluate", str(out), "--samples", "1000"]) == 0
    table = capsys.readouterr().out
    # side by side: z ~ N(0, I), then the fitted prior
    fd, fitted_fd = stored["frechet_distance"], stored["fitted_frechet_distance"]
    assert re.search(rf"Frechet distance +{fd:.2f} +{fitted_fd:.2f}\n", table)
    accuracy, fitted_accuracy = stored["label_accuracy"], stored["fitted_label_accuracy"]
    assert re.search(rf"label accuracy +{accuracy:.1%} +{fitted_accuracy:.1%}\n", table)
    assert re.search(rf"label swap test +{stored['label_swap_accuracy']:.1%} of latents", table)
    assert " ".join(f"{c}:{n}" for c, n in enumerate(stored["class_histogram"])) in table
    # the second classifier's Frechet distance and the manifold figures, of both priors
    second, fitted_second = (
        stored["independent_frechet_distance"],
        stored["fitted_independent_frechet_distance"],
    )
    assert re.search(rf"by the second classifier +{second:.2f} +{fitted_second:.2f}\n", table)
    pairs = [f"{stored[p + 'precision']:.2f} / {stored[p + 'recall']:.2f}" for p in ("", "fitted_")]
    assert re.search(rf"precision / recall +{pairs[0]} +{pairs[1]}\n", table)
    assert all(0 <= stored[k] <= 1 for k in ("precision", "recall", "coverage")) and stored["density"] >= 0
    assert stored["second_classifier_test_accuracy"] >= 0.9 and "the second" in table


def test_vqvae_without_a_prior_skips_sample_quality_with_a_note(tmp_path, digits_classifier_dir):
    out = tmp_path / "vq"
    config = tiny_config(model="vqvae", hidden=None, latent_dim=4, channels=[8, 8], codebook_size=8, epochs=1)
    quiet_trainer(config, out).run()
    notes = []
    result = evaluate_run(out, samples=500, log=notes.append)
    assert "frechet_distance" not in result and "train-prior" in notes[0]


def test_the_classifier_is_cached_in_vaekits_data_folder_not_the_datasets(tmp_path, tiny_mnist, monkeypatch):
    import vaekit.evaluation.classifier
    import vaekit.evaluation.quality

    monkeypatch.setattr(vaekit.evaluation.classifier, "CLASSIFIER_RECIPE", dict(CLASSIFIER_RECIPE, steps=5))
    monkeypatch.setattr(vaekit.evaluation.classifier, "SECOND_RECIPE", dict(SECOND_RECIPE, steps=5))
    monkeypatch.setattr(vaekit.evaluation.quality, "MIN_CLASSIFIER_ACCURACY", 0.0)  # 5 steps: report anyway
    run = tmp_path / "mnist-run"
    quiet_trainer(tiny_config(dataset="mnist", data_dir=str(tiny_mnist), epochs=1), run).run()
    dataset_files = sorted(p.name for p in tiny_mnist.rglob("*"))
    notes = []
    result = evaluate_run(run, samples=50, log=notes.append)
    assert sorted(p.name for p in tiny_mnist.rglob("*")) == dataset_files  # nothing written there
    cached = sorted(p.name for p in (tmp_path / "cache" / "classifiers").glob("mnist-*.safetensors"))
    assert len(cached) == 2 and cached[1].startswith("mnist-second-")  # in $VAEKIT_DATA, the second beside
    assert "training the mnist classifier" in notes[0] and "training the mnist second classifier" in notes[2]
    assert sum(result["class_histogram"]) == 50


def test_evaluate_withholds_the_figures_of_a_classifier_too_often_wrong(
    trained_run, tmp_path, monkeypatch, capsys
):
    import vaekit.evaluation.classifier

    # a classifier trained for 5 steps: far below MIN_CLASSIFIER_ACCURACY on the digits
    monkeypatch.setattr(vaekit.evaluation.classifier, "CLASSIFIER_RECIPE", dict(CLASSIFIER_RECIPE, steps=5))
    monkeypatch.setattr(vaekit.evaluation.classifier, "SECOND_RECIPE", dict(SECOND_RECIPE, steps=5))
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "cache"))
    path = trained_run / "eval.json"  # figures of an earlier evaluation, with a better classifier
    path.write_text(
        json.dumps({**json.loads(path.read_text()), "frechet_distance": 1.0, "mode_coverage": 10})
    )
    notes = []
    result = evaluate_run(trained_run, samples=200, log=notes.append)
    accuracy = result["classifier_test_accuracy"]
    assert accuracy < MIN_CLASSIFIER_ACCURACY
    stored = json.loads(path.read_text())
    for figures in (result, stored):
        assert not set(CLASSIFIER_FIGURES) & set(figures)  # none of them, and no stale ones kept
        assert figures["test_loss"] > 0 and figures["active_units"] >= 0  # the other figures are there
    note = (
        f"note: the measuring classifier is only {accuracy:.1%} accurate on digits' test images "
        "(below 90%): its sample-quality figures are not reported"
    )
    assert notes[-1] == note == classifier_shortfall(accuracy, "digits")
    assert classifier_shortfall(MIN_CLASSIFIER_ACCURACY, "digits") is None
    # the command says why on stderr, and its table shows the rest
    assert main(["evaluate", str(trained_run), "--samples", "200"]) == 0
    out, err = capsys.readouterr()
    assert note in err.splitlines()
    assert "Frechet distance" not in out and "mode coverage" not in out and "-ELBO" in out
    assert re.search(rf"not reported +the measuring classifier is only {accuracy:.1%} accurate", out)


# ------------------------------------------------------------------------ fitted priors, swap test
class SwapStub:
    """A conditional stand-in: its latent of an image is the image's index; decoding returns a real image
    of the label asked for (``follows_label``) or the encoded image itself, whatever the label."""

    name, conditional, num_classes, device = "stub", True, 10, torch.device("cpu")

    def __init__(self, pool: ImageSet, follows_label: bool):
        self.pool, self.follows_label = pool, follows_label
        self.first = {c: int((pool.labels == c).nonzero()[0]) for c in range(10)}

    def eval(self):
        return self

    def encode(self, x, labels):
        index = torch.stack(
            [(self.pool.as_float() == image).flatten(1).all(1).nonzero()[0, 0] for image in x]
        )
        return index.float().unsqueeze(1), None

    def latents(self, x, labels):
        return self.encode(x, labels)[0]

    def decode(self, z, labels):
        index = z.long().squeeze(1)
        if self.follows_label:
            index = torch.tensor([self.first[int(c)] for c in labels])
        return self.pool.as_float()[index]


def test_the_swap_test_tells_a_label_driven_decoder_from_a_latent_driven_one(digits, classifier):
    model, _ = classifier
    test = digits.test.subset(torch.arange(120))
    driven = label_swap_accuracy(SwapStub(test, follows_label=True), model, test)
    ignored = label_swap_accuracy(SwapStub(test, follows_label=False), model, test)
    assert driven["label_swap_accuracy"] > 0.8 and ignored["label_swap_accuracy"] < 0.05
    assert len(driven["label_swap_accuracy_per_class"]) == 10
    with pytest.raises(VaekitError, match="for conditional models"):
        label_swap_accuracy(ImagePool(digits.train), model, test)


def test_a_plain_vae_draws_requested_digits_and_better_samples_from_its_fitted_prior(
    tmp_path, digits_classifier_dir
):
    out = tmp_path / "mlp"
    quiet_trainer(tiny_config(latent_dim=8, hidden=[128], epochs=30), out).run()
    result = evaluate_run(out, samples=1000, iwae_k=20)
    # measured on the digits: Frechet 97 -> 83, class mix TV 0.24 -> 0.14, 82% of asked-for digits
    assert result["fitted_frechet_distance"] < result["frechet_distance"]
    assert result["fitted_class_tv_distance"] < result["class_tv_distance"]
    assert result["fitted_label_accuracy"] > 0.7 and "label_accuracy" not in result  # N(0, I) has no labels
    # -log p(x) with the fitted mixture as p(z): an independent recomputation gives the same number
    from vaekit import load
    from vaekit.data import load_dataset

    model = load(out)
    test = load_dataset("digits").test
    nll = iwae_nll(model, test.as_float(), test.labels, k=20, seed=0, prior="fitted").mean().item()
    assert result["fitted_iwae_nll"] == pytest.approx(nll)
    assert result["fitted_iwae_nll"] != pytest.approx(result["iwae_nll"])
