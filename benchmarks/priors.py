"""Fitted priors on MNIST: sample quality from N(0, I) and from the fitted mixture, side by side.

Three measurements, each with vaekit's cached digit classifier (vaekit.quality):

  models   mlp z=20, conv z=16 and mlp z=20 beta=4, 10 epochs each, defaults otherwise (so training ends
           by fitting 8 full-covariance Gaussians per digit to the training latents): the Frechet
           distance of 10,000 samples from each prior (and its ratio), the share of each digit among
           the fitted prior's samples, --label accuracy, and -log p(x) by importance sampling (k=1000,
           the first 1,000 test images) with either prior as p(z).
  cvae     the conditional VAE at z=2, 16, 20 (its default) and 32 after 5 and 10 epochs: the share of
           samples recognised as the requested digit from N(m_y, I) and from the fitted prior, the
           swap test, the test loss; beside the cvae as it was before (N(0, I) prior, class_prior=False).
  fit      fitting time on 54,000 latents (5 draws z ~ q(z|x) for each of the 10,800 training images
           of the mlp run): vaekit's EM against scikit-learn's GaussianMixture with the same settings,
           per class (8 components) and pooled (40), 3 interleaved rounds, median seconds.

Also: the share of requested digits and the Frechet distance at sampling temperatures 0.9 and 0.8.

Writes benchmarks/results/priors.json, docs/priors.md and docs/priors/*.png.
Run from the repository root:  .venv/bin/python benchmarks/priors.py [--data-dir DIR] [--only models,cvae,fit]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, REPO_ROOT, check_data_dir, write_results

from vaekit import load
from vaekit.data import load_dataset, split_train_val
from vaekit.evaluation.classifier import classify, load_classifier
from vaekit.evaluation.likelihood import iwae_nll
from vaekit.evaluation.quality import sample_quality
from vaekit.evaluation.runs import evaluate_run
from vaekit.models import build_model
from vaekit.models.priors.mixture import MixturePrior
from vaekit.training import Adam, TrainConfig, Trainer, resume
from vaekit.training.priors import fit_mixture_prior
from vaekit.utils import plots

DOCS = REPO_ROOT / "docs"
MODELS = [
    ("mlp_z20", "mlp z=20", {"model": "mlp", "latent_dim": 20}),
    ("conv_z16", "conv z=16", {"model": "conv", "latent_dim": 16}),
    ("beta4_z20", "mlp z=20, beta=4", {"model": "mlp", "latent_dim": 20, "beta": 4.0}),
]
CVAE_LATENTS = (2, 16, 20, 32)
TEMPERATURES = (0.9, 0.8)
IWAE_K, IWAE_IMAGES = 1000, 500


def train(settings: dict[str, Any], data_dir: Path, out: Path, epochs: int) -> None:
    config = TrainConfig(dataset="mnist", data_dir=str(data_dir), epochs=epochs, **settings)
    Trainer(config, out, progress=False, log=lambda line: None).run()


def quality_keys(e: dict[str, Any], prefix: str) -> dict[str, Any]:
    keep = ("frechet_distance", "class_histogram", "mode_coverage", "class_tv_distance", "label_accuracy")
    return {k: e.get(prefix + k) for k in keep} | {
        "label_accuracy_per_class": e.get(prefix + "label_accuracy_per_class")
    }


def tempered(model: Any, classifier: Any, test: Any, seed: int = 0) -> dict[str, dict[str, float]]:
    figures = {}
    for t in TEMPERATURES:
        q = sample_quality(model, classifier, test, 10_000, seed=seed, prior="fitted", temperature=t)
        figures[str(t)] = {
            "frechet_distance": q["frechet_distance"],
            "label_accuracy": q.get("label_accuracy"),
        }
    return figures


@torch.no_grad()
def reconstruction_accuracy(model: Any, classifier: Any, test: Any) -> float:
    """The share of the model's reconstructions of test images that the classifier reads as their label:
    a ceiling of sorts for how recognisable its samples can be."""
    recons = model.reconstruct(test.as_float(), test.labels)
    return (classify(classifier, recons)["predictions"] == test.labels).double().mean().item()


# ------------------------------------------------------------------------------------------ parts
def bench_models(data_dir: Path, work: Path, classifier: Any, test: Any) -> dict[str, Any]:
    rows = {}
    x = test.as_float()[:IWAE_IMAGES]
    y = test.labels[:IWAE_IMAGES]
    train_set, _ = split_train_val(load_dataset("mnist", data_dir).train, 0.1, 0)
    for slug, label, settings in MODELS:
        run = work / slug
        train(settings, data_dir, run, epochs=10)
        e = evaluate_run(run, device="cpu", samples=10_000)
        model = load(run)
        nll = {p: iwae_nll(model, x, y, k=IWAE_K, prior=p).mean().item() for p in ("standard", "fitted")}
        save_pictures(slug, model)
        # the other target: the aggregate posterior (means' spread plus posterior variances)
        aggregate = load(run)
        fit_mixture_prior(aggregate, train_set.as_float(), train_set.labels, 10, target="aggregate")
        q = sample_quality(aggregate, classifier, test, 10_000, prior="fitted")
        nll["aggregate"] = iwae_nll(aggregate, x, y, k=IWAE_K, prior="fitted").mean().item()
        share = [n / sum(e["fitted_class_histogram"]) for n in e["fitted_class_histogram"]]
        rows[slug] = {
            "label": label,
            "settings": settings,
            "test_loss": e["test_loss"],
            "standard": quality_keys(e, ""),
            "fitted": quality_keys(e, "fitted_"),
            "frechet_ratio": e["frechet_distance"] / e["fitted_frechet_distance"],
            "fitted_digit_share": {"min": min(share), "max": max(share)},
            "iwae_nll": nll,
            "aggregate": {k: q.get(k) for k in ("frechet_distance", "label_accuracy", "class_tv_distance")},
            "temperature": tempered(model, classifier, test),
        }
        r = rows[slug]
        print(
            f"{label}: Frechet {e['frechet_distance']:.1f} -> {e['fitted_frechet_distance']:.1f} "
            f"({r['frechet_ratio']:.2f}x), digits {min(share):.1%}-{max(share):.1%}, --label "
            f"{e['fitted_label_accuracy']:.1%}, -log p(x) {nll['standard']:.2f} -> {nll['fitted']:.2f}; "
            f"aggregate target: Frechet {q['frechet_distance']:.1f}, --label {q['label_accuracy']:.1%}, "
            f"-log p(x) {nll['aggregate']:.2f}",
            flush=True,
        )
    return rows


def bench_cvae(data_dir: Path, work: Path, classifier: Any, test: Any) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for latent in CVAE_LATENTS:
        for variant in ("now", "before"):
            run = work / f"cvae_z{latent}_{variant}"
            config = TrainConfig(
                dataset="mnist", data_dir=str(data_dir), epochs=5, model="cvae", latent_dim=latent
            )
            trainer = Trainer(config, run, progress=False, log=lambda line: None)
            if (
                variant == "before"
            ):  # the cvae of the previous release: N(0, I) prior, the same initial weights
                torch.manual_seed(config.seed)
                trainer.model = build_model({**trainer.model.config, "class_prior": False})
                trainer.optimizer = Adam(trainer.model.parameters(), lr=config.lr)
            trainer.run()
            for epochs in (5, 10):
                if epochs == 10:  # resuming is exact: the same as 10 epochs straight
                    resume(run, epochs=10, progress=False, log=lambda line: None)
                e = evaluate_run(run, device="cpu", samples=10_000)
                rows[f"z{latent}_{variant}_{epochs}"] = r = {
                    "latent_dim": latent,
                    "variant": variant,
                    "epochs": epochs,
                    "test_loss": e["test_loss"],
                    "standard": quality_keys(e, ""),
                    "fitted": quality_keys(e, "fitted_"),
                    "label_swap_accuracy": e["label_swap_accuracy"],
                    "reconstruction_accuracy": reconstruction_accuracy(load(run), classifier, test),
                }
                if variant == "now":
                    r["temperature"] = tempered(load(run), classifier, test)
                print(
                    f"cvae z={latent} {variant} {epochs} epochs: test {e['test_loss']:.2f}, asked-for digit "
                    f"{e['label_accuracy']:.1%} (N(0, I)) / {e['fitted_label_accuracy']:.1%} (fitted), "
                    f"swap {e['label_swap_accuracy']:.1%}",
                    flush=True,
                )
                if (latent, epochs, variant) == (20, 10, "now"):
                    save_pictures("cvae_z20", load(run))
    return rows


def bench_fit(work: Path, data_dir: Path) -> dict[str, Any]:
    from sklearn.mixture import GaussianMixture

    if not (work / "mlp_z20").is_dir():  # --only fit
        train(MODELS[0][2], data_dir, work / "mlp_z20", epochs=10)
    model = load(work / "mlp_z20")
    dataset = load_dataset("mnist", data_dir)
    train_set, _ = split_train_val(dataset.train, 0.1, 0)
    with torch.no_grad():
        mu, logvar = model.encode(train_set.as_float())
        g = torch.Generator().manual_seed(0)
        latents = (mu + (0.5 * logvar).exp() * torch.randn(5, *mu.shape, generator=g)).reshape(
            -1, mu.shape[1]
        )
    labels = train_set.labels.repeat(5)
    result: dict[str, Any] = {"latents": len(latents), "latent_dim": latents.shape[1]}
    for name, per_class, k in (("per_class", True, 8), ("pooled", False, 40)):
        groups = [latents[labels == c] for c in range(10)] if per_class else [latents]
        times: dict[str, list[float]] = {"vaekit": [], "sklearn": []}
        ll: dict[str, float] = {}
        for _ in range(3):
            start = time.perf_counter()
            prior, _ = MixturePrior.fit(latents, labels if per_class else None, k, 10 if per_class else 0)
            times["vaekit"].append(time.perf_counter() - start)
            ll["vaekit"] = prior.log_prob(latents, labels if per_class else None).double().mean().item()
            start = time.perf_counter()
            sk = [
                GaussianMixture(k, covariance_type="full", tol=1e-3, reg_covar=1e-6, random_state=0).fit(
                    group.double().numpy()
                )
                for group in groups
            ]
            times["sklearn"].append(time.perf_counter() - start)
            ll["sklearn"] = sum(
                m.score(grp.double().numpy()) * len(grp) for m, grp in zip(sk, groups, strict=True)
            ) / len(latents)
        vaekit_s, sklearn_s = statistics.median(times["vaekit"]), statistics.median(times["sklearn"])
        result[name] = {
            "components": k,
            "seconds": {"vaekit": vaekit_s, "sklearn": sklearn_s},
            "all_seconds": times,
            "sklearn_over_vaekit": sklearn_s / vaekit_s,
            # per class: log p(z | y) of the training latents; pooled: log p(z)
            "mean_log_likelihood": ll,
        }
        print(
            f"fit {name} ({k} components) on {len(latents):,} latents: vaekit {vaekit_s:.2f} s, "
            f"scikit-learn {sklearn_s:.2f} s ({sklearn_s / vaekit_s:.2f}x); mean log-likelihood "
            f"{ll['vaekit']:.3f} vs {ll['sklearn']:.3f}",
            flush=True,
        )
    return result


def save_pictures(slug: str, model: Any) -> None:
    """N(0, I) and fitted-prior samples from the same seed, into docs/priors/."""
    folder = DOCS / "priors"
    folder.mkdir(parents=True, exist_ok=True)
    rows = model.num_classes if model.conditional else 8
    for prior in ("standard", "fitted"):
        images = model.sample(rows * 8, generator=torch.Generator().manual_seed(0), prior=prior)
        plots.save_grid(images, folder / f"{slug}_{prior}.png", ncol=8)
    if not model.conditional:  # a row per digit, through --label
        images = torch.cat(
            [model.sample(8, label=c, generator=torch.Generator().manual_seed(c)) for c in range(10)]
        )
        plots.save_grid(images, folder / f"{slug}_by_label.png", ncol=8)


# ------------------------------------------------------------------------------------------ report
def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def write_markdown(results: dict[str, Any]) -> Path:
    lines = [
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
        "samples "
        "to the test images (lower is better), the share of each digit, and the share of samples drawn "
        "with `--label d` that are recognised as d.",
        "",
    ]
    models = results.get("models")
    if models:
        lines += [
            "## Unconditional models, 10 epochs",
            "",
            "| model | test -ELBO | Frechet N(0, I) | Frechet fitted | ratio | digit shares, fitted "
            "(N(0, I)) | `--label` accuracy | -log p(x) N(0, I) | -log p(x) fitted |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|",
        ]
        for r in models.values():
            hist = r["standard"]["class_histogram"]
            std_share = f"{min(hist) / sum(hist):.1%}-{max(hist) / sum(hist):.1%}"
            share = r["fitted_digit_share"]
            lines.append(
                f"| {r['label']} | {r['test_loss']:.2f} | {r['standard']['frechet_distance']:.1f} | "
                f"{r['fitted']['frechet_distance']:.1f} | **{r['frechet_ratio']:.2f}x** | "
                f"{share['min']:.1%}-{share['max']:.1%} ({std_share}) | "
                f"{pct(r['fitted']['label_accuracy'])} | "
                f"{r['iwae_nll']['standard']:.2f} | {r['iwae_nll']['fitted']:.2f} |"
            )
        lines += [
            "",
            "With `vaekit train-prior RUN --target aggregate` the mixture is fitted to the aggregate "
            "posterior instead: each component widened by the posterior variances it covers. A closer "
            "density, so a better -log p(x); blurrier, less faithful samples:",
            "",
            "| model | Frechet, means (default) | Frechet, aggregate | `--label`, means "
            "| `--label`, aggregate | -log p(x) N(0, I) | means | aggregate |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in models.values():
            a, n = r["aggregate"], r["iwae_nll"]
            lines.append(
                f"| {r['label']} | {r['fitted']['frechet_distance']:.1f} | {a['frechet_distance']:.1f} | "
                f"{pct(r['fitted']['label_accuracy'])} | {pct(a['label_accuracy'])} | {n['standard']:.2f} | "
                f"{n['fitted']:.2f} | {n['aggregate']:.2f} |"
            )
        lines += [
            "",
            f"-log p(x): importance-sampled with k={IWAE_K} over the first {IWAE_IMAGES:,} test images, with "
            "N(0, I) or the fitted mixture as p(z) in the weights (the same encoder and decoder): the fitted "
            "prior is a different generative model, and this is its likelihood. The test -ELBO is the "
            "trained prior's, N(0, I), as everywhere in vaekit.",
            "",
        ]
        for r_slug, r in models.items():
            lines.append(
                f"![{r['label']}: N(0, I), fitted, by label](priors/{r_slug}_standard.png) "
                f"![](priors/{r_slug}_fitted.png) ![](priors/{r_slug}_by_label.png)"
            )
        lines += [
            "",
            "(Left: z ~ N(0, I); middle: the fitted prior; right: `--label 0` to `9`, a row each.)",
            "",
        ]
    cvae = results.get("cvae")
    if cvae:
        lines += [
            "## The conditional VAE",
            "",
            "Share of samples recognised as the requested digit (10,000, 1,000 per digit). *Now*: the cvae "
            "learns class means, p(z|y) = N(m_y, I), and samples from its fitted per-class mixture. "
            "*Before*: the cvae of the previous release (N(0, I) prior) with the same fitted mixture. The "
            "swap test decodes each test image's latent with another label and counts the decodings shown "
            "as that label. Reconstructions: the share of the model's reconstructions of the test images "
            "recognised as their digit.",
            "",
            "| latent | epochs | test -ELBO now (before) | N(m_y, I) | fitted prior now | fitted before "
            "| weakest digit, fitted | T=0.9 | T=0.8 | swap test | reconstructions |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for latent in CVAE_LATENTS:
            for epochs in (5, 10):
                now, before = cvae[f"z{latent}_now_{epochs}"], cvae[f"z{latent}_before_{epochs}"]
                t = now["temperature"]
                lines.append(
                    f"| {latent} | {epochs} | {now['test_loss']:.2f} ({before['test_loss']:.2f}) | "
                    f"{pct(now['standard']['label_accuracy'])} | "
                    f"**{pct(now['fitted']['label_accuracy'])}** | "
                    f"{pct(before['fitted']['label_accuracy'])} | "
                    f"{pct(min(now['fitted']['label_accuracy_per_class']))} | "
                    f"{pct(t['0.9']['label_accuracy'])} | {pct(t['0.8']['label_accuracy'])} | "
                    f"{pct(now['label_swap_accuracy'])} | {pct(now.get('reconstruction_accuracy'))} |"
                )
        lines += [
            "",
            "T: sampling temperature (`vaekit sample --temperature`), the fitted components' standard "
            "deviations scaled by T.",
            "",
            "![cvae z=20 from N(m_y, I)](priors/cvae_z20_standard.png) "
            "![cvae z=20, fitted](priors/cvae_z20_fitted.png)",
            "",
            "(The default cvae, z=20, 10 epochs, a row per digit: left z ~ N(m_y, I), right the fitted "
            "prior.)",
            "",
        ]
    fit = results.get("fit")
    if fit:
        lines += [
            "## Fitting time",
            "",
            f"{fit['latents']:,} latents of {fit['latent_dim']} dimensions (5 draws from q(z|x) of each "
            "training image), median of 3 rounds:",
            "",
            "| prior | vaekit EM | scikit-learn GaussianMixture | ratio "
            "| mean log-likelihood vaekit / sklearn |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in ("per_class", "pooled"):
            f = fit[name]
            lines.append(
                f"| {name.replace('_', ' ')}, {f['components']} components | "
                f"{f['seconds']['vaekit']:.2f} s | "
                f"{f['seconds']['sklearn']:.2f} s | {f['sklearn_over_vaekit']:.2f}x | "
                f"{f['mean_log_likelihood']['vaekit']:.3f} / {f['mean_log_likelihood']['sklearn']:.3f} |"
            )
        lines.append("")
    path = DOCS / "priors.md"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--only", default="models,cvae,fit", help="comma-separated parts to run")
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    parts = set(args.only.split(","))
    dataset = load_dataset("mnist", args.data_dir)
    classifier, info = load_classifier(dataset, log=print)
    path = REPO_ROOT / "benchmarks" / "results" / "priors.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    results.update(
        {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "data_dir_name": args.data_dir.name,
            "n_train": len(dataset.train),
            "n_test": len(dataset.test),
            "classifier_test_accuracy": info["test_accuracy"],
        }
    )
    work = Path(tempfile.mkdtemp(prefix="vaekit-priors-"))
    try:
        if "models" in parts:
            results["models"] = bench_models(args.data_dir, work, classifier, dataset.test)
        if "cvae" in parts:
            results["cvae"] = bench_cvae(args.data_dir, work, classifier, dataset.test)
        if "fit" in parts:
            results["fit"] = bench_fit(work, args.data_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    written = write_results("priors", results)
    results = json.loads(written.read_text())
    print(f"results in {written}; report in {write_markdown(results)}")


if __name__ == "__main__":
    main()
