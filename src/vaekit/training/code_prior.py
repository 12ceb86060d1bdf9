"""Training a VQ-VAE run's prior over its codes (``vaekit train-prior`` on a vqvae run).

van den Oord et al. 2017 (arXiv:1711.00937, sec. 3.2) train the autoencoder first with a uniform prior,
then fit an autoregressive prior to the codes of the training set, with the autoencoder frozen. So the
images are encoded once; the prior (``models.priors.codes.CodePrior``) trains on whole tensors of codes,
batched by shuffled index, and the epoch with the best validation NLL is kept. Attaching it makes the
model sample and turns its ``kl`` term from the uniform bound h w log K into the prior's -log p(c).
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
from tqdm.auto import tqdm  # a widget in Jupyter, the console bar elsewhere

from vaekit.data import ImageSet
from vaekit.evaluation.runs import evaluate_run
from vaekit.models.priors.codes import CodePrior
from vaekit.models.saving import load
from vaekit.models.vqvae import VQVAE
from vaekit.training.priors import run_splits, save_run_with_prior
from vaekit.utils.devices import resolve_device
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_run_config
from vaekit.utils.targets import check_run_writable

PRIOR_HEADS = 4


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
    grid = model.latent_space.grid
    return torch.cat(codes) if codes else torch.zeros(0, *grid, dtype=torch.long, device=device)


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
    _check_prior_size(width, depth)
    run = Path(run)
    config = read_run_config(run)
    dev = resolve_device(device)
    model = _load_vqvae(run, dev, overwrite)
    _, train_set, val_set = run_splits(run, config)
    train_codes = encode_images(model, train_set, dev)
    val_codes = encode_images(model, val_set, dev)

    prior = _new_prior(model, width, depth, seed, dev)
    latent = model.latent_space
    uniform = prior.length * math.log(latent.codebook_size)
    n_params = sum(p.numel() for p in prior.parameters())
    log(
        f"training a prior ({n_params:,} parameters) over {latent.grid[0]}x{latent.grid[1]} grids of "
        f"{latent.codebook_size} codes: {len(train_codes):,} train / {len(val_codes):,} val images; "
        f"the uniform prior gives {uniform:.2f} nats per image"
    )
    show = sys.stderr.isatty() if progress is None else progress
    history, kept = _fit_prior(prior, train_codes, val_codes, epochs, batch_size, lr, seed, show, log)

    model.set_prior(prior.eval())
    metrics = "".join(json.dumps(h) + "\n" for h in history)
    save_run_with_prior(run, model, config, seed, texts={"prior_metrics.jsonl": metrics})
    log(f"kept the prior of epoch {kept['epoch']}; saved in {run}")
    return {
        **_test_with_prior(run, device, log),
        "epochs": epochs,
        "best_epoch": kept["epoch"],
        "train_nll": kept["train_nll"],
        "train_bits_per_code": kept["train_bits_per_code"],
        "val_nll": kept["val_nll"],
        "val_bits_per_code": kept["val_bits_per_code"],
        "uniform_nll": uniform,
    }


def _test_with_prior(run: Path, device: str, log: Callable[[str], None]) -> dict[str, Any]:
    """The saved run's test figures, logged (also merged into its eval.json)."""
    # The kl term is now -log p(codes) under the prior: the run's test figures change with it.
    test = evaluate_run(run, split="test", device=device)
    log(
        f"test loss {test['test_loss']:.2f} (recon {test['test_recon']:.2f} + kl {test['test_kl']:.2f}) "
        f"over {test['test_n_images']} images, with the prior"
    )
    return test


