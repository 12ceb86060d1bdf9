"""What vaekit serve keeps of a run: its model, the first test images with their latent means, the
directions the page's pad and sliders move along, and how it guesses a drawing's class."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaekit.data import Dataset, unit_float
from vaekit.evaluation.runs import load_run_dataset
from vaekit.models.saving import load
from vaekit.serve.requests import N_REFERENCE
from vaekit.utils.files import read_run_config

MAX_SLIDERS = 32  # one slider a dimension up to this; beyond it, the leading principal directions
NEIGHBOUR_VOTES = 10  # the k of the k-nearest-neighbour class guess


@dataclass
class Axes:
    """Directions through latent space: point ``z`` sits at ``(z - origin) @ vectors[i]`` on axis i.

    The pad uses two, the sliders up to MAX_SLIDERS. For a latent of at most MAX_SLIDERS dimensions
    the slider axes are the dimensions themselves (origin 0), ordered by KL; the pad's are z's own two
    axes for a 2-D latent, else the first two principal directions of the reference means about their
    mean (whose coordinates are then the principal component scores).
    """

    origin: list[float]
    vectors: list[list[float]]  # unit vectors, one per axis
    names: list[str]
    dims: list[int | None]  # the latent dimension an axis is, or None for a principal direction

    def as_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "vectors": self.vectors, "names": self.names, "dims": self.dims}


def dimension_axes(dims: list[int], latent_dim: int, kl: list[float]) -> Axes:
    eye = torch.eye(latent_dim)
    names = [f"z{d} · KL {kl[d]:.2f}" if kl else f"z{d}" for d in dims]
    return Axes([0.0] * latent_dim, [eye[d].tolist() for d in dims], names, list(dims))


def principal_axes(means: torch.Tensor, count: int) -> Axes:
    """The first ``count`` principal directions of ``means`` [N, D] about their mean, named with the
    share of variance each explains."""
    centre = means.double().mean(0)
    _, singular, directions = torch.linalg.svd(means.double() - centre, full_matrices=False)
    variance = singular**2
    share = variance / variance.sum().clamp_min(1e-12)
    count = min(count, len(directions))
    names = [f"PC{i + 1} · {100 * float(share[i]):.0f}% var" for i in range(count)]
    return Axes(centre.float().tolist(), directions[:count].float().tolist(), names, [None] * count)


@dataclass
class RunState:
    """A loaded run: its model and the first test images with their latent means."""

    name: str
    model: Any
    config: dict[str, Any]
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor
    means: torch.Tensor | None  # [N, D] posterior means (Gaussian latents), else None
    kl_order: list[int]  # latent dimensions by decreasing KL over the reference images
    kl: list[float]
    classes: list[str]  # the dataset's class names ([] for unlabelled data)
    classifier: Any = None  # the dataset's sample-quality classifier, where one is cached
    pad: Axes | None = None
    sliders: Axes | None = None

    @property
    def gaussian(self) -> bool:
        return self.model.latent_space.gaussian

    @property
    def latent_dim(self) -> int:
        return self.model.latent_space.size  # a code grid: one code per position

    @property
    def guess_source(self) -> str | None:
        """How a drawing's class is guessed: by the dataset's classifier, else by the labels of its
        nearest reference latents (not for a conditional model, whose latent depends on the label)."""
        if not self.classes:
            return None
        if self.classifier is not None:
            return "classifier"
        if self.means is not None and not self.model.conditional:
            return "neighbours"
        return None

    def guess(self, x: torch.Tensor, z: torch.Tensor | None) -> dict[str, Any] | None:
        """The class guess for image ``x`` [1, C, H, W] in [0, 1] whose latent mean is ``z`` [1, D]:
        label, name, the share of the vote or the classifier's probability, and the source."""
        source = self.guess_source
        if source == "classifier":
            with torch.no_grad():
                probabilities = self.classifier(x.to(self.model.device).float()).softmax(-1)[0].cpu()
        elif source == "neighbours" and z is not None:
            nearest = torch.cdist(z.float().cpu(), self.means.float())[0].topk(NEIGHBOUR_VOTES, largest=False)
            votes = torch.bincount(self.labels[nearest.indices].clamp_min(0), minlength=len(self.classes))
            probabilities = votes.double() / votes.sum()
        else:
            return None
        label = int(probabilities.argmax())
        return {
            "label": label,
            "name": self.classes[label],
            "confidence": round(float(probabilities[label]), 4),
            "source": source,
        }

    def info(self, index: int) -> dict[str, Any]:
        data = self.config["data"]
        model, latent = self.model, self.model.latent_space
        return {
            "index": index,
            "name": self.name,
            "model": model.name,
            "latent_dim": self.latent_dim,
            "latent": "gaussian" if self.gaussian else "codes",
            # a hierarchy is explored on its top group; decoding holds the groups below at their prior
            # means (models/hvae.py)
            "latent_groups": len(latent.groups) or None,
            "codebook_size": latent.codebook_size,
            "grid": None if latent.grid is None else list(latent.grid),
            "image_shape": list(model.image_shape),
            "classes": self.classes,
            "conditional": bool(model.conditional),
            "dataset": data["dataset"],
            "priors": ["trained", "fitted"]
            if self.gaussian and model.fitted_prior is not None
            else ["trained"],
            "can_sample": bool(model.can_sample),
            "samples_by_class": model.samples_by_class(),
            "kl_order": self.kl_order,
            "kl": self.kl,
            "n_reference": len(self.images),
            "guess": self.guess_source,
            "pad": self.pad.as_json() if self.pad else None,
            "sliders": self.sliders.as_json() if self.sliders else None,
        }


