"""Sample quality, measured: what the cached classifiers (``evaluation.classifier``) say of a model's samples.

- the Frechet distance between classifier features of samples and of real images (FID's formula with a
  digit classifier in place of Inception, so its scale is its own: compare runs with each other), by the
  measuring classifier and by the second, independently trained one (``independent_frechet_distance``):
  a ranking both give is worth trusting (docs/evaluation.md has the degradations both rise with);
- precision, recall, density and coverage of the samples' features against the real images' (fidelity
  and diversity apart, where the Frechet distance mixes them);
- the class histogram of samples: which digits a model draws and how often (mode coverage);
- for conditional models, how often a sample is recognised as the class it was asked for.

They are only as good as the classifier: below ``MIN_CLASSIFIER_ACCURACY`` on the test images, ``vaekit
evaluate`` withholds them (``CLASSIFIER_FIGURES``) and says why (``classifier_shortfall``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vaekit.data import ImageSet
from vaekit.evaluation.classifier import DigitClassifier, classify
from vaekit.models import VAE
from vaekit.utils.errors import VaekitError

# The least test accuracy at which the classifier's verdicts on samples are reported. Below it, a sample
# it files under the wrong class is too often its error rather than the model's, and its features (the
# Frechet distance's) separate the classes poorly. 90% is far above chance for any class count (33% for
# the 3 shapes), and below what its recipe reaches on MNIST (99.2%), digits (98.9%), shapes and
# shapes-rgb (100%); a folder whose classes it cannot tell apart falls short, and gets the other
# figures without these. (Fashion-MNIST, not measured, may be near it: small CNNs reach 88-92% there.)
MIN_CLASSIFIER_ACCURACY = 0.9

# The entries of eval.json that come from the classifier (before the split prefix): sample_quality's
# (also as fitted_*, of samples from the fitted prior) and label_swap_accuracy's.
_SAMPLE_FIGURES = (
    "frechet_distance", "independent_frechet_distance", "precision", "recall", "density", "coverage",
    "class_histogram", "mode_coverage", "class_tv_distance", "quality_samples", "label_accuracy",
    "label_accuracy_per_class",
)  # fmt: skip
NEIGHBOURS = 5  # k of the manifolds of precision, recall, density and coverage (Naeem et al. 2020's)
CLASSIFIER_FIGURES = (
    *_SAMPLE_FIGURES,
    *(f"fitted_{key}" for key in _SAMPLE_FIGURES),
    "label_swap_accuracy",
    "label_swap_accuracy_per_class",
)


def classifier_shortfall(accuracy: float, dataset: str) -> str | None:
    """None if a classifier with this test accuracy is fit to measure samples (at least
    ``MIN_CLASSIFIER_ACCURACY``), else the one-line note that says why its figures are not reported."""
    if accuracy >= MIN_CLASSIFIER_ACCURACY:
        return None
    whose = dataset + ("'" if dataset.endswith("s") else "'s")
    return (
        f"note: the measuring classifier is only {accuracy:.1%} accurate on {whose} test images "
        f"(below {MIN_CLASSIFIER_ACCURACY:.0%}): its sample-quality figures are not reported"
    )


# ------------------------------------------------------------------------------- the measures
def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [F] and covariance [F, F] (unbiased, divided by N - 1) of features [N, F], in float64."""
    if len(features) < 2:
        raise VaekitError("a covariance needs at least 2 feature vectors")
    features = features.double()
    return features.mean(0), torch.cov(features.T).reshape(features.shape[1], features.shape[1])


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):

        d^2 = |mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2))

    (Dowson & Landau 1982; as FID, Heusel et al. 2017). The trace of the matrix square root is taken as
    Tr((S1^(1/2) S2 S1^(1/2))^(1/2)), the same number, computed with symmetric eigendecompositions
    (negative round-off eigenvalues clipped to 0), so it is real and stable. Shapes: [F], [F, F]; float64.
    """
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    values, vectors = torch.linalg.eigh(sigma1)
    root1 = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    middle = root1 @ sigma2 @ root1
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_root
    return max(distance.item(), 0.0)


def knn_radii(features: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Each point's distance to its k-th nearest neighbour among the others, [N] (float64)."""
    radii = []
    for block in features.split(chunk):
        distances = torch.cdist(block, features)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # the 1st is the point itself, at 0
    return torch.cat(radii)


