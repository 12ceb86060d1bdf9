"""Fitted priors on MNIST: sample quality from N(0, I) and from the fitted mixture, side by side.

Three measurements, each with vaekit's cached digit classifier (vaekit.evaluation.classifier):

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
import tempfile
from pathlib import Path
from typing import Any

import torch
from _common import DEFAULT_DATA_DIR, REPO_ROOT, check_data_dir, measuring_classifier, train_quietly
from harness import environment, interleaved, medians, quiet, ratios, read_results, utc_now, write_results
from priors_report import write_markdown

from vaekit import load
from vaekit.data import load_dataset, split_train_val
from vaekit.evaluation.classifier import classify
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
    """Train a vaekit run on MNIST into ``out`` with ``settings`` over the defaults."""
    train_quietly(out, dataset="mnist", data_dir=str(data_dir), epochs=epochs, **settings)


def quality_keys(e: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The sample-quality figures of one prior (``prefix`` "" for N(0, I), "fitted_") from eval.json."""
    keep = ("frechet_distance", "class_histogram", "mode_coverage", "class_tv_distance", "label_accuracy")
    return {k: e.get(prefix + k) for k in keep} | {
        "label_accuracy_per_class": e.get(prefix + "label_accuracy_per_class")
    }


def tempered(model: Any, classifier: Any, test: Any, seed: int = 0) -> dict[str, dict[str, float]]:
    """Frechet distance and --label accuracy of fitted-prior samples at each of TEMPERATURES."""
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
    """The unconditional models: quality of samples from N(0, I) and from the fitted prior, -log p(x)
    under either (and under a mixture fitted to the aggregate posterior), and sampling temperatures."""
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
    """The cvae now (class means, fitted prior) and before (N(0, I)) at each latent size, after 5 and
    10 epochs: recognised digits from each prior, the swap test, reconstructions, the test loss."""
    rows: dict[str, Any] = {}
    for latent in CVAE_LATENTS:
        for variant in ("now", "before"):
            run = work / f"cvae_z{latent}_{variant}"
            config = TrainConfig(
                dataset="mnist", data_dir=str(data_dir), epochs=5, model="cvae", latent_dim=latent
            )
            trainer = Trainer(config, run, progress=False, log=quiet)
            if variant == "before":  # the cvae of the previous release: N(0, I) prior, same initial weights
                torch.manual_seed(config.seed)
                trainer.model = build_model({**trainer.model.config, "class_prior": False})
                trainer.optimizer = Adam(trainer.model.parameters(), lr=config.lr)
            trainer.run()
            for epochs in (5, 10):
                if epochs == 10:  # resuming is exact: the same as 10 epochs straight
                    resume(run, epochs=10, progress=False, log=quiet)
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


def fit_latents(work: Path, data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """5 draws z ~ q(z|x) for each training image of the mlp z=20 run (trained here for --only fit),
    with their labels."""
    if not (work / "mlp_z20").is_dir():  # --only fit
        train(MODELS[0][2], data_dir, work / "mlp_z20", epochs=10)
    model = load(work / "mlp_z20")
    train_set, _ = split_train_val(load_dataset("mnist", data_dir).train, 0.1, 0)
    with torch.no_grad():
        mu, logvar = model.encode(train_set.as_float())
        g = torch.Generator().manual_seed(0)
        draws = mu + (0.5 * logvar).exp() * torch.randn(5, *mu.shape, generator=g)
    return draws.reshape(-1, mu.shape[1]), train_set.labels.repeat(5)


def time_fits(latents: torch.Tensor, labels: torch.Tensor | None, k: int) -> dict[str, Any]:
    """vaekit's EM against scikit-learn's GaussianMixture (same settings), per class when ``labels``
    is given, else pooled: 3 interleaved rounds, median seconds; each one's mean log-likelihood."""
    from sklearn.mixture import GaussianMixture

    groups = [latents[labels == c] for c in range(10)] if labels is not None else [latents]
    ll: dict[str, float] = {}

    def fit_vaekit() -> None:
        prior, _ = MixturePrior.fit(latents, labels, k, 10 if labels is not None else 0)
        ll["vaekit"] = prior.log_prob(latents, labels).double().mean().item()

    def fit_sklearn() -> None:
        settings = dict(covariance_type="full", tol=1e-3, reg_covar=1e-6, random_state=0)
        fitted = [GaussianMixture(k, **settings).fit(group.double().numpy()) for group in groups]
        scores = [m.score(g.double().numpy()) * len(g) for m, g in zip(fitted, groups, strict=True)]
        ll["sklearn"] = sum(scores) / len(latents)

    times = interleaved(3, {"vaekit": fit_vaekit, "sklearn": fit_sklearn})
    seconds = medians(times)
    return {
        "components": k,
        "seconds": seconds,
        "all_seconds": times,
        "sklearn_over_vaekit": ratios(seconds, "vaekit")["sklearn"],
        # per class: log p(z | y) of the training latents; pooled: log p(z)
        "mean_log_likelihood": ll,
    }


def bench_fit(work: Path, data_dir: Path) -> dict[str, Any]:
    """Fitting time of vaekit's EM against scikit-learn's, per class (8 components) and pooled (40)."""
    latents, labels = fit_latents(work, data_dir)
    result: dict[str, Any] = {"latents": len(latents), "latent_dim": latents.shape[1]}
    for name, per_class, k in (("per_class", True, 8), ("pooled", False, 40)):
        result[name] = r = time_fits(latents, labels if per_class else None, k)
        vaekit_s, sklearn_s = r["seconds"]["vaekit"], r["seconds"]["sklearn"]
        ll = r["mean_log_likelihood"]
        print(
            f"fit {name} ({k} components) on {len(latents):,} latents: vaekit {vaekit_s:.2f} s, "
            f"scikit-learn {sklearn_s:.2f} s ({r['sklearn_over_vaekit']:.2f}x); mean log-likelihood "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--only", default="models,cvae,fit", help="comma-separated parts to run")
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    parts = set(args.only.split(","))
    dataset = load_dataset("mnist", args.data_dir)
    classifier, info = measuring_classifier(dataset)
    results = read_results("priors")  # the parts not run keep their last figures
    results.update(
        {
            "date": utc_now(),
            **environment("torch_version", "threads"),
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
    results = json.loads(written.read_text())  # as written: with the machine's stamp, for the report
    report = write_markdown(results, DOCS / "priors.md", IWAE_K, IWAE_IMAGES)
    print(f"results in {written}; report in {report}")


if __name__ == "__main__":
    main()
