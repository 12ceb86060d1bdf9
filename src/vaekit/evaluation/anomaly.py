"""Anomaly scores: how unlike a run's training data each image is, and how well each score tells another
dataset from the run's own (out-of-distribution detection).

Per image, higher is more anomalous (every score here is a cost):

- ``neg_elbo``: the negative ELBO, the Monte Carlo mean of -log w over the k draws below (nats);
- ``nll``: -log p(x) by importance sampling with k draws (Burda et al. 2015; nats), ``bits_per_dim``
  the same per pixel and channel in bits;
- ``recon_bce``, ``recon_mse``: the error of the reconstruction from the posterior mean;
- ``complexity``: the image's length in bits per dimension as a lossless PNG, L(x), and
  ``complexity_score`` = bits_per_dim - complexity: Serra et al. 2020's likelihood ratio against a
  generic compressor, log2 p_png(x) / p_model(x) per dimension. Likelihoods prefer simple images (an
  MNIST model finds blank or constant images likely); the compressor finds them likely too, so the
  ratio keeps what the model adds. The ratio needs both code lengths of the same data: a Gaussian
  decoder's density over [0, 1] is the 8-bit image's code length less 8 bits per dimension (the same
  for every image), so L is the 8-bit image's PNG; a Bernoulli decoder models binary pixels (a grey
  one's value is the probability of white, and its -log p(x) is the expected code length of the image
  binarized by those probabilities), so L is the PNG of the image binarized (one seeded draw; a run
  trained on binarized images is scored on them). With the 8-bit PNG against a Bernoulli likelihood,
  uniform noise (over 8 bits per dimension as PNG) scored as the most typical of all (benchmarks/
  anomaly.py);
- with a ``background`` run (a model of the same images trained on perturbed data, or any reference
  model), ``likelihood_ratio`` = nll - background_nll (Ren et al. 2019, as a cost).

Detection (``detection``) treats the reference (in-distribution) images as positives, as Liang et al.
2018: AUROC of telling the two sets apart by the score, and the false-positive rate at 95% true
positives (the share of out-of-distribution images scored below the threshold that keeps 95% of the
reference images).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from vaekit.data import ImageSet
from vaekit.evaluation.likelihood import image_reconstruction_errors, importance_bounds
from vaekit.evaluation.runs import image_columns, model_labels, run_images
from vaekit.models import VAE
from vaekit.models.saving import load
from vaekit.utils.devices import resolve_device
from vaekit.utils.errors import VaekitError
from vaekit.utils.tables import check_output, write_table

DEFAULT_K = 100
TPR = 0.95


def png_bits_per_dim(images: torch.Tensor, binary: bool = False) -> np.ndarray:
    """Each uint8 image [N, C, H, W] (C = 1 or 3) compressed losslessly as PNG at the highest level:
    its length in bits over C * H * W. ``binary``: images of 0 and 255 only, written as 1-bit PNGs
    (one bit a pixel before compression, as their information is). [N] float64."""
    pixels = images.permute(0, 2, 3, 1).cpu().numpy()
    dims = math.prod(images.shape[1:])
    out = np.empty(len(pixels))
    for i, image in enumerate(pixels):
        picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        if binary:
            picture = picture.convert("1", dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", optimize=True)
        out[i] = 8 * buffer.tell() / dims
    return out


def binarized(images: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 images drawn to 0 or 255, each pixel white with probability its grey value / 255 (a seeded
    draw); images that are already binary come back unchanged."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.bernoulli(images.cpu().float() / 255, generator=generator) * 255).to(torch.uint8)


@torch.no_grad()
def image_scores(
    model: VAE,
    images: ImageSet,
    k: int = DEFAULT_K,
    seed: int = 0,
    progress: bool = True,
    background: VAE | None = None,
) -> dict[str, np.ndarray]:
    """Every score of the module docstring for each of ``images`` (uint8), as [N] arrays."""
    if not model.has_likelihood:
        raise VaekitError(f"anomaly scores need a Gaussian-latent model's likelihood, not {model.name}")
    model.eval()
    labels = model_labels(model, images)
    x = images.images.to(model.device)
    y = None if labels is None else labels.to(model.device)
    with tqdm(total=len(x), desc="scoring", unit="image", disable=not progress, leave=False) as bar:
        neg_elbo, nll = importance_bounds(model, x, y, k=k, seed=seed, progress=bar.update)
    bce, mse = (errors.numpy() for errors in image_reconstruction_errors(model, x, y))
    bits = nll.cpu().numpy() / (math.prod(model.image_shape) * math.log(2))
    if model.likelihood == "bernoulli":  # the same binary data the likelihood is a code length of
        complexity = png_bits_per_dim(binarized(images.images, seed), binary=True)
    else:
        complexity = png_bits_per_dim(images.images)
    scores = {
        "neg_elbo": neg_elbo.cpu().numpy(),
        "nll": nll.cpu().numpy(),
        "bits_per_dim": bits,
        "recon_bce": bce,
        "recon_mse": mse,
        "complexity": complexity,
        "complexity_score": bits - complexity,
    }
    if background is not None:
        if tuple(background.image_shape) != tuple(model.image_shape):
            raise VaekitError(
                f"the background model takes {list(background.image_shape)}, not {list(model.image_shape)}"
            )
        base = importance_bounds(background, x, y, k=k, seed=seed)[1].cpu().numpy()
        scores.update(background_nll=base, likelihood_ratio=scores["nll"] - base)
    return scores


def detection(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """How well a score (a cost: higher is more anomalous) tells ``other`` images from ``reference``
    (in-distribution) ones: ``auroc`` (0.5: no better than chance, 1: every reference image scored
    below every other), and ``fpr_at_95_tpr``: the share of ``other`` scored at or below the lowest
    threshold that keeps 95% of the reference images (lower is better)."""
    if len(reference) == 0 or len(other) == 0:
        raise VaekitError("detection needs images in both the reference and the scored dataset")
    truth = np.r_[np.zeros(len(reference)), np.ones(len(other))]
    auroc = float(roc_auc_score(truth, np.r_[reference, other]))
    threshold = np.quantile(reference, TPR, method="inverted_cdf")
    return {"auroc": auroc, "fpr_at_95_tpr": float(np.mean(other <= threshold))}


def score_run(
    run: str | os.PathLike,
    out: str | os.PathLike,
    dataset: str | None = None,
    reference: str | None = None,
    split: str = "all",
    reference_split: str = "test",
    k: int = DEFAULT_K,
    background: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Score ``split`` of ``dataset`` (default: the run's own) with the run's model into the table file
    ``out``; with a ``reference`` dataset (in-distribution; its ``reference_split``), each score's
    ``detection`` of the scored images against it. Returns path, dataset, n, scores, detection."""
    out = check_output(out, overwrite)  # an existing file is replaced only with overwrite
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise VaekitError(f"--k must be an integer >= 1, got {k!r}")
    dev = resolve_device(device)
    model = load(run, device=dev)
    if not model.has_likelihood:
        raise VaekitError(f"anomaly scores need a Gaussian-latent model's likelihood, not {model.name}")
    base = None if background is None else load(background, device=dev)
    name, images = run_images(run, model, dataset, split, data_dir, progress, log)
    scores = image_scores(model, images, k, seed, progress, base)
    result: dict[str, Any] = {"path": str(out), "dataset": name, "n": len(images), "k": k}
    if reference is not None:
        ref_name, ref_images = run_images(run, model, reference, reference_split, data_dir, progress, log)
        ref_scores = image_scores(model, ref_images, k, seed, progress, base)
        result["reference"] = {"dataset": ref_name, "split": reference_split, "n": len(ref_images)}
        result["detection"] = {  # the scores, not their parts (an image's PNG length, the background's)
            key: detection(ref_scores[key], values)
            for key, values in scores.items()
            if key not in ("complexity", "background_nll")
        }
    write_table(out, {"index": np.arange(len(images)), **image_columns(images), **scores})
    return result
