"""How far a likelihood moves when evaluation's networks run in bf16 (``vaekit evaluate --precision bf16``).

For each model (the default mlp, conv z=16 and the hvae, trained here briefly on dynamically binarized
MNIST, or the run folders given with --runs) the importance-sampled -log p(x) with k draws and the -ELBO
of the first N test images, once in float32 and once with the networks in bfloat16 (densities and sums
stay float32), on the same draws (one seed): the mean difference per image, its largest, and each
pass's seconds. The question (issue 33): is bf16 within 0.05 nats of fp32? Writes
benchmarks/results/eval_precision.json (eval_precision-cuda.json on a GPU). Run alone, from the
repository root:
  .venv/bin/python benchmarks/eval_precision.py [--device cpu] [--n 1000] [--k 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, check_data_dir
from harness import load_average, machine, quiet, run_stamp, utc_now, write_results

from vaekit import load
from vaekit.data import binarize, load_dataset, unit_float
from vaekit.evaluation.likelihood import elbo_terms, importance_bounds
from vaekit.training import TrainConfig, Trainer
from vaekit.utils.devices import resolve_device

TRAINING: dict[str, dict[str, Any]] = {
    "mlp": {"model": "mlp", "epochs": 10},
    "conv": {"model": "conv", "latent_dim": 16, "epochs": 3},
    "hvae": {"model": "hvae", "epochs": 10, "max_time": 150.0},
}


def compare(model: Any, x: torch.Tensor, k: int, seed: int = 0) -> dict[str, Any]:
    """-log p(x) (k draws) and -ELBO of images ``x`` (binary, on the model's device) in fp32 and with bf16
    networks, on the same draws: the per-image differences and each pass's seconds."""
    figures: dict[str, Any] = {}
    nll = {}
    for precision in ("fp32", "bf16"):
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        _, nll[precision] = importance_bounds(model, x, k=k, seed=seed, precision=precision)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        figures[f"is_seconds_{precision}"] = time.perf_counter() - start
        figures[f"nll_{precision}"] = nll[precision].mean().item()
        figures[f"neg_elbo_{precision}"] = elbo_terms(model, x, seed=seed, precision=precision)["loss"]
    difference = (nll["bf16"] - nll["fp32"]).cpu()
    figures.update(
        nll_bf16_minus_fp32=difference.mean().item(),
        largest_image_difference=difference.abs().max().item(),
        neg_elbo_bf16_minus_fp32=figures["neg_elbo_bf16"] - figures["neg_elbo_fp32"],
        bf16_speedup=figures["is_seconds_fp32"] / figures["is_seconds_bf16"],
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=1000, help="test images")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per image")
    parser.add_argument("--runs", nargs="*", help="run folders to measure instead of training the models")
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    device = resolve_device(args.device)
    start_load = load_average()
    test = load_dataset("mnist", args.data_dir).test.images[: args.n]
    x = binarize(unit_float(test.to(device)), "test")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        runs = {Path(run).name: Path(run) for run in args.runs or []}
        for name, settings in ({} if args.runs else TRAINING).items():
            data = {"binarize": "dynamic", "data_dir": str(args.data_dir)}
            config = TrainConfig(**settings, **data, device=args.device)
            runs[name] = Path(folder) / name
            Trainer(config, runs[name], progress=False, log=quiet).run()
        for name, run in runs.items():
            results[name] = compare(load(run, device=device), x, args.k)
            print(name, results[name], flush=True)
    suffix = "" if device.type == "cpu" else f"-{device.type}"
    write_results(
        f"eval_precision{suffix}",
        {"measured": utc_now(), "device": str(device), "n": args.n, "k": args.k, "environment": machine(),
         "models": results, **run_stamp(start_load)},
    )  # fmt: skip


if __name__ == "__main__":
    main()
