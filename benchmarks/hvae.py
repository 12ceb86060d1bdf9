"""The hierarchical VAE on the papers' binarized-MNIST protocol, against vaekit's one-layer models.

equal    every model trained for the same --minutes (default 10) on dynamically binarized MNIST (the
         12,000-image subset, 10% held out): the hvae (its defaults; --epochs set so that its cosine
         schedule ends with the time, from a one-epoch calibration run), the mlp and the conv (early
         stopping, patience 30, keeping the best), and the mlp with the IWAE objective (k=5). Test
         -log p(x) by importance sampling with --k draws on the first --test-images test images,
         binarized once (BINARIZE_SEEDS["test"]), in nats and bits/dim; the test -ELBO; the steps.
anchor   the hvae trained for --anchor-minutes, the same figures (Burda et al.'s one-layer VAE: 86.76).
samples  the Frechet distance (vaekit's cached MNIST classifier) of 10,000 hvae samples at several
         temperatures against the mlp's fitted-prior samples.
speed    an hvae training step in vaekit's Trainer against the same network in a bare PyTorch loop on
         the same preloaded tensors (interleaved rounds, median per step); and the importance-sampled
         estimate's decodes per second, as the minutes that k=1000 over the 10,000 test images take
         (with --full-test, measured on all of them).

Writes benchmarks/results/hvae.json, docs/hvae.md's tables (between its markers) and docs/hvae/*.png.
Run alone (timings), from the repository root:
  .venv/bin/python benchmarks/hvae.py [--only equal,anchor,samples,speed] [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, REPO_ROOT, check_data_dir, measuring_classifier, steps_trained
from harness import interleaved, machine, medians, quiet, read_results, utc_now, write_results
from hvae_report import write_document

from vaekit import load
from vaekit.data import binarize, load_dataset, unit_float
from vaekit.evaluation.likelihood import bits_per_dim, iwae_nll
from vaekit.evaluation.quality import sample_quality
from vaekit.evaluation.runs import evaluate_run
from vaekit.training import TrainConfig, Trainer
from vaekit.utils import plots

BASE = {"dataset": "mnist", "binarize": "dynamic", "val_fraction": 0.1}
ONE_LAYER = {
    "mlp": {"model": "mlp", "early_stopping": 30},
    "conv": {"model": "conv", "early_stopping": 30},
    "mlp iwae k=5": {"model": "mlp", "objective": "iwae", "k": 5, "early_stopping": 30},
}
TEMPERATURES = (1.0, 0.9, 0.8, 0.7, 0.6)
DOCS = REPO_ROOT / "docs" / "hvae"


def train(out: Path, **settings: Any) -> tuple[Path, float]:
    start = time.perf_counter()
    Trainer(TrainConfig.of(**{**BASE, **settings}), out, progress=False, log=quiet).run()
    return out, time.perf_counter() - start


def hvae_epochs(data_dir: Path, minutes: float, work: Path, settings: dict[str, Any]) -> int:
    """Epochs that fit in ``minutes``: a one-epoch run's seconds (steps and validation) divided in."""
    run, _ = train(work / "calibration", data_dir=str(data_dir), model="hvae", epochs=1, fit_prior=False,
                   **settings)  # fmt: skip
    seconds = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["seconds"]
    return max(1, int(0.97 * minutes * 60 / seconds))


def likelihood_row(run: Path, test_bits: torch.Tensor, k: int, seconds: float) -> dict[str, Any]:
    model = load(run)
    start = time.perf_counter()
    nll = iwae_nll(model, test_bits, k=k, seed=0).mean().item()
    is_seconds = time.perf_counter() - start
    config = json.loads((run / "config.json").read_text())
    return {
        "settings": {k: v for k, v in config["train"].items() if v is not None},
        "epochs": config["epochs_completed"],
        "steps": steps_trained(config, torch.load(run / "checkpoints" / "last.pt", weights_only=True)),
        "train_seconds": seconds,
        "test_loss": json.loads((run / "eval.json").read_text())["test_loss"],
        "nll": nll,
        "bits_per_dim": bits_per_dim(nll, model.image_shape),
        "k": k,
        "test_images": len(test_bits),
        "is_seconds": is_seconds,
    }


def equal_time(args: argparse.Namespace, work: Path, test_bits: torch.Tensor) -> dict[str, Any]:
    results: dict[str, Any] = {"minutes": args.minutes, "rows": {}}
    epochs = hvae_epochs(args.data_dir, args.minutes, work, {})
    runs = {"hvae": {"model": "hvae", "epochs": epochs}}
    runs.update({name: {**settings, "epochs": 100_000} for name, settings in ONE_LAYER.items()})
    for name, settings in runs.items():
        if args.rows and name not in args.rows:
            continue
        run, seconds = train(work / f"equal {name}", data_dir=str(args.data_dir), max_time=args.minutes * 60,
                             **settings)  # fmt: skip
        row = likelihood_row(run, test_bits, args.k, seconds)
        results["rows"][name] = row
        print(name, {k: v for k, v in row.items() if k != "settings"}, flush=True)
        write_results("hvae", {**read_results("hvae"), "equal": results})
    return results


