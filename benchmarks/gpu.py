"""Every GPU figure of issue 33 in one call: vaekit's epochs beside bare loops of the same networks, the
hvae's throughput, bf16 against fp32, the hvae's importance-sampled likelihood, and (``--payoff``) the
hvae trained for minutes and measured by the papers' protocol.

Parts, each under a time limit of its own, each written to the results as soon as it is done (a part
that fails or runs out of time is recorded as such, and the others go on):

- ``mlp``, ``conv``: one epoch of 10,800 MNIST images at batch 128 (the default run's split) by vaekit's
  Trainer eager and compiled (--compile: CUDA graphs), by a bare eager loop of the same network (data
  on the GPU, fused Adam, nothing else) and by a bare CUDA-graph loop (the whole step captured once and
  replayed: the floor), interleaved rounds, medians. Goals: mlp <= 0.05 s and <= 0.5x the bare eager
  loop; conv <= 0.08 s.
- ``hvae_speed``: training images per second of the hvae at its defaults, at several batch sizes,
  vaekit eager and compiled beside the two bare loops (STEPS steps each). Goal: >= 50,000 images/s.
- ``hvae_precision``: the hvae trained the same steps in fp32 and in bf16: test -ELBOs within 0.3 nats.
- ``hvae_eval``: ``vaekit evaluate --iwae-k 1000`` of that hvae over the 10,000 test images, fp32 and
  bf16 networks. Goal: <= 30 s.
- ``eval_precision``: -log p(x) (k=1000, 1,000 test images) of the three models in bf16 against fp32
  (benchmarks/eval_precision.py). Goal: within 0.05 nats.
- ``payoff`` (only with --payoff MINUTES): the hvae trained that long on dynamically binarized MNIST,
  then -log p(x) by importance sampling with k=5000 over the 10,000 test images. Goal: <= 80.0 nats.

Needs torch with CUDA, numpy, safetensors, tqdm, matplotlib, pillow, scikit-learn and platformdirs,
``src/`` on PYTHONPATH and the MNIST files (docs/gpu.md says how to carry them to a GPU machine). Writes
<results-dir>/gpu.json (default benchmarks/results/). Run alone:
  PYTHONPATH=src python3 benchmarks/gpu.py --data-dir DIR [--results-dir DIR] [--budget 470]
  PYTHONPATH=src python3 benchmarks/gpu.py --data-dir DIR --only payoff --payoff 7
On a CPU (``--device cpu``, without the CUDA-graph loop) it checks that every part runs, quickly with
``--quick``; the figures are the GPU's to give.
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, check_data_dir
from eval_precision import compare
from harness import RESULTS_DIR, interleaved, machine, medians, minima, quiet, utc_now, write_results

from vaekit import load
from vaekit.data import binarize, load_dataset, unit_float
from vaekit.evaluation.likelihood import elbo_terms, importance_bounds
from vaekit.evaluation.runs import evaluate_run
from vaekit.training import CtrlC, TrainConfig, Trainer

EPOCH_MODELS = {"mlp": {"model": "mlp"}, "conv": {"model": "conv", "latent_dim": 16}}
HVAE = {"model": "hvae", "binarize": "dynamic"}
HVAE_BATCHES = (128, 512)
STEPS = 60  # hvae steps a contender takes per round
EVAL_K, EVAL_IMAGES, EVAL_EPOCHS = 1000, 1000, 3  # eval_precision's k, test images and training epochs
# seconds each part may take; parts run in this order while the budget lasts
LIMITS = {
    "mlp": 60, "conv": 70, "hvae_speed": 200, "hvae_precision": 90, "hvae_eval": 100, "eval_precision": 60,
}  # fmt: skip
GOALS = {
    "mlp_epoch_seconds": 0.05, "mlp_over_bare_eager": 0.5, "conv_epoch_seconds": 0.08,
    "hvae_images_per_second": 50_000, "hvae_bf16_minus_fp32_test_loss": 0.3, "hvae_iwae_1000_seconds": 30,
    "eval_bf16_minus_fp32_nats": 0.05, "payoff_test_nll": 80.0,
}  # fmt: skip


class OutOfTime(Exception):
    pass


def limited(seconds: float, part: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``part()``'s figures, or what stopped it: out of its ``seconds`` (an alarm), or an error."""

    def alarm(signum: int, frame: Any) -> None:
        raise OutOfTime(f"over its limit of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(max(1, int(seconds)))
    start = time.perf_counter()
    try:
        figures = part()
        figures["part_seconds"] = time.perf_counter() - start
        return figures
    except Exception as exc:  # the other parts still run: record what happened
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"[:500], "part_seconds": time.perf_counter() - start}
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


DEVICE = torch.device("cuda")  # main() sets it from --device


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def synchronized(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        result = fn()
        sync()
        return result

    return run


# ------------------------------------------------------------------------------------ bare loops
def bare_loss(
    model: torch.nn.Module, hierarchy: bool, kl_weight: torch.Tensor
) -> Callable[[torch.Tensor], Any]:
    """The model's training objective of a batch, as a bare loop computes it (no guard, no sums)."""
    if hierarchy:
        return lambda x: model.loss(torch.bernoulli(x), kl_weight=kl_weight, kl_balance=True).objective
    return lambda x: model.loss(x).objective


def bare_optimizer(model: torch.nn.Module, hierarchy: bool, lr: float) -> torch.optim.Optimizer:
    # capturable: the step counts stay on the GPU, so that the step can be captured in a graph
    make = torch.optim.Adamax if hierarchy else torch.optim.Adam
    return make(model.parameters(), lr=lr, foreach=True, capturable=DEVICE.type == "cuda")


def bare_eager_loop(model: torch.nn.Module, x_all: torch.Tensor, batch: int, hierarchy: bool, lr: float,
                    steps: int | None = None) -> Callable[[], None]:  # fmt: skip
    """One epoch (or ``steps`` steps) of a bare eager loop over ``x_all`` (float, on the GPU)."""
    kl_weight = torch.full((), 0.5, device=DEVICE)
    loss_of, optimizer = bare_loss(model, hierarchy, kl_weight), bare_optimizer(model, hierarchy, lr)
    n = len(x_all)

    def epoch() -> None:
        perm = torch.randperm(n, device=DEVICE)
        starts = range(0, n, batch) if steps is None else [(i * batch) % (n - batch) for i in range(steps)]
        for start in starts:
            loss = loss_of(x_all[perm[start : start + batch]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if hierarchy:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 200.0)
            optimizer.step()

    return synchronized(epoch)


def bare_graph_loop(model: torch.nn.Module, x_all: torch.Tensor, batch: int, hierarchy: bool, lr: float,
                    steps: int | None = None) -> Callable[[], None]:  # fmt: skip
    """The same step captured once as a CUDA graph and replayed on each full batch (copied into the
    graph's input): the floor of what the GPU needs per step. The epoch's short last batch is left out;
    ``epoch_fraction`` of the result says how much of the epoch the replays covered."""
    kl_weight = torch.full((), 0.5, device=DEVICE)
    loss_of, optimizer = bare_loss(model, hierarchy, kl_weight), bare_optimizer(model, hierarchy, lr)
    static_x = x_all[:batch].clone()

    def step() -> None:
        loss = loss_of(static_x)
        loss.backward()
        if hierarchy:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 200.0)
        optimizer.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up off the default stream, as torch.cuda.graphs asks
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()
    n, full = len(x_all), len(x_all) // batch

    def epoch() -> None:
        perm = torch.randperm(n, device=DEVICE)
        count = full if steps is None else steps
        for i in range(count):
            start = (i % full) * batch
            static_x.copy_(x_all[perm[start : start + batch]])
            graph.replay()

    return synchronized(epoch)


# ---------------------------------------------------------------------------------------- parts
def trainer(settings: dict[str, Any], args: argparse.Namespace, folder: Path, **extra: Any) -> Trainer:
    where = {"data_dir": str(args.data_dir), "device": str(DEVICE)}
    config = TrainConfig(**{**settings, **extra}, **where, epochs=1000)
    return Trainer(config, folder / f"run-{time.monotonic_ns()}", progress=False, log=quiet)


def vaekit_epoch(t: Trainer, steps: int | None = None) -> Callable[[], None]:
    """One epoch of vaekit's loop (``Trainer._train_epoch``), or its first ``steps`` steps."""
    ctrl_c = CtrlC()  # only its flag (unset) is read

    def epoch() -> None:
        if steps is None:
            t._train_epoch(ctrl_c)
        else:
            t.state.perm = torch.randperm(t.n_train, device=DEVICE)
            batch = t.config.batch_size
            for i in range(steps):
                start = (i % (t.n_train // batch)) * batch
                t.step(t.state.perm[start : start + batch])
            t.updates.read_skipped(t.state, t.n_batches, t.run_dir.last_checkpoint)
        t.state.step = 0

    return synchronized(epoch)


def contenders_of(settings: dict[str, Any], args: argparse.Namespace, folder: Path, batch: int,
                  steps: int | None) -> tuple[dict[str, Callable[[], None]], dict[str, Any]]:  # fmt: skip
    """vaekit eager, vaekit compiled, bare eager and bare CUDA-graph, on the same network and images."""
    made: dict[str, Any] = {}
    eager = trainer(settings, args, folder, batch_size=batch, compile=False)
    start = time.perf_counter()
    compiled = trainer(settings, args, folder, batch_size=batch, compile=True)
    made["compile_seconds"] = time.perf_counter() - start
    x_all = unit_float(eager.data.images[eager.data.train_rows])
    hierarchy, lr = settings["model"] == "hvae", eager.config.lr
    contenders = {
        "vaekit eager": vaekit_epoch(eager, steps),
        "vaekit compiled": vaekit_epoch(compiled, steps),
        "bare eager": bare_eager_loop(copy.deepcopy(eager.model), x_all, batch, hierarchy, lr, steps),
    }
    if DEVICE.type == "cuda":  # CUDA graphs: a GPU's floor
        graph = bare_graph_loop(copy.deepcopy(eager.model), x_all, batch, hierarchy, lr, steps)
        contenders["bare graph"] = graph
    made["images"] = len(x_all) if steps is None else steps * batch
    made["graph_images"] = (len(x_all) // batch) * batch if steps is None else steps * batch
    return contenders, made


def epoch_part(name: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    contenders, made = contenders_of(EPOCH_MODELS[name], args, folder, 128, None)
    times = interleaved(args.rounds, contenders, warmup=True)
    seconds = medians(times)
    floor = "bare graph" if "bare graph" in seconds else "bare eager"
    if floor == "bare graph":  # as if it had taken the epoch's short last batch too
        seconds[floor] *= made["images"] / made["graph_images"]
    return {
        "epoch_seconds": seconds,
        "epoch_seconds_min": minima(times),
        "over_bare_eager": {k: v / seconds["bare eager"] for k, v in seconds.items()},
        "over_floor": {k: v / seconds[floor] for k, v in seconds.items()},
        "floor": floor,
        "images": made["images"],
        "compile_seconds": made["compile_seconds"],
    }


def hvae_speed_part(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for batch in HVAE_BATCHES:
        contenders, made = contenders_of(HVAE, args, folder, batch, STEPS)
        seconds = medians(interleaved(args.rounds, contenders, warmup=True))
        figures[f"batch {batch}"] = {
            "images_per_second": {k: made["images"] / v for k, v in seconds.items()},
            "compile_seconds": made["compile_seconds"],
        }
        print("hvae batch", batch, figures[f"batch {batch}"], flush=True)
    return figures


def hvae_precision_part(args: argparse.Namespace, folder: Path, state: dict[str, Any]) -> dict[str, Any]:
    """The hvae trained EPOCHS epochs in fp32 and in bf16 (equal steps): their test -ELBOs."""
    figures: dict[str, Any] = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(**HVAE, epochs=args.precision_epochs, precision=precision, fit_prior=False,
                             data_dir=str(args.data_dir), device=str(DEVICE))  # fmt: skip
        out = folder / f"hvae-{precision}"
        start = time.perf_counter()
        result = Trainer(config, out, progress=False, log=quiet).run()
        figures[precision] = {"test_loss": result["test_loss"], "seconds": time.perf_counter() - start}
        state[f"hvae {precision}"] = out
    figures["bf16_minus_fp32_test_loss"] = figures["bf16"]["test_loss"] - figures["fp32"]["test_loss"]
    return figures


def hvae_eval_part(args: argparse.Namespace, state: dict[str, Any]) -> dict[str, Any]:
    """``vaekit evaluate --iwae-k 1000 --samples 0`` of the fp32 hvae over the 10,000 test images."""
    run = state.get("hvae fp32")
    if run is None:
        raise RuntimeError("no hvae was trained (hvae_precision did not finish)")
    figures: dict[str, Any] = {}
    for precision in ("fp32", "bf16"):
        sync()
        start = time.perf_counter()
        result = evaluate_run(
            run, device=str(DEVICE), iwae_k=EVAL_K, samples=0, write=False, precision=precision
        )
        sync()
        figures[precision] = {"seconds": time.perf_counter() - start, "iwae_nll": result["iwae_nll"],
                              "test_loss": result["test_loss"]}  # fmt: skip
    return figures


def eval_precision_part(args: argparse.Namespace, folder: Path, state: dict[str, Any]) -> dict[str, Any]:
    test = load_dataset("mnist", args.data_dir).test.images[:EVAL_IMAGES]
    x = binarize(unit_float(test.to(DEVICE)), "test")
    figures = {}
    for name, settings in (("mlp", {"model": "mlp"}), ("conv", {"model": "conv", "latent_dim": 16})):
        data = {"binarize": "dynamic", "data_dir": str(args.data_dir), "device": str(DEVICE)}
        config = TrainConfig(**settings, epochs=EVAL_EPOCHS, **data)
        Trainer(config, folder / f"eval-{name}", progress=False, log=quiet).run()
        figures[name] = compare(load(folder / f"eval-{name}", device=DEVICE), x, EVAL_K)
    if "hvae fp32" in state:
        figures["hvae"] = compare(load(state["hvae fp32"], device=DEVICE), x, EVAL_K)
    return figures


def payoff_part(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The hvae trained ``--payoff`` minutes (its cosine schedule over the epochs that fit, measured on
    a first epoch), then -log p(x) with k=5000 over the 10,000 test images."""
    budget = args.payoff * 60
    settings = {**HVAE, "data_dir": str(args.data_dir), "device": str(DEVICE)}
    settings["batch_size"] = args.payoff_batch
    probe = Trainer(TrainConfig(**settings, epochs=1), folder / "probe", progress=False, log=quiet)
    start = time.perf_counter()
    probe._train_epoch(CtrlC())
    sync()
    epoch_seconds = time.perf_counter() - start
    epochs = max(1, int(0.92 * budget / (epoch_seconds * 1.08)))  # validation and pictures: ~8% more
    config = TrainConfig(**settings, epochs=epochs, max_time=budget, fit_prior=False)
    out = folder / "payoff"
    start = time.perf_counter()
    result = Trainer(config, out, progress=False, log=print).run()
    train_seconds = time.perf_counter() - start
    model = load(out, device=DEVICE)
    mnist = load_dataset("mnist", args.data_dir)
    test = binarize(unit_float(mnist.test.images.to(DEVICE)), "test")
    train = binarize(unit_float(mnist.train.images[:10_000].to(DEVICE)), "train")
    sync()
    start = time.perf_counter()
    elbo, nll = importance_bounds(model, test, k=args.payoff_k, seed=0)
    sync()
    is_seconds = time.perf_counter() - start
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "epochs_planned": epochs, "epochs_done": len(history), "first_epoch_seconds": epoch_seconds,
        "train_seconds": train_seconds, "last_epoch": history[-1] if history else None,
        "test_loss": result["test_loss"], "k": args.payoff_k, "test_nll": nll.mean().item(),
        "test_neg_elbo_of_the_draws": elbo.mean().item(), "is_seconds": is_seconds,
        "train_neg_elbo_10k": elbo_terms(model, train, seed=0)["loss"],
    }  # fmt: skip


def main() -> None:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--budget", type=float, default=470, help="seconds for all parts but the payoff")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", help="comma-separated parts: " + ", ".join([*LIMITS, "payoff"]))
    parser.add_argument("--precision-epochs", type=int, default=5)
    parser.add_argument("--payoff", type=float, default=0, help="minutes of hvae training (0: no payoff)")
    parser.add_argument("--payoff-batch", type=int, default=128)
    parser.add_argument("--payoff-k", type=int, default=5000)
    parser.add_argument("--device", default="cuda", help="cuda; cpu only checks that the parts run")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a check that every part runs")
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: benchmarks/gpu.py needs a CUDA GPU (or --device cpu, to check that it runs)")
    if args.quick:
        global STEPS, HVAE_BATCHES, EVAL_K, EVAL_IMAGES, EVAL_EPOCHS
        STEPS, HVAE_BATCHES, EVAL_K, EVAL_IMAGES, EVAL_EPOCHS = 2, (16,), 4, 50, 1
        args.rounds, args.precision_epochs = 1, 1
    parts = args.only.split(",") if args.only else [*LIMITS, *(["payoff"] if args.payoff else [])]
    on_gpu = DEVICE.type == "cuda"
    results: dict[str, Any] = {
        "measured": utc_now(), "device": str(DEVICE),
        "gpu": torch.cuda.get_device_name() if on_gpu else None, "torch": torch.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if on_gpu else None,
        "environment": machine(), "goals": GOALS, "arguments": {k: str(v) for k, v in vars(args).items()},
        "parts": {},
    }  # fmt: skip
    started, state = time.perf_counter(), {}
    name = "gpu" if on_gpu else f"gpu-check-{DEVICE.type}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jobs = {
            "mlp": lambda: epoch_part("mlp", args, folder),
            "conv": lambda: epoch_part("conv", args, folder),
            "hvae_speed": lambda: hvae_speed_part(args, folder),
            "hvae_precision": lambda: hvae_precision_part(args, folder, state),
            "hvae_eval": lambda: hvae_eval_part(args, state),
            "eval_precision": lambda: eval_precision_part(args, folder, state),
            "payoff": lambda: payoff_part(args, folder),
        }
        for part in parts:
            left = args.budget - (time.perf_counter() - started)
            if part != "payoff" and left < 10:
                results["parts"][part] = {"skipped": f"the budget of {args.budget:.0f} s was spent"}
                continue
            limit = args.payoff * 60 + 300 if part == "payoff" else min(LIMITS[part], left)
            print(f"--- {part} (limit {limit:.0f} s)", flush=True)
            results["parts"][part] = limited(limit, jobs[part])
            print(part, json.dumps(results["parts"][part]), flush=True)
            write_results(name, results, args.results_dir)
    results["seconds"] = time.perf_counter() - started
    print("wrote", write_results(name, results, args.results_dir), flush=True)


if __name__ == "__main__":
    main()
