"""The second stage of a run: fit a prior to the latents of the run's training images.

A Gaussian-latent model (mlp, conv, cvae) gets a MixturePrior: Gaussian mixtures over the posterior means
of the training images, one per class where the images have labels (seconds of work; ``vaekit train``
ends with it). A VQ-VAE gets a CodePrior, an autoregressive transformer over its code grids:

van den Oord et al. 2017 (arXiv:1711.00937, sec. 3.2) train the autoencoder first with a uniform prior,
then fit an autoregressive prior to the codes of the training set, with the autoencoder frozen. So the
images are encoded once; the prior trains on whole tensors of codes, batched by shuffled index, and the
epoch with the best validation NLL is kept. Attaching it makes the model sample and turns its ``kl``
term from the uniform bound h w log K into the prior's -log p(c).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vaekit import plots
from vaekit.atomic import write_json, write_text
from vaekit.data import Dataset, ImageSet, binarize, split_train_val, unit_float
from vaekit.devices import resolve_device
from vaekit.errors import VaekitError
from vaekit.evaluate import evaluate_run, load_run_dataset
from vaekit.models import VAE, GaussianVAE
from vaekit.models.mixture import MixturePrior
from vaekit.models.prior import CodePrior
from vaekit.models.vqvae import VQVAE
from vaekit.saving import load, read_run_config, save_model

PRIOR_HEADS = 4
N_SAMPLES = 64  # samples/prior.png: an 8 x 8 grid (a conditional model: a row per class)
# Mixture components per class (or in all, for a prior without classes); chosen by benchmarks/priors.py.
DEFAULT_COMPONENTS = {True: 8, False: 40}
# What the mixture is fitted to: the posterior means (the default: the clearer samples), or the aggregate
# posterior E_x q(z|x), the means' spread plus the posterior variances (a closer density: better -log p(x)).
TARGETS = ("means", "aggregate")


@torch.no_grad()
def posterior_moments(
    model: GaussianVAE, x: torch.Tensor, labels: torch.Tensor | None, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and variances of images x [N, C, H, W] under the model in eval mode, each
    [N, latent_dim], float32."""
    model.eval()
    means, variances = [], []
    for start in range(0, len(x), batch_size):
        y = None if labels is None else labels[start : start + batch_size]
        mu, logvar = model.encode(unit_float(x[start : start + batch_size]), y)
        means.append(mu.float())
        variances.append(logvar.float().exp())
    if not means:
        return (torch.zeros(0, model.latent_dim, device=x.device),) * 2
    return torch.cat(means), torch.cat(variances)


def check_mixture_settings(components: Any, per_class: bool | None, num_classes: int) -> tuple[int, bool]:
    """Resolve a mixture prior's settings: (components, per_class). ``per_class`` None means per class
    whenever the images have labels; ``components`` None the measured default."""
    if per_class and num_classes == 0:
        raise VaekitError("the run's training images have no labels: a per-class prior cannot be fitted")
    per_class = num_classes > 0 if per_class is None else per_class
    components = DEFAULT_COMPONENTS[per_class] if components is None else components
    if isinstance(components, bool) or not isinstance(components, int) or components < 1:
        raise VaekitError(f"mixture components must be an integer >= 1, got {components!r}")
    return components, per_class


def fit_mixture_prior(
    model: GaussianVAE,
    x: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    components: int | None = None,
    per_class: bool | None = None,
    seed: int = 0,
    target: str = "means",
) -> dict[str, Any]:
    """Fit a MixturePrior to the posterior means of images x (with their ``labels``, of ``num_classes``;
    0 for none) and attach it to ``model``; ``target`` "aggregate" widens each component by the posterior
    variances it covers (see ``fit_gaussian_mixture``'s spread). Returns what was fitted: ``components``,
    ``classes`` (0: one mixture), ``target``, ``latents``, ``seconds``, ``em_iterations`` (per mixture),
    ``converged``."""
    components, per_class = check_mixture_settings(components, per_class, num_classes)
    if target not in TARGETS:
        raise VaekitError(f"unknown prior target {target!r}; choose from {', '.join(TARGETS)}")
    start = time.perf_counter()
    latents, variances = posterior_moments(model, x, labels)
    prior, fits = MixturePrior.fit(
        latents,
        labels if per_class else None,
        components,
        num_classes if per_class else 0,
        seed,
        spread=variances if target == "aggregate" else None,
    )
    model.set_prior(prior)
    return {
        "components": components,
        "target": target,
        "classes": num_classes if per_class else 0,
        "latents": len(latents),
        "seconds": round(time.perf_counter() - start, 3),
        "em_iterations": [f.iterations for f in fits],
        "converged": all(f.converged for f in fits),
    }


