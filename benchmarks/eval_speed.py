"""Throughput of the importance-sampled log-likelihood estimate: vaekit.evaluation.likelihood.iwae_nll vs a
naive loop.

Why: an IWAE estimate with k=5000 over the 10,000 MNIST test images decodes 50 million latents; it has
to be batched to finish in minutes on a CPU. Both sides estimate -log p(x) for the same images with the
same trained model (the classic MLP VAE, trained here for --epochs epochs on ../shared/data/mnist):

  naive   for each image: encode it, draw its k latents at once, decode them, log-sum-exp its weights
          (one image per forward pass, as a first implementation would do it)
  vaekit  iwae_nll: draws in chunks of 1,024 decodes (several images per pass when k is small),
          combined by a running log-sum-exp

Reported: images x importance samples per second for each, the ratio, the two estimates (which must
agree within Monte Carlo noise), and, with --full, the wall time of k=5000 over all 10,000 test images.
Results: benchmarks/results/eval_speed.json.

Run from the repository root:  .venv/bin/python benchmarks/eval_speed.py [--k 5000] [--images 100] [--full]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, check_data_dir
from harness import environment, interleaved, quiet, rates, speedups, timed, utc_now, write_results

from vaekit import load
from vaekit.data import load_dataset
from vaekit.evaluation.likelihood import iwae_nll
from vaekit.models import GaussianVAE
from vaekit.models.maths import iwae_bound
from vaekit.training import TrainConfig, Trainer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="MNIST IDX gz folder")
    parser.add_argument("--k", type=int, default=5000, help="importance samples per image")
    parser.add_argument("--images", type=int, default=100, help="test images for the side-by-side timing")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--full", action="store_true", help="also time k over all test images")
    return parser.parse_args()


@torch.no_grad()
def naive_nll(model: GaussianVAE, images: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """-log p(x) per image, one image per forward pass: its k latents drawn and decoded at once."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for x in images:
        log_w, _ = model.log_weights(x[None], None, k, generator)
        out.append(-iwae_bound(log_w.double())[0])
    return torch.stack(out)


def side_by_side(model: GaussianVAE, images: torch.Tensor, k: int) -> dict[str, Any]:
    """Both estimates over the same images, one after the other (one round: each takes seconds to
    minutes, long enough that a second round would add little but time)."""
    estimates: dict[str, float] = {}

    def recorded(name: str, estimator: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            estimates[name] = estimator().mean().item()

        return run

    times = interleaved(
        1,
        {
            "naive": recorded("naive", lambda: naive_nll(model, images, k, seed=1)),
            "vaekit": recorded("vaekit", lambda: iwae_nll(model, images, k=k, seed=1)),
        },
    )
    timings = {name: seconds for name, (seconds,) in times.items()}
    for name, seconds in timings.items():
        print(
            f"{name:7s} {seconds:7.2f} s  {len(images) * k / seconds:12,.0f} image-samples/s  "
            f"-log p(x) {estimates[name]:.3f}"
        )
    return {"seconds": timings, "estimates": estimates}


def full_test_set(model: GaussianVAE, test: torch.Tensor, k: int) -> dict[str, Any]:
    """The wall time of k importance samples over every test image, with the estimate."""
    nll, seconds = timed(lambda: iwae_nll(model, test, k=k, seed=0))
    print(f"k={k} over {len(test):,} test images: {seconds:.0f} s, -log p(x) {nll.mean():.2f} nats")
    return {
        "images": len(test),
        "seconds": seconds,
        "iwae_nll": nll.mean().item(),
        "bits_per_dim": nll.mean().item() / (784 * math.log(2)),
    }


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir.resolve()
    check_data_dir(data_dir)
    test = load_dataset("mnist", data_dir).test.as_float()
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(dataset="mnist", data_dir=str(data_dir), epochs=args.epochs)
        Trainer(config, Path(tmp) / "run", progress=False, log=quiet).run()
        model = load(Path(tmp) / "run")
    measured = side_by_side(model, test[: args.images], args.k)
    timings = measured["seconds"]
    results: dict[str, Any] = {
        "benchmark": "eval_speed",
        "k": args.k,
        "images": args.images,
        "seconds": timings,
        "image_samples_per_s": rates(args.images * args.k, timings),
        "speedup": speedups(timings, "vaekit")["naive"],
        "nll_estimates": measured["estimates"],
        "model": model.config,
        "epochs": args.epochs,
        **environment("threads", "torch_version", "python_version"),
    }
    print(f"vaekit is {results['speedup']:.1f}x faster")
    if args.full:
        results["full"] = full_test_set(model, test, args.k)
    results["finished"] = utc_now()
    print(f"wrote {write_results('eval_speed', results)}")


if __name__ == "__main__":
    main()
