"""The shapes part of benchmarks/samples.py: disentangling runs on the generated shapes, their MIG and
FactorVAE score per factor, and a traversal per factor (the row of each factor is the latent that
carries most information about it, as MIG picks it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from _common import REPO_ROOT

from vaekit import load
from vaekit.evaluation.disentanglement import mig
from vaekit.evaluation.latents import latent_means
from vaekit.evaluation.runs import evaluate_run, load_run_dataset, run_split
from vaekit.training import TrainConfig, Trainer
from vaekit.utils import plots
from vaekit.utils.files import read_run_config

PICTURES = REPO_ROOT / "docs" / "samples"
BATCH = 64  # twice the steps of 128 in the same time, which measured better (docs/models.md)
SHAPES_RUNS = {  # the best of docs/models.md's shapes table beside the plain model it is measured against
    "plain (mlp)": {"model": "mlp"},
    "btcvae beta=10 (mlp)": {"model": "mlp", "objective": "btcvae", "beta": 10.0},
}


def train_shapes(out: Path, minutes: float, settings: dict[str, Any], size: int, reuse: bool) -> int:
    """Train one shapes run for ``minutes`` (``reuse``: not if ``out`` holds one); returns its steps."""
    config = TrainConfig.of(
        dataset="shapes", image_size=[size, size], latent_dim=10, batch_size=BATCH, epochs=1000,
        max_time=minutes * 60, seed=0, **settings,
    )  # fmt: skip
    if not (reuse and (out / "model.safetensors").is_file()):
        Trainer(config, out, progress=False, log=lambda line: None).run()
    checkpoint = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    n_batches = -(-json.loads((out / "config.json").read_text())["data"]["n_train"] // BATCH)
    return int(checkpoint["epoch"] * n_batches + checkpoint["step"])


@torch.no_grad()
def factor_traversal(run: Path, path: Path, steps: int = 9, limit: float = 2.5) -> dict[str, Any]:
    """One row per factor: a test image's posterior mean with the factor's most informative latent swept
    from -limit to +limit, decoded; returns each factor's latent and MIG term."""
    model = load(run).eval()
    dataset = load_run_dataset(read_run_config(run))
    images = run_split(read_run_config(run), "test", dataset=dataset)
    means = latent_means(model, images.images, images.labels)
    gaps = mig(means.double().numpy(), images.factors.numpy())
    names = dataset.factor_names
    base = means[0]
    rows, labels = [], []
    for name, latent, gap in zip(names, gaps["best_latent"], gaps["per_factor"], strict=True):
        if latent < 0:
            continue
        z = base.repeat(steps, 1)
        z[:, latent] = torch.linspace(-limit, limit, steps)
        rows.append(model.decode(z))
        labels.append(f"{name}: z{latent + 1}, MIG {gap:.2f}")
    plots.save_grid(torch.cat(rows), path, ncol=steps, row_labels=labels)
    return {"latents": dict(zip(names, gaps["best_latent"], strict=True))}


def shapes_part(work: Path, minutes: float, size: int, reuse: bool = False) -> dict[str, Any]:
    """Each of SHAPES_RUNS for ``minutes`` on shapes at ``size`` x ``size``: steps, MIG (per factor),
    FactorVAE score, test -ELBO, and docs/samples/shapes_<run>.png."""
    PICTURES.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"minutes": minutes, "size": size, "batch_size": BATCH, "runs": {}}
    for name, settings in SHAPES_RUNS.items():
        slug = name.replace(" ", "_").replace("=", "").replace("(", "").replace(")", "")
        run = work / f"shapes-{slug}"
        steps = train_shapes(run, minutes, settings, size, reuse)
        figures = evaluate_run(run, samples=0, write=False)
        picture = PICTURES / f"shapes_{slug}.png"
        traversal = factor_traversal(run, picture)
        results["runs"][name] = {
            "settings": settings,
            "steps": steps,
            "mig": figures["mig"],
            "mig_per_factor": figures["mig_per_factor"],
            "factor_vae_score": figures["factor_vae_score"],
            "test_loss": figures["test_loss"],
            "traversal": f"samples/{picture.name}",
            **traversal,
        }
        print(name, results["runs"][name], flush=True)
    return results


def shapes_section(shapes: dict[str, Any]) -> list[str]:
    """docs/samples.md's shapes section."""
    runs = shapes["runs"]
    factors = list(next(iter(runs.values()))["mig_per_factor"])
    size, minutes = shapes["size"], shapes["minutes"]
    lines = [
        f"## Shapes: a traversal per factor ({size}x{size}, {minutes:g} minutes a run)",
        "",
        "Each row of a traversal sweeps the latent that carries most information about one factor (the one "
        "MIG measures it by) from -2.5 to 2.5 around a test image's posterior mean; MIG and the FactorVAE "
        "score are of the test images' posterior means (`vaekit evaluate`; [own data](own_data.md) says "
        "why shape and rotation are hard).",
        "",
        f"| run | steps | MIG | {' | '.join(f'MIG {f}' for f in factors)} | FactorVAE score | test -ELBO |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in factors) + " | ---: | ---: |",
    ]
    for name, r in runs.items():
        cells = [f"{r['steps']:,}", f"{r['mig']:.3f}", *(f"{r['mig_per_factor'][f]:.3f}" for f in factors)]
        cells += [f"{r['factor_vae_score']:.1%}", f"{r['test_loss']:.2f}"]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines.append("")
    for name, r in runs.items():
        lines += [f"![{name}: a traversal per factor]({r['traversal']})", ""]
    return lines