def describe_mixture(info: dict[str, Any]) -> str:
    classes = info["classes"]
    shape = f"{classes} classes x {info['components']}" if classes else f"{info['components']}"
    target = "posterior means" if info["target"] == "means" else "aggregate posterior"
    return (
        f"fitted a Gaussian mixture prior ({shape} full-covariance components) to the {target} of "
        f"{info['latents']:,} training images in {info['seconds']:.1f} s"
    )


def save_prior_samples(model: VAE, path: Path, seed: int) -> None:
    """samples/prior.png: 8 x 8 samples from the model's prior (a conditional model: a row per class)."""
    rows = model.num_classes if model.conditional else N_SAMPLES // 8
    samples = model.sample(rows * 8, generator=torch.Generator(device=model.device).manual_seed(seed))
    plots.save_grid(samples, path, ncol=8)


def fit_run_prior(
    run: str | os.PathLike,
    components: int | None = None,
    per_class: bool | None = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    target: str = "means",
) -> dict[str, Any]:
    """Fit the mixture prior of the Gaussian-latent run in ``run`` (see ``fit_mixture_prior``) to its
    training split, attach it and save the run (model.safetensors, config.json, samples/prior.png)."""
    run = Path(run)
    config = read_run_config(run)
    dev = resolve_device(device)
    model = load(run, dev)
    if not isinstance(model, GaussianVAE):
        raise VaekitError(f"{run} holds a {model.name} model; a mixture prior is for Gaussian latents")
    if model.prior is not None and not overwrite:
        raise VaekitError(f"{run} already has a fitted prior; pass --overwrite to fit a new one")
    x, labels, num_classes = _training_split(run, config, dev)
    info = fit_mixture_prior(model, x, labels, num_classes, components, per_class, seed, target)
    save_run_with_prior(run, model, config, seed)
    log(describe_mixture(info) + f"; saved in {run}")
    return info


def fit_prior_after_training(
    run: Path,
    model: GaussianVAE,
    config: dict[str, Any],
    x: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    components: int | None,
    seed: int,
    log: Callable[[str], None],
) -> None:
    """The end of ``vaekit train``: fit the mixture prior to the training images ``x`` and save the run
    (``config``: its config.json) with it. A dataset too small for the mixture gets fewer components, or
    (with a note) no prior, rather than failing the finished run."""
    try:
        components, per_class = check_mixture_settings(components, None, num_classes)
        # a tiny dataset: no more components than the rarest class (or the whole set) has images
        smallest = int(torch.bincount(labels, minlength=num_classes).min()) if per_class else len(labels)
        if 0 < smallest < components:
            where = "per class, but a class has" if per_class else "but there are"
            log(f"note: {components} prior components {where} {smallest} images")
            components = smallest
        info = fit_mixture_prior(model, x, labels, num_classes, components, per_class, seed)
    except VaekitError as exc:
        log(f"note: no prior fitted ({exc}); samples come from N(0, I)")
        return
    save_run_with_prior(run, model, config, seed)
    log(describe_mixture(info) + "; vaekit sample draws from it")


def _run_splits(run: Path, config: dict[str, Any]) -> tuple[Dataset, ImageSet, ImageSet]:
    """The run's dataset and its training and validation images, split as training split them."""
    try:
        dataset = load_run_dataset(config)
        val_fraction, split_seed = config["train"]["val_fraction"], config["train"]["seed"]
    except (KeyError, TypeError) as exc:
        raise VaekitError(f"corrupt {run / 'config.json'}: no data or train setting {exc}") from None
    return dataset, *split_train_val(dataset.train, val_fraction, split_seed)


