"""Priors, posteriors and objectives side by side: every part on MNIST, the disentangling ones on shapes.

mnist   the mlp (784-400-20) on dynamically binarized MNIST (the 12,000-image subset, 10% held out), the
        same epochs for each part: test -ELBO, -log p(x) by importance sampling (k=1000 on the first
        1,000 test images, binarized once; the prior the model trained with as p(z)), the Frechet
        distance of 10,000 samples from the trained prior and from the fitted mixture (vaekit's cached
        MNIST classifier), and the median epoch's seconds (its steps and its validation; the plain
        model's beside).
cvae    the cvae at z=16 and z=32 after 5 and 20 epochs (grey MNIST, as benchmarks/priors.py): the share
        of samples recognised as the requested digit, from the trained prior and the fitted one, with the
        class-mean prior (the default) and a VampPrior per class; and the share of the test images'
        reconstructions read as their own label: the decoder's ceiling, which samples hardly rise above.
shapes  the conv VAE (and the mlp for one row) on shapes at 32x32, batches of 64, for each disentangling
        objective, each with the same --max-time (15 minutes by default; --shapes-rows to redo some):
        MIG and the FactorVAE score on the test split (evaluate's figures), steps trained.

Writes benchmarks/results/parts.json, the "Priors, posteriors and objectives" section of docs/models.md
and docs/parts/*.png. Run alone (timings), from the repository root:
  .venv/bin/python benchmarks/parts.py [--only mnist,cvae,shapes] [--epochs 100] [--shapes-time 15m]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from _common import (
    DEFAULT_DATA_DIR,
    REPO_ROOT,
    check_data_dir,
    frechet_by_prior,
    measuring_classifier,
    train_quietly,
)
from harness import environment, read_results, utc_now, write_results
from parts_report import write_section

from vaekit import load
from vaekit.data import binarize, load_dataset, unit_float
from vaekit.evaluation.classifier import classify
from vaekit.evaluation.likelihood import iwae_nll
from vaekit.evaluation.pictures import traverse
from vaekit.evaluation.quality import sample_quality
from vaekit.evaluation.runs import evaluate_run
from vaekit.training.settings import parse_duration
from vaekit.utils import plots

MNIST_PARTS = {
    "plain": {},
    "vamp K=100": {"prior": "vamp", "pseudo_inputs": 100},
    "iaf 2 steps": {"posterior": "iaf", "flow_steps": 2},
    "vamp + iaf": {"prior": "vamp", "pseudo_inputs": 100, "posterior": "iaf", "flow_steps": 2},
    "mog K=10": {"prior": "mog", "mog_components": 10},
    "mog K=100": {"prior": "mog", "mog_components": 100},
    "btcvae beta=4": {"objective": "btcvae", "beta": 4.0},
    "factorvae gamma=10": {"objective": "factorvae", "gamma": 10.0, "discriminator": [256, 256, 256]},
    "dip-i": {"objective": "dip-i"},
    "dip-ii": {"objective": "dip-ii"},
    "mmd W=100": {"objective": "mmd", "mmd_weight": 100.0},
    "wae-mmd (beta=0) W=100": {"objective": "mmd", "mmd_weight": 100.0, "beta": 0.0},
    "wae-gan (beta=0) lambda=3": {"objective": "wae-gan", "gan_weight": 3.0, "beta": 0.0},
}
SHAPES_PARTS = {
    "plain": {},
    "btcvae beta=10": {"objective": "btcvae", "beta": 10.0},
    "factorvae gamma=40": {"objective": "factorvae", "gamma": 40.0, "discriminator": [256, 256, 256]},
    # the mlp (400 hidden units) takes several times the conv's steps in the same time
    "btcvae beta=10 (mlp)": {"model": "mlp", "objective": "btcvae", "beta": 10.0},
}
# Batches of 64 on shapes: twice the steps of 128 in the same time, which measured better (MIG 0.127 vs
# 0.065 for the mlp's beta-TCVAE in 400 s on one thread).
SHAPES_BATCH = 64
CVAE_PRIORS = {"class means": {}, "vamp per class, K=50": {"prior": "vamp", "pseudo_inputs": 50}}
CVAE_EPOCHS = (5, 20)


def step_seconds(run: Path) -> float:
    """The median epoch's seconds (metrics.jsonl, which includes the epoch's validation)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["seconds"] for r in rows)


