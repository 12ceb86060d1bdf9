"""Folders of images: decoding speed, training speed on 32x32 RGB, and peak memory of the mapped cache.

Why: issue 11 asks that any folder of images trains without giving up the whole-tensor speed. Three parts
(``--only`` picks some), each against its baseline in the same run:

  decode  a folder of generated PNGs (64x64 RGB, and 256x256 JPEGs resized to 64x64): vaekit's first use
          (headers, threaded decode into the .npy cache), a second use (list the folder, map the cache),
          and the per-image PIL loader a tutorial runs every epoch (open, convert, resize, to a tensor, as
          torchvision's ImageFolder + ToTensor do). Images per second.
  train   seconds per epoch of the same ConvVAE on a folder of 32x32 RGB PNGs: the tutorial pipeline (that
          per-image loader in a DataLoader at batch 128, Adam) against vaekit's Trainer on the cache.
          Interleaved rounds, medians.
  memory  a cache of a few GB (generated shapes-rgb images written straight into the .npy format) trained
          for one epoch by an MLP in a child process, with its resident memory sampled every 20 ms:
          anonymous memory (what the process owns) against file pages (the page cache of the mapped file,
          which the kernel can drop under pressure), against the cache's size.

Results: benchmarks/results/folders.json. Run alone (no other torch process) from the repository root:
    .venv/bin/python benchmarks/folders.py [--only decode,train,memory] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import BATCH_SIZE
from harness import (
    format_table,
    interleaved,
    medians,
    quiet,
    read_results,
    round_printer,
    speedups,
    write_results,
)
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

from vaekit.data.folder import load_folder
from vaekit.data.shapes import make_shapes

PARTS = ("decode", "train", "memory")


# ------------------------------------------------------------------------------------------- data
def write_folder(folder: Path, images: np.ndarray, suffix: str, classes: int = 4) -> list[Path]:
    """Save uint8 images [N, 3, H, W] as files in ``classes`` class folders; returns the paths."""
    paths = []
    for i, image in enumerate(images):
        path = folder / f"class_{i % classes}" / f"{i:06d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(
            path, quality=90
        ) if suffix == ".jpg" else Image.fromarray(image.transpose(1, 2, 0)).save(path)
        paths.append(path)
    return paths


def sample_shapes(n: int, size: int, seed: int) -> np.ndarray:
    """n distinct generated shapes-rgb images [n, 3, size, size] (uint8), drawn with ``seed``."""
    images, *_ = make_shapes(size, rgb=True)
    return images[np.random.default_rng(seed).choice(len(images), n, replace=False)]


def photo_like(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth colour fields with noise: JPEG-friendly stand-ins for photographs (none are at hand here)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (n, 3, 8, 8)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(low), size=(size, size), mode="bicubic")
    noisy = smooth.numpy() + rng.normal(0, 12, (n, 3, size, size))
    return np.clip(noisy, 0, 255).astype(np.uint8)


class PerImageFolder(Dataset):
    """torchvision's ImageFolder + Resize/CenterCrop + ToTensor, without torchvision: one PIL decode per
    item, every epoch."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as image:
            image = image.convert("RGB")
            if image.size != (self.size, self.size):
                image = ImageOps.fit(image, (self.size, self.size), method=Image.Resampling.LANCZOS)
            array = np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255), 0


# ----------------------------------------------------------------------------------------- decode
def time_decode(folder: Path, paths: list[Path], rounds: int) -> dict[str, list[float]]:
    """Seconds of vaekit's first and second use of ``folder`` and of one pass of the per-image loader,
    per round. Not rotated: the second use maps the cache that the first use of its round built."""
    caches: list[Path] = []  # a new cache each round, so that every first use builds one
    per_image = PerImageFolder(paths, 64)

    def first_use() -> None:
        caches.append(folder.parent / f"cache-{folder.name}-{len(caches)}")
        load_folder(folder, caches[-1], [64, 64], "rgb", progress=False, log=quiet)

    def second_use() -> None:
        mapped = load_folder(folder, caches[-1], [64, 64], "rgb", progress=False, log=quiet)
        assert len(mapped.images) == len(paths)

    def per_image_loader() -> None:
        for i in range(len(per_image)):
            per_image[i]

    contenders = {"first_use": first_use, "second_use": second_use, "per_image_loader": per_image_loader}
    return interleaved(rounds, contenders, rotate=False)


