"""The model family side by side on MNIST: test loss, seconds per epoch, parameters, pictures.

Trains each model of the table below with vaekit's defaults otherwise (Adam 1e-3, batch 128,
val_fraction 0.1, seed 0) for the same number of epochs on the same data, then writes

  benchmarks/results/models.json   every figure, with the environment
  docs/models.md                   the table, the checks and the sample / reconstruction grids
  docs/models/*.png                the grids (copied from each run folder)

The checks the issue asks for are computed here, not eyeballed:
  - the conv VAE's test loss against the MLP VAE's at the same latent size (16) and epochs;
  - sample quality from vaekit's cached digit classifier (vaekit.evaluation.classifier): the
    Frechet distance of 10,000 samples to the test set (beside the distance of 10,000 training
    images, the floor a perfect model would reach), mode coverage and, for the CVAEs, the share of
    samples recognised as their requested label.

It also writes docs/comparison/ (vaekit compare of mlp_z16, conv_z16 and vqvae, with a k=100
log-likelihood estimate for the two Gaussian models).

The VQ-VAE's loss is recon + KL with KL = -log p(codes) under its learned prior (trained here with
vaekit.training.code_prior after the VQ-VAE), a bound on -log p(x) like the others' negative ELBO.

Run from the repository root:  .venv/bin/python benchmarks/models.py [--epochs 10] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _common import DEFAULT_DATA_DIR, REPO_ROOT, check_data_dir, measuring_classifier
from harness import (
    environment,
    format_table,
    markdown_table,
    median,
    quiet,
    timed,
    utc_now,
    write_document,
    write_results,
)

from vaekit import load
from vaekit.data import Dataset, load_dataset
from vaekit.evaluation.classifier import classify
from vaekit.evaluation.compare import compare_runs
from vaekit.evaluation.quality import frechet_distance, gaussian_statistics
from vaekit.evaluation.runs import evaluate_run
from vaekit.training import TrainConfig, Trainer
from vaekit.training.code_prior import train_prior

DOCS = REPO_ROOT / "docs"
# (slug, label, settings): the seven models, plus mlp z=16 to compare the conv VAE at its size
# and the conv VAE in bf16 mixed precision, to show what that costs in quality.
MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("mlp_z2", "mlp z=2", {"model": "mlp", "latent_dim": 2}),
    ("mlp_z16", "mlp z=16", {"model": "mlp", "latent_dim": 16}),
    ("mlp_z20", "mlp z=20", {"model": "mlp", "latent_dim": 20}),
    ("conv_z16", "conv z=16", {"model": "conv", "latent_dim": 16}),
    (
        "conv_z16_bf16",
        "conv z=16, --precision bf16",
        {"model": "conv", "latent_dim": 16, "precision": "bf16"},
    ),
    ("cvae_z2", "cvae z=2", {"model": "cvae", "latent_dim": 2}),
    ("cvae_z20", "cvae z=20 (its default)", {"model": "cvae"}),
    ("beta4_z20", "mlp z=20, beta=4", {"model": "mlp", "latent_dim": 20, "beta": 4.0}),
    ("iwae5_z20", "mlp z=20, iwae k=5", {"model": "mlp", "latent_dim": 20, "objective": "iwae", "k": 5}),
    ("vqvae", "vqvae 7x7 codes, K=128", {"model": "vqvae"}),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="MNIST IDX gz folder")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--prior-epochs", type=int, default=20, help="epochs of the VQ-VAE's prior")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="comma-separated slugs to run (default: all)")
    return parser.parse_args()


# ------------------------------------------------------------------------------------------- runs
def train_one(settings: dict[str, Any], data_dir: Path, out: Path, epochs: int, seed: int) -> dict[str, Any]:
    """Train one model; its size, median seconds per epoch (from metrics.jsonl), wall time and eval."""
    config = TrainConfig.of(dataset="mnist", data_dir=str(data_dir), epochs=epochs, seed=seed, **settings)
    lines: list[str] = []
    _, wall = timed(lambda: Trainer(config, out, progress=False, log=lines.append).run())
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    model = load(out)
    return {
        "settings": settings,
        "model_config": model.config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds_per_epoch": median(m["seconds"] for m in metrics),
        "wall_seconds": wall,
        "eval": json.loads((out / "eval.json").read_text()),
        "last_epoch": metrics[-1],
        "log": lines,
    }


def copy_grids(slug: str, run: Path, epochs: int) -> dict[str, str]:
    """The samples of the run's prior (fitted, or a vqvae's; what vaekit sample draws) and the last
    epoch's reconstruction grid into docs/models/."""
    (DOCS / "models").mkdir(parents=True, exist_ok=True)
    pictures = {}
    samples = run / "samples" / "prior.png"
    for kind, source in (
        ("samples", samples),
        ("reconstructions", run / "reconstructions" / f"epoch_{epochs:03d}.png"),
    ):
        target = DOCS / "models" / f"{slug}_{kind}.png"
        shutil.copyfile(source, target)
        pictures[kind] = str(target.relative_to(DOCS))
    return pictures


