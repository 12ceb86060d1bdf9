"""The measuring classifier behind the sample-quality figures: trained once per dataset, then cached.

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
from safetensors.torch import save_file
from torch import nn

from vaekit.data import Dataset, ImageSet, default_data_dir, unit_float
from vaekit.data.augment import random_affine
from vaekit.utils.atomic import atomic_write
from vaekit.utils.errors import VaekitError

# The recipe; changing any of it gives a new cache file, never a stale classifier.
# Steps, not epochs: training costs the same however large the training set (RECIPE_STEPS below).
CLASSIFIER_RECIPE = {"version": 2, "steps": 600, "batch_size": 128, "max_lr": 3e-3, "dropout": 0.3}


FEATURE_DIM = 128


STAGE_CHANNELS = (32, 64, 128)  # 3x3 conv + batch norm + ReLU + 2x2 max-pool, each


STEM_CHANNELS = 16
STEM_ABOVE = 32  # a side longer than this is first halved by a strided 3x3 conv, until it is not


CONFIG_KEY = "vaekit_classifier"


def _conv(channels: int, out: int, stride: tuple[int, int] | int = 1) -> list[nn.Module]:
    return [nn.Conv2d(channels, out, 3, stride, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]


class DigitClassifier(nn.Module):
    """A small convolutional classifier of any channels and size (named for digits, its first use; it
    classifies shapes and folders too):

    - a stem for images larger than MNIST: while a side is longer than 32, a 3x3 conv of stride 2 (16
      channels) halves it, so that large images cost about what 32x32 ones do and are shrunk by learned
      features, not averaged (averaging blurred small shapes away);
    - three stages of 3x3 conv + batch norm + ReLU + 2x2 max-pool (32, 64, 128 channels);
    - a global max-pool over what is left of the grid: a feature anywhere in the image counts, which is
      what makes small objects at any position learnable in a few hundred steps;
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
        while max(height, width) > STEM_ABOVE:
            stride = (2 if height > STEM_ABOVE else 1, 2 if width > STEM_ABOVE else 1)
            layers += _conv(channels, STEM_CHANNELS, stride)
            channels, height, width = STEM_CHANNELS, -(-height // stride[0]), -(-width // stride[1])
        for out in STAGE_CHANNELS:  # ceil_mode: a side of 1 stays 1 (8x8 digits pool to 1x1)
            layers += [*_conv(channels, out), nn.MaxPool2d(2, ceil_mode=True)]
            channels = out
        self.features = nn.Sequential(
            *layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(channels, FEATURE_DIM), nn.ReLU()
        )
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
    x, y = train.images.to(device), train.labels.to(device)  # uint8: each batch is made float alone
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
                batch = random_affine(unit_float(x[index]), generator=generator)
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
    from vaekit.utils.files import read_safetensors

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