def bench_decode(tmp: Path, n_png: int, n_jpg: int, rounds: int) -> dict[str, Any]:
    """Images per second of a folder's first and second use by vaekit against the per-image loader, for
    64x64 PNGs and for 256x256 JPEGs resized to 64x64; medians of ``rounds`` rounds."""
    results = {}
    for kind, images, suffix in (
        ("png_64", sample_shapes(n_png, 64, 0), ".png"),
        ("jpeg_256_to_64", photo_like(n_jpg, 256, 1), ".jpg"),
    ):
        paths = write_folder(tmp / kind, images, suffix)
        times = time_decode(tmp / kind, paths, rounds)
        median = medians(times)
        build, reload, loader = median["first_use"], median["second_use"], median["per_image_loader"]
        speedup = speedups(median, "per_image_loader")
        n = len(paths)
        results[kind] = {
            "n_images": n,
            "first_use_s": build,
            "second_use_s": reload,
            "per_image_loader_pass_s": loader,
            "first_use_images_per_s": n / build,
            "per_image_loader_images_per_s": n / loader,
            "raw_s": times,
            "first_use_speedup": speedup["first_use"],
            "second_use_speedup": speedup["second_use"],
        }
        print(
            f"{kind}: {n:,} images; first use {build:.2f}s ({n / build:,.0f}/s), second {reload:.3f}s, "
            f"per-image loader pass {loader:.2f}s ({n / loader:,.0f}/s)"
        )
    return results


# ------------------------------------------------------------------------------------------ train
def tutorial_epoch_fn(paths: list[Path]) -> Callable[[], None]:
    """One epoch of the tutorial pipeline: the per-image loader in a DataLoader, the conv VAE, Adam."""
    from vaekit.models import build_model

    torch.manual_seed(0)
    model = build_model({"name": "conv", "image_shape": [3, 32, 32]})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(PerImageFolder(paths, 32), batch_size=BATCH_SIZE, shuffle=True)

    def tutorial_epoch() -> None:
        model.train()
        for x, _ in loader:
            objective, terms = model.loss(x)
            optimizer.zero_grad()
            objective.backward()
            optimizer.step()
            terms["loss"].item()  # the tutorial's per-step train_loss += loss.item()

    return tutorial_epoch


def bench_train(tmp: Path, n_images: int, rounds: int) -> dict[str, Any]:
    """Seconds per epoch of the conv VAE on 32x32 RGB PNGs: the tutorial pipeline against vaekit's
    Trainer on the cache; one warm-up epoch each, then ``rounds`` interleaved rounds, medians."""
    from vaekit.training import CtrlC, TrainConfig, Trainer

    folder = tmp / "rgb32"
    paths = write_folder(folder, sample_shapes(n_images, 32, 2), ".png")
    config = TrainConfig(
        dataset=f"folder:{folder}",
        data_dir=str(tmp / "cache-train"),
        model="conv",
        epochs=1,
        val_fraction=0.0,
    )
    trainer = Trainer(config, tmp / "run", progress=False, log=quiet)
    ctrl_c = CtrlC()  # only its .pressed flag (False) is read; never entered

    def vaekit_epoch() -> None:
        trainer._train_epoch(ctrl_c)
        trainer.state.step = 0

    # the same number of images on both sides
    runners = {"tutorial": tutorial_epoch_fn(paths[: trainer.n_train]), "vaekit": vaekit_epoch}
    times = interleaved(rounds, runners, warmup=True, on_round=round_printer(rounds, digits=2))
    median = medians(times)
    return {
        "n_images": trainer.n_train,
        "model": "conv 32,64 z=20, 3x32x32, batch 128",
        "median_s": median,
        "raw_times_s": times,
        "speedup": speedups(median, "tutorial")["vaekit"],
    }


