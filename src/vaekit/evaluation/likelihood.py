"""How likely a model finds images: the negative ELBO and its parts, reconstruction errors, and the
importance-sampled -log p(x) (Burda et al. 2015), in nats per image and bits per dimension."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from vaekit.data import unit_float
from vaekit.models import VAE, GaussianVAE
from vaekit.models.base import PRECISIONS
from vaekit.utils.devices import device_batch
from vaekit.utils.errors import VaekitError

CPU_BATCH = 1000  # images a batch on a CPU (a GPU's batches are sized from its memory: device_batch)
CPU_DECODES = 1024  # decoded images a chunk of importance sampling on a CPU (see iwae_nll)


def evaluation_precision(precision: str, device: torch.device) -> str:
    """The precision, fp32 or bf16: ``precision`` itself, or for "auto" bf16 on a GPU (its tensor cores; the
    likelihoods moved by under 0.004 nats, docs/gpu.md) and fp32 elsewhere (a CPU's bf16 speed depends
    on the CPU, and its figures would then differ from machine to machine)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise VaekitError(f"unknown precision {precision!r}; choose from auto, {', '.join(PRECISIONS)}")
    return precision


def networks_in(precision: str, device: torch.device) -> torch.autocast:
    """The context in which evaluation runs the networks: float32, or with "bf16" autocast mixed
    precision (convolutions and matmuls in bfloat16; every model computes its densities, KL and sums in
    float32, so that a likelihood moves by thousandths of a nat: docs/gpu.md measures it); "auto": see
    ``evaluation_precision``."""
    precision = evaluation_precision(precision, device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def elbo_terms(
    model: VAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    precision: str = "fp32",
    **options: Any,
) -> dict[str, float]:
    """Per-image means of every term of ``model.loss`` (``loss`` = negative ELBO, ``recon``, ``kl``, and
    the model's own, e.g. ``iwae``) over ``images`` (float, [0, 1]) with their ``labels``.

    ``options`` go to ``model.loss`` (e.g. ``iwae_k``). z is drawn from a generator seeded with ``seed``,
    so the estimate is reproducible and draws nothing from the global RNG (training's noise stream is
    left as it was). Sums are kept in float64. ``batch_size``: images a batch (None: the device's,
    ``utils.devices.device_batch``); ``precision``: of the networks (``networks_in``).
    """
    was_training = model.training
    model.eval()

    def terms_of(batch: torch.Tensor, batch_labels: torch.Tensor | None, generator: torch.Generator) -> Any:
        with networks_in(precision, images.device):
            return model.loss(unit_float(batch), batch_labels, generator=generator, **options).terms

    def probe(n: int) -> Any:
        first = None if labels is None else labels[:n]
        return terms_of(images[:n], first, torch.Generator(device=images.device).manual_seed(seed))

    batch_size = batch_size or device_batch(images.device, CPU_BATCH, probe, len(images))
    generator = torch.Generator(device=images.device).manual_seed(seed)
    totals: dict[str, torch.Tensor] = {}
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        batch_labels = None if labels is None else labels[start : start + batch_size]
        for name, value in terms_of(batch, batch_labels, generator).items():
            totals[name] = totals.get(name, 0.0) + value.double() * len(batch)
    model.train(was_training)
    return {name: (total / max(len(images), 1)).item() for name, total in totals.items()}


@torch.no_grad()
def reconstruction_errors(
    model: VAE, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int | None = None
) -> dict[str, float]:
    """How far ``model.reconstruct`` (pixel means from the most likely latent) is from the images.

    ``recon_bce``: binary cross-entropy summed over pixels, averaged over images (nats per image;
    reconstructions clamped to [1e-6, 1 - 1e-6], so a Gaussian decoder's means outside [0, 1] count as
    the nearest valid value). ``recon_mse``: squared error averaged over pixels and images.
    Unlike ``recon`` (an expectation over z ~ q(z|x)), both use one deterministic reconstruction.
    """
    bce, mse = image_reconstruction_errors(model, images, labels, batch_size)
    return {
        "recon_bce": bce.mean().item() if len(bce) else 0.0,
        "recon_mse": mse.mean().item() if len(mse) else 0.0,
    }


@torch.no_grad()
def image_reconstruction_errors(
    model: VAE, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``reconstruction_errors`` per image: the binary cross-entropy summed over pixels and the squared
    error averaged over pixels, each [N] float64 on the CPU (``batch_size`` None: the device's)."""
    was_training = model.training
    model.eval()

    def probe(n: int) -> Any:
        return model.reconstruct(unit_float(images[:n]).float(), None if labels is None else labels[:n])

    batch_size = batch_size or device_batch(images.device, CPU_BATCH, probe, len(images))
    bce, mse = [], []
    for start in range(0, len(images), batch_size):
        x = unit_float(images[start : start + batch_size]).float()
        y = None if labels is None else labels[start : start + batch_size]
        r = model.reconstruct(x, y).float()
        loss = F.binary_cross_entropy(r.clamp(1e-6, 1 - 1e-6), x, reduction="none")
        bce.append(loss.flatten(1).double().sum(1).cpu())
        mse.append((r - x).square().flatten(1).double().mean(1).cpu())
    model.train(was_training)
    empty = torch.empty(0, dtype=torch.float64)
    return torch.cat(bce or [empty]), torch.cat(mse or [empty])


@torch.no_grad()
def iwae_nll(
    model: GaussianVAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    k: int = 5000,
    seed: int = 0,
    max_decodes: int | None = None,
    prior: str = "trained",
    precision: str = "fp32",
) -> torch.Tensor:
    """Importance-sampled estimate of -log p(x) per image: -L_k with k draws z_i ~ q(z|x) (Burda et al. 2015).

    -log p(x) ~= -log (1/k) sum_i p(x, z_i) / q(z_i | x). For each image the k log-weights are taken in
    chunks of at most ``max_decodes`` decoded images in all (images x draws), combined by a running
    log-sum-exp, so memory stays bounded whatever k is and nothing underflows. None: the device's chunk,
    CPU_DECODES on a CPU (small chunks stay in its caches: 1,024 ran 2.1x faster than 32,768 for the
    MLP VAE), on a GPU as many as a share of its free memory holds (``utils.devices.device_batch``).
    In expectation -L_k is above -log p(x), falls with k and is at most the negative ELBO. Draws come
    from a generator seeded with ``seed`` (the global RNG is untouched). ``prior`` is p(z) in the
    weights: "trained", the one the model was trained with, or "fitted", its fitted mixture (a
    different generative model, whose -log p(x) this then estimates). ``precision``: of the networks
    (``networks_in``). Shapes: images [N, C, H, W] -> [N], nats, float64.
    """
    return importance_bounds(model, images, labels, k, seed, max_decodes, prior, precision=precision)[1]


@torch.no_grad()
def importance_bounds(
    model: GaussianVAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    k: int = 5000,
    seed: int = 0,
    max_decodes: int | None = None,
    prior: str = "trained",
    progress: Callable[[int], None] | None = None,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both bounds per image from the same k draws (see ``iwae_nll`` for the draws and the chunks): the
    negative ELBO as their Monte Carlo mean, -(1/k) sum_i log w_i, and -L_k = -log (1/k) sum_i w_i, with
    w_i = p(x, z_i) / q(z_i | x). Each [N], nats, float64; ``progress`` is told the images done."""
    if k < 1:
        raise VaekitError(f"the number of importance samples must be >= 1, got {k}")
    was_training = model.training
    model.eval()
    networks = networks_in(precision, images.device)

    def probe(n: int) -> Any:  # n draws of one image: the memory of n decoded images
        x, y = unit_float(images[:1]), None if labels is None else labels[:1]
        with networks:
            context = model.importance_context(x, y)
            draws = torch.Generator(device=x.device)
            return model.log_weights(x, y, n, draws, posterior=context, prior=prior)

    max_decodes = max_decodes or device_batch(images.device, CPU_DECODES, probe, k * len(images))
    generator = torch.Generator(device=images.device).manual_seed(seed)
    batch = max(1, min(len(images), max_decodes // min(k, max_decodes)))
    chunk = max(1, max_decodes // batch)
    elbo = torch.empty(len(images), dtype=torch.float64, device=images.device)
    nll = torch.empty(len(images), dtype=torch.float64, device=images.device)
    for start in range(0, len(images), batch):
        x = unit_float(images[start : start + batch])
        y = None if labels is None else labels[start : start + batch]
        with networks:
            posterior = model.importance_context(x, y)  # encoded once for all k draws
        total = torch.full((len(x),), -math.inf, dtype=torch.float64, device=x.device)
        summed = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        for done in range(0, k, chunk):
            with networks:
                log_w, _ = model.log_weights(
                    x, y, min(chunk, k - done), generator, posterior=posterior, prior=prior
                )
            total = torch.logaddexp(total, torch.logsumexp(log_w.double(), dim=0))
            summed += log_w.double().sum(dim=0)
        nll[start : start + len(x)] = -(total - math.log(k))
        elbo[start : start + len(x)] = -summed / k
        if progress is not None:
            progress(len(x))
    model.train(was_training)
    return elbo, nll


def bits_per_dim(nats_per_image: float, image_shape: tuple[int, ...]) -> float:
    """Nats per image -> bits per pixel (and channel): divide by the pixel count and by ln 2."""
    return nats_per_image / (math.prod(image_shape) * math.log(2))


def nll_bits_key(split: str) -> str:
    """The eval.json key of -log p(x) in bits per dimension: ``bits_per_dim`` for the test split, and
    ``val_iwae_bits_per_dim`` for val, whose ``val_bits_per_dim`` is already its -ELBO's."""
    return "bits_per_dim" if split == "test" else f"{split}_iwae_bits_per_dim"