def manifold_figures(
    real: torch.Tensor, fake: torch.Tensor, k: int = 5, chunk: int = 2048
) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` features [M, F] against ``real`` [N, F].

    Each set's manifold is the union of balls around its points, each of radius the distance to that
    point's k-th nearest neighbour in its set. ``precision``: the share of fakes inside the real manifold
    (fidelity), ``recall``: the share of reals inside the fake manifold (diversity) (Kynkaanniemi et al.
    2019, "Improved precision and recall"); ``density``: the mean number of real balls a fake falls in,
    over k (about 1 for fakes spread as the reals are; more where they crowd the reals' modes),
    ``coverage``: the share of real balls holding at least one fake (Naeem et al. 2020, "Reliable
    fidelity and diversity metrics"), both robust to outliers where precision and recall are not.
    Needs at least k + 1 points in each set.
    """
    if min(len(real), len(fake)) <= k:
        raise VaekitError(f"precision and recall with k={k} need more than {k} real and fake features")
    real, fake = real.double(), fake.double()
    real_radii, fake_radii = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    inside_real = torch.zeros(len(fake), dtype=torch.long)  # how many real balls hold each fake
    covered = torch.zeros(len(real), dtype=torch.bool)
    for start in range(0, len(fake), chunk):
        distances = torch.cdist(fake[start : start + chunk], real)  # [m, N]
        within = distances <= real_radii
        inside_real[start : start + chunk] = within.sum(1)
        covered |= within.any(0)
    recalled = torch.zeros(len(real), dtype=torch.bool)
    for start in range(0, len(real), chunk):
        distances = torch.cdist(real[start : start + chunk], fake)  # [n, M]
        recalled[start : start + chunk] = (distances <= fake_radii).any(1)
    return {
        "precision": (inside_real > 0).double().mean().item(),
        "recall": recalled.double().mean().item(),
        "density": inside_real.double().mean().item() / k,
        "coverage": covered.double().mean().item(),
    }


def feature_distance(fake: torch.Tensor, real: torch.Tensor) -> float:
    """The Frechet distance between Gaussians fitted to two sets of features [N, F] and [M, F]."""
    return frechet_distance(*gaussian_statistics(fake), *gaussian_statistics(real))


@torch.no_grad()
def draw_samples(
    model: VAE,
    n: int,
    seed: int = 0,
    batch_size: int = 1000,
    prior: str | None = None,
    by_class: bool | None = None,
    temperature: float | list[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples from ``model`` (from ``prior``: see ``VAE.sample``) in batches, seeded. ``by_class``
    (default: for conditional models) asks for the classes in equal blocks, each by its label;
    ``temperature`` None: the model's own (``VAE.sample_temperature``).
    Returns (images [n, C, H, W], the requested labels [n] or None)."""
    if not model.can_sample:
        raise VaekitError(f"this {model.name} model cannot sample yet (a vqvae needs vaekit train-prior)")
    generator = torch.Generator(device=model.device).manual_seed(seed)
    by_class = model.conditional if by_class is None else by_class
    if temperature is None:
        temperature = model.sample_temperature(prior, by_class)
    labels = None
    if by_class:
        classes = model.num_classes if model.conditional else model.fitted_prior.num_classes
        labels = torch.arange(n, device=model.device) * classes // n
    images = []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        if labels is None:
            images.append(model.sample(count, generator=generator, prior=prior, temperature=temperature))
        else:  # within a block of equal labels; blocks are split where the label changes
            block = labels[start : start + count]
            for label in block.unique_consecutive():
                size = int((block == label).sum())
                images.append(
                    model.sample(
                        size, label=int(label), generator=generator, prior=prior, temperature=temperature
                    )
                )
    return torch.cat(images), labels


def sample_quality(
    model: VAE,
    classifier: DigitClassifier,
    reference: ImageSet,
    n_samples: int = 10_000,
    seed: int = 0,
    prior: str | None = None,
    temperature: float | list[float] | None = None,
    second: nn.Module | None = None,
) -> dict[str, Any]:
    """The sample-quality figures of ``model`` against ``reference`` (real images, e.g. the test set),
    for samples from ``prior`` ("trained" or "fitted"; by default the fitted one if the model has one)
    at ``temperature`` (see ``VAE.sample``; None: the model's own, with or without a requested class).

    - ``frechet_distance``: between classifier features of ``n_samples`` samples and of the reference;
      ``independent_frechet_distance`` the same by the ``second`` classifier's features (if given);
    - ``precision``, ``recall``, ``density``, ``coverage`` of the samples' classifier features against
      the reference's (``manifold_figures``, k = ``NEIGHBOURS``);
    - ``class_histogram``: how many samples the classifier puts in each class;
    - ``mode_coverage``: the classes drawn at least half as often as they occur in the reference;
    - ``class_tv_distance``: total variation between the samples' class frequencies and the reference's
      (0: the same mix; 1: disjoint);
    - models that draw a requested class (conditional ones, and any with a fitted prior per class):
      ``label_accuracy``, the share of samples recognised as their requested class, and
      ``label_accuracy_per_class``. An unconditional model's other figures are of samples drawn
      without labels (classes as often as in training); these of another n_samples drawn by class.
    """
    if n_samples < 2:
        raise VaekitError(f"sample quality needs at least 2 samples, got {n_samples}")
    device = next(classifier.parameters()).device
    samples, labels = draw_samples(model, n_samples, seed, prior=prior, temperature=temperature)
    samples, real_images = samples.to(device), reference.as_float(device)  # once, for both classifiers
    fake = classify(classifier, samples)
    real = classify(classifier, real_images)
    num_classes = classifier.config["num_classes"]
    histogram = torch.bincount(fake["predictions"], minlength=num_classes).cpu()
    share = histogram.double() / n_samples
    real_share = torch.bincount(reference.labels, minlength=num_classes).double() / len(reference)
    result: dict[str, Any] = {
        "frechet_distance": feature_distance(fake["features"], real["features"]),
        **manifold_figures(real["features"], fake["features"], NEIGHBOURS),
        "class_histogram": histogram.tolist(),
        "mode_coverage": int((share >= real_share / 2).sum()),
        "class_tv_distance": 0.5 * (share - real_share).abs().sum().item(),
        "quality_samples": n_samples,
    }
    if second is not None:
        fake_second, real_second = (classify(second, x)["features"] for x in (samples, real_images))
        result["independent_frechet_distance"] = feature_distance(fake_second, real_second)
    if labels is None and model.samples_by_class(prior):
        samples, labels = draw_samples(
            model, n_samples, seed, prior=prior, by_class=True, temperature=temperature
        )
        fake = classify(classifier, samples.to(device))
    if labels is not None:
        result.update(label_accuracy(fake["predictions"].cpu(), labels.cpu(), num_classes))
    return result


def label_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """``label_accuracy``, the share of ``predictions`` [N] equal to the requested ``labels`` [N], and
    ``label_accuracy_per_class`` (None for a class not requested)."""
    correct = (predictions == labels).double()
    per_class = [
        correct[labels == c].mean().item() if (labels == c).any() else None for c in range(num_classes)
    ]
    return {"label_accuracy": correct.mean().item(), "label_accuracy_per_class": per_class}


@torch.no_grad()
def label_swap_accuracy(
    model: VAE, classifier: DigitClassifier, images: ImageSet, seed: int = 0, batch_size: int = 1000
) -> dict[str, Any]:
    """The swap test of a conditional model: how much its decoder relies on the label.

    Each image is encoded with its own label, and its posterior mean decoded with another label, drawn
    uniformly (seeded) from the rest; ``label_swap_accuracy`` is the share of those decodings the
    classifier recognises as the new label (1: the label decides the class; near 0: the latent does),
    ``label_swap_accuracy_per_class`` the same by new label.
    """
    if not model.conditional:
        raise VaekitError(f"the swap test is for conditional models; {model.name} is not one")
    device = next(classifier.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    classes = model.num_classes
    new_labels = (images.labels + torch.randint(1, classes, (len(images),), generator=generator)) % classes
    model.eval()
    predictions = []
    for start in range(0, len(images), batch_size):
        x = images.images[start : start + batch_size].to(model.device).float().div_(255.0)
        y = images.labels[start : start + batch_size].to(model.device)
        z = model.latents(x, y)
        swapped = model.decode(z, new_labels[start : start + batch_size].to(model.device))
        predictions.append(classify(classifier, swapped.to(device))["predictions"].cpu())
    correct = (torch.cat(predictions) == new_labels).double() if predictions else torch.zeros(0)
    return {
        "label_swap_accuracy": correct.mean().item(),
        "label_swap_accuracy_per_class": [
            correct[new_labels == c].mean().item() if (new_labels == c).any() else None
            for c in range(classes)
        ],
    }
