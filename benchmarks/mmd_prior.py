"""WAE-MMD and WAE-GAN beside the plain VAE: the Frechet distance of samples from N(0, I), as ratios.

Issue 35's goal: an MMD model whose samples from N(0, I) have at most half the plain model's Frechet
distance. For one setting (model, its size, latent size, batch size, epochs, learning-rate schedule,
seed) this trains the plain model (the mlp by default, ``--hidden`` to size it; ``--model conv``),
WAE-MMD (``--objective mmd --beta 0``, weight W; ``--beta 1``: InfoVAE) with each number of prior draws
per image K, and WAE-GAN (``--objective wae-gan``) with each adversary weight lambda of
``--gan-weights``, on the 12,000-image MNIST subset, dynamically binarized, and gives each: the test
-ELBO, the Frechet distance of 10,000 samples from N(0, I) and from the fitted prior (vaekit's cached
measuring classifier, as ``evaluate``), that distance as a ratio of the plain model's, and the seconds
(training and scoring).

Writes benchmarks/results/NAME.json (mmd_prior). Two settings at once, one core each
(``OMP_NUM_THREADS=1`` for each: two processes of two threads on two cores run about 3x slower), give
the seconds of each a shared machine; the distances do not depend on it. From the repository root:
    .venv/bin/python benchmarks/mmd_prior.py --latent-dim 8 --prior-draws 1,8 --epochs 25
docs/measured.md's conv rows: ``--model conv --prior-draws 8 --mmd-weight 70``; its cosine rows:
``--epochs 100 --prior-draws 8 --lr-schedule cosine``; its WAE-GAN rows: ``--epochs 100 --prior-draws 8
--gan-weights 3 --seed S`` for S = 0, 1, 2 (and with ``--adversary 256,256,256``; and with ``--hidden
1024,1024``, the rows that reach 0.5x). ``--keep F`` keeps the runs in F for ``prior_gaps.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DEFAULT_DATA_DIR, check_data_dir, frechet_by_prior, measuring_classifier, train_quietly
from harness import machine, write_results

from vaekit import load
from vaekit.cli.arguments import positive_float, sizes
from vaekit.data import load_dataset
from vaekit.training import TrainConfig
from vaekit.training.defaults import LR_SCHEDULES
from vaekit.utils.errors import VaekitError


def floats(text: str) -> list[float]:
    """A comma-separated list of positive numbers ("3" or "1,3,10"), each as the CLI reads one."""
    return [positive_float(part.strip()) for part in text.split(",")]


def train_and_score(settings: dict[str, Any], run: Path, dataset, classifier) -> dict[str, Any]:
    """Train one model with ``settings`` into ``run``; its test -ELBO and Frechet distances."""
    started = time.perf_counter()
    train_quietly(run, **settings)
    row: dict[str, Any] = {"test_loss": json.loads((run / "eval.json").read_text())["test_loss"]}
    row.update(frechet_by_prior(load(run), classifier, dataset.test, 10_000))
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", help="a one-latent Gaussian model: mlp, conv")
    parser.add_argument("--lr-schedule", default="constant", choices=LR_SCHEDULES)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--hidden", type=sizes("1024,1024"), help="the mlp's hidden layers [400]")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mmd-weight", type=float, default=100.0, help="W")
    parser.add_argument("--beta", type=float, default=0.0, help="the KL's weight: 0 WAE-MMD, 1 InfoVAE")
    parser.add_argument("--prior-draws", type=sizes("1,8"), default=[1, 8], help="K values, e.g. 1,8")
    parser.add_argument(
        "--gan-weights",
        type=floats,
        default=[],
        help="WAE-GAN rows beside, lambda values, e.g. 3 (none by default)",
    )
    parser.add_argument(
        "--adversary",
        type=sizes("512,512,512,512"),
        help="WAE-GAN's adversary's hidden layers [the objective's default]",
    )
    parser.add_argument(
        "--keep", type=Path, help="a new folder to keep the runs in, KEEP/<row> (prior_gaps.py reads them)"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--name", default="mmd_prior", help="results/NAME.json")
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {args.keep} already exists; name a new folder")

    dataset = load_dataset("mnist", str(args.data_dir))
    classifier, _ = measuring_classifier(dataset)
    shared = {
        "dataset": "mnist",
        "data_dir": str(args.data_dir),
        "model": args.model,
        "lr_schedule": args.lr_schedule,
        "binarize": "dynamic",
        "epochs": args.epochs,
        "latent_dim": args.latent_dim,
        "hidden": args.hidden,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    adversary = {"adversary": args.adversary} if args.adversary else {}  # else the objective's default
    models = (
        {"plain": {}}
        | {
            f"mmd K={k}": {
                "objective": "mmd",
                "beta": args.beta,
                "mmd_weight": args.mmd_weight,
                "prior_draws": k,
            }
            for k in args.prior_draws
        }
        | {
            f"wae-gan lambda={weight:g}": {"objective": "wae-gan", "beta": args.beta, "gan_weight": weight}
            | adversary
            for weight in args.gan_weights
        }
    )
    for settings in models.values():  # a model that cannot take the objective: one line, before any training
        try:
            TrainConfig.of(**(shared | settings)).validate()
        except VaekitError as exc:
            parser.error(str(exc))
    rows: dict[str, dict[str, Any]] = {}
    if args.keep:
        args.keep.mkdir(parents=True)
        runs_folder = contextlib.nullcontext(str(args.keep))
    else:
        runs_folder = tempfile.TemporaryDirectory(prefix="vaekit-mmd-prior-")
    with runs_folder as folder:
        for name, settings in models.items():
            rows[name] = train_and_score(
                shared | settings, Path(folder) / name.replace(" ", "_"), dataset, classifier
            )
            rows[name]["frechet_standard_vs_plain"] = (
                rows[name]["frechet_standard"] / rows["plain"]["frechet_standard"]
            )
            print(name, {key: round(value, 3) for key, value in rows[name].items()}, flush=True)
    recorded = (
        {key: value for key, value in shared.items() if key != "data_dir"}
        | {"mmd_weight": args.mmd_weight, "beta": args.beta}
        | adversary
    )
    path = write_results(args.name, {"machine": machine(), "settings": recorded, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
