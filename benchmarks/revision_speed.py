"""A training step of this tree against the same step of an earlier revision, alternated, on this machine.

Two versions of vaekit cannot share a process, so each round starts one child process per version (the
revision checked out with ``git worktree`` into a temporary folder, put first on ``PYTHONPATH``), in an
order that rotates from round to round; each child builds the models (the default mlp 784-400-20, conv
z=16, the hvae at its defaults on dynamically binarized images; batch 128 on MNIST), warms each up and
times STEPS steps of each. The figures are the medians over rounds of each version's seconds per step,
and this tree's over the revision's: whether a change made a step slower. Writes
benchmarks/results/revision_speed.json. Run alone, from the repository root:
  .venv/bin/python benchmarks/revision_speed.py --base REV [--rounds 5]
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
from typing import Any

from _common import DEFAULT_DATA_DIR, REPO_ROOT, check_data_dir
from harness import load_average, machine, median, round_order, run_stamp, utc_now, write_results

MODELS: dict[str, dict[str, Any]] = {
    "mlp": {"model": "mlp"},
    "conv": {"model": "conv", "latent_dim": 16},
    "hvae": {"model": "hvae", "binarize": "dynamic"},
}
STEPS = {"mlp": 200, "conv": 40, "hvae": 20}
WARM_UP = 5


def child(data_dir: str, models: list[str]) -> None:
    """In a child process: the seconds per step of each model with the vaekit on sys.path; one JSON line."""
    import torch

    from vaekit.training import TrainConfig, Trainer

    seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            config = TrainConfig(**MODELS[name], data_dir=data_dir, device="cpu")
            trainer = Trainer(config, Path(folder) / name, progress=False, log=lambda line: None)
            trainer.state.perm = torch.randperm(trainer.n_train, generator=torch.Generator().manual_seed(0))
            batch, full = config.batch_size, trainer.n_train // config.batch_size

            def step(i: int, trainer: Any = trainer, batch: int = batch, full: int = full) -> None:
                trainer.step(trainer.state.perm[(i % full) * batch : (i % full + 1) * batch])

            for i in range(WARM_UP):
                step(i)
            start = time.perf_counter()
            for i in range(STEPS[name]):
                step(WARM_UP + i)
            seconds[name] = (time.perf_counter() - start) / STEPS[name]
    print(json.dumps({"vaekit": str(Path(sys.modules["vaekit"].__file__).parents[1]), "seconds": seconds}))


def run_child(src: Path, data_dir: Path, models: list[str]) -> dict[str, float]:
    environment = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--data-dir", str(data_dir), "--models", ",".join(models)],
        env=environment, capture_output=True, text=True, check=True,
    )  # fmt: skip
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(answer["vaekit"]).resolve() != src.resolve():
        raise SystemExit(f"the child imported vaekit from {answer['vaekit']}, not {src}")
    return answer["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the git revision to compare with (a commit, a tag, HEAD~3)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = args.models.split(",")
    if args.child:
        child(str(args.data_dir), models)
        return
    if args.base is None:
        parser.error("--base REV is required")
    check_data_dir(args.data_dir)
    base = subprocess.run(["git", "rev-parse", args.base], cwd=REPO_ROOT, capture_output=True, text=True)
    if base.returncode:
        raise SystemExit(f"error: {args.base} is no revision of {REPO_ROOT}")
    commit = base.stdout.strip()
    start_load = load_average()
    with tempfile.TemporaryDirectory() as folder:
        worktree = Path(folder) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(worktree), commit], cwd=REPO_ROOT,
                       check=True)  # fmt: skip
        try:
            sources = {"base": worktree / "src", "this tree": REPO_ROOT / "src"}
            times: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
            for r in range(args.rounds):
                for name in round_order(list(sources), r):
                    times[name].append(run_child(sources[name], args.data_dir, models))
                print(f"round {r + 1}/{args.rounds}:", {k: v[-1] for k, v in times.items()}, flush=True)
        finally:
            remove = ["git", "worktree", "remove", "--force", str(worktree)]
            subprocess.run(remove, cwd=REPO_ROOT, check=False)
    per_step = {
        model: {name: median([t[model] for t in rounds]) for name, rounds in times.items()}
        for model in models
    }
    result = {
        model: {"seconds_per_step": steps, "this_tree_over_base": steps["this tree"] / steps["base"]}
        for model, steps in per_step.items()
    }
    for model, figures in result.items():
        print(f"{model}: this tree {figures['this_tree_over_base']:.3f}x the base's step", flush=True)
    write_results(
        "revision_speed",
        {"measured": utc_now(), "base": commit, "rounds": args.rounds, "steps": STEPS,
         "environment": machine(), "models": result, "rounds_seconds": times, **run_stamp(start_load)},
    )  # fmt: skip


if __name__ == "__main__":
    main()