# ----------------------------------------------------------------------------------------- memory
CHILD = r"""
import json, sys, threading, time
import numpy as np, torch
from vaekit.data import DATASETS, Dataset, ImageSet
from vaekit.training import TrainConfig, Trainer
from harness import quiet, timed  # on PYTHONPATH: the benchmarks folder

def status():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields

peak = {"RssAnon": 0, "RssFile": 0}
done = False
def sample():
    while not done:
        for key, value in status().items():
            peak[key] = max(peak[key], value)
        time.sleep(0.02)
baseline = status()  # torch and vaekit imported, nothing loaded yet
threading.Thread(target=sample, daemon=True).start()
path, n_train = sys.argv[1], int(sys.argv[2])
def big(data_dir):
    images = torch.from_numpy(np.load(path, mmap_mode="c"))
    labels = torch.zeros(len(images), dtype=torch.int64)
    train, test = ImageSet(images[:n_train], labels[:n_train]), ImageSet(images[n_train:], labels[n_train:])
    return Dataset("big", train, test, [])
DATASETS["big"] = big
config = TrainConfig(dataset="big", model="mlp", hidden=[64], latent_dim=8, epochs=1, batch_size=256,
                     val_fraction=0.01, fit_prior=False)
_, seconds = timed(lambda: Trainer(config, sys.argv[3], progress=False, log=quiet).run())
done = True
print(json.dumps({"peak": peak, "baseline": baseline, "seconds": seconds}))
"""


def bench_memory(tmp: Path, n_images: int) -> dict[str, Any]:
    """Peak memory of a child process training one epoch on a mapped cache of ``n_images`` images:
    anonymous memory grown against file pages, beside the cache's size."""
    images, *_ = make_shapes(64, rgb=True)
    path = tmp / "big.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n_images, *images.shape[1:]))
    for start in range(0, n_images, len(images)):  # the grid repeated to the size asked for
        out[start : start + len(images)] = images[: n_images - start]
    out.flush()
    del out, images
    size = path.stat().st_size
    n_train = n_images - n_images // 20
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(n_train), str(tmp / "big-run")],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    peak, baseline = measured["peak"], measured["baseline"]
    grown = peak["RssAnon"] - baseline["RssAnon"]
    result = {
        "n_images": n_images,
        "cache_bytes": size,
        "baseline_anonymous_bytes": baseline["RssAnon"],
        "peak_anonymous_bytes": peak["RssAnon"],
        "anonymous_growth_bytes": grown,
        "peak_file_pages_bytes": peak["RssFile"],
        "growth_over_cache": grown / size,
        "epoch_and_test_s": measured["seconds"],
    }
    print(
        f"cache {size / 2**30:.2f} GiB ({n_images:,} images 3x64x64): anonymous memory grew by "
        f"{grown / 2**30:.2f} GiB ({grown / size:.1%} of the cache; {baseline['RssAnon'] / 2**30:.2f} GiB "
        f"after imports), file pages peaked at {peak['RssFile'] / 2**30:.2f} GiB, one epoch + test "
        f"{measured['seconds']:.0f}s"
    )
    return result


def print_summary(results: dict[str, Any]) -> None:
    """The decode table and the training speed, from this run or, for parts not run, the last one."""
    if "decode" in results:
        rows = [
            [kind, f"{r['n_images']:,}", f"{r['per_image_loader_images_per_s']:,.0f}",
             f"{r['first_use_images_per_s']:,.0f}", f"{r['first_use_speedup']:.1f}x",
             f"{r['second_use_s']:.3f}", f"{r['second_use_speedup']:.0f}x"]
            for kind, r in results["decode"].items()
        ]  # fmt: skip
        header = ["folder", "images", "per-image img/s", "first use img/s", "x", "second use s", "x"]
        print(format_table(header, rows))
    if "train" in results:
        t = results["train"]
        print(
            f"32x32 RGB conv epoch over {t['n_images']:,} images: tutorial {t['median_s']['tutorial']:.2f}s, "
            f"vaekit {t['median_s']['vaekit']:.2f}s: {t['speedup']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: decode,train,memory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--png", type=int, default=6000, help="images in the decode folders")
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--memory-images", type=int, default=240_000, help="2.8 GiB at 3x64x64")
    args = parser.parse_args()
    parts = args.only.split(",")
    results = read_results("folders")  # parts not run keep their last figures
    results.update(benchmark="folders", threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory(dir=os.environ.get("VAEKIT_BENCH_TMP")) as tmp:
        if "decode" in parts:
            results["decode"] = bench_decode(Path(tmp), args.png, args.png // 3, args.rounds)
        if "train" in parts:
            results["train"] = bench_train(Path(tmp), args.train_images, args.rounds)
        if "memory" in parts:
            results["memory"] = bench_memory(Path(tmp), args.memory_images)
    path = write_results("folders", results)
    print_summary(results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
