"""Sample quality, measured: a small digit classifier, and what it says about a model's samples.

The classifier is trained once per dataset (seeded, on the training split, with random rotations and
shifts) and cached as safetensors in vaekit's data folder (``$VAEKIT_DATA``, else the user cache
folder), under classifiers/, keyed by a hash of its training images and recipe: every run on the same
data is measured with the same stick, and a dataset folder given with --data-dir (perhaps a read-only
shared copy) is never written to. From it:

- the Frechet distance between classifier features of samples and of real images (FID's formula with a
  digit classifier in place of Inception, so its scale is its own: compare runs with each other);
- the class histogram of samples: which digits a model draws and how often (mode coverage);
- for conditional models, how often a sample is recognised as the class it was asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from vaekit.atomic import atomic_write
from vaekit.data import Dataset, ImageSet, default_data_dir
from vaekit.data.augment import random_affine
from vaekit.errors import VaekitError
from vaekit.models import VAE

# The recipe; changing any of it gives a new cache file, never a stale classifier.
# Steps, not epochs: training costs the same (about 100 s on 2 CPU cores) however large the training set;
# 1,500 steps are 16 epochs of the 12,000-image MNIST subset (99.0% test accuracy), 3 of full MNIST.
CLASSIFIER_RECIPE = {"version": 1, "steps": 1500, "batch_size": 128, "max_lr": 3e-3, "dropout": 0.3}
FEATURE_DIM = 128
MAX_GRID = 8  # the feature layer sees at most 64 channels x 8 x 8
CONFIG_KEY = "vaekit_classifier"


class DigitClassifier(nn.Module):
    """Two 3x3 conv + 2x2 max-pool stages (32, 64 channels), a 128-unit feature layer, a linear head;
    any channels and size (named for digits, its first use; it classifies shapes and folders too).

    ``features`` (post-ReLU, [B, 128]) are what the Frechet distance compares.
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.3) -> None:
        super().__init__()
        channels, height, width = image_shape
        if height < 4 or width < 4:
            raise VaekitError(f"the digit classifier needs images of at least 4x4, got {height}x{width}")
        self.config = {"image_shape": list(image_shape), "num_classes": num_classes, "dropout": dropout}
        grid = (min(height // 4, MAX_GRID), min(width // 4, MAX_GRID))
        # Larger images are averaged down to an 8x8 grid first (only then: MNIST-sized layers are unchanged).
        shrink = [nn.AdaptiveAvgPool2d(grid)] if grid != (height // 4, width // 4) else []
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), *shrink,
            nn.Flatten(), nn.Linear(64 * grid[0] * grid[1], FEATURE_DIM), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURE_DIM, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def fit_classifier(
    train: ImageSet,
    num_classes: int,
    seed: int = 0,
    recipe: dict[str, Any] = CLASSIFIER_RECIPE,
    device: torch.device | str = "cpu",
) -> DigitClassifier:
    """Train a DigitClassifier on ``train``: Adam with a one-cycle learning rate, cross-entropy, every
    batch randomly rotated (up to 10 degrees) and shifted (up to 10%). Seeded: the same images and seed
    give the same weights; the global RNG is left as it was."""
    x, y = train.as_float(device), train.labels.to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # initialisation and dropout
        generator = torch.Generator(device=device).manual_seed(seed)
        model = DigitClassifier(tuple(x.shape[1:]), num_classes, recipe["dropout"]).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe["max_lr"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe["max_lr"], total_steps=recipe["steps"]
        )
        model.train()
        step = 0
        while step < recipe["steps"]:  # whole shuffled epochs; the last one stops at the step budget
            order = torch.randperm(len(x), generator=generator, device=device)
            for index in order.split(recipe["batch_size"])[: recipe["steps"] - step]:
                step += 1
                batch = random_affine(x[index], generator=generator)
                loss = F.cross_entropy(model(batch), y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return model.eval()


@torch.no_grad()
def classify(classifier: DigitClassifier, images: torch.Tensor, batch_size: int = 1000) -> dict[str, Any]:
    """Features [N, 128] (float64) and predicted classes [N] of images [N, C, H, W] in [0, 1]."""
    features, predictions = [], []
    for chunk in images.split(batch_size):
        f = classifier.features(chunk.float())
        features.append(f.double())
        predictions.append(classifier.head(f).argmax(1))
    return {"features": torch.cat(features), "predictions": torch.cat(predictions)}


def accuracy(classifier: DigitClassifier, data: ImageSet) -> float:
    device = next(classifier.parameters()).device
    predicted = classify(classifier, data.as_float(device))["predictions"]
    return (predicted == data.labels.to(device)).double().mean().item()


def _fingerprint(train: ImageSet, num_classes: int, seed: int, recipe: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps({"recipe": recipe, "seed": seed, "classes": num_classes}).encode())
    digest.update(str(tuple(train.images.shape)).encode())
    for start in range(0, len(train), 65536):  # in chunks: a memory-mapped set is never copied whole
        digest.update(train.images[start : start + 65536].contiguous().numpy().tobytes())
    digest.update(train.labels.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def classifier_path(dataset: Dataset, cache_dir: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """Where the classifier of ``dataset`` is cached: CACHE/classifiers/<name>-<hash of data and recipe>,
    CACHE being vaekit's data folder (see default_data_dir) unless ``cache_dir`` is given."""
    root = Path(cache_dir) if cache_dir is not None else default_data_dir()
    key = _fingerprint(dataset.train, dataset.num_classes, seed, CLASSIFIER_RECIPE)
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", dataset.name.rstrip("/").rsplit("/", 1)[-1])  # folder:PATH
    return root / "classifiers" / f"{name}-{key}.safetensors"


def load_classifier(
    dataset: Dataset,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] | None = None,
) -> tuple[DigitClassifier, dict[str, Any]]:
    """The dataset's cached classifier, trained first if there is none; returns it and its record
    (``test_accuracy``, ``train_images``, ``seconds``, ``path``)."""
    from vaekit.saving import read_safetensors

    path = classifier_path(dataset, cache_dir, seed)
    if path.is_file():
        state, metadata = read_safetensors(path)
        if CONFIG_KEY not in metadata:
            raise VaekitError(f"{path} is not a vaekit classifier; delete it to train a new one")
        info = json.loads(metadata[CONFIG_KEY])
        classifier = DigitClassifier(tuple(info["config"]["image_shape"]), info["config"]["num_classes"])
        classifier.load_state_dict(state)
        return classifier.to(device).eval(), {**info, "path": str(path)}
    if log:
        log(f"training the {dataset.name} classifier for sample quality (once; cached in {path.parent})")
    start = time.perf_counter()
    classifier = fit_classifier(dataset.train, dataset.num_classes, seed, CLASSIFIER_RECIPE, device)
    info = {
        "config": classifier.config,
        "recipe": CLASSIFIER_RECIPE,
        "seed": seed,
        "train_images": len(dataset.train),
        "test_accuracy": accuracy(classifier, dataset.test),
        "seconds": round(time.perf_counter() - start, 1),
    }
    state = {k: v.detach().contiguous().cpu() for k, v in classifier.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={CONFIG_KEY: json.dumps(info)}))
    if log:
        log(f"classifier test accuracy {info['test_accuracy']:.2%} ({info['seconds']:.0f} s)")
    return classifier, {**info, "path": str(path)}


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


@torch.no_grad()
def draw_samples(
    model: VAE,
    n: int,
    seed: int = 0,
    batch_size: int = 1000,
    prior: str | None = None,
    by_class: bool | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples from ``model`` (from ``prior``: see ``VAE.sample``) in batches, seeded. ``by_class``
    (default: for conditional models) asks for the classes in equal blocks, each by its label.
    Returns (images [n, C, H, W], the requested labels [n] or None)."""
    if not model.can_sample:
        raise VaekitError(f"this {model.name} model cannot sample yet (a vqvae needs vaekit train-prior)")
    generator = torch.Generator(device=model.device).manual_seed(seed)
    by_class = model.conditional if by_class is None else by_class
    labels = None
    if by_class:
        classes = model.num_classes if model.conditional else model.prior.num_classes
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
    temperature: float = 1.0,
) -> dict[str, Any]:
    """The sample-quality figures of ``model`` against ``reference`` (real images, e.g. the test set),
    for samples from ``prior`` ("standard" or "fitted"; by default the fitted one if the model has one)
    at ``temperature`` (see ``VAE.sample``).

    - ``frechet_distance``: between classifier features of ``n_samples`` samples and of the reference;
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
    fake = classify(classifier, samples.to(device))
    real = classify(classifier, reference.as_float(device))
    num_classes = classifier.config["num_classes"]
    histogram = torch.bincount(fake["predictions"], minlength=num_classes).cpu()
    share = histogram.double() / n_samples
    real_share = torch.bincount(reference.labels, minlength=num_classes).double() / len(reference)
    result: dict[str, Any] = {
        "frechet_distance": frechet_distance(
            *gaussian_statistics(fake["features"]), *gaussian_statistics(real["features"])
        ),
        "class_histogram": histogram.tolist(),
        "mode_coverage": int((share >= real_share / 2).sum()),
        "class_tv_distance": 0.5 * (share - real_share).abs().sum().item(),
        "quality_samples": n_samples,
    }
    if labels is None and model.samples_by_class(prior):
        samples, labels = draw_samples(
            model, n_samples, seed, prior=prior, by_class=True, temperature=temperature
        )
        fake = classify(classifier, samples.to(device))
    if labels is not None:
        correct = (fake["predictions"] == labels.to(device)).double().cpu()
        labels = labels.cpu()
        result["label_accuracy"] = correct.mean().item()
        result["label_accuracy_per_class"] = [
            correct[labels == c].mean().item() if (labels == c).any() else None for c in range(num_classes)
        ]
    return result


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
        z = model.encode(x, y)[0]
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
