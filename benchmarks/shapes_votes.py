"""How much the FactorVAE score moves with the votes alone: one trained model, eight seeds of the votes,
at 800 and 800 votes (vaekit's counts before) and at disentanglement_lib's 10,000 and 5,000.

The score votes on random batches of 64 test images with one factor held fixed; a majority-vote
classifier built from the first votes is scored on fresh ones (``evaluation.disentanglement
.factor_vae_score``). With few votes, the classifier's choice of factor for a latent whose votes are
split, and the fresh votes themselves, move the score from one seed of the votes to another, which a
comparison of models or checkpoints would read as their difference. This scores each run's posterior
means of the test split (as ``vaekit evaluate`` takes them) eight times at each count and reports the
mean, the standard deviation (ddof 1), the range, and the per-factor figures' mean.

Writes benchmarks/results/NAME.json. Not timed; from the repository root, on shapes run folders:
    .venv/bin/python benchmarks/shapes_votes.py --name shapes_votes RUN [RUN ...]
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
from _common import factored_test_split, run_folders_arguments
from harness import machine, write_results

import vaekit
from vaekit.evaluation.disentanglement import factor_vae_score
from vaekit.evaluation.latents import latent_means

COUNTS = {"800/800": (800, 800), "10000/5000": (10_000, 5_000)}  # votes: the classifier's, the score's
SEEDS = range(8)


def spread(run: Path) -> dict:
    """{counts: {mean, std, min, max, seed0, per_factor_mean}} for the run's last weights."""
    _, dataset, images, x = factored_test_split(run)
    means = latent_means(vaekit.load(run), x, None).double().numpy()
    factors = images.factors.numpy()
    rows = {}
    for label, (n_votes, n_eval_votes) in COUNTS.items():
        results = [
            factor_vae_score(means, factors, n_votes, seed=seed, n_eval_votes=n_eval_votes) for seed in SEEDS
        ]
        scores = [r["factor_vae_score"] for r in results]
        rows[label] = {
            "mean": statistics.mean(scores),
            "std": statistics.stdev(scores),
            "min": min(scores),
            "max": max(scores),
            "seed0": scores[0],
            "per_factor_mean": dict(
                zip(
                    dataset.factor_names,
                    np.mean([r["per_factor"] for r in results], axis=0).tolist(),
                    strict=True,
                )
            ),
        }
        print(
            run.name,
            label,
            {k: round(v, 4) for k, v in rows[label].items() if isinstance(v, float)},
            flush=True,
        )
    return rows


def main() -> None:
    args = run_folders_arguments(__doc__, "shapes_votes")
    runs = {str(run): spread(run) for run in args.runs}
    write_results(args.name, {"machine": machine(), "seeds": len(SEEDS), "runs": runs}, args.results_dir)


if __name__ == "__main__":
    main()
