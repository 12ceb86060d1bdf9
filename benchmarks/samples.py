"""Every built-in model's default samples on MNIST, side by side, measured (docs/samples.md).

Each model is trained as its page says (mlp, conv, cvae and vqvae for ``--epochs``, the vqvae then its
code prior; the hvae for ``--hvae-minutes`` with --binarize dynamic), and its default samples (what
``vaekit sample`` draws) are measured against the test set: the Frechet distance by the measuring
classifier and by the second one (issue 35, item 0), the share of each digit as the measuring classifier
reads them, and for samples asked for by class, how many read as that class by both classifiers.

The hvae is measured also as it sampled before issue 35 (the fitted mixture over its top group only, the
groups below from their priors, temperature 1), from its trained prior, and from the new prior over its
groups' noise at several temperatures and at those chosen on the validation images; and its -log p(x) by
importance sampling with each prior (``--iwae-k`` samples on the first ``--iwae-images`` test images).
Then the shapes: the plain mlp and the best disentangling run of docs/models.md (beta-TCVAE, beta 10)
for ``--shapes-minutes`` each, their MIG and FactorVAE score per factor and a traversal per factor.
Grids of 64 samples go to docs/samples/, the page to docs/samples.md (with ``--docs``).

Results: benchmarks/results/samples.json. Alone, from the repository root (about 55 minutes; --reuse
and --models to remeasure runs kept in --keep-runs, --shapes-minutes 0 to leave the shapes out):
    .venv/bin/python benchmarks/samples.py --docs [--keep-runs DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, REPO_ROOT, check_data_dir
from harness import environment, format_table, load_average, run_stamp, write_results
from samples_page import write_page
from samples_shapes import shapes_part

from vaekit import load
from vaekit.evaluation.classifier import SECOND_RECIPE, SECOND_SEED, classify, load_classifier
from vaekit.evaluation.likelihood import iwae_nll
from vaekit.evaluation.quality import draw_samples, feature_distance
from vaekit.evaluation.runs import load_run_dataset
from vaekit.models.priors.mixture import MixturePrior
from vaekit.training import TrainConfig, Trainer
from vaekit.training.code_prior import train_prior
from vaekit.training.priors import posterior_moments, training_split
from vaekit.utils import plots
from vaekit.utils.files import read_run_config

MODELS = {  # the settings of each model's run, as its documentation trains it
    "mlp": {"model": "mlp"},
    "conv": {"model": "conv"},
    "cvae": {"model": "cvae"},
    "vqvae": {"model": "vqvae"},
    "hvae": {"model": "hvae", "binarize": "dynamic", "epochs": 60},
    # InfoVAE's MMD (issue 35: its samples from N(0, I) against the plain mlp's), at its default weight
    # and ten times it
    "mlp, mmd": {"model": "mlp", "objective": "mmd"},
    "mlp, mmd x10": {"model": "mlp", "objective": "mmd", "mmd_weight": 1000.0},
}
PICTURES = REPO_ROOT / "docs" / "samples"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="MNIST IDX gz folder")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of mlp, conv, cvae and vqvae")
    parser.add_argument("--hvae-minutes", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument("--iwae-images", type=int, default=1000)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--keep-runs", type=Path, help="train the runs here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="measure runs already in --keep-runs")
    parser.add_argument("--docs", action="store_true", help="write docs/samples.md and docs/samples/")
    parser.add_argument("--shapes-minutes", type=float, default=15.0, help="each shapes run's (0: none)")
    parser.add_argument("--shapes-size", type=int, default=32)
    return parser.parse_args()


def train(name: str, out: Path, args: argparse.Namespace) -> None:
    settings = {"dataset": "mnist", "data_dir": str(args.data_dir), "epochs": args.epochs, "seed": 0}
    settings.update(MODELS[name])
    if name == "hvae":
        settings["max_time"] = args.hvae_minutes * 60
    Trainer(
        TrainConfig.of(**settings), out, progress=False, log=lambda line: print(f"  {line}", flush=True)
    ).run()
    if name == "vqvae":
        train_prior(out, progress=False, log=lambda line: None)


class Measure:
    """The test set's features by both classifiers, and the figures of a set of samples against them."""

    def __init__(self, run: Path) -> None:
        dataset = load_run_dataset(read_run_config(run))
        self.classifiers = [
            load_classifier(dataset)[0],
            load_classifier(dataset, None, SECOND_SEED, recipe=SECOND_RECIPE)[0],
        ]
        test = dataset.test.as_float("cpu")
        with torch.no_grad():
            self.real = [classify(c, test)["features"] for c in self.classifiers]

    @torch.no_grad()
    def __call__(
        self, model: Any, n: int, prior: str | None = None, temperature: float | list[float] | None = None
    ) -> dict[str, Any]:
        """The figures of ``n`` samples from ``prior`` at ``temperature`` (None: the model's own, which
        for a requested class may differ)."""
        images, _ = draw_samples(model, n, 0, prior=prior, temperature=temperature)
        first, second = (classify(c, images) for c in self.classifiers)
        share = torch.bincount(first["predictions"], minlength=10).double() / n
        figures = {
            "frechet_distance": feature_distance(first["features"], self.real[0]),
            "independent_frechet_distance": feature_distance(second["features"], self.real[1]),
            "digit_share_min": share.min().item(),
            "digit_share_max": share.max().item(),
        }
        if model.samples_by_class(prior):
            images, labels = draw_samples(model, n, 1, prior=prior, by_class=True, temperature=temperature)
            for key, classifier in zip(
                ("label_accuracy", "second_label_accuracy"), self.classifiers, strict=True
            ):
                figures[key] = (classify(classifier, images)["predictions"] == labels).double().mean().item()
        return figures