def _check_prior_size(width: Any, depth: Any) -> None:
    for name, value in (("width", width), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise VaekitError(f"prior {name} must be an integer >= 1, got {value!r}")
    if width % PRIOR_HEADS:
        raise VaekitError(f"prior width must be a multiple of {PRIOR_HEADS} (attention heads), got {width}")


def _load_vqvae(run: Path, device: torch.device, overwrite: bool) -> VQVAE:
    """The run's model, which must be a vqvae without a prior (or ``overwrite``), in a folder that can
    take one."""
    model = load(run, device)
    if model.latent_space.kind != "codes":
        raise VaekitError(
            f"{run} holds a {model.name} model; a prior over codes is trained for vqvae runs only "
            "(a Gaussian-latent model's prior is fitted by fit_run_prior)"
        )
    if model.can_sample and not overwrite:
        raise VaekitError(f"{run} already has a prior; pass --overwrite to train a new one")
    check_run_writable(run, "the prior")
    return model


def _new_prior(model: VQVAE, width: int, depth: int, seed: int, device: torch.device) -> CodePrior:
    # Seeded, without touching the global RNG: the same seed gives the same prior.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        latent = model.latent_space
        shape = {"num_codes": latent.codebook_size, "grid": list(latent.grid)}
        prior = CodePrior(**shape, width=width, depth=depth, heads=PRIOR_HEADS).to(device)
    return prior


def _fit_prior(
    prior: CodePrior,
    train_codes: torch.Tensor,
    val_codes: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    show: bool,
    log: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Adam on shuffled batches of ``train_codes`` for ``epochs`` epochs, a line logged per epoch;
    leaves ``prior`` with the weights of the epoch of best validation NLL (without a val split: best
    train NLL) and returns every epoch's record and that epoch's."""
    shuffle = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(prior.parameters(), lr=lr)
    per_code = prior.length * math.log(2)  # nats per image -> bits per code
    history: list[dict[str, Any]] = []
    best_state, best = None, None
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        desc = f"prior epoch {epoch}/{epochs}"
        train_nll = _train_epoch(prior, optimizer, train_codes, shuffle, batch_size, desc, show)
        if not math.isfinite(train_nll):
            raise VaekitError(
                f"the prior's training loss became {train_nll} in epoch {epoch}; try a lower --lr"
            )
        val_nll = prior_nll(prior, val_codes) if len(val_codes) else None
        record = _epoch_record(epoch, train_nll, val_nll, per_code, start)
        history.append(record)
        score = val_nll if val_nll is not None else train_nll  # without a val split: the best train NLL
        if best is None or score < best[0]:
            best = (score, record)
            best_state = {k: v.detach().clone() for k, v in prior.state_dict().items()}
        log(_epoch_line(record, epochs))
    assert best is not None and best_state is not None
    prior.load_state_dict(best_state)
    return history, best[1]


def _train_epoch(
    prior: CodePrior,
    optimizer: torch.optim.Optimizer,
    codes: torch.Tensor,
    shuffle: torch.Generator,
    batch_size: int,
    desc: str,
    show: bool,
) -> float:
    """One epoch over ``codes`` in an order drawn from ``shuffle``; the mean training NLL per image."""
    prior.train()
    perm = torch.randperm(len(codes), generator=shuffle).to(codes.device)
    # summed on the device: no synchronisation per step
    total = torch.zeros((), dtype=torch.float64, device=codes.device)
    n_batches = math.ceil(len(codes) / batch_size)
    for step in tqdm(range(n_batches), desc=desc, leave=False, disable=not show):
        batch = codes.index_select(0, perm[step * batch_size : (step + 1) * batch_size])
        nll = -prior.log_prob(batch)
        optimizer.zero_grad(set_to_none=True)
        nll.mean().backward()
        optimizer.step()
        total += nll.detach().double().sum()
    prior.eval()
    return total.item() / len(codes)  # the running mean over the epoch, as train does


def _epoch_record(
    epoch: int, train_nll: float, val_nll: float | None, per_code: float, start: float
) -> dict[str, Any]:
    """An epoch's line of prior_metrics.jsonl (``start``: when the epoch began, by perf_counter)."""
    return {
        "epoch": epoch,
        "train_nll": train_nll,
        "train_bits_per_code": train_nll / per_code,
        "val_nll": val_nll,
        "val_bits_per_code": val_nll / per_code if val_nll is not None else None,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    """An epoch's log line."""
    val_nll = record["val_nll"]
    val_text = (
        f"  val {val_nll:.2f} ({record['val_bits_per_code']:.3f} bits/code)" if val_nll is not None else ""
    )
    return (
        f"prior epoch {record['epoch']:3d}/{epochs}  train {record['train_nll']:.2f} nats/image "
        f"({record['train_bits_per_code']:.3f} bits/code){val_text}  {record['seconds']:.2f}s"
    )
