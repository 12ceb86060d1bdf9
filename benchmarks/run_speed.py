"""A whole training run, tutorial against vaekit: MLP 784-400-20, batch 128, 12,000 MNIST images.

Why: issue 13 asks that a whole 10-epoch run be at least 2x faster than the tutorial's, and that the
end-of-epoch work (validation, checkpoint, weights, metrics, pictures) stay under 10% of an epoch.

  tutorial   pytorch/examples vae/main.py step for step: per-sample Dataset + DataLoader, train(), then
             test() over the 10,000 test images and the two pictures it saves every epoch (8 test images
             over their reconstructions, 64 samples), from loading the data to the last epoch
  vaekit     Trainer(config, folder).run(): loading, every epoch's training, validation, checkpoint,
             weights, metrics and pictures, the test evaluation, and the fitted prior at the end (also
             timed without it, --no-fit-prior, which is what the tutorial does not do)

Rounds alternate the pipelines; medians. vaekit's epochs are also split into training and end-of-epoch
seconds (from metrics.jsonl's seconds and the loop's own clock). Results: benchmarks/results/run_speed.json.
Run alone (no other torch process) from the repository root:
    .venv/bin/python benchmarks/run_speed.py [--epochs 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import (
    DEFAULT_DATA_DIR,
    TutorialVAE,
    check_data_dir,
    tutorial_datasets,
    tutorial_loader,
    tutorial_optimizer,
    tutorial_test_loss,
    tutorial_train_epoch,
)
from harness import (
    format_table,
    interleaved,
    median,
    medians,
    quiet,
    round_printer,
    speedups,
    timed,
    write_results,
)

from vaekit.training import TrainConfig, Trainer
from vaekit.utils import plots

PIPELINES = ("tutorial", "vaekit", "vaekit_no_prior")


def tutorial_run(data_dir: Path, epochs: int, out: Path) -> None:
    """The tutorial's main(): load the data, then train(), test() and its two pictures every epoch."""
    train, test = tutorial_datasets(data_dir)
    train_loader, test_loader = tutorial_loader(train, True), tutorial_loader(test, False)
    torch.manual_seed(1)
    model = TutorialVAE()
    optimizer = tutorial_optimizer(model)
    for epoch in range(1, epochs + 1):
        tutorial_train_epoch(model, optimizer, train_loader)
        tutorial_test_loss(model, test_loader)
        with torch.no_grad():  # the tutorial's two save_image calls of every epoch
            data, _ = next(iter(test_loader))
            recon, _, _ = model(data[:8])
            comparison = torch.cat([data[:8], recon.view(8, 1, 28, 28)])
            plots.save_grid(comparison, out / f"reconstruction_{epoch}.png", ncol=8)
            sample = model.decode(torch.randn(64, 20)).view(64, 1, 28, 28)
            plots.save_grid(sample, out / f"sample_{epoch}.png", ncol=8)


def vaekit_run(data_dir: Path, epochs: int, out: Path, fit_prior: bool) -> dict[str, float]:
    """Trainer.run(), with the median seconds of its epochs' training and of their end-of-epoch work."""
    config = TrainConfig(dataset="mnist", data_dir=str(data_dir.parent), epochs=epochs, fit_prior=fit_prior)
    trainer = Trainer(config, out, overwrite=True, progress=False, log=quiet)
    train_seconds, end_seconds = [], []
    train_epoch, end_epoch = trainer._train_epoch, trainer._end_epoch

    def timed_train(ctrl_c: Any) -> None:
        train_seconds.append(timed(lambda: train_epoch(ctrl_c))[1])

    def timed_end() -> None:
        end_seconds.append(timed(end_epoch)[1])

    trainer._train_epoch, trainer._end_epoch = timed_train, timed_end
    trainer.run()
    return {"train_epoch_s": median(train_seconds), "end_of_epoch_s": median(end_seconds)}


def make_runners(
    data_dir: Path, epochs: int, root: Path, splits: list[dict[str, float]]
) -> dict[str, Callable[[], Any]]:
    """A whole run of each pipeline as a callable, each call into a fresh folder; the vaekit runs append
    their training / end-of-epoch split to ``splits``."""
    counter = itertools.count()

    def fresh(name: str) -> Path:
        out = root / f"{name}-{next(counter)}"
        out.mkdir()
        return out

    def vaekit(name: str, fit_prior: bool) -> Callable[[], None]:
        return lambda: splits.append(vaekit_run(data_dir, epochs, fresh(name), fit_prior))

    return {
        "tutorial": lambda: tutorial_run(data_dir, epochs, fresh("tutorial")),
        "vaekit": vaekit("vaekit", fit_prior=True),
        "vaekit_no_prior": vaekit("vaekit_no_prior", fit_prior=False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()
    check_data_dir(args.data_dir)
    splits: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        runners = make_runners(args.data_dir, args.epochs, Path(tmp), splits)
        times = interleaved(args.rounds, runners, on_round=round_printer(args.rounds, digits=2))
    median_s = medians(times)
    train_epoch = median(s["train_epoch_s"] for s in splits)
    end_epoch = median(s["end_of_epoch_s"] for s in splits)
    speedup = speedups(median_s, "tutorial")
    results = {
        "benchmark": "run_speed",
        "what": f"a whole {args.epochs}-epoch run, MLP 784-400-20, batch 128, 12,000 MNIST images, CPU",
        "epochs": args.epochs,
        "rounds": args.rounds,
        "median_s": median_s,
        "raw_s": times,
        "speedup_vs_tutorial": {k: speedup[k] for k in ("vaekit", "vaekit_no_prior")},
        "vaekit_train_epoch_s": train_epoch,
        "vaekit_end_of_epoch_s": end_epoch,
        "end_of_epoch_share": end_epoch / (train_epoch + end_epoch),
        "threads": torch.get_num_threads(),
    }
    rows = [[name, f"{median_s[name]:.2f}", f"{speedup[name]:.2f}x"] for name in PIPELINES]
    print(format_table(["pipeline", f"s / {args.epochs}-epoch run", "vs tutorial"], rows))
    print(
        f"vaekit epoch: training {train_epoch:.3f} s + end of epoch {end_epoch:.3f} s "
        f"({100 * results['end_of_epoch_share']:.1f}% of the epoch)"
    )
    print(f"results: {write_results('run_speed', results)}")


if __name__ == "__main__":
    main()
