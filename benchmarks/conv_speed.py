"""Seconds per training epoch of the convolutional VAE (z=16) at batch 128 on CPU: tutorial-style vs vaekit.

Why: the issue asks vaekit's conv VAE to train at least 2x as fast as the tutorial-style pipeline for
the same model. Five pipelines train the same ConvVAE over the same 12,000 MNIST training images:

  (a) tutorial         per-sample PIL Dataset + DataLoader (as torchvision's MNIST + ToTensor), the
                       model's loss, torch.optim.Adam with its defaults, loss.item() every step
  (b) tutorial loader  the same loader feeding vaekit's step (fused Adam, no per-step sync): what the
                       data pipeline alone costs
  (c') vaekit NCHW     Trainer._train_epoch with the model's weights put back in the default layout
  (c) vaekit fp32      Trainer._train_epoch: shuffled index into one float tensor, float32 throughout,
                       channels-last convolution weights (as vaekit trains on CPU)
  (d) vaekit bf16      the same with --precision bf16 (autocast: convolutions and matmuls in bfloat16,
                       weights, optimizer and loss terms in float32)

Each is warmed up with one epoch, then timed for --rounds rounds, interleaved (the order rotates
each round) so that slow spells of a shared machine hit all alike; medians are reported, and ratios
against (a). Whether bf16 costs quality is measured by benchmarks/models.py (the conv z=16 rows).
Results: benchmarks/results/conv_speed.json.

Run from the repository root:  .venv/bin/python benchmarks/conv_speed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import (
    BATCH_SIZE,
    DEFAULT_DATA_DIR,
    TutorialMNIST,
    open_tutorial_mnist,
    tutorial_loader,
    vaekit_model_on_loader,
)
from harness import (
    environment,
    format_seconds,
    format_table,
    interleaved,
    load_average,
    medians,
    quiet,
    rates,
    round_printer,
    run_stamp,
    speedups,
    warm_up,
    write_results,
)
from torch.utils.data import DataLoader

from vaekit.training import CtrlC, TrainConfig, Trainer

PIPELINES = ("tutorial", "tutorial_loader", "vaekit_fp32_nchw", "vaekit_fp32", "vaekit_bf16")
LABELS = {
    "tutorial": "(a) tutorial-style",
    "tutorial_loader": "(b) tutorial loader + vaekit step",
    "vaekit_fp32_nchw": "(c') vaekit fp32, NCHW weights",
    "vaekit_fp32": "(c) vaekit fp32",
    "vaekit_bf16": "(d) vaekit bf16",
}
LATENT_DIM = 16


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="MNIST IDX gz folder")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of one epoch per pipeline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def tutorial_epoch(trainer: Trainer, loader: DataLoader) -> float:
    """(a): the tutorial's train() loop around the conv VAE, with the default (foreach) Adam."""
    model, optimizer = trainer.model, trainer.optimizer
    model.train()
    train_loss = 0.0
    for data, _ in loader:
        optimizer.zero_grad()
        loss = model.loss(data).objective
        loss.backward()
        train_loss += loss.item() * len(data)
        optimizer.step()
    return train_loss / len(loader.dataset)


def make_trainers(data_dir: Path, seed: int, tmp: Path) -> dict[str, Trainer]:
    """A trainer per pipeline, all with the same config and initial weights (bf16 aside)."""

    def trainer(name: str, **settings: Any) -> Trainer:
        config = TrainConfig(
            dataset="mnist", data_dir=str(data_dir), model="conv", latent_dim=LATENT_DIM,
            epochs=1, seed=seed, val_fraction=0.0, **settings,
        )  # fmt: skip
        return Trainer(config, tmp / name, progress=False, log=quiet)

    trainers = {name: trainer(name) for name in PIPELINES[:-1]}
    # The tutorial builds its model plainly (NCHW weights); (c') isolates vaekit's channels-last.
    for name in ("tutorial", "tutorial_loader", "vaekit_fp32_nchw"):
        trainers[name].model.to(memory_format=torch.contiguous_format)
    trainers["vaekit_bf16"] = trainer("vaekit_bf16", precision="bf16")
    a = trainers["tutorial"]
    a.optimizer = torch.optim.Adam(a.model.parameters(), lr=1e-3)  # the tutorial's optimizer
    return trainers


def make_runners(trainers: dict[str, Trainer], train_set: TutorialMNIST) -> dict[str, Callable[[], Any]]:
    """One epoch of each pipeline as a callable."""
    ctrl_c = CtrlC()  # only its .pressed flag (False) is read; never entered

    def vaekit_epoch(t: Trainer) -> Callable[[], None]:
        def run() -> None:
            t._train_epoch(ctrl_c)
            t.state.step = 0  # the next call starts a fresh epoch

        return run

    loader_a = tutorial_loader(train_set, shuffle=True)
    loader_b = tutorial_loader(train_set, shuffle=True)
    return {
        "tutorial": lambda: tutorial_epoch(trainers["tutorial"], loader_a),
        "tutorial_loader": lambda: vaekit_model_on_loader(trainers["tutorial_loader"], loader_b),
        "vaekit_fp32_nchw": vaekit_epoch(trainers["vaekit_fp32_nchw"]),
        "vaekit_fp32": vaekit_epoch(trainers["vaekit_fp32"]),
        "vaekit_bf16": vaekit_epoch(trainers["vaekit_bf16"]),
    }


def print_report(results: dict[str, Any], times: dict[str, list[float]]) -> None:
    """The table of medians, minima, images/s and speedups against (a)."""
    median, n_images = results["median_s"], results["n_images"]
    rows = [
        [LABELS[n], f"{median[n]:.2f}", f"{min(times[n]):.2f}", f"{n_images / median[n]:,.0f}",
         f"{results['speedup_vs_tutorial'][n]:.2f}x"]
        for n in PIPELINES
    ]  # fmt: skip
    print()
    print(
        f"one epoch over {n_images:,} images, batch {BATCH_SIZE}, {results['threads']} threads, "
        f"{results['rounds']} rounds"
    )
    print(format_table(["pipeline", "median s", "min s", "images/s", "speedup vs (a)"], rows))


def main() -> None:
    args = parse_args()
    load_start = load_average()
    data_dir, train_set = open_tutorial_mnist(args.data_dir)
    n_images = len(train_set)

    with tempfile.TemporaryDirectory() as tmp:
        trainers = make_trainers(data_dir, args.seed, Path(tmp))
        assert trainers["vaekit_fp32"].n_train == n_images
        runners = make_runners(trainers, train_set)
        warmup = warm_up(runners)
        print("warm-up epoch: " + format_seconds(warmup, digits=2, labels=LABELS))
        times = interleaved(args.rounds, runners, on_round=round_printer(args.rounds, digits=2))

    median = medians(times)
    results: dict[str, Any] = {
        "benchmark": "conv_speed",
        "what": f"seconds per training epoch, ConvVAE (32,64 channels, z={LATENT_DIM}), batch 128, CPU",
        "median_s": median,
        "speedup_vs_tutorial": speedups(median, "tutorial"),
        "images_per_s": rates(n_images, median),
        "raw_times_s": times,
        "warmup_s": warmup,
        "n_images": n_images,
        "batch_size": BATCH_SIZE,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        **environment("torch_version", "python_version"),
        **run_stamp(load_start),
    }
    path = write_results("conv_speed", results)
    print_report(results, times)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
