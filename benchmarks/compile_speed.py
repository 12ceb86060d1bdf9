"""A training step eager and compiled (--compile), side by side, on this machine's device.

For each model (the default mlp 784-400-20, conv z=16, the hvae at its defaults with dynamically
binarized images; batch 128 on MNIST) two Trainers of the same run are built, one eager and one
compiled; the compiled one's start-up (the compile, tried on the first batch) is timed apart. Then each
takes STEPS steps in turn, in interleaved rounds, so that a drifting machine slows both alike; the figure
is the median seconds per step and its ratio, and how many steps of the compiled gain pay the compile
(with a fresh inductor cache, as on a new machine, unless --warm-cache).
This is what chose the CPU's default (training/compiled.py: DEFAULT_BY_DEVICE). Writes
benchmarks/results/compile_speed.json. Run alone, from the repository root:
  .venv/bin/python benchmarks/compile_speed.py [--rounds 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, check_data_dir
from harness import interleaved, load_average, machine, medians, quiet, run_stamp, utc_now, write_results

from vaekit.training import TrainConfig, Trainer

MODELS: dict[str, dict[str, Any]] = {
    "mlp": {"model": "mlp"},
    "conv": {"model": "conv", "latent_dim": 16},
    "hvae": {"model": "hvae", "binarize": "dynamic"},
}
STEPS = 20  # steps of each contender per round


def trainers(name: str, settings: dict[str, Any], args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The eager and the compiled Trainer of one model, and the compiled one's start-up cost."""
    made: dict[str, Any] = {}
    for compiled in (False, True):
        config = TrainConfig(**settings, data_dir=str(args.data_dir), device=args.device, compile=compiled)
        start = time.perf_counter()
        trainer = Trainer(config, folder / f"{name}-{compiled}", progress=False, log=quiet)
        made["compile seconds" if compiled else "eager seconds"] = time.perf_counter() - start
        trainer.state.perm = torch.randperm(trainer.n_train, generator=torch.Generator().manual_seed(0))
        made["compiled" if compiled else "eager"] = trainer
    return made


def steps_of(trainer: Trainer) -> Any:
    """STEPS full-batch steps of ``trainer``, wrapping round the epoch's permutation."""
    position = {"step": 0}
    batch = trainer.config.batch_size
    full_batches = trainer.n_train // batch

    def run() -> None:
        for _ in range(STEPS):
            i = position["step"] % full_batches
            trainer.step(trainer.state.perm[i * batch : (i + 1) * batch])
            position["step"] += 1
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of " + ", ".join(MODELS))
    parser.add_argument("--warm-cache", action="store_true", help="keep inductor's cache of earlier compiles")
    args = parser.parse_args()
    if not args.warm_cache:  # read when inductor first compiles: a first run on a new machine
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")
    check_data_dir(args.data_dir)
    start_load = load_average()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            made = trainers(name, MODELS[name], args, Path(tmp))
            contenders = {kind: steps_of(made[kind]) for kind in ("eager", "compiled")}
            times = medians(interleaved(args.rounds, contenders, warmup=True))
            per_step = {kind: seconds / STEPS for kind, seconds in times.items()}
            gain = per_step["eager"] - per_step["compiled"]
            compile_cost = made["compile seconds"] - made["eager seconds"]
            results[name] = {
                "seconds_per_step": per_step,
                "compiled_over_eager": per_step["compiled"] / per_step["eager"],
                "compile_seconds": compile_cost,
                "steps_to_pay_back": compile_cost / gain if gain > 0 else None,
            }
            print(name, results[name], flush=True)
    write_results(
        "compile_speed",
        {
            "measured": utc_now(),
            "device": args.device,
            "rounds": args.rounds,
            "steps_per_round": STEPS,
            "environment": machine(),
            "models": results,
            **run_stamp(start_load),
        },  # fmt: skip
    )


if __name__ == "__main__":
    main()