# ------------------------------------------------------------------------------------------ report
def model_row(label: str, r: dict[str, Any]) -> list[str]:
    """One model's cells of the table in docs/models.md."""
    e = r["eval"]
    also = []
    if "test_iwae" in e:
        also.append(f"-IWAE k=5 bound {e['test_iwae']:.2f}")
    if "test_perplexity" in e:
        also.append(f"code perplexity {e['test_perplexity']:.1f}, dead codes {e['test_dead_codes']:.0f}")
    if "fitted_label_accuracy" in e:
        also.append(f"`--label` samples recognised as their label: {e['fitted_label_accuracy']:.1%}")
    if "label_swap_accuracy" in e:
        also.append(f"swap test {e['label_swap_accuracy']:.1%}")
    vq = "fitted_frechet_distance" not in e  # a vqvae: its one prior is the learned code prior
    standard = "-" if vq else f"{e['frechet_distance']:.2f}"
    fitted = f"{e['frechet_distance']:.2f}" if vq else f"{e['fitted_frechet_distance']:.2f}"
    modes = f"- / {e['mode_coverage']}" if vq else f"{e['mode_coverage']} / {e['fitted_mode_coverage']}"
    return [
        label, f"{r['parameters']:,}", f"{r['seconds_per_epoch']:.2f}", f"{e['test_loss']:.2f}",
        f"{e['test_recon']:.2f}", f"{e['test_kl']:.2f}", standard, fitted, modes, "; ".join(also),
    ]  # fmt: skip


def intro_lines(results: dict[str, Any]) -> list[str]:
    """The title, the data and what each column means."""
    return [
        "# The model family on MNIST",
        "",
        "Produced by `.venv/bin/python benchmarks/models.py` (figures: `benchmarks/results/models.json`).",
        f"Data: `{results['data_dir_name']}`, {results['n_train']:,} training images "
        f"({results['n_val']:,} of them held out for validation) and the {results['n_test']:,} official test "
        f"images; {results['epochs']} epochs, batch 128, Adam 1e-3, seed {results['seed']}, "
        f"{results['threads']} CPU threads (torch {results['torch_version']}).",
        "",
        "Test loss: the negative ELBO in nats per image (one z per image), recon + KL; lower is better. "
        "For the VQ-VAE the KL is -log p(codes) under its learned prior, so its loss is the same kind of "
        "bound on -log p(x). The IWAE run also reports its k=5 bound, which is tighter than its ELBO.",
        "",
        "Frechet: the Frechet distance between a digit classifier's features of 10,000 samples and of the "
        f"test images; 10,000 real training images score {results['checks']['frechet_floor']:.2f}. Samples "
        "come from z ~ N(0, I) (a cvae: N(m_y, I)) or from the prior fitted at the end of training (8 "
        "full-covariance Gaussians per digit over the training latents; see [priors.md](priors.md)); a "
        "VQ-VAE's from its learned code prior. Modes: the digits drawn at least half as often as they occur "
        "in the test set.",
        "",
    ]