def top_group_prior(model: Any, run: Path) -> Any:
    """The model as it sampled before issue 35: a mixture fitted to its top group's posterior means (per
    class, 8 components), the groups below from their priors."""
    config = read_run_config(run)
    x, labels, num_classes = training_split(run, config, torch.device("cpu"))
    before = copy.deepcopy(model)
    means, _ = posterior_moments(before, x, labels)
    prior, _ = MixturePrior.fit(means, labels, 8, num_classes, 0)
    before.set_prior(prior)
    return before


def hvae_rows(model: Any, run: Path, measure: Measure, args: argparse.Namespace) -> dict[str, Any]:
    """The hvae's samples every way, and its -log p(x) with each prior."""
    groups = len(model.latent_space.groups)
    before = top_group_prior(model, run)
    rows = {
        "before issue 35: mixture over the top group, t=1": measure(before, args.samples, temperature=1.0),
        "trained prior, t=1": measure(model, args.samples, prior="trained", temperature=1.0),
    }
    for t in (1.0, 0.9, 0.8, 0.7):
        rows[f"groups' noise prior, t={t:g}"] = measure(model, args.samples, temperature=[t] * groups)
    rows["groups' noise prior, chosen (default)"] = measure(model, args.samples)
    dataset = load_run_dataset(read_run_config(run))
    x = dataset.test.as_float("cpu")[: args.iwae_images]
    x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))  # as the run's evaluation binarizes
    nll = {
        name: iwae_nll(m, x, k=args.iwae_k, prior=p).mean().item()
        for name, m, p in (
            ("trained", model, "trained"),
            ("fitted", model, "fitted"),
            ("before", before, "fitted"),
        )
    }
    chosen = {
        "temperatures": model.sample_temperature(),
        "label_temperatures": model.sample_temperature(by_class=True),
    }
    return {"rows": rows, "iwae_nll": nll, **chosen}


def save_pictures(name: str, model: Any) -> dict[str, str]:
    """docs/samples/<name>.png: 64 default samples; a model that samples by class also <name>_by_class.png,
    a row of 8 for each digit."""
    PICTURES.mkdir(parents=True, exist_ok=True)
    pictures = {}
    with torch.no_grad():
        images, _ = draw_samples(model, 64, 0)
        plots.save_grid(images, PICTURES / f"{name}.png", ncol=8)
        pictures["default"] = f"samples/{name}.png"
        if model.samples_by_class():
            rows = [model.sample(8, label=d, generator=torch.Generator().manual_seed(d)) for d in range(10)]
            plots.save_grid(torch.cat(rows), PICTURES / f"{name}_by_class.png", ncol=8)
            pictures["by_class"] = f"samples/{name}_by_class.png"
    return pictures


def summary_row(name: str, figures: dict[str, Any]) -> list[str]:
    label = figures.get("label_accuracy")
    shares = f"{figures['digit_share_min']:.1%}-{figures['digit_share_max']:.1%}"
    distances = [f"{figures['frechet_distance']:.2f}", f"{figures['independent_frechet_distance']:.1f}"]
    return [name, *distances, shares, "-" if label is None else f"{label:.1%}"]


def main() -> None:
    args = parse_args()
    check_data_dir(args.data_dir)
    start = load_average()
    results: dict[str, Any] = {
        **environment(),
        "epochs": args.epochs,
        "hvae_minutes": args.hvae_minutes,
        "samples": args.samples,
        "iwae_k": args.iwae_k,
        "iwae_images": args.iwae_images,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.keep_runs or Path(tmp)
        for name in args.models:
            slug = name.replace(", ", "-").replace(" ", "")
            run = runs / slug
            if not (args.reuse and (run / "model.safetensors").is_file()):
                print(f"training {name} into {run}", flush=True)
                train(name, run, args)
            model = load(run).eval()
            measure = Measure(run)
            figures = {"default": measure(model, args.samples)}
            if model.fits_prior:  # the samples of the prior it trained with, beside the fitted one's
                figures["trained"] = measure(model, args.samples, prior="trained")
            if name == "hvae":
                figures.update(hvae_rows(model, run, measure, args))
            if args.docs:
                figures["pictures"] = save_pictures(slug, model)
            results["models"][name] = figures
            print(name, figures["default"], flush=True)
        if args.shapes_minutes > 0:
            results["shapes"] = shapes_part(runs, args.shapes_minutes, args.shapes_size, args.reuse)
    rows = [summary_row(name, f["default"]) for name, f in results["models"].items()]
    print(format_table(["model", "Frechet", "Frechet, second", "digit shares", "label accuracy"], rows))
    results.update(run_stamp(start))
    print(write_results("samples", results))
    if args.docs:
        print(write_page(results))


if __name__ == "__main__":
    main()
