"""Anomaly scores and latents for other programs: out-of-distribution detection by MNIST-trained models,
and ``vaekit encode``'s throughput.

Why: issue 23 asks for ``vaekit score`` measured as the papers measure it (the raw likelihood against the
complexity-corrected score of Serra et al. 2020) and for the throughput of ``vaekit encode``.

  detect  an mlp and a conv VAE trained 10 epochs on the 12,000 MNIST training images here; every
          score of ``vaekit score`` (k=100) on the 10,000 test images (in-distribution) against 2,000
          images of each out-of-distribution set: the generated shapes drawn at 28x28, uniform noise,
          the test digits inverted (255 - x) and rotated by 90 degrees (folders of PNGs, read through
          folder:PATH). AUROC and FPR at 95% TPR per pair and score; the complexity correction also
          with the 8-bit PNG whatever the likelihood (``complexity_score_8bit``, what vaekit did first).
  encode  ``vaekit encode`` (encode_run: load the run, the dataset, encode, write .npz) on the 10,000
          test images and on a folder of 6,000 PNGs (first use, which decodes the folder into its cache,
          and a second use), against a bare loop of ``model.encode`` over the same images already in
          memory as float tensors. Images per second; interleaved rounds, medians.

Results: benchmarks/results/anomaly.json. Run alone (no other torch process) from the repository root:
    .venv/bin/python benchmarks/anomaly.py [--only detect,encode] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import DEFAULT_DATA_DIR, check_data_dir
from harness import interleaved, machine, markdown_table, medians, read_results, write_results
from PIL import Image

import vaekit
from vaekit.data import load_dataset
from vaekit.evaluation.anomaly import detection, image_scores, png_bits_per_dim
from vaekit.evaluation.runs import run_images
from vaekit.export.latents import encode_run
from vaekit.training import TrainConfig, Trainer

MODELS = {"mlp": {}, "conv": {"model": "conv", "latent_dim": 16}}
SCORES = ("nll", "neg_elbo", "recon_bce", "complexity_score", "complexity_score_8bit")
K = 100
N_OOD = 2000  # images of each out-of-distribution set (the shapes: a seeded choice of their 46,080)


def write_pngs(folder: Path, images: np.ndarray) -> Path:
    """uint8 images [N, H, W] as PNG files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    return folder


def train(out: Path, data_dir: Path, **settings: Any) -> Path:
    config = TrainConfig.of(dataset="mnist", data_dir=str(data_dir), epochs=10, **settings)
    Trainer(config, out, progress=False, log=lambda line: None).run()
    return out


def ood_sets(work: Path, test: np.ndarray) -> dict[str, str]:
    """The out-of-distribution datasets, by name: vaekit dataset names (folders written here)."""
    rng = np.random.default_rng(0)
    return {
        "shapes": "shapes",
        "noise": "folder:"
        + str(write_pngs(work / "noise", rng.integers(0, 256, test.shape, dtype=np.uint8))),
        "inverted": "folder:" + str(write_pngs(work / "inverted", 255 - test)),
        "rotated": "folder:" + str(write_pngs(work / "rotated", np.rot90(test, 1, axes=(1, 2)).copy())),
    }


def scored(model: Any, images: Any) -> dict[str, np.ndarray]:
    """vaekit's scores, and the complexity correction measured with the 8-bit image's PNG whatever the
    likelihood (what vaekit did first: for a Bernoulli model, code lengths of different data)."""
    scores = image_scores(model, images, k=K, progress=False)
    scores["complexity_score_8bit"] = scores["bits_per_dim"] - png_bits_per_dim(images.images)
    return scores