def cached_classifier(dataset: Dataset, device: torch.device) -> Any:
    """The dataset's sample-quality classifier if ``vaekit evaluate`` has trained and cached one (serve
    never trains one: that takes minutes) and it is accurate enough to measure with (as evaluate
    requires: ``MIN_CLASSIFIER_ACCURACY``), else None."""
    if dataset.num_classes < 2:
        return None
    from vaekit.evaluation.classifier import classifier_path, load_classifier
    from vaekit.evaluation.quality import MIN_CLASSIFIER_ACCURACY

    if not classifier_path(dataset).is_file():
        return None
    classifier, info = load_classifier(dataset, device=device)
    return classifier if info["test_accuracy"] >= MIN_CLASSIFIER_ACCURACY else None


def load_run_state(run: str | Path, device: torch.device, n_reference: int = N_REFERENCE) -> RunState:
    run = Path(run)
    config = read_run_config(run)
    model = load(run, device)
    dataset = load_run_dataset(config)
    test = dataset.test
    n = min(n_reference, len(test))
    images, labels = test.images[:n].clone(), test.labels[:n].clone()
    state = RunState(run.name, model, config, images, labels, None, [], [], list(dataset.classes))
    state.classifier = cached_classifier(dataset, device)
    if model.latent_space.gaussian:
        x = images.to(device)
        y = labels.to(device) if model.conditional else None
        with torch.no_grad():  # N_REFERENCE small images: one batch gives the means and the KL
            mu, logvar = (t.float() for t in model.encode(unit_float(x), y))
            kl_dim = model.kl_per_dim(mu, logvar, y).mean(0).cpu()
        state.means = mu.cpu()
        state.kl = [round(float(v), 4) for v in kl_dim]
        state.kl_order = [int(i) for i in torch.argsort(kl_dim, descending=True)]
        dim = model.latent_dim
        if dim <= MAX_SLIDERS:
            state.sliders = dimension_axes(state.kl_order, dim, state.kl)
        else:
            state.sliders = principal_axes(state.means, MAX_SLIDERS)
        if dim == 1:
            state.pad = None
        elif dim == 2:
            state.pad = dimension_axes([0, 1], 2, state.kl)
        else:
            state.pad = principal_axes(state.means, 2)
    return state
