"""The measuring classifier behind the sample-quality figures, and a second, independently trained one
that checks it: each trained once per dataset, then cached.

The two differ in all but their data: the measuring classifier (``DigitClassifier``, ``CLASSIFIER_RECIPE``)
is a max-pooled convolutional net trained with rotations, shifts, label smoothing and dropout; the second
(``SecondClassifier``, ``SECOND_RECIPE``) a LeNet-style net with average pooling, trained plainly from
another seed. A sample-quality ranking that both give is the net's own, not one extractor's quirk
(docs/evaluation.md).

It is trained seeded, on the training split, with random rotations and shifts, and cached as safetensors
in vaekit's data folder (``$VAEKIT_DATA``, else the user cache folder), under classifiers/, keyed by a hash
of its training images and recipe: every run on the same data is measured with the same stick, and a
dataset folder given with --data-dir (perhaps a read-only shared copy) is never written to.
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
from torch import nn

from vaekit.data import Dataset, ImageSet, default_data_dir, unit_float
from vaekit.data.augment import random_affine
from vaekit.utils.atomic import atomic_write
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import write_safetensors

# The recipe; changing any of it gives a new cache file, never a stale classifier.
# Steps, not epochs, so that training costs the same however large the training set: ``steps`` for
# images up to ``full_steps_side`` pixels a side, proportionally fewer above (400 at 64x64), where each
# step costs more. On 2 CPU cores that is about 25 s for MNIST (99.2% test accuracy from its 12,000-image
# subset) and 35-40 s for shapes and shapes-rgb at 64x64 (100%): see benchmarks/classifier.py.
CLASSIFIER_RECIPE = {
    "version": 2, "steps": 800, "full_steps_side": 32, "batch_size": 128, "max_lr": 1e-2,
    "label_smoothing": 0.1, "dropout": 0.3,
}  # fmt: skip
# The second extractor's recipe: about 4 epochs of MNIST's 12,000-image subset (97% test accuracy).
SECOND_RECIPE = {
    "version": 3, "architecture": "lenet", "steps": 400, "full_steps_side": 32, "batch_size": 128,
    "max_lr": 1e-3, "label_smoothing": 0.0, "dropout": 0.0, "augment": False, "schedule": "constant",
}  # fmt: skip
SECOND_SEED = 1


FEATURE_DIM = 128


CHANNELS = (16, 32, 64, 128)  # of the 3x3 conv + batch norm + ReLU layers, in order (see DigitClassifier)


GRID_SIDE = 16  # the first layers have stride 2 until no side of the grid is longer than this


CONFIG_KEY = "vaekit_classifier"


class DigitClassifier(nn.Module):
    """A small convolutional classifier of images of any channels and size (named for digits, its first
    use; it classifies shapes and folders too):

    - four layers of 3x3 conv + batch norm + ReLU, of 16, 32, 64 and 128 channels. The first ones have
      stride 2, as many as it takes to bring the image down to at most 16x16 (one for MNIST, two for
      64x64 images): large images are shrunk by learned features, not averaged (which blurred small
      shapes away), and cost not much more than small ones. Each of the others is followed by a 2x2
      max-pool. (Images above 256 pixels a side get more strided layers of 128 channels.)
    - a global max-pool: a feature counts wherever in the image it is, which is what makes small objects
      at any position learnable in a few hundred steps;
    - ``features``: the 128-unit feature layer (post-ReLU, [B, 128]: what the Frechet distance compares),
      then ``head``: dropout and a linear layer to the classes.
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.3) -> None:
        super().__init__()
        channels, height, width = image_shape
        if height < 4 or width < 4:
            raise VaekitError(f"the digit classifier needs images of at least 4x4, got {height}x{width}")
        self.config = {"image_shape": list(image_shape), "num_classes": num_classes, "dropout": dropout}
        layers: list[nn.Module] = []
        strided = 0
        while max(height, width) > GRID_SIDE:
            stride = (2 if height > GRID_SIDE else 1, 2 if width > GRID_SIDE else 1)
            out = CHANNELS[min(strided, len(CHANNELS) - 1)]
            layers += _conv(channels, out, stride)
            channels, height, width = out, -(-height // stride[0]), -(-width // stride[1])
            strided += 1
        for out in CHANNELS[strided:]:  # ceil_mode: a side of 1 stays 1 (8x8 digits end at 1x1)
            layers += [*_conv(channels, out), nn.MaxPool2d(2, ceil_mode=True)]
            channels = out
        self.features = nn.Sequential(
            *layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(channels, FEATURE_DIM), nn.ReLU()
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURE_DIM, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SecondClassifier(nn.Module):
    """The second feature extractor, LeNet-style (LeCun et al. 1998, with ReLU): two 5x5 convolutions of
    32 and 64 channels, each followed by ReLU and a 2x2 average pool, then ``features``: a 128-unit
    layer over the whole map (post-ReLU, [B, 128]; where the stroke is counts, unlike the measuring
    classifier's global max-pool) and ``head``: a linear layer to the classes."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        channels, height, width = image_shape
        if height < 4 or width < 4:
            raise VaekitError(f"the second classifier needs images of at least 4x4, got {height}x{width}")
        self.config = {"image_shape": list(image_shape), "num_classes": num_classes, "architecture": "lenet"}
        side = (-(-height // 4), -(-width // 4))  # after two 2x2 average pools
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Flatten(), nn.Linear(64 * side[0] * side[1], FEATURE_DIM), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES = {"digit": DigitClassifier, "lenet": SecondClassifier}


def is_second(recipe: dict[str, Any]) -> bool:
    """Whether ``recipe`` is the second classifier's (another architecture than the measuring one's)."""
    return recipe.get("architecture", "digit") != "digit"


def _conv(channels: int, out: int, stride: tuple[int, int] | int = 1) -> list[nn.Module]:
    return [nn.Conv2d(channels, out, 3, stride, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]


def training_steps(recipe: dict[str, Any], image_shape: tuple[int, ...]) -> int:
    """The steps ``recipe`` trains for on images of ``image_shape`` (C, H, W): its ``steps`` up to
    ``full_steps_side`` pixels a side, proportionally fewer for larger images (at least 1)."""
    side = max(image_shape[-2:])
    return max(1, round(recipe["steps"] * min(1.0, recipe["full_steps_side"] / side)))


def fit_classifier(
    train: ImageSet,
    num_classes: int,
    seed: int = 0,
    recipe: dict[str, Any] = CLASSIFIER_RECIPE,
    device: torch.device | str = "cpu",
) -> DigitClassifier:
    """Train the recipe's classifier (its ``architecture``: a DigitClassifier unless it says "lenet") on
    ``train`` for ``training_steps(recipe, image shape)`` steps: Adam with a one-cycle learning rate
    (or a constant one: ``schedule``), cross-entropy with the recipe's label smoothing, every batch
    randomly rotated (up to 10 degrees) and shifted (up to 10%) unless ``augment`` is false. Seeded: the
    same images and seed give the same weights; the global RNG is left as it was."""
    x, y = train.images.to(device), train.labels.to(device)  # uint8: each batch is made float alone
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # initialisation and dropout
        generator = torch.Generator(device=device).manual_seed(seed)
        architecture = ARCHITECTURES[recipe.get("architecture", "digit")]
        model = architecture(tuple(x.shape[1:]), num_classes, recipe["dropout"]).to(device)
        steps = training_steps(recipe, tuple(x.shape))
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe["max_lr"])
        schedule = None  # "constant": the rate stays max_lr
        if recipe.get("schedule", "onecycle") == "onecycle":
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=recipe["max_lr"], total_steps=steps
            )
        model.train()
        step = 0
        while step < steps:  # whole shuffled epochs; the last one stops at the step budget
            order = torch.randperm(len(x), generator=generator, device=device)
            for index in order.split(recipe["batch_size"])[: steps - step]:
                step += 1
                batch = unit_float(x[index])
                if recipe.get("augment", True):
                    batch = random_affine(batch, generator=generator)
                loss = F.cross_entropy(model(batch), y[index], label_smoothing=recipe["label_smoothing"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if schedule is not None:
                    schedule.step()
    return model.eval()


@torch.no_grad()
def classify(classifier: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> dict[str, Any]:
    """Features [N, 128] (float64) and predicted classes [N] of images [N, C, H, W] in [0, 1]."""
    features, predictions = [], []
    for chunk in images.split(batch_size):
        f = classifier.features(chunk.float())
        features.append(f.double())
        predictions.append(classifier.head(f).argmax(1))
    return {"features": torch.cat(features), "predictions": torch.cat(predictions)}


def accuracy(classifier: nn.Module, data: ImageSet) -> float:
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


def classifier_path(
    dataset: Dataset,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    recipe: dict[str, Any] | None = None,
) -> Path:
    """Where the classifier of ``dataset`` is cached: CACHE/classifiers/<name>-<hash of data and recipe>
    (the second one's: <name>-second-<hash>), CACHE being vaekit's data folder (see default_data_dir)
    unless ``cache_dir`` is given."""
    root = Path(cache_dir) if cache_dir is not None else default_data_dir()
    recipe = CLASSIFIER_RECIPE if recipe is None else recipe  # read when called: tests shorten it
    key = _fingerprint(dataset.train, dataset.num_classes, seed, recipe)
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", dataset.name.rstrip("/").rsplit("/", 1)[-1])  # folder:PATH
    second = "-second" if is_second(recipe) else ""
    return root / "classifiers" / f"{name}{second}-{key}.safetensors"


def load_classifier(
    dataset: Dataset,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] | None = None,
    recipe: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The dataset's cached classifier of ``recipe`` (the measuring one; ``SECOND_RECIPE`` with
    ``SECOND_SEED``: the second), trained first if there is none; returns it and its record
    (``test_accuracy``, ``train_images``, ``seconds``, ``path``)."""
    from vaekit.utils.files import read_safetensors

    recipe = CLASSIFIER_RECIPE if recipe is None else recipe
    path = classifier_path(dataset, cache_dir, seed, recipe)
    if path.is_file():
        state, metadata = read_safetensors(path)
        if CONFIG_KEY not in metadata:
            raise VaekitError(f"{path} is not a vaekit classifier; delete it to train a new one")
        info = json.loads(metadata[CONFIG_KEY])
        architecture = ARCHITECTURES[info["config"].get("architecture", "digit")]
        classifier = architecture(tuple(info["config"]["image_shape"]), info["config"]["num_classes"])
        try:
            classifier.load_state_dict(state)
        except RuntimeError:  # weights of another architecture under this name
            raise VaekitError(f"{path} does not hold the weights its record describes; delete it") from None
        return classifier.to(device).eval(), {**info, "path": str(path)}
    which = "second " if is_second(recipe) else ""
    if log:
        log(f"training the {dataset.name} {which}classifier for sample quality (once; in {path.parent})")
    start = time.perf_counter()
    classifier = fit_classifier(dataset.train, dataset.num_classes, seed, recipe, device)
    info = {
        "config": classifier.config,
        "recipe": recipe,
        "seed": seed,
        "train_images": len(dataset.train),
        "test_accuracy": accuracy(classifier, dataset.test),
        "seconds": round(time.perf_counter() - start, 1),
    }
    state = {k: v.detach().contiguous().cpu() for k, v in classifier.state_dict().items()}
    atomic_write(path, lambda tmp: write_safetensors(state, tmp, {CONFIG_KEY: json.dumps(info)}))
    if log:
        log(f"{which}classifier test accuracy {info['test_accuracy']:.2%} ({info['seconds']:.0f} s)")
    return classifier, {**info, "path": str(path)}
