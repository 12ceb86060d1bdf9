"""Beyond MNIST, measured: disentanglement on shapes (beta = 1 against 4) and the pixel likelihood on colour.

Why: issue 11 asks for MIG and a second disentanglement metric on the generated shapes, beta=1 against
beta=4, and a measured comparison of the Bernoulli and Gaussian likelihoods on colour images. Two parts
(``--only`` picks):

  disentanglement  the MLP and the conv VAE (z=10) on ``shapes`` at 32x32, beta 1 and 4, the same seed
                   and epochs; vaekit evaluate's MIG (Chen et al. 2018) and FactorVAE score (Kim & Mnih
                   2018) on the test split, and the test -ELBO.
  likelihood       the conv VAE on ``shapes-rgb`` at 32x32 with the Bernoulli and the Gaussian (learned
                   std) likelihood: reconstruction MSE per pixel, and the sample quality by the shapes-rgb
                   classifier (Frechet distance, shape accuracy of the fitted prior's by-class samples).

Numbers, not timings: it may run beside other work. Results: benchmarks/results/own_data.json and
docs/own_data.md with sample grids in docs/own_data/. From the repository root:
    .venv/bin/python benchmarks/own_data.py [--only disentanglement,likelihood] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPO_ROOT
from harness import format_table, quiet, read_results, timed, write_document, write_results

from vaekit.data.shapes import make_shapes
from vaekit.evaluation.runs import evaluate_run
from vaekit.training import TrainConfig, train

DOCS = REPO_ROOT / "docs"
PARTS = ("disentanglement", "likelihood")


def run(out: Path, samples: int = 0, **settings: Any) -> dict[str, Any]:
    """Train with ``settings``, then vaekit evaluate (with ``samples`` samples for their quality)."""
    config = TrainConfig(**settings)
    _, seconds = timed(lambda: train(config, out, progress=False, log=quiet))
    result = evaluate_run(out, samples=samples, log=print)
    return {"settings": settings, "train_s": seconds, **result}


def disentanglement(tmp: Path, epochs: int, data_dir: str, conv_epochs: int) -> list[dict[str, Any]]:
    """MIG, FactorVAE score and test -ELBO of the MLP (and, with --conv-epochs, the conv VAE) on shapes
    at beta 1 and 4, with a latent traversal picture of each into docs/own_data/."""
    rows = []
    models = [("mlp", {"epochs": epochs})]
    if conv_epochs:
        models.append(("conv", {"channels": [32, 64, 64], "epochs": conv_epochs}))
    for model, extra in models:
        for beta in (1.0, 4.0):
            out = tmp / f"shapes-{model}-beta{beta:g}"
            r = run(
                out, dataset="shapes", image_size=[32, 32], model=model, latent_dim=10, beta=beta,
                data_dir=data_dir, **extra,
            )  # fmt: skip
            rows.append(r)
            print(
                f"shapes {model} beta={beta:g}: MIG {r['mig']:.3f}, FactorVAE {r['factor_vae_score']:.1%}, "
                f"-ELBO {r['test_loss']:.2f} ({r['train_s']:.0f}s)"
            )
            picture = DOCS / "own_data" / f"shapes-{model}-beta{beta:g}-traverse.png"
            from vaekit.evaluation.pictures import traverse

            traverse(out, out=picture, steps=9)
    return rows


def likelihood(tmp: Path, epochs: int, data_dir: str, samples: int) -> list[dict[str, Any]]:
    """On shapes-rgb (flat colours) and on a folder of photo-like stand-ins (smooth colour fields with
    noise, 6,000 at 32x32: no photographs can be downloaded here)."""
    from folders import photo_like, write_folder

    write_folder(tmp / "photo-like", photo_like(6000, 32, 3), ".png")
    rows = []
    for data, size in (("shapes-rgb", [24, 24]), (f"folder:{tmp / 'photo-like'}", [32, 32])):
        tag = "shapes-rgb" if data == "shapes-rgb" else "photo-like"
        for name in ("bernoulli", "gaussian"):
            out = tmp / f"{tag}-{name}"
            r = run(
                out, samples=samples, dataset=data, image_size=size, model="conv", likelihood=name,
                channels=[16, 32], epochs=epochs, data_dir=data_dir,
            )  # fmt: skip
            r["data"] = tag
            rows.append(r)
            print(f"{tag} conv {name}: recon MSE {r['test_recon_mse']:.5f}, BCE {r['test_recon_bce']:.1f}")
            (DOCS / "own_data").mkdir(parents=True, exist_ok=True)
            shutil.copy(out / "samples" / "prior.png", DOCS / "own_data" / f"{tag}-{name}-samples.png")
    return rows


def disentanglement_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The shapes section of docs/own_data.md: the table and the traversal pictures."""
    table = [
        [f"{r['settings']['model']} beta={r['settings']['beta']:g}", f"{r['mig']:.3f}",
         f"{r['factor_vae_score']:.1%}", f"{r['test_loss']:.2f}", f"{r['test_kl']:.2f}",
         "  ".join(f"{k} {v:.2f}" for k, v in r["mig_per_factor"].items())]
        for r in rows
    ]  # fmt: skip
    epochs = " / ".join(sorted({f"{r['settings']['model']} {r['settings']['epochs']}" for r in rows}))
    lines = [
        f"## Shapes (32x32, 46,080 images, z=10, epochs: {epochs}): beta = 1 against beta = 4",
        "",
        "MIG (Chen et al. 2018) and the FactorVAE score (Kim & Mnih 2018; chance is 20% with five "
        "factors) on the 4,608 test images, from `vaekit evaluate`.",
        "",
        "```",
        format_table(["model", "MIG", "FactorVAE", "-ELBO", "KL", "MIG per factor"], table),
        "```",
        "",
    ]
    for r in rows:
        tag = f"shapes-{r['settings']['model']}-beta{r['settings']['beta']:g}"
        lines.append(f"![{tag}](own_data/{tag}-traverse.png)")
    return lines + [""]