def check_lines(results: dict[str, Any]) -> list[str]:
    """The checks the issue asks for, as a bullet list."""
    checks = results["checks"]
    lines = ["", "## Checks", ""]
    if "conv_vs_mlp" in checks:
        c = checks["conv_vs_mlp"]
        verdict = "beats" if c["conv"] < c["mlp"] else "does NOT beat"
        lines.append(
            f"- The conv VAE (z=16) {verdict} the MLP VAE (z=16) after {results['epochs']} epochs: test loss "
            f"{c['conv']:.2f} vs {c['mlp']:.2f} nats ({c['mlp'] - c['conv']:+.2f})."
        )
    for slug in ("cvae_z2", "cvae_z20"):
        if f"labels_{slug}" not in checks:
            continue
        c = checks[f"labels_{slug}"]
        per = ", ".join(f"{d}: {a:.0%}" for d, a in enumerate(c["per_label"]))
        lines.append(
            f"- CVAE z={c['latent_dim']}: samples for `--label d` from the fitted prior are classified as d "
            f"{c['overall']:.1%} of the time ({c['standard']:.1%} from N(m_y, I); 1,000 samples per digit; "
            f"{per})."
        )
    c = checks["classifier"]
    lines.append(
        "- The measuring classifier (`vaekit.evaluation.classifier`, trained once and cached) has "
        f"{c['test_accuracy']:.2%} test accuracy; it trained on the {c['train_images']:,} training images "
        f"in {c['seconds']:.0f} s."
    )
    lines.append(
        "- A side-by-side report of mlp z=16, conv z=16 and the VQ-VAE, made by `vaekit compare`: "
        "[comparison/report.md](comparison/report.md) (and a self-contained report.html beside it)."
    )
    return lines


def picture_lines(rows: dict[str, Any]) -> list[str]:
    """Each model's samples and reconstructions (copied into docs/models/ by copy_grids)."""
    lines = ["", "## Samples and reconstructions", ""]
    lines.append(
        "Samples: from the prior `vaekit sample` draws from (fitted at the end of training; a VQ-VAE's "
        "trained code prior). Reconstructions: originals (odd rows) over their reconstructions (even rows), "
        "validation images."
    )
    lines.append("")
    for slug, label, _ in MODELS:
        if slug in rows:
            pics = rows[slug]["pictures"]
            lines += [
                f"### {label}",
                "",
                f"![{label} samples]({pics['samples']}) "
                f"![{label} reconstructions]({pics['reconstructions']})",
                "",
            ]
    return lines


def write_markdown(results: dict[str, Any]) -> Path:
    """docs/models.md: the table of every model run, the checks, and the pictures."""
    rows = results["models"]
    header = [
        "model", "parameters", "s / epoch", "test loss", "recon", "KL", "Frechet N(0, I)", "Frechet fitted",
        "modes N(0, I) / fitted", "also",
    ]  # fmt: skip
    table = [model_row(label, rows[slug]) for slug, label, _ in MODELS if slug in rows]
    lines = intro_lines(results) + markdown_table(header, table, align="l" + "r" * 8 + "l")
    lines += check_lines(results) + picture_lines(rows)
    return write_document(DOCS / "models.md", lines)


# -------------------------------------------------------------------------------------------- main
def start_results(args: argparse.Namespace, data_dir: Path, dataset: Dataset) -> dict[str, Any]:
    """The entries of models.json known before any model is trained."""
    return {
        "benchmark": "models",
        "epochs": args.epochs,
        "seed": args.seed,
        "data_dir_name": data_dir.name,
        "n_train": len(dataset.train),
        "n_val": round(len(dataset.train) * 0.1),
        "n_test": len(dataset.test),
        **environment("threads", "torch_version", "python_version"),
        "models": {},
        "checks": {},
    }


def classifier_checks(dataset: Dataset) -> dict[str, Any]:
    """The figures that measure the measurer, vaekit's digit classifier: its test accuracy and the
    Frechet distance of real training images to the test set (the floor a perfect model would reach)."""
    classifier, info = measuring_classifier(dataset)
    print(f"classifier test accuracy {info['test_accuracy']:.2%}")
    n_floor = min(10_000, len(dataset.train))
    train_stats = gaussian_statistics(classify(classifier, dataset.train.as_float()[:n_floor])["features"])
    test_stats = gaussian_statistics(classify(classifier, dataset.test.as_float())["features"])
    return {
        "classifier": {k: info[k] for k in ("test_accuracy", "train_images", "seconds")},
        "frechet_floor": frechet_distance(*train_stats, *test_stats),
    }