def detect(work: Path, data_dir: Path, runs: dict[str, Path]) -> dict[str, Any]:
    test = load_dataset("mnist", data_dir).test.images[:, 0].numpy()
    sets = ood_sets(work, test)
    out: dict[str, Any] = {"k": K, "pairs": {}}
    for name, run in runs.items():
        model = vaekit.load(run)
        _, reference = run_images(run, model, None, "test", data_dir, False, print)
        start = time.perf_counter()
        ref_scores = scored(model, reference)
        out.setdefault("score_seconds", {})[name] = time.perf_counter() - start
        for ood, dataset in sets.items():
            # folders are decoded into a cache of their own, not beside the MNIST files
            where = work / "cache" if dataset.startswith("folder:") else data_dir
            _, images = run_images(run, model, dataset, "all", where, False, print)
            images = images.subset(
                torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:N_OOD]
            )
            scores = scored(model, images)
            pair = {s: detection(ref_scores[s], scores[s]) for s in SCORES}
            pair["mean_bits_per_dim"] = {"reference": float(ref_scores["bits_per_dim"].mean()),
                                         "ood": float(scores["bits_per_dim"].mean())}  # fmt: skip
            pair["n"] = len(images)
            out["pairs"][f"{name} mnist vs {ood}"] = pair
            print(name, ood, {s: round(pair[s]["auroc"], 4) for s in SCORES}, flush=True)
    return out


def encode(work: Path, data_dir: Path, run: Path, rounds: int) -> dict[str, Any]:
    train_images = load_dataset("mnist", data_dir).train.images[:6000, 0].numpy()
    folder = write_pngs(work / "folder6000", train_images)
    model = vaekit.load(run)
    test = load_dataset("mnist", data_dir).test.as_float()
    cache = work / "cache"

    def bare() -> None:
        with torch.no_grad():
            for start in range(0, len(test), 1000):
                model.encode(test[start : start + 1000])

    first_use = work / "first.npz"
    start = time.perf_counter()
    encode_run(run, first_use, dataset=f"folder:{folder}", data_dir=cache, progress=False, log=lambda s: None)
    first = time.perf_counter() - start
    contenders = {
        "bare model.encode, 10,000 test images in memory": bare,
        "vaekit encode, 10,000 test images": lambda: encode_run(
            run, work / "test.npz", dataset="mnist", split="test", data_dir=data_dir, progress=False
        ),
        "vaekit encode, 6,000-image folder (cached)": lambda: encode_run(
            run,
            work / "folder.npz",
            dataset=f"folder:{folder}",
            data_dir=cache,
            progress=False,
            log=lambda s: None,
        ),  # fmt: skip
    }
    times = medians(interleaved(rounds, contenders, warmup=True))
    counts = {name: (6000 if "folder" in name else 10_000) for name in contenders}
    rates = {name: counts[name] / seconds for name, seconds in times.items()}
    rates["vaekit encode, 6,000-image folder (first use: decode, then encode)"] = 6000 / first
    return {"seconds": times, "first_use_seconds": first, "images_per_second": rates}


def report(results: dict[str, Any]) -> None:
    if "detect" in results:
        rows = []
        for pair, figures in results["detect"]["pairs"].items():
            rows.append(
                [pair, *(f"{figures[s]['auroc']:.3f} / {figures[s]['fpr_at_95_tpr']:.3f}" for s in SCORES)]
            )
        print("\n".join(markdown_table(["pair", *SCORES], rows)))
    if "encode" in results:
        rows = [[name, f"{rate:,.0f}"] for name, rate in results["encode"]["images_per_second"].items()]
        print("\n".join(markdown_table(["encode", "images/s"], rows)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--only", default="detect,encode")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    parts = set(args.only.split(","))
    results = {**read_results("anomaly"), "machine": machine()}
    work = Path(tempfile.mkdtemp(prefix="vaekit-anomaly-"))
    try:
        runs = {name: train(work / name, args.data_dir, **settings) for name, settings in MODELS.items()}
        if "detect" in parts:
            results["detect"] = detect(work, args.data_dir, runs)
            write_results("anomaly", results)
        if "encode" in parts:
            results["encode"] = encode(work, args.data_dir, runs["mlp"], args.rounds)
            write_results("anomaly", results)
        report(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