def mnist(
    data_dir: Path, epochs: int, work: Path, k: int, n_samples: int, names: list[str], done: dict[str, Any]
) -> dict[str, Any]:
    """The MNIST table's rows ``names`` (the others kept from ``done``, the last results), each written
    as soon as it is measured."""
    dataset = load_dataset("mnist", data_dir)
    classifier, info = measuring_classifier(dataset)
    test_bits = binarize(unit_float(dataset.test.images[:1000]), "test")
    results: dict[str, Any] = {"classifier_test_accuracy": info["test_accuracy"], "epochs": epochs}
    results["rows"] = {n: r for n, r in done.get("rows", {}).items() if n in MNIST_PARTS}
    for name in names:
        part = MNIST_PARTS[name]
        run = train_quietly(
            work / name, dataset="mnist", data_dir=str(data_dir), binarize="dynamic", epochs=epochs, **part
        )
        model = load(run)
        row = {"settings": part, "seconds_per_epoch": step_seconds(run)}
        row["test_loss"] = json.loads((run / "eval.json").read_text())["test_loss"]
        row["nll_k1000"] = iwae_nll(model, test_bits, k=k, seed=0).mean().item()
        row.update(frechet_by_prior(model, classifier, dataset.test, n_samples))
        grid = model.sample(64, generator=torch.Generator().manual_seed(0), prior="trained")
        save_grid(grid, REPO_ROOT / "docs" / "parts" / f"mnist_{slug(name)}.png")
        # time against the plain model measured on the same machine (this run's, or the one kept)
        plain = row if name == "plain" else results["rows"].get("plain", row)
        row["x_plain"] = row["seconds_per_epoch"] / plain["seconds_per_epoch"]
        row["cpu"] = environment("cpu")["cpu"]
        results["rows"][name] = row
        print(name, {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        write_results("parts", {**read_results("parts"), "mnist": results})
    return results


def cvae(data_dir: Path, work: Path) -> dict[str, Any]:
    dataset = load_dataset("mnist", data_dir)
    classifier, _ = measuring_classifier(dataset)
    test_images = unit_float(dataset.test.images)
    results: dict[str, Any] = {}
    for epochs in CVAE_EPOCHS:
        for latent_dim in (16, 32):
            for name, part in CVAE_PRIORS.items():
                key = f"z={latent_dim}, {name}" + ("" if epochs == 5 else f", {epochs} epochs")
                run = train_quietly(
                    work / key,
                    dataset="mnist",
                    data_dir=str(data_dir),
                    model="cvae",
                    latent_dim=latent_dim,
                    epochs=epochs,
                    **part,
                )
                model = load(run)
                row: dict[str, Any] = {"epochs": epochs, "seconds_per_epoch": step_seconds(run)}
                for prior in ("standard", "fitted"):
                    q = sample_quality(model, classifier, dataset.test, 10_000, seed=0, prior=prior)
                    row[f"label_accuracy_{prior}"] = q["label_accuracy"]
                    row[f"label_accuracy_per_class_{prior}"] = q["label_accuracy_per_class"]
                # the ceiling: the test images' own reconstructions, read as their labels
                with torch.no_grad():
                    recon = model.reconstruct(test_images, dataset.test.labels)
                predicted = classify(classifier, recon)["predictions"]
                row["reconstruction_accuracy"] = (predicted == dataset.test.labels).double().mean().item()
                results[key] = row
                print(key, row["label_accuracy_standard"], row["label_accuracy_fitted"], flush=True)
    return results


def shapes(budget: float, work: Path, names: list[str], done: dict[str, Any]) -> dict[str, Any]:
    """The shapes table's rows ``names``, the others kept from ``done`` (the last results) if they had
    the same budget."""
    results: dict[str, Any] = {"max_time_seconds": budget, "rows": {}}
    if done.get("max_time_seconds") == budget:
        results["rows"] = {n: r for n, r in done.get("rows", {}).items() if n in SHAPES_PARTS}
    for name in names:
        part = SHAPES_PARTS[name]
        run = work / f"shapes {name}"
        settings = {"model": "conv", "latent_dim": 10, "likelihood": "bernoulli", **part}
        train_quietly(run, dataset="shapes", image_size=[32, 32], batch_size=SHAPES_BATCH, epochs=1000,
              max_time=budget, **settings)  # fmt: skip
        checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        result = evaluate_run(run, samples=0)
        n_batches = -(-json.loads((run / "config.json").read_text())["data"]["n_train"] // SHAPES_BATCH)
        row = {
            "settings": part,
            "steps": checkpoint["epoch"] * n_batches + checkpoint["step"],
            "mig": result["mig"],
            "mig_per_factor": result.get("mig_per_factor"),
            "factorvae_score": result["factor_vae_score"],
            "test_loss": result["test_loss"],
        }
        traversal = REPO_ROOT / "docs" / "parts" / f"shapes_{slug(name)}.png"
        traverse(run, out=traversal)
        # time against the plain model measured on the same machine (this run's, or the one kept)
        plain = row if name == "plain" else results["rows"].get("plain", row)
        row["x_plain"] = row["seconds_per_epoch"] / plain["seconds_per_epoch"]
        row["cpu"] = environment("cpu")["cpu"]
        results["rows"][name] = row
        print(name, row, flush=True)
        write_results("parts", {**read_results("parts"), "shapes": results})
    results["rows"] = {n: results["rows"][n] for n in SHAPES_PARTS if n in results["rows"]}
    return results


def save_grid(images: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    plots.save_grid(images, path, ncol=8)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--only", default="mnist,cvae,shapes")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--shapes-time", default="15m")
    parser.add_argument("--shapes-rows", default=",".join(SHAPES_PARTS), help="shapes rows to (re)measure")
    parser.add_argument("--families", default=",".join(MNIST_PARTS), help="mnist rows to (re)measure")
    parser.add_argument("--k", type=int, default=1000, help="importance samples (a smaller k: a quick try)")
    parser.add_argument("--samples", type=int, default=10_000, help="samples whose Frechet distance is taken")
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    torch.set_num_threads(2)
    results = read_results("parts")
    work = Path(tempfile.mkdtemp(prefix="vaekit-parts-"))
    try:
        for part in args.only.split(","):
            if part == "mnist":
                names = args.families.split(",")
                done = results.get("mnist", {})
                kept_plain = done.get("rows", {}).get("plain", {})
                if "plain" not in names and kept_plain.get("cpu") != environment("cpu")["cpu"]:
                    names.insert(0, "plain")  # a time is compared with the plain model's on the same CPU
                results["mnist"] = mnist(args.data_dir, args.epochs, work, args.k, args.samples, names, done)
            elif part == "cvae":
                results["cvae"] = cvae(args.data_dir, work)
            elif part == "shapes":
                done = results.get("shapes", {})
                names = args.shapes_rows.split(",")
                results["shapes"] = shapes(parse_duration(args.shapes_time), work, names, done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results.update(environment("cpu", "threads", "torch_version"), date=utc_now())
    write_results("parts", results)
    write_section(results, read_results("parts_speed") or None)


if __name__ == "__main__":
    main()