def likelihood_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The colour section of docs/own_data.md: reconstruction errors (and sample quality) per likelihood."""
    measured = any("frechet_distance" in r for r in rows)  # only with --samples
    table = [
        [f"{r.get('data', 'shapes-rgb')} {r['settings']['likelihood']}", f"{r['test_recon_mse']:.5f}",
         f"{r['test_recon_bce']:.1f}"]
        + ([f"{r['frechet_distance']:.2f}", f"{r['fitted_frechet_distance']:.2f}"] if measured else [])
        for r in rows
    ]  # fmt: skip
    header = ["data, likelihood", "recon MSE/pixel", "recon BCE/image"]
    header += ["Frechet N(0,I)", "Frechet fitted"] if measured else []
    epochs = rows[0]["settings"]["epochs"]
    return [
        "## Colour: the Bernoulli against the Gaussian likelihood "
        f"(conv 16,32, {epochs} epochs; shapes-rgb at 24x24, photo-like stand-ins at 32x32)",
        "",
        "Reconstruction errors of the test images from their posterior means (the -ELBOs of a discrete "
        "and a continuous likelihood do not compare). The photo-like images are smooth random colour "
        "fields with pixel noise (6,000, generated: no photographs can be downloaded here).",
        "",
        "```",
        format_table(header, table),
        "```",
        "",
        "Fitted-prior samples, Bernoulli then Gaussian, shapes-rgb and photo-like:",
        "",
        "![bernoulli](own_data/shapes-rgb-bernoulli-samples.png) "
        "![gaussian](own_data/shapes-rgb-gaussian-samples.png)",
        "",
        "![bernoulli](own_data/photo-like-bernoulli-samples.png) "
        "![gaussian](own_data/photo-like-gaussian-samples.png)",
        "",
    ]


def factor_steps(size: int) -> dict[str, Any]:
    """What one step of each shapes factor changes in the images at ``size``: the mean L1 change of the
    pixels (0..1) against the mean lit area, and for each shape the rotation steps that draw the same
    image (within 2% of its pixels)."""
    images, _, names, values = make_shapes(size)
    grid = images.reshape(*(len(v) for v in values), size, size).astype(np.float64) / 255
    lit = grid.sum((-1, -2)).mean()
    change = {name: np.abs(np.diff(grid, axis=k)).sum((-1, -2)).mean() for k, name in enumerate(names)}
    rotations = grid[:, -1, :, len(values[3]) // 2, len(values[4]) // 2]  # each shape, largest, centred
    same, unknown = [], 0.0  # pairs drawn alike; H(rotation | image), nats
    for shape in rotations:
        flat = shape.reshape(len(shape), -1)
        alike = np.abs(flat[:, None] - flat[None]).sum(-1) < 0.02 * flat.sum(1).max()
        same.append(int(np.triu(alike, 1).sum()))
        unknown += np.log(alike.sum(1)).mean() / len(rotations)
    most = 1 - unknown / math.log(len(values[2]))  # of the rotation's entropy an encoder can recover
    return {"lit": lit, "change": change, "same_rotations": same, "rotations": len(values[2]), "most": most}


def hardness_lines() -> list[str]:
    """Why rotation and shape are hard, in numbers from the generator itself (issue 35, item 3)."""
    small, large = factor_steps(32), factor_steps(64)
    steps = ", ".join(f"{name} {small['change'][name]:.1f}" for name in small["change"])
    same = small["same_rotations"]
    return [
        "## Why rotation and shape are hard",
        "",
        "- **Half of the rotation is not in the images of two shapes in three.** The "
        f"{small['rotations']} rotations span a whole turn, and the square and the ellipse look the same "
        "half a turn apart: of the 45 "
        f"pairs of rotations, {same[0]} (square), {same[1]} (ellipse) and {same[2]} (heart) draw the same "
        f"image. No encoder can tell those apart, so even a perfect one carries at most {small['most']:.0%} "
        "of the rotation's entropy, and a single real latent cannot follow a factor that comes back to its "
        "start (a full turn) without folding it.",
        f"- **Each step is a few pixels.** One step of a factor changes this many pixels (L1, of "
        f"{small['lit']:.0f} lit) at 32x32: {steps}; at 64x64 four times as many "
        f"({large['change']['rotation']:.0f} for rotation). Scale and rotation move the fewest, so the "
        "reconstruction term pays least for leaving them out, and a beta that presses on the KL drops "
        "them first.",
        "- **Shape is a category of three, not a quantity.** A Gaussian latent orders what it encodes; "
        "square, ellipse and heart have no order, and at these sizes they differ in a rim of pixels "
        "that scale and rotation also move, so one latent cannot hold them apart from the others.",
        "- **Measured**: in every shapes run here (docs/models.md, 15 minutes each, 34,000-130,000 steps) "
        "MIG per factor is 0.000-0.012 for shape and 0.000-0.005 for rotation, against up to 0.34 for y; "
        "Locatello et al. (2019) train 300,000 steps and also find rotation and shape the least captured.",
        "",
    ]


def write_docs(results: dict[str, Any]) -> Path:
    """docs/own_data.md: a section for each part that has results (this run's or the last ones)."""
    lines = [
        "# Beyond MNIST: disentanglement and colour, measured",
        "",
        f"Written by `benchmarks/own_data.py` ({results['cpu']}); numbers in "
        "`benchmarks/results/own_data.json`.",
        "",
    ]
    if "disentanglement" in results:
        lines += disentanglement_lines(results["disentanglement"])
        lines += hardness_lines()
    if "likelihood" in results:
        lines += likelihood_lines(results["likelihood"])
    return write_document(DOCS / "own_data.md", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=0, help="sample quality of the likelihood runs")
    parser.add_argument(
        "--conv-epochs", type=int, default=0, help="also the conv VAE on shapes (slow on a CPU)"
    )
    parser.add_argument("--likelihood-epochs", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="where the classifier is cached (default: vaekit's)")
    args = parser.parse_args()
    parts = args.only.split(",")
    results = read_results("own_data")  # parts not run keep their last figures
    results["benchmark"] = "own_data"
    with tempfile.TemporaryDirectory() as tmp:
        if "disentanglement" in parts:
            results["disentanglement"] = disentanglement(
                Path(tmp), args.epochs, args.data_dir, args.conv_epochs
            )
        if "likelihood" in parts:
            results["likelihood"] = likelihood(Path(tmp), args.likelihood_epochs, args.data_dir, args.samples)
    path = write_results("own_data", results)
    docs = write_docs(json.loads(path.read_text()))  # as written: with the machine's stamp
    print(f"wrote {path} and {docs}")


if __name__ == "__main__":
    main()
