"""docs/priors.md from the figures of benchmarks/priors.py (results/priors.json): the tables and pictures.

Apart from priors.py so that each file stays readable; it measures nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import markdown_table, write_document


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal; "-" where it was not measured."""
    return "-" if value is None else f"{value:.1%}"


def intro_lines(results: dict[str, Any]) -> list[str]:
    """The title and what is measured, on which data and machine."""
    return [
        "# Fitted priors on MNIST",
        "",
        "Produced by `.venv/bin/python benchmarks/priors.py` (figures: `benchmarks/results/priors.json`), on "
        f"`{results['data_dir_name']}` ({results['n_train']:,} training images, 10% held out for validation, "
        f"the {results['n_test']:,} official test images), seed 0, on {results['cpu']}.",
        "",
        "Every Gaussian-latent run ends by fitting a mixture of 8 full-covariance Gaussians per digit to the "
        "posterior means of its training images (ex-post density estimation, Ghosh et al. 2020). "
        "Samples are measured with vaekit's digit classifier "
        f"({results['classifier_test_accuracy']:.2%} on the test set): the Frechet distance of 10,000 "
        "samples to the test images (lower is better), the share of each digit, and the share of samples "
        "drawn with `--label d` that are recognised as d.",
        "",
    ]


def models_lines(models: dict[str, Any], iwae_k: int, iwae_images: int) -> list[str]:
    """The unconditional models: N(0, I) against the fitted prior, then means against aggregate."""
    header = [
        "model", "test -ELBO", "Frechet N(0, I)", "Frechet fitted", "ratio", "digit shares, fitted (N(0, I))",
        "`--label` accuracy", "-log p(x) N(0, I)", "-log p(x) fitted",
    ]  # fmt: skip
    rows = []
    for r in models.values():
        hist, share = r["standard"]["class_histogram"], r["fitted_digit_share"]
        shares = (
            f"{share['min']:.1%}-{share['max']:.1%} ({min(hist) / sum(hist):.1%}-{max(hist) / sum(hist):.1%})"
        )
        rows.append(
            [r["label"], f"{r['test_loss']:.2f}", f"{r['standard']['frechet_distance']:.1f}",
             f"{r['fitted']['frechet_distance']:.1f}", f"**{r['frechet_ratio']:.2f}x**", shares,
             pct(r["fitted"]["label_accuracy"]), f"{r['iwae_nll']['standard']:.2f}",
             f"{r['iwae_nll']['fitted']:.2f}"]
        )  # fmt: skip
    lines = ["## Unconditional models, 10 epochs", ""] + markdown_table(header, rows, align="lrrrrlrrr")
    lines += [
        "",
        "With `vaekit train-prior RUN --target aggregate` the mixture is fitted to the aggregate "
        "posterior instead: each component widened by the posterior variances it covers. A closer "
        "density, so a better -log p(x); blurrier, less faithful samples:",
        "",
    ]
    header = [
        "model", "Frechet, means (default)", "Frechet, aggregate", "`--label`, means", "`--label`, aggregate",
        "-log p(x) N(0, I)", "means", "aggregate",
    ]  # fmt: skip
    rows = [
        [r["label"], f"{r['fitted']['frechet_distance']:.1f}", f"{r['aggregate']['frechet_distance']:.1f}",
         pct(r["fitted"]["label_accuracy"]), pct(r["aggregate"]["label_accuracy"]),
         *(f"{r['iwae_nll'][prior]:.2f}" for prior in ("standard", "fitted", "aggregate"))]
        for r in models.values()
    ]  # fmt: skip
    lines += markdown_table(header, rows)
    lines += [
        "",
        f"-log p(x): importance-sampled with k={iwae_k} over the first {iwae_images:,} test images, with "
        "N(0, I) or the fitted mixture as p(z) in the weights (the same encoder and decoder): the fitted "
        "prior is a different generative model, and this is its likelihood. The test -ELBO is the "
        "trained prior's, N(0, I), as everywhere in vaekit.",
        "",
    ]
    lines += [
        f"![{r['label']}: N(0, I), fitted, by label](priors/{slug}_standard.png) "
        f"![](priors/{slug}_fitted.png) ![](priors/{slug}_by_label.png)"
        for slug, r in models.items()
    ]
    return lines + [
        "",
        "(Left: z ~ N(0, I); middle: the fitted prior; right: `--label 0` to `9`, a row each.)",
        "",
    ]


