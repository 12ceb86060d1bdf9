"""docs/samples.md from the results of benchmarks/samples.py: every figure on the page comes from them."""

from __future__ import annotations

from typing import Any

from _common import REPO_ROOT
from harness import write_document
from samples_shapes import shapes_section

from vaekit.models.priors.groups import temperature_line

PAGE = REPO_ROOT / "docs" / "samples.md"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _row(name: str, f: dict[str, Any]) -> str:
    labels = "-"
    if "label_accuracy" in f:
        labels = f"{_percent(f['label_accuracy'])} / {_percent(f['second_label_accuracy'])}"
    return (
        f"| {name} | {f['frechet_distance']:.2f} | {f['independent_frechet_distance']:.1f} | "
        f"{_percent(f['digit_share_min'])}-{_percent(f['digit_share_max'])} | {labels} |"
    )


HEADER = [
    "| samples | Frechet distance | Frechet, second | share of each digit | read as the class asked |",
    "| --- | ---: | ---: | ---: | ---: |",
]


def write_page(results: dict[str, Any]) -> Any:
    models = results["models"]
    iwae = f"k={results['iwae_k']:,} on the first {results['iwae_images']:,} test images"
    lines = [
        "# Samples",
        "",
        "What `vaekit sample` draws from each built-in model trained on MNIST as its page trains it, side by "
        "side and measured against the 10,000 test images: the measuring classifier's Frechet distance and "
        "the second, independently trained classifier's (docs/evaluation.md says what they mean and how they "
        "were checked), the share of each digit among the samples as the measuring classifier reads them, "
        "and for samples asked for by class (`--label`), how many both classifiers read as that class. Lower "
        "distances are better; a digit's share in the test set is 8.9-11.4%.",
        "",
        f"Measured by `benchmarks/samples.py --docs` on {results['cpu']} ({results['cpu_count']} cores): "
        f"{results['epochs']} epochs for mlp, conv, cvae and vqvae (then its code prior), "
        f"{results['hvae_minutes']:g} minutes for the hvae; {results['samples']:,} samples each. Results: "
        "benchmarks/results/samples.json.",
        "",
        "## Every model's default samples",
        "",
        *HEADER,
        *(_row(name, f["default"]) for name, f in models.items()),
        "",
        "Each Gaussian-latent model's default is its fitted prior (docs/models.md); from the prior it "
        "trained with, N(0, I):",
        "",
        *HEADER,
        *(_row(name, f["trained"]) for name, f in models.items() if "trained" in f),
        "",
    ]
    for name, f in models.items():
        pictures = f.get("pictures", {})
        if "default" in pictures:
            lines += [f"### {name}", "", f"![{name}: 64 default samples]({pictures['default']})"]
            if "by_class" in pictures:
                lines += ["", f"![{name}: 8 samples of each digit, a row each]({pictures['by_class']})"]
            lines.append("")
    if "hvae" in models:
        lines += hvae_section(models["hvae"], iwae)
    if "shapes" in results:
        lines += shapes_section(results["shapes"])
    return write_document(PAGE, lines)


def hvae_section(f: dict[str, Any], iwae: str) -> list[str]:
    nll = f["iwae_nll"]
    return [
        "## The hvae: a prior over every informative group, at temperatures chosen by measurement",
        "",
        "Before issue 35 the hvae's fitted prior sat on its top group, which carries about a nat: the "
        "digit's identity lives in the groups below, so samples came unbalanced and `--label` was mostly "
        "ignored. The prior now fitted at the end of training is a Gaussian mixture per class over the noise "
        "of every informative unit of every group (models/priors/groups.py), and the temperatures `vaekit "
        "sample` uses are chosen on the validation images by the measuring classifier's Frechet distance; "
        "for a requested class, the highest that makes 95% of samples read as that class "
        f"(training/group_prior.py). This run: {temperature_line(f['temperatures'])}, by class "
        f"{temperature_line(f['label_temperatures'])}.",
        "",
        *HEADER,
        *(_row(name, row) for name, row in f["rows"].items()),
        "",
        f"The prior is post-hoc: -log p(x) with the prior the hvae trained with is unchanged "
        f"({nll['trained']:.2f} nats, importance sampling, {iwae}). As a density the fitted prior is no "
        f"match for it ({nll['fitted']:,.0f} nats with it as p(z) of the groups it covers; the top group's "
        f"mixture of before: {nll['before']:,.0f}): a mixture fitted to posterior means is far narrower "
        "than the posteriors the importance weights draw from. It is a sampler; `vaekit train-prior RUN "
        "--target aggregate` widens it by the posterior variances, as for the one-latent models "
        "([priors](priors.md)).",
        "",
    ]