def _training_split(
    run: Path, config: dict[str, Any], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The run's training images (one fixed draw if it binarized), their labels, and the class count."""
    dataset, train_set, _ = _run_splits(run, config)
    x = train_set.images.to(device)  # uint8; posterior_moments converts batches
    if config["train"].get("binarize", "none") != "none":
        x = binarize(unit_float(x), "train")
    return x, train_set.labels.to(device), dataset.num_classes


def save_run_with_prior(run: Path, model: VAE, config: dict[str, Any], seed: int) -> None:
    """The pictures first, the model last: config.json and model.safetensors change together."""
    save_prior_samples(model, run / "samples" / "prior.png", seed)
    save_model(model, run / "model.safetensors")
    write_json(run / "config.json", {**config, "model": model.config})


def _check_settings(epochs: Any, batch_size: Any, lr: Any, seed: Any) -> None:
    for name, value in (("epochs", epochs), ("batch size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise VaekitError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise VaekitError(f"learning rate must be a positive finite number, got {lr!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise VaekitError(f"seed must be an integer >= 0, got {seed!r}")


@torch.no_grad()
def encode_images(
    model: VQVAE, images: ImageSet, device: torch.device, batch_size: int = 1000
) -> torch.Tensor:
    """The code grids of ``images`` under the frozen model, long [N, h, w] on ``device``."""
    model.eval()
    x = images.as_float(device)
    codes = [model.encode(x[start : start + batch_size]) for start in range(0, len(x), batch_size)]
    return torch.cat(codes) if codes else torch.zeros(0, *model.grid, dtype=torch.long, device=device)


@torch.no_grad()
def prior_nll(prior: CodePrior, codes: torch.Tensor, batch_size: int = 1000) -> float:
    """Mean -log p(c) over ``codes`` [N, h, w], in nats per image (summed in float64)."""
    total = torch.zeros((), dtype=torch.float64, device=codes.device)
    for start in range(0, len(codes), batch_size):
        total -= prior.log_prob(codes[start : start + batch_size]).double().sum()
    return total.item() / len(codes)


def train_prior(
    run: str | os.PathLike,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    width: int = 64,
    depth: int = 2,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train a prior over the codes of the vqvae run in ``run``, attach it and save the run.

    Writes model.safetensors and config.json (the model now carries the prior), prior_metrics.jsonl
    (a line per epoch) and samples/prior.png. Returns the kept epoch's figures: ``train_nll`` and
    ``val_nll`` in nats per image, ``*_bits_per_code`` (the same divided by h w ln 2), ``best_epoch``,
    ``epochs`` and ``uniform_nll`` (h w log K, the uniform prior's), and the run's new test figures
    (``test_loss`` etc., also merged into eval.json). ``width`` and ``depth`` size the transformer: the
    defaults (64, 2) train in about a third of the time of (128, 4) on a CPU, for about 1.6 nats per
    image more on MNIST. ``overwrite`` replaces a prior.
    """
    # Every check comes first: bad input leaves the run folder as it was.
    _check_settings(epochs, batch_size, lr, seed)
    for name, value in (("width", width), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise VaekitError(f"prior {name} must be an integer >= 1, got {value!r}")
    if width % PRIOR_HEADS:
        raise VaekitError(f"prior width must be a multiple of {PRIOR_HEADS} (attention heads), got {width}")
    run = Path(run)
    config = read_run_config(run)
    dev = resolve_device(device)
    model = load(run, dev)
    if not isinstance(model, VQVAE):
        raise VaekitError(
            f"{run} holds a {model.name} model; a prior over codes is trained for vqvae runs only "
            "(a Gaussian-latent model's prior is fitted by fit_run_prior)"
        )
    if model.can_sample and not overwrite:
        raise VaekitError(f"{run} already has a prior; pass --overwrite to train a new one")
    _, train_set, val_set = _run_splits(run, config)
    train_codes = encode_images(model, train_set, dev)
    val_codes = encode_images(model, val_set, dev)

    # Seeded, without touching the global RNG: the same seed gives the same prior.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prior = CodePrior(
            num_codes=model.codebook_size, grid=list(model.grid), width=width, depth=depth, heads=PRIOR_HEADS
        ).to(dev)
    shuffle = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(prior.parameters(), lr=lr)
    per_code = prior.length * math.log(2)  # nats per image -> bits per code
    uniform = prior.length * math.log(model.codebook_size)
    n_params = sum(p.numel() for p in prior.parameters())
    show = sys.stderr.isatty() if progress is None else progress
    log(
        f"training a prior ({n_params:,} parameters) over {model.grid[0]}x{model.grid[1]} grids of "
        f"{model.codebook_size} codes: {len(train_codes):,} train / {len(val_codes):,} val images; "
        f"the uniform prior gives {uniform:.2f} nats per image"
    )

    history: list[dict[str, Any]] = []
    best_state, best = None, None
    n_batches = math.ceil(len(train_codes) / batch_size)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        prior.train()
        perm = torch.randperm(len(train_codes), generator=shuffle).to(dev)
        total = torch.zeros((), dtype=torch.float64, device=dev)  # summed on the device: no sync per step
        for step in tqdm(
            range(n_batches), desc=f"prior epoch {epoch}/{epochs}", leave=False, disable=not show
        ):
            batch = train_codes.index_select(0, perm[step * batch_size : (step + 1) * batch_size])
            nll = -prior.log_prob(batch)
            optimizer.zero_grad(set_to_none=True)
            nll.mean().backward()
            optimizer.step()
            total += nll.detach().double().sum()
        prior.eval()
        train_nll = total.item() / len(train_codes)  # the running mean over the epoch, as train does
        if not math.isfinite(train_nll):
            raise VaekitError(
                f"the prior's training loss became {train_nll} in epoch {epoch}; try a lower --lr"
            )
        val_nll = prior_nll(prior, val_codes) if len(val_codes) else None
        record = {
            "epoch": epoch,
            "train_nll": train_nll,
            "train_bits_per_code": train_nll / per_code,
            "val_nll": val_nll,
            "val_bits_per_code": val_nll / per_code if val_nll is not None else None,
            "seconds": round(time.perf_counter() - start, 3),
        }
        history.append(record)
        score = val_nll if val_nll is not None else train_nll  # without a val split: the best train NLL
        if best is None or score < best[0]:
            best = (score, record)
            best_state = {k: v.detach().clone() for k, v in prior.state_dict().items()}
        val_text = (
            f"  val {val_nll:.2f} ({record['val_bits_per_code']:.3f} bits/code)"
            if val_nll is not None
            else ""
        )
        log(
            f"prior epoch {epoch:3d}/{epochs}  train {train_nll:.2f} nats/image "
            f"({record['train_bits_per_code']:.3f} bits/code){val_text}  {record['seconds']:.2f}s"
        )

    assert best is not None and best_state is not None
    prior.load_state_dict(best_state)
    model.set_prior(prior.eval())
    kept = best[1]
    write_text(run / "prior_metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    save_run_with_prior(run, model, config, seed)
    log(f"kept the prior of epoch {kept['epoch']}; saved in {run}")
    # The kl term is now -log p(codes) under the prior: the run's test figures change with it.
    test = evaluate_run(run, split="test", device=device)
    log(
        f"test loss {test['test_loss']:.2f} (recon {test['test_recon']:.2f} + kl {test['test_kl']:.2f}) "
        f"over {test['test_n_images']} images, with the prior"
    )
    return {
        **test,
        "epochs": epochs,
        "best_epoch": kept["epoch"],
        "train_nll": kept["train_nll"],
        "train_bits_per_code": kept["train_bits_per_code"],
        "val_nll": kept["val_nll"],
        "val_bits_per_code": kept["val_bits_per_code"],
        "uniform_nll": uniform,
    }