def anchor(args: argparse.Namespace, work: Path, test_bits: torch.Tensor) -> dict[str, Any]:
    epochs = hvae_epochs(args.data_dir, args.anchor_minutes, work, {})
    run, seconds = train(work / "anchor", data_dir=str(args.data_dir), model="hvae", epochs=epochs,
                         max_time=args.anchor_minutes * 60)  # fmt: skip
    row = likelihood_row(run, test_bits, args.k, seconds)
    row["minutes"] = args.anchor_minutes
    print("anchor", {k: v for k, v in row.items() if k != "settings"}, flush=True)
    evaluate_run(run, samples=0)  # groups.png and the per-group figures
    result = json.loads((run / "eval.json").read_text())
    row["groups"] = {k: result[k] for k in ("group_sizes", "active_units_per_group") if k in result}
    row["kl_per_group"] = [result[f"test_kl{i}"] for i in range(1, len(result.get("group_sizes", [])) + 1)]
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "groups.png").write_bytes((run / "groups.png").read_bytes())
    return row


def samples(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Frechet distances of hvae samples by temperature, and of the mlp's fitted-prior samples."""
    dataset = load_dataset("mnist", args.data_dir)
    classifier, info = measuring_classifier(dataset)
    source = work / ("anchor" if (work / "anchor" / "model.safetensors").is_file() else "equal hvae")
    hvae, mlp = load(source), load(work / "equal mlp")
    out: dict[str, Any] = {"hvae_run": source.name, "classifier_test_accuracy": info["test_accuracy"]}
    for prior in ("standard", "fitted"):
        for t in TEMPERATURES:
            q = sample_quality(hvae, classifier, dataset.test, 10_000, seed=0, prior=prior, temperature=t)
            out[f"hvae {prior} t={t:g}"] = q["frechet_distance"]
            print(f"hvae {prior} t={t:g}", q["frechet_distance"], flush=True)
    out["mlp fitted"] = sample_quality(mlp, classifier, dataset.test, 10_000, seed=0, prior="fitted")[
        "frechet_distance"
    ]
    DOCS.mkdir(parents=True, exist_ok=True)
    for t in (1.0, hvae.default_temperature):
        grid = hvae.sample(64, generator=torch.Generator().manual_seed(0), temperature=t)
        plots.save_grid(grid, DOCS / f"samples_t{t:g}.png", ncol=8)
    return out


def speed(args: argparse.Namespace, test_bits: torch.Tensor) -> dict[str, Any]:
    """vaekit's hvae step against a bare loop of the same network; the IS estimate's throughput."""
    dataset = load_dataset("mnist", args.data_dir)
    images = unit_float(dataset.train.images[:1280])
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(TrainConfig(**BASE, data_dir=str(args.data_dir), model="hvae", epochs=1),
                          Path(folder) / "run", progress=False, log=quiet)  # fmt: skip
        model = trainer.model
        bare = load_bare(model)
        optimizer = torch.optim.Adamax(bare.parameters(), lr=2e-3)
        batches = [images[i : i + 128] for i in range(0, len(images), 128)]

        def vaekit_steps() -> None:
            for i in range(len(batches)):
                trainer.step(torch.arange(i * 128, (i + 1) * 128))

        def bare_steps() -> None:
            for batch in batches:
                x = torch.bernoulli(batch)
                loss = bare.loss(x, kl_weight=0.5, kl_balance=True).objective
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(bare.parameters(), 200.0)
                optimizer.step()

        trainer.state.perm = torch.arange(trainer.n_train)
        times = interleaved(args.rounds, {"vaekit": vaekit_steps, "bare": bare_steps}, warmup=True)
    per_step = {name: seconds / len(batches) for name, seconds in medians(times).items()}
    result: dict[str, Any] = {"seconds_per_step": per_step, "ratio": per_step["vaekit"] / per_step["bare"]}
    run_model = load(work_run(args)) if work_run(args) else model
    n = len(test_bits) if args.full_test else min(200, len(test_bits))
    start = time.perf_counter()
    iwae_nll(run_model, test_bits[:n], k=1000, seed=0)
    seconds = time.perf_counter() - start
    result.update(is_images=n, is_seconds=seconds, is_minutes_for_10k=seconds * 10_000 / n / 60)
    print("speed", result, flush=True)
    return result


def load_bare(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` as a bare PyTorch loop would hold it (same weights and memory layout)."""
    import copy

    return copy.deepcopy(model)


def work_run(args: argparse.Namespace) -> Path | None:
    run = args.work / "equal hvae"
    return run if (run / "model.safetensors").is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--only", default="equal,anchor,samples,speed")
    parser.add_argument("--rows", default="", help="equal-time rows to (re)measure (default all)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--anchor-minutes", type=float, default=30.0)
    parser.add_argument("--k", type=int, default=1000, help="importance samples per test image")
    parser.add_argument("--test-images", type=int, default=1000, help="first N test images (10000: all)")
    parser.add_argument("--full-test", action="store_true", help="time IS over all 10,000 test images")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vaekit-hvae-benchmark"))
    args = parser.parse_args()
    args.rows = [r for r in args.rows.split(",") if r]
    check_data_dir(args.data_dir)
    torch.set_num_threads(torch.get_num_threads())
    args.work.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset("mnist", args.data_dir)
    test_bits = binarize(unit_float(dataset.test.images[: args.test_images]), "test")
    results = read_results("hvae")
    results.update(machine=machine(), measured=utc_now())
    for part in args.only.split(","):
        if part == "equal":
            results["equal"] = equal_time(args, args.work, test_bits)
        elif part == "anchor":
            results["anchor"] = anchor(args, args.work, test_bits)
        elif part == "samples":
            results["samples"] = samples(args, args.work)
        elif part == "speed":
            results["speed"] = speed(args, binarize(unit_float(dataset.test.images), "test"))
        write_results("hvae", results)
    write_document(results)


if __name__ == "__main__":
    main()