def cvae_lines(cvae: dict[str, Any]) -> list[str]:
    """The conditional VAE now and before, per latent size and epochs."""
    header = [
        "latent", "epochs", "test -ELBO now (before)", "N(m_y, I)", "fitted prior now", "fitted before",
        "weakest digit, fitted", "T=0.9", "T=0.8", "swap test", "reconstructions",
    ]  # fmt: skip
    rows = []
    for latent in sorted({r["latent_dim"] for r in cvae.values()}):
        for epochs in (5, 10):
            now, before = cvae[f"z{latent}_now_{epochs}"], cvae[f"z{latent}_before_{epochs}"]
            t = now["temperature"]
            rows.append(
                [str(latent), str(epochs), f"{now['test_loss']:.2f} ({before['test_loss']:.2f})",
                 pct(now["standard"]["label_accuracy"]), f"**{pct(now['fitted']['label_accuracy'])}**",
                 pct(before["fitted"]["label_accuracy"]), pct(min(now["fitted"]["label_accuracy_per_class"])),
                 pct(t["0.9"]["label_accuracy"]), pct(t["0.8"]["label_accuracy"]),
                 pct(now["label_swap_accuracy"]), pct(now.get("reconstruction_accuracy"))]
            )  # fmt: skip
    return [
        "## The conditional VAE",
        "",
        "Share of samples recognised as the requested digit (10,000, 1,000 per digit). *Now*: the cvae "
        "learns class means, p(z|y) = N(m_y, I), and samples from its fitted per-class mixture. "
        "*Before*: the cvae of the previous release (N(0, I) prior) with the same fitted mixture. The "
        "swap test decodes each test image's latent with another label and counts the decodings shown "
        "as that label. Reconstructions: the share of the model's reconstructions of the test images "
        "recognised as their digit.",
        "",
        *markdown_table(header, rows, align="r" * len(header)),
        "",
        "T: sampling temperature (`vaekit sample --temperature`), the fitted components' standard "
        "deviations scaled by T.",
        "",
        "![cvae z=20 from N(m_y, I)](priors/cvae_z20_standard.png) "
        "![cvae z=20, fitted](priors/cvae_z20_fitted.png)",
        "",
        "(The default cvae, z=20, 10 epochs, a row per digit: left z ~ N(m_y, I), right the fitted prior.)",
        "",
    ]


def fit_lines(fit: dict[str, Any]) -> list[str]:
    """Fitting time, vaekit's EM against scikit-learn's."""
    header = [
        "prior",
        "vaekit EM",
        "scikit-learn GaussianMixture",
        "ratio",
        "mean log-likelihood vaekit / sklearn",
    ]
    rows = []
    for name in ("per_class", "pooled"):
        f = fit[name]
        ll = f["mean_log_likelihood"]
        rows.append(
            [f"{name.replace('_', ' ')}, {f['components']} components", f"{f['seconds']['vaekit']:.2f} s",
             f"{f['seconds']['sklearn']:.2f} s", f"{f['sklearn_over_vaekit']:.2f}x",
             f"{ll['vaekit']:.3f} / {ll['sklearn']:.3f}"]
        )  # fmt: skip
    return [
        "## Fitting time",
        "",
        f"{fit['latents']:,} latents of {fit['latent_dim']} dimensions (5 draws from q(z|x) of each "
        "training image), median of 3 rounds:",
        "",
        *markdown_table(header, rows),
        "",
    ]


def write_markdown(results: dict[str, Any], path: Path, iwae_k: int, iwae_images: int) -> Path:
    """Write the report (docs/priors.md) to ``path``, a section for each part that has results.
    ``iwae_k`` and ``iwae_images`` describe the -log p(x) estimates, which priors.json does not record."""
    lines = intro_lines(results)
    if results.get("models"):
        lines += models_lines(results["models"], iwae_k, iwae_images)
    if results.get("cvae"):
        lines += cvae_lines(results["cvae"])
    if results.get("fit"):
        lines += fit_lines(results["fit"])
    return write_document(path, lines)
