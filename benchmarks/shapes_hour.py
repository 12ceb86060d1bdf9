"""Disentangling shapes in an hour of this CPU: beta-TCVAE beside the plain VAE, both given the same time.

Issue 35's goal is a MIG of at least 0.25 and a FactorVAE score of at least 80% on shapes within 60
minutes of this CPU. The runs of docs/models.md (15 minutes each, batches of 64) reached 0.135 and 48%.
This one gives the two models an hour each, side by side, one core each (``OMP_NUM_THREADS=1``: the
machine's two cores shared evenly), with larger batches than those runs (the minibatch estimate of the
total correlation needs them: Chen et al. 2018 use 2,048) and the learning rate's cosine laid over the
hour (``--lr-schedule constant``: none). Each run is ``vaekit train`` as a user would type it; then
``vaekit evaluate``'s MIG (per factor) and FactorVAE score on the test split, the steps trained, and a
traversal of each.

Writes benchmarks/results/NAME.json (shapes_hour) and with --pictures docs/own_data/NAME-*.png. Run
alone, from the repository root:
    .venv/bin/python benchmarks/shapes_hour.py [--minutes 60] [--batch-size 256] [--beta 10]
(``--dataset shapes-dsprites``: dSprites' own grid of 737,280 images, where the papers score.)
Other settings side by side (two at a time: one core each), written to results/NAME.json:
    .venv/bin/python benchmarks/shapes_hour.py --minutes 10 --name shapes_try \
        --row "beta4=--beta 4" --row "capacity=--objective capacity --capacity 20"
A row's options replace the mlp at 32x32 with z=10 where they name --model, --image-size or --latent-dim
(the papers' conv at 64x64: --row "conv64=--model conv --image-size 64 --channels 32,32,64,64
--hidden 256"; the hours before that flag existed trained the convolutions without the 256-unit layer).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import REPO_ROOT, steps_trained
from harness import RESULTS_DIR, machine, write_results

from vaekit.evaluation.pictures import traverse
from vaekit.evaluation.runs import evaluate_run
from vaekit.training.defaults import LR_SCHEDULES

# Settings a row may replace (the papers' conv at 64x64: --model conv --image-size 64 ...).
DEFAULTS = {"--image-size": "32", "--model": "mlp", "--latent-dim": "10"}


def with_defaults(extra: list[str]) -> list[str]:
    """The row's options after each default it does not set itself."""
    unset = [(option, value) for option, value in DEFAULTS.items() if option not in extra]
    return [word for pair in unset for word in pair] + extra


def rows(beta: float) -> dict[str, list[str]]:
    return {"plain": [], f"btcvae beta={beta:g}": ["--objective", "btcvae", "--beta", f"{beta:g}"]}


def parse_row(row: str) -> tuple[str, list[str]]:
    """NAME=ARGS -> (NAME, the options); the name ends at the first "=", so it cannot hold one."""
    name, _, options = row.partition("=")
    words = options.split()
    if not name or (words and not words[0].startswith("-")):
        raise SystemExit(f"--row {row!r}: expected NAME=--option value ..., with no '=' in NAME")
    return name, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--beta", type=float, default=10.0)
    parser.add_argument("--dataset", default="shapes", help="shapes, or shapes-dsprites: dSprites' own grid")
    parser.add_argument("--lr-schedule", default="cosine", choices=LR_SCHEDULES)
    parser.add_argument(
        "--row",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="a run of its own: NAME and the train options it adds (repeatable)",
    )
    parser.add_argument("--name", default="shapes_hour", help="results/NAME.json")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="default benchmarks/results")
    parser.add_argument("--pictures", action="store_true", help="traversals to docs/own_data/NAME-*.png")
    args = parser.parse_args()
    chosen = dict(parse_row(row) for row in args.row) if args.row else rows(args.beta)
    settings = {name: with_defaults(extra) for name, extra in chosen.items()}
    work = Path(tempfile.mkdtemp(prefix="vaekit-shapes-hour-"))
    folders = {name: work / name.replace(" ", "_") for name in settings}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT / "src")}
    common = ["--lr-schedule", args.lr_schedule, "--no-progress"]
    started, processes = time.monotonic(), {}
    for name, extra in settings.items():
        command = [sys.executable, "-m", "vaekit", "train", "--dataset", args.dataset, *common,
                   "--batch-size", str(args.batch_size),
                   "--max-time", f"{args.minutes:g}m", *extra, "--out", str(folders[name])]  # fmt: skip
        processes[name] = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for name, process in processes.items():
        output = process.communicate()[0].decode()
        if process.returncode != 0:
            raise SystemExit(f"{name} failed:\n{output}")
    print(f"trained in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    results = {}
    for name, run in folders.items():
        config = json.loads((run / "config.json").read_text())
        checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        figures = evaluate_run(run, samples=0)
        if args.pictures:
            slug = name.split()[0]  # "plain", "btcvae"
            traverse(run, out=REPO_ROOT / "docs" / "own_data" / f"{args.name.replace('_', '-')}-{slug}.png")
        results[name] = {
            "steps": steps_trained(config, checkpoint),
            "trained_seconds": config["trained_seconds"],
            "mig": figures["mig"],
            "mig_per_factor": figures.get("mig_per_factor"),
            "factor_vae_score": figures["factor_vae_score"],
            "factor_vae_per_factor": figures.get("factor_vae_per_factor"),
            "test_loss": figures["test_loss"],
            "active_units": figures.get("active_units"),
        }
        print(name, results[name], flush=True)
    write_results(
        args.name,
        {"machine": machine(), "minutes": args.minutes, "batch_size": args.batch_size, "threads_per_run": 1,
         "command": ["vaekit", "train", "--dataset", args.dataset, *common, "--batch-size",
                     str(args.batch_size)], "rows": results,
         "row_options": {name: " ".join(extra) for name, extra in settings.items()}},
        args.results_dir,
    )  # fmt: skip


if __name__ == "__main__":
    main()