def run_model(
    slug: str, label: str, settings: dict[str, Any], run: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Train one model (a VQ-VAE also its code prior), evaluate it and copy its pictures into docs/."""
    row = train_one(settings, args.data_dir.resolve(), run, args.epochs, args.seed)
    if settings["model"] == "vqvae":
        row["prior"], row["prior_seconds"] = timed(
            lambda: train_prior(run, epochs=args.prior_epochs, seed=args.seed, progress=False, log=quiet)
        )
        row["eval_uniform_prior"] = row["eval"]
    row["eval"] = evaluate_run(run, device="cpu", samples=10_000)
    row["pictures"] = copy_grids(slug, run, args.epochs)
    e = row["eval"]
    print(
        f"{label:24s} test {e['test_loss']:.2f} "
        f"(recon {e['test_recon']:.2f} + kl {e['test_kl']:.2f})  "
        f"{row['seconds_per_epoch']:.2f} s/epoch  {row['parameters']:,} parameters  "
        f"Frechet {e['frechet_distance']:.2f} (fitted {e.get('fitted_frechet_distance', 0):.2f})  "
        f"modes {e['mode_coverage']}"
    )
    return row


def compare_some(runs_dir: Path, models: dict[str, Any]) -> None:
    """docs/comparison/: vaekit compare of mlp z=16, conv z=16 and the VQ-VAE (those that ran), with a
    k=100 log-likelihood estimate for the two Gaussian models."""
    compared = [runs_dir / slug for slug in ("mlp_z16", "conv_z16", "vqvae") if slug in models]
    for run in compared:
        if run.name != "vqvae":
            models[run.name]["iwae_nll_k100"] = evaluate_run(run, device="cpu", iwae_k=100)["iwae_nll"]
    if compared:
        compare_runs(compared, out=DOCS / "comparison", overwrite=True)


def model_checks(models: dict[str, Any]) -> dict[str, Any]:
    """The conv VAE against the MLP at z=16, and the CVAEs' label accuracy."""
    checks: dict[str, Any] = {}
    if "conv_z16" in models and "mlp_z16" in models:
        checks["conv_vs_mlp"] = {
            "conv": models["conv_z16"]["eval"]["test_loss"],
            "mlp": models["mlp_z16"]["eval"]["test_loss"],
        }
    for slug in ("cvae_z2", "cvae_z20"):
        if slug in models:
            e = models[slug]["eval"]
            checks[f"labels_{slug}"] = {
                "overall": e["fitted_label_accuracy"],
                "per_label": e["fitted_label_accuracy_per_class"],
                "standard": e["label_accuracy"],
                "latent_dim": models[slug]["model_config"]["latent_dim"],
            }
    return checks


def main() -> None:
    args = parse_args()
    data_dir = args.data_dir.resolve()
    check_data_dir(data_dir)
    chosen = set(args.only.split(",")) if args.only else {slug for slug, _, _ in MODELS}
    dataset = load_dataset("mnist", data_dir)
    results = start_results(args, data_dir, dataset)
    results["checks"] = classifier_checks(dataset)
    models = results["models"]
    runs_dir = Path(tempfile.mkdtemp(prefix="vaekit-models-"))
    try:
        for slug, label, settings in MODELS:
            if slug in chosen:
                models[slug] = run_model(slug, label, settings, runs_dir / slug, args)
        compare_some(runs_dir, models)
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
    results["checks"].update(model_checks(models))
    results["finished"] = utc_now()
    path = write_results("models", results)
    table = [
        [slug, f"{r['parameters']:,}", f"{r['seconds_per_epoch']:.2f}", f"{r['eval']['test_loss']:.2f}"]
        for slug, r in models.items()
    ]
    print()
    print(format_table(["model", "parameters", "s/epoch", "test loss"], table))
    print(f"wrote {path} and {write_markdown(results)}")


if __name__ == "__main__":
    main()
