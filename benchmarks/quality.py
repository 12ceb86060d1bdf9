"""Test loss (negative ELBO, nats per image) after E epochs: tutorial pipeline vs vaekit, over seeds.

Why: vaekit's speed must not come at the cost of a worse model. For each seed this trains

  tutorial        the pytorch/examples MNIST VAE (per-sample loader, summed loss, Adam 1e-3) on all
                  12,000 training images; test loss computed as the tutorial does (eval mode, one z
                  per image from the global RNG, summed BCE + KL over the test set / 10,000)
  vaekit val 0    vaekit with val_fraction=0: the same 12,000 training images as the tutorial
  vaekit default  vaekit's default config (val_fraction=0.1: 10,800 training images)

and reports each one's test loss, then their mean and std over seeds.

The vaekit figures are also checked independently: the test loss of each vaekit run is recomputed
from its saved folder (model.safetensors + config.json) with plain tensor maths, using none of
vaekit's model or loss code, with the same noise stream as vaekit's evaluation (expected difference
~1e-4 or less), and once more with a different noise seed, to show the Monte Carlo spread of a
one-z-per-image estimate. Results: benchmarks/results/quality.json.

Run from the repository root:  .venv/bin/python benchmarks/quality.py [--epochs 10] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import (
    DEFAULT_DATA_DIR,
    TutorialVAE,
    check_data_dir,
    tutorial_datasets,
    tutorial_loader,
    tutorial_optimizer,
    tutorial_test_loss,
    tutorial_train_epoch,
)
from harness import environment, format_table, load_average, mean_std, quiet, run_stamp, timed, write_results
from safetensors.torch import load_file

from vaekit.data import load_dataset
from vaekit.training import TrainConfig, Trainer

EVAL_BATCH = 1000  # vaekit's evaluation batch size (evaluate.elbo_terms); the noise stream depends on it
OTHER_NOISE_OFFSET = 1000  # the second recomputation draws its z with seed + this
METHODS = ("tutorial", "vaekit_val0", "vaekit_default")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="MNIST IDX gz folder")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=str, default="0,1,2", help="comma-separated training seeds")
    args = parser.parse_args()
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not args.seeds or args.epochs < 1:
        parser.error("need at least one seed and --epochs >= 1")
    return args


# ----------------------------------------------------------------------------------- training runs
def train_tutorial(data_dir: Path, seed: int, epochs: int) -> dict[str, Any]:
    """The tutorial's main loop: train one epoch, then test, E times; the last test loss counts.
    "seconds" times the training and testing, not the loading of the data."""
    train_set, test_set = tutorial_datasets(data_dir)

    def train_and_test() -> tuple[list[float], list[float]]:
        torch.manual_seed(seed)
        model = TutorialVAE()
        optimizer = tutorial_optimizer(model)
        train_loader = tutorial_loader(train_set, shuffle=True)
        test_loader = tutorial_loader(test_set, shuffle=False)
        train_losses, test_losses = [], []
        for _ in range(epochs):
            train_losses.append(tutorial_train_epoch(model, optimizer, train_loader))
            test_losses.append(tutorial_test_loss(model, test_loader))
        return train_losses, test_losses

    (train_losses, test_losses), seconds = timed(train_and_test)
    return {
        "test_loss": test_losses[-1],
        "train_loss": train_losses[-1],
        "n_train": len(train_set),
        "n_test": len(test_set),
        "test_loss_per_epoch": test_losses,
        "train_loss_per_epoch": train_losses,
        "seconds": seconds,
    }


def train_vaekit(config: TrainConfig, out: Path) -> dict[str, Any]:
    """A vaekit run (training, then its test evaluation) and the figures of its history."""
    (trainer, result), seconds = timed(lambda: run_trainer(config, out))
    history = trainer.state.history
    return {
        "test_loss": result["test_loss"],
        "test_recon": result["test_recon"],
        "test_kl": result["test_kl"],
        "train_loss": history[-1]["train_loss"],
        "n_train": trainer.data.counts["n_train"],
        "n_test": result["test_n_images"],
        "val_fraction": config.val_fraction,
        "train_loss_per_epoch": [h["train_loss"] for h in history],
        "val_loss_per_epoch": [h["val_loss"] for h in history],
        "seconds": seconds,
    }


def run_trainer(config: TrainConfig, out: Path) -> tuple[Trainer, dict[str, Any]]:
    """Train and test one vaekit run; the trainer (for its history) and the test figures."""
    trainer = Trainer(config, out, progress=False, log=quiet)
    return trainer, trainer.run()


# ------------------------------------------------------------------------ independent recomputation
def recompute_test_loss(
    run: Path, test_images: torch.Tensor, noise_seed: int | None = None
) -> dict[str, Any]:
    """The test loss of a saved vaekit run, from its files alone, with plain tensor operations.

    Reads the weights with safetensors and latent_dim / seed from config.json; nothing of vaekit's
    model or loss code runs. One z per test image: images in order, in batches of 1000, with one
    generator seeded with the run's seed (or ``noise_seed``), eps = randn(mu.shape) per batch.
    Per image: sum over pixels of BCE-with-logits, softplus(l) - x l, plus the Gaussian KL; the mean
    over images is accumulated in float64.
    """
    weights = load_file(str(run / "model.safetensors"))
    config = json.loads((run / "config.json").read_text())
    latent = int(config["model"]["latent_dim"])
    seed = int(config["train"]["seed"]) if noise_seed is None else noise_seed
    n_pixels = test_images[0].numel()
    hidden = weights["encoder.1.weight"].shape[0]
    expected = {
        "encoder.1.weight": (hidden, n_pixels),
        "encoder.1.bias": (hidden,),
        "posterior.weight": (2 * latent, hidden),
        "posterior.bias": (2 * latent,),
        "decoder.0.weight": (hidden, latent),
        "decoder.0.bias": (hidden,),
        "decoder.2.weight": (n_pixels, hidden),
        "decoder.2.bias": (n_pixels,),
    }
    # The fitted prior's weights (prior.*) ride along in the file; the test loss is the trained prior's
    # -ELBO, N(0, I), so the recomputation leaves them out.
    found = {k: tuple(v.shape) for k, v in weights.items() if not k.startswith("prior.")}
    if found != expected:
        raise SystemExit(f"error: unexpected weights in {run}: {found} (expected {expected})")
    w1, b1 = weights["encoder.1.weight"], weights["encoder.1.bias"]
    wp, bp = weights["posterior.weight"], weights["posterior.bias"]
    w2, b2 = weights["decoder.0.weight"], weights["decoder.0.bias"]
    w3, b3 = weights["decoder.2.weight"], weights["decoder.2.bias"]

    x_all = test_images.reshape(len(test_images), -1).float() / 255.0
    generator = torch.Generator().manual_seed(seed)
    sums = torch.zeros(3, dtype=torch.float64)  # loss, recon, kl
    with torch.no_grad():
        for start in range(0, len(x_all), EVAL_BATCH):
            x = x_all[start : start + EVAL_BATCH]
            h = (x @ w1.T + b1).clamp_min(0)
            posterior = h @ wp.T + bp
            mu, logvar = posterior[:, :latent], posterior[:, latent:]
            eps = torch.randn(mu.shape, generator=generator)
            z = mu + torch.exp(0.5 * logvar) * eps
            logits = (z @ w2.T + b2).clamp_min(0) @ w3.T + b3
            recon = (F.softplus(logits) - x * logits).sum(dim=1)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
            sums += torch.stack([(recon + kl).double().sum(), recon.double().sum(), kl.double().sum()])
    loss, recon, kl = (sums / len(x_all)).tolist()
    return {"loss": loss, "recon": recon, "kl": kl, "noise_seed": seed, "keys": sorted(weights)}


def check_run(run: Path, test_images: torch.Tensor, reported: dict[str, Any]) -> dict[str, Any]:
    """Recompute a run's test loss with its own noise stream and with another; compare to eval.json."""
    eval_json = json.loads((run / "eval.json").read_text())
    assert abs(eval_json["test_loss"] - reported["test_loss"]) < 1e-12
    same = recompute_test_loss(run, test_images)
    other = recompute_test_loss(run, test_images, noise_seed=same["noise_seed"] + OTHER_NOISE_OFFSET)
    return {
        "eval_json_test_loss": eval_json["test_loss"],
        "recomputed_test_loss": same["loss"],
        "recomputed_test_recon": same["recon"],
        "recomputed_test_kl": same["kl"],
        "abs_diff": abs(same["loss"] - eval_json["test_loss"]),
        "abs_diff_recon": abs(same["recon"] - eval_json["test_recon"]),
        "abs_diff_kl": abs(same["kl"] - eval_json["test_kl"]),
        "noise_seed": same["noise_seed"],
        "other_noise_seed": other["noise_seed"],
        "other_noise_test_loss": other["loss"],
        "other_noise_diff": other["loss"] - eval_json["test_loss"],
        "weight_keys": same["keys"],
    }


