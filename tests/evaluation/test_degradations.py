"""The degradations of real images that check a sample-quality measure (evaluation/degradations.py), the
manifold figures beside the Frechet distance, and the suite on the digits classifiers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from sklearn.neighbors import NearestNeighbors

from vaekit.data import load_dataset
from vaekit.evaluation import degradations as d
from vaekit.evaluation.classifier import SECOND_RECIPE, SECOND_SEED, load_classifier
from vaekit.evaluation.quality import manifold_figures


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def images(digits):
    return digits.test.as_float(), digits.test.labels


@pytest.mark.parametrize("name", list(d.DEGRADATIONS))
def test_strength_zero_leaves_the_images_as_they_are(images, name):
    x, y = images
    strengths, apply = d.DEGRADATIONS[name]
    assert strengths[0] == 0 and list(strengths) == sorted(strengths)
    out = apply(x, y, 0, torch.Generator().manual_seed(0))
    assert torch.equal(out, x)
    stronger = apply(x, y, strengths[-1], torch.Generator().manual_seed(0))
    assert (
        stronger.shape == x.shape
        and not torch.equal(stronger, x)
        and 0 <= stronger.min() <= stronger.max() <= 1
    )


def test_blur_is_scipys_gaussian_filter():
    x = torch.rand(2, 1, 28, 28)
    for sigma in (0.5, 1.5):
        radius = int(np.ceil(3 * sigma))
        expected = gaussian_filter(x.numpy(), (0, 0, sigma, sigma), mode="mirror", truncate=radius / sigma)
        np.testing.assert_allclose(d.blur(x, sigma).numpy(), expected, atol=1e-5)


def test_each_degradation_does_what_it_says(images):
    x, y = images
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    variation = [d.blur(x, s).diff(dim=-1).abs().mean().item() for s in (0.5, 1, 2, 3)]
    assert variation == sorted(variation, reverse=True)  # the edges soften step by step
    noisy = d.pixel_noise(torch.full((1, 1, 64, 64), 0.5), 0.1, g())
    assert (noisy - 0.5).std().item() == pytest.approx(0.1, rel=0.1)
    binary = d.binarize(x, 1.0, g())
    assert set(binary.unique().tolist()) <= {0.0, 1.0} and binary.mean().item() == pytest.approx(
        x.mean().item(), rel=0.05
    )
    half = d.binarize(x, 0.5, g())
    grey = (x > 0) & (x < 1)
    assert 0.4 < (half[grey] != x[grey]).float().mean().item() < 0.6  # about half the grey pixels drawn
    moved = d.elastic(x, 3.0, generator=g())
    assert (moved - x).abs().mean() > 0.01 and moved.sum().item() == pytest.approx(x.sum().item(), rel=0.1)
    dropped, dropped_labels = d.drop_classes(x, y, 3, g())
    assert len(dropped) == len(x) and not torch.isin(dropped_labels, torch.tensor([7, 8, 9])).any()
    repeated, repeated_labels = d.repeat_class(x, y, 0.5, g())
    assert (repeated_labels == 0).float().mean().item() >= 0.5 and len(repeated) == len(x)


def brute_force(real, fake, k):
    """The four figures from scikit-learn's nearest neighbours, by their definitions."""
    radius = lambda a: NearestNeighbors(n_neighbors=k + 1).fit(a).kneighbors(a)[0][:, -1]  # noqa: E731
    r_real, r_fake = radius(real), radius(fake)
    dist = np.linalg.norm(fake[:, None] - real[None], axis=-1)  # [M, N]
    inside = dist <= r_real[None]
    return {
        "precision": inside.any(1).mean(),
        "recall": (r_fake[None] >= dist.T).any(1).mean(),
        "density": inside.sum(1).mean() / k,
        "coverage": inside.any(0).mean(),
    }


def test_manifold_figures_match_their_definitions():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 8)), rng.normal(0.5, 1.2, size=(250, 8))
    got = manifold_figures(torch.from_numpy(real), torch.from_numpy(fake), k=5, chunk=64)
    for key, value in brute_force(real, fake, 5).items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    same = manifold_figures(torch.from_numpy(real), torch.from_numpy(real), k=5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = manifold_figures(torch.from_numpy(real), torch.from_numpy(fake + 100), k=5)
    assert far["precision"] == far["recall"] == far["density"] == far["coverage"] == 0.0


def test_the_suite_rises_with_blur_and_dropped_classes_on_both_classifiers(digits, digits_classifier_dir):
    measuring, _ = load_classifier(digits, digits_classifier_dir)
    second, _ = load_classifier(digits, digits_classifier_dir, SECOND_SEED, recipe=SECOND_RECIPE)
    suite = {name: d.DEGRADATIONS[name] for name in ("blur", "dropped classes")}
    suite["blur"] = ((0, 0.5, 1.0, 2.0), suite["blur"][1])
    x = torch.cat([digits.test.as_float(), digits.train.as_float()[:641]])  # 1,000 images: 500 a side
    y = torch.cat([digits.test.labels, digits.train.labels[:641]])
    result = d.degradation_suite({"measuring": measuring, "second": second}, x, y, suite=suite)
    for name, entry in result.items():
        assert entry["measuring"]["monotone"] and entry["second"]["monotone"], (name, entry)
        assert set(entry["measuring"]) == {
            "frechet_distance",
            "monotone",
            "precision",
            "recall",
            "density",
            "coverage",
        }
    coverage = result["dropped classes"]["measuring"]["coverage"]
    assert coverage[-1] < coverage[0]  # the dropped classes' real images are no longer covered
