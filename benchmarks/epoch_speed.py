"""Seconds per training epoch of the 784-400-20 MLP VAE at batch 128 on CPU: tutorial vs vaekit.

Why: vaekit claims to train the classic MNIST VAE faster than the pytorch/examples tutorial on the
same hardware. Three pipelines train over the same 12,000 MNIST training images:

  (a) tutorial        per-sample PIL Dataset + DataLoader + the tutorial's model, summed loss, Adam
  (b) tutorial loader the same per-sample DataLoader feeding vaekit's model and (fused) optimizer,
                      which isolates what the data pipeline costs
  (c) vaekit          Trainer._train_epoch: shuffled index into one float tensor, vaekit's model

Each is warmed up with one full epoch, then timed for --rounds rounds; the three run interleaved in
every round (the order rotates from round to round), so that slow spells of a shared machine hit all
three alike. Reported: median seconds per epoch, images/s, ratios a/c and b/c, and achieved FLOP/s
(matmul FLOPs counted by torch.utils.flop_counter, over the exact batch sizes of an epoch) against
this machine's float32 matmul peak. Results: benchmarks/results/epoch_speed.json.

Run from the repository root:  .venv/bin/python benchmarks/epoch_speed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import (
    BATCH_SIZE,
    DEFAULT_DATA_DIR,
    TutorialMNIST,
    TutorialVAE,
    open_tutorial_mnist,
    tutorial_loader,
    tutorial_loss,
    tutorial_optimizer,
    tutorial_train_epoch,
    vaekit_model_on_loader,
)
from harness import (
    environment,
    format_seconds,
    format_table,
    interleaved,
    load_average,
    medians,
    minima,
    quiet,
    rates,
    ratios,
    round_orders,
    round_printer,
    run_stamp,
    speedups,
    warm_up,
    write_results,
)
from torch.utils.flop_counter import FlopCounterMode

from vaekit.training import Adam, CtrlC, TrainConfig, Trainer

PIPELINES = ("tutorial", "tutorial_vaekit_model", "vaekit")
LABELS = {
    "tutorial": "(a) tutorial",
    "tutorial_vaekit_model": "(b) tutorial loader + vaekit model",
    "vaekit": "(c) vaekit",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="MNIST IDX gz folder")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of one epoch per pipeline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peak-sizes", type=str, default="1024,2048,4096", help="square matmul sizes for the peak"
    )
    parser.add_argument("--peak-repeats", type=int, default=5, help="timed matmuls per size (best counts)")
    args = parser.parse_args()
    if args.rounds < 1 or args.peak_repeats < 1:
        parser.error("--rounds and --peak-repeats must be >= 1")
    return args


def epoch_batch_sizes(n: int, batch_size: int) -> list[int]:
    """The batch sizes of one epoch over n images, the last one short."""
    return [min(batch_size, n - start) for start in range(0, n, batch_size)]


def step_flops(step: Callable[[torch.Tensor], None], batch: torch.Tensor) -> int:
    """FLOPs of one training step (forward, backward, optimizer step) as FlopCounterMode counts them.

    FlopCounterMode counts matrix products (and convolutions) only; the elementwise work of the loss,
    the activations and Adam is not counted, which is the usual convention for "model FLOPs".
    """
    with FlopCounterMode(display=False) as counter:
        step(batch)
    return int(counter.get_total_flops())


def tutorial_step_fn(model: TutorialVAE) -> Callable[[torch.Tensor], None]:
    """One training step of the tutorial (a copy of its model, its optimizer), for counting FLOPs."""
    model = copy.deepcopy(model)  # counting must not move the model that is being timed
    optimizer = tutorial_optimizer(model)

    def step(x: torch.Tensor) -> None:
        optimizer.zero_grad()
        recon, mu, logvar = model(x)
        tutorial_loss(recon, x, mu, logvar).backward()
        optimizer.step()

    return step


def vaekit_step_fn(trainer: Trainer) -> Callable[[torch.Tensor], None]:
    """One training step of vaekit (a copy of the trainer's model, fused Adam), for counting FLOPs."""
    model = copy.deepcopy(trainer.model)
    optimizer = Adam(model.parameters(), lr=trainer.config.lr)

    def step(x: torch.Tensor) -> None:
        objective, _ = model.loss(x)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()

    return step


def flops_per_epoch(
    step: Callable[[torch.Tensor], None], x: torch.Tensor, sizes: list[int]
) -> dict[str, Any]:
    """Counted FLOPs for every distinct batch size of an epoch, and their total over the epoch."""
    per_size = {size: step_flops(step, x[:size]) for size in sorted(set(sizes))}
    total = sum(count * per_size[size] for size, count in Counter(sizes).items())
    return {"per_step": {str(k): v for k, v in per_size.items()}, "per_epoch": total}


def matmul_seconds(n: int, repeats: int) -> list[float]:
    """Seconds of ``repeats`` float32 products of two n x n matrices into a preallocated output, after
    one untimed product."""
    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    return interleaved(repeats, {"mm": lambda: torch.mm(a, b, out=out)}, warmup=True)["mm"]


def matmul_peak(sizes: list[int], repeats: int) -> dict[int, float]:
    """Best float32 square-matmul rate (2 n^3 / seconds) for each n, at the default thread count.

    The fastest of the timed products counts, not the median: a peak is what the machine can do, and
    the slower products were the disturbed ones.
    """
    return {n: 2 * n**3 / min(matmul_seconds(n, repeats)) for n in sizes}


def make_runners(
    data_dir: Path, seed: int, train_set: TutorialMNIST, tmp: Path
) -> tuple[dict[str, Callable[[], Any]], TutorialVAE, Trainer]:
    """One epoch of each pipeline as a callable, over the same images; also (a)'s model and (c)'s
    trainer, whose steps the FLOPs are counted on."""
    config = dict(dataset="mnist", data_dir=str(data_dir), epochs=1, seed=seed, val_fraction=0.0)
    trainer_b = Trainer(TrainConfig(**config), tmp / "run_b", progress=False, log=quiet)
    trainer_c = Trainer(TrainConfig(**config), tmp / "run_c", progress=False, log=quiet)
    # The same images on both sides (vaekit holds them in its own shuffled order).
    assert trainer_c.n_train == len(train_set), (trainer_c.n_train, len(train_set))
    pixel_sum = int(trainer_c.data.images[trainer_c.data.train_rows].sum(dtype=torch.int64))
    assert pixel_sum == int(train_set.data.sum(dtype=torch.int64)), "different training images"
    assert trainer_c.config.batch_size == BATCH_SIZE

    torch.manual_seed(seed)
    model_a = TutorialVAE()
    optimizer_a = tutorial_optimizer(model_a)
    loader_a = tutorial_loader(train_set, shuffle=True)
    loader_b = tutorial_loader(train_set, shuffle=True)
    ctrl_c = CtrlC()  # only its .pressed flag (False) is read; never entered

    def run_c() -> None:
        trainer_c._train_epoch(ctrl_c)
        trainer_c.state.step = 0  # the next call starts a fresh epoch

    runners: dict[str, Callable[[], Any]] = {
        "tutorial": lambda: tutorial_train_epoch(model_a, optimizer_a, loader_a),
        "tutorial_vaekit_model": lambda: vaekit_model_on_loader(trainer_b, loader_b),
        "vaekit": run_c,
    }
    return runners, model_a, trainer_c


def count_flops(model_a: TutorialVAE, trainer_c: Trainer, sizes: list[int]) -> dict[str, dict[str, Any]]:
    """Counted FLOPs per epoch of each pipeline, over the epoch's exact batch sizes."""
    x = trainer_c.data.images[trainer_c.data.train_rows].float().div_(255)
    flops = {
        "tutorial": flops_per_epoch(tutorial_step_fn(model_a), x, sizes),
        "vaekit": flops_per_epoch(vaekit_step_fn(trainer_c), x, sizes),
    }
    flops["tutorial_vaekit_model"] = flops["vaekit"]  # the same model and optimizer as (c)
    return flops


def timing_results(
    times: dict[str, list[float]], n_images: int, sizes: list[int], rounds: int
) -> dict[str, Any]:
    """The timing figures, under the keys epoch_speed.json has always had."""
    median = medians(times)
    return {
        "benchmark": "epoch_speed",
        "what": "seconds per training epoch, MLP 784-400-20 VAE, batch 128, CPU, same training images",
        "tutorial_s": median["tutorial"],
        "tutorial_vaekit_model_s": median["tutorial_vaekit_model"],
        "vaekit_s": median["vaekit"],
        "speedup_vs_tutorial": speedups(median, "tutorial")["vaekit"],
        "speedup_vs_tutorial_loader": speedups(median, "tutorial_vaekit_model")["vaekit"],
        "images_per_s": rates(n_images, median),
        "min_s": minima(times),
        "n_images": n_images,
        "batch_size": BATCH_SIZE,
        "steps_per_epoch": len(sizes),
        "rounds": rounds,
    }


def flops_results(
    flops: dict[str, dict[str, Any]], achieved: dict[str, float], peak_by_n: dict[int, float], repeats: int
) -> dict[str, Any]:
    """The FLOP counts, achieved rates and the matmul peak, under epoch_speed.json's keys."""
    peak = max(peak_by_n.values())
    return {
        "flops_per_epoch": flops["vaekit"]["per_epoch"],
        "flops_per_step": flops["vaekit"]["per_step"],
        "tutorial_flops_per_epoch": flops["tutorial"]["per_epoch"],
        "tutorial_flops_per_step": flops["tutorial"]["per_step"],
        "flops_note": "FlopCounterMode counts matmuls only (forward + backward); Adam, elementwise: 0",
        "vaekit_flops_per_s": achieved["vaekit"],
        "tutorial_flops_per_s": achieved["tutorial"],
        "tutorial_vaekit_model_flops_per_s": achieved["tutorial_vaekit_model"],
        "matmul_peak_flops_per_s": peak,
        "matmul_peak_by_n": {str(k): v for k, v in peak_by_n.items()},
        "matmul_peak_repeats": repeats,
        "fraction_of_peak": achieved["vaekit"] / peak,
        "tutorial_fraction_of_peak": achieved["tutorial"] / peak,
    }


def print_report(results: dict[str, Any], times: dict[str, list[float]], achieved: dict[str, float]) -> None:
    """The table of medians, minima, images/s, ratios to (c) and FLOP/s, with the peak and speedups."""
    median, n_images = medians(times), results["n_images"]
    peak = results["matmul_peak_flops_per_s"]
    vs_c = ratios(median, "vaekit")
    rows = [
        [LABELS[name], f"{median[name]:.3f}", f"{min(times[name]):.3f}", f"{n_images / median[name]:,.0f}",
         f"{vs_c[name]:.2f}x", f"{achieved[name] / 1e9:.1f}",
         f"{achieved[name] / peak:.1%}"]
        for name in PIPELINES
    ]  # fmt: skip
    header = ["pipeline", "median s", "min s", "images/s", "vs (c)", "GFLOP/s", "of peak"]
    print()
    print(
        f"one epoch over {n_images:,} images, batch {BATCH_SIZE}, {results['threads']} threads, "
        f"{results['rounds']} rounds"
    )
    print(format_table(header, rows))
    print(
        f"counted FLOPs per epoch {results['flops_per_epoch'] / 1e9:.2f} G (vaekit), "
        f"{results['tutorial_flops_per_epoch'] / 1e9:.2f} G (tutorial); float32 matmul peak "
        + ", ".join(f"n={n}: {r / 1e9:.1f}" for n, r in results["matmul_peak_by_n"].items())
        + " GFLOP/s"
    )
    print(
        f"speedup vs tutorial (a/c): {results['speedup_vs_tutorial']:.2f}x; "
        f"vs tutorial loader (b/c): {results['speedup_vs_tutorial_loader']:.2f}x"
    )


def main() -> None:
    args = parse_args()
    load_start = load_average()
    data_dir, train_set = open_tutorial_mnist(args.data_dir)
    n_images = len(train_set)
    sizes = epoch_batch_sizes(n_images, BATCH_SIZE)

    with tempfile.TemporaryDirectory() as tmp:
        runners, model_a, trainer_c = make_runners(data_dir, args.seed, train_set, Path(tmp))
        warmup = warm_up(runners)
        print("warm-up epoch: " + format_seconds(warmup, labels=LABELS))
        times = interleaved(args.rounds, runners, on_round=round_printer(args.rounds))
        flops = count_flops(model_a, trainer_c, sizes)
    peak_by_n = matmul_peak([int(s) for s in args.peak_sizes.split(",")], args.peak_repeats)

    median = medians(times)
    achieved = {name: flops[name]["per_epoch"] / median[name] for name in PIPELINES}
    results: dict[str, Any] = {
        **timing_results(times, n_images, sizes, args.rounds),
        "threads": torch.get_num_threads(),
        **flops_results(flops, achieved, peak_by_n, args.peak_repeats),
        "warmup_s": warmup,
        "raw_times_s": times,
        "round_orders": round_orders(PIPELINES, args.rounds),
        **environment("torch_version", "python_version", "machine"),
        "seed": args.seed,
        "data_dir": str(data_dir),
        **run_stamp(load_start),
    }
    path = write_results("epoch_speed", results)
    print_report(results, times, achieved)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