def train_seed(
    data_dir: Path, seed: int, epochs: int, test_images: torch.Tensor, tmp: Path
) -> dict[str, Any]:
    """The three trainings of one seed; each vaekit run's test loss is recomputed from its folder."""
    entry: dict[str, Any] = {"seed": seed, "tutorial": train_tutorial(data_dir, seed, epochs)}
    for name, val_fraction in (("vaekit_val0", 0.0), ("vaekit_default", None)):
        config = TrainConfig(dataset="mnist", data_dir=str(data_dir), epochs=epochs, seed=seed)
        if val_fraction is not None:
            config.val_fraction = val_fraction
        run = tmp / f"seed{seed}-{name}" / "run"
        entry[name] = train_vaekit(config, run)
        entry[name]["recomputation"] = check_run(run, test_images, entry[name])
    assert entry["vaekit_default"]["val_fraction"] == 0.1, "vaekit's default val fraction changed"
    return entry


# ------------------------------------------------------------------------------------------ report
def fmt_mean_std(stats: dict[str, Any], digits: int = 2) -> str:
    """Mean +- std, "n/a" for the std of a single seed."""
    std = "n/a" if stats["std"] is None else f"{stats['std']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} +- {std}"


def print_tables(epochs: int, per_seed: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """The test losses per seed with their mean, then the independent recomputations."""
    print()
    print(f"test loss (nats/image) after {epochs} epochs")
    header = ["seed", "tutorial", "vaekit val 0", "vaekit default"]
    rows = [[str(e["seed"]), *(f"{e[m]['test_loss']:.3f}" for m in METHODS)] for e in per_seed]
    rows.append(["mean +- std", *(fmt_mean_std(summary[m], 3) for m in METHODS)])
    rows.append(["n train", *(str(per_seed[0][m]["n_train"]) for m in METHODS)])
    print(format_table(header, rows))
    print()
    print("independent recomputation from the run folder (plain tensor maths, no vaekit model/loss code)")
    header = ["seed", "run", "eval.json", "recomputed", "|diff|", "other noise", "other - eval"]
    rows = []
    for e in per_seed:
        for m in METHODS[1:]:
            r = e[m]["recomputation"]
            rows.append(
                [str(e["seed"]), m, f"{r['eval_json_test_loss']:.4f}", f"{r['recomputed_test_loss']:.4f}",
                 f"{r['abs_diff']:.1e}", f"{r['other_noise_test_loss']:.4f}", f"{r['other_noise_diff']:+.4f}"]
            )  # fmt: skip
    print(format_table(header, rows))


def main() -> None:
    args = parse_args()
    load_start = load_average()
    data_dir = args.data_dir.resolve()
    check_data_dir(data_dir)
    test_images = load_dataset("mnist", data_dir).test.images
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} epochs, "
        f"seeds {args.seeds}, data {data_dir}"
    )
    per_seed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            entry = train_seed(data_dir, seed, args.epochs, test_images, Path(tmp))
            per_seed.append(entry)
            print(
                f"seed {seed}: "
                + ", ".join(f"{m} {entry[m]['test_loss']:.2f} ({entry[m]['seconds']:.0f}s)" for m in METHODS)
            )

    summary = {m: mean_std([e[m]["test_loss"] for e in per_seed]) for m in METHODS}
    recompute_diffs = [e[m]["recomputation"]["abs_diff"] for e in per_seed for m in METHODS[1:]]
    other_diffs = [e[m]["recomputation"]["other_noise_diff"] for e in per_seed for m in METHODS[1:]]
    results: dict[str, Any] = {
        "benchmark": "quality",
        "what": "test negative ELBO (nats/image, one z per image) after E epochs, MNIST, MLP 784-400-20",
        "epochs": args.epochs,
        "seeds": args.seeds,
        "summary": summary,
        "tutorial_mean": summary["tutorial"]["mean"],
        "vaekit_val0_mean": summary["vaekit_val0"]["mean"],
        "vaekit_default_mean": summary["vaekit_default"]["mean"],
        "max_recompute_abs_diff": max(recompute_diffs),
        "max_abs_other_noise_diff": max(abs(d) for d in other_diffs),
        "other_noise_seed_offset": OTHER_NOISE_OFFSET,
        "per_seed": per_seed,
        **environment("torch_version", "python_version", "threads"),
        "data_dir": str(data_dir),
        **run_stamp(load_start),
    }
    path = write_results("quality", results)
    print_tables(args.epochs, per_seed, summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
