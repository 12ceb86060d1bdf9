"""Is the sample-quality measure worth trusting? The degradation suite and the two extractors' rankings.

Why: a Frechet distance that cannot rank blurred samples below sharp ones cannot steer a model's design.
This measures, on MNIST's 10,000 test images (a random half as the reference, the other half degraded):

  the suite     every degradation of ``vaekit.evaluation.degradations.DEGRADATIONS`` (blur, pixel noise,
                binarization, elastic distortion, dropped classes, one class repeated) at rising
                strengths: the Frechet distance by the measuring classifier and by the second,
                independently trained one, whether each rises at every step, and precision, recall,
                density and coverage beside them;
  the rankings  with run folders given (--runs), each run's default samples (what `vaekit sample` draws:
                the fitted prior where there is one) and its trained prior's, 10,000 each: both
                Frechet distances, precision and recall, and whether the two extractors order the
                runs the same way (pairs in the same order, of all pairs).

Results: benchmarks/results/quality_check.json, and the tables it prints (docs/evaluation.md).

Run from the repository root:
  .venv/bin/python benchmarks/quality_check.py [--data-dir ../shared/data/mnist] [--runs RUN ...]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, check_data_dir, measuring_classifier
from harness import environment, format_table, load_average, run_stamp, write_results

from vaekit import load
from vaekit.data import load_dataset
from vaekit.evaluation.classifier import SECOND_RECIPE, SECOND_SEED, classify, load_classifier
from vaekit.evaluation.degradations import degradation_suite
from vaekit.evaluation.quality import (
    NEIGHBOURS,
    draw_samples,
    frechet_distance,
    gaussian_statistics,
    manifold_figures,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="MNIST IDX gz folder")
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="run folders to rank")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", type=int, default=3, help="random halves each figure is averaged over")
    return parser.parse_args()


def rank_runs(
    runs: list[Path], extractors: dict[str, Any], reference: torch.Tensor, n: int, seed: int
) -> dict:
    """Each run's samples from each of its priors, measured by both extractors."""
    real = {name: classify(model, reference)["features"] for name, model in extractors.items()}
    statistics = {name: gaussian_statistics(f) for name, f in real.items()}
    first = next(iter(extractors))
    rows: dict[str, Any] = {}
    for run in runs:
        model = load(run).eval()
        sources = [("default", None)]
        if model.fits_prior and model.fitted_prior is not None:
            sources.append(("trained", "trained"))
        for source, prior in sources:
            with torch.no_grad():
                samples, _ = draw_samples(model, n, seed, prior=prior, temperature=model.default_temperature)
            entry: dict[str, Any] = {"draws_from": model.sample_source(prior)}
            for name, extractor in extractors.items():
                features = classify(extractor, samples)["features"]
                entry[name] = frechet_distance(*gaussian_statistics(features), *statistics[name])
                if name == first:
                    entry.update(manifold_figures(real[name], features, NEIGHBOURS))
            rows[f"{run.name} ({source})"] = entry
            print(run.name, source, {k: round(v, 3) if isinstance(v, float) else v for k, v in entry.items()})
    names = list(extractors)
    pairs = list(itertools.combinations(rows, 2))
    apart = [  # the pairs the two extractors order differently, with each one's ratio of the two
        {"pair": [a, b], **{n: rows[a][n] / rows[b][n] for n in names}}
        for a, b in pairs
        if (rows[a][names[0]] - rows[b][names[0]]) * (rows[a][names[1]] - rows[b][names[1]]) <= 0
    ]
    same = len(pairs) - len(apart)
    return {"rows": rows, "pairs": len(pairs), "pairs_in_the_same_order": same, "apart": apart}


def main() -> None:
    args = parse_args()
    check_data_dir(args.data_dir)
    start = load_average()
    dataset = load_dataset("mnist", data_dir=args.data_dir)
    measuring, info = measuring_classifier(dataset)
    second, second_info = load_classifier(dataset, None, SECOND_SEED, log=print, recipe=SECOND_RECIPE)
    extractors = {"measuring": measuring, "second": second}
    test = dataset.test.as_float("cpu")
    with torch.no_grad():
        suite = degradation_suite(extractors, test, dataset.test.labels, seed=args.seed, splits=args.splits)
    table = []
    for degradation, entry in suite.items():
        for i, strength in enumerate(entry["strengths"]):
            m = entry["measuring"]
            table.append([
                degradation if i == 0 else "", strength,
                f"{m['frechet_distance'][i]:.3f} ({m['spread'][i]:.3f})",
                f"{entry['second']['frechet_distance'][i]:.3f} ({entry['second']['spread'][i]:.3f})",
                f"{m['precision'][i]:.3f}",
                f"{m['recall'][i]:.3f}", f"{m['density'][i]:.3f}", f"{m['coverage'][i]:.3f}",
            ])  # fmt: skip
    header = [
        "degradation",
        "strength",
        "FD measuring",
        "FD second",
        "precision",
        "recall",
        "density",
        "coverage",
    ]
    print(format_table(header, table))
    monotone = {d: {n: e[n]["monotone"] for n in extractors} for d, e in suite.items()}
    print("monotone:", monotone)
    results: dict[str, Any] = {
        **environment(),
        **run_stamp(start),
        "classifiers": {"measuring": info["test_accuracy"], "second": second_info["test_accuracy"]},
        "suite": suite,
        "monotone": monotone,
    }
    if args.runs:
        results["rankings"] = rank_runs(args.runs, extractors, test, args.samples, args.seed)
        r = results["rankings"]
        print(f"pairs of runs the two extractors order alike: {r['pairs_in_the_same_order']} of {r['pairs']}")
        for pair in r["apart"]:
            print("  ordered differently:", pair)
    print(write_results("quality_check", results))


if __name__ == "__main__":
    main()
