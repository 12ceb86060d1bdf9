"""The disentanglement scores of shapes runs over their training: MIG and the FactorVAE score at every
checkpoint that ``--save-every`` kept (with the averaged weights where the run averages them, ``--ema``).

A run of ``benchmarks/shapes_hour.py`` reports its scores at the end of the hour only. Whether a longer
budget would help, or whether the score has settled (or wanders from checkpoint to checkpoint), shows
in the scores of its kept checkpoints: this scores each of them as ``vaekit evaluate`` scores the
finished run (``evaluation.runs.disentanglement_scores``: the posterior means of the test split). The
last row (checkpoints/last.pt) is the finished run's, so it repeats the hour's figures.

Writes benchmarks/results/NAME.json. Run alone (it takes a minute per run of 15 checkpoints), from
the repository root, on run folders trained with ``--save-every``:
    .venv/bin/python benchmarks/shapes_trajectory.py --name shapes_trajectory_5 RUN [RUN ...]
"""

from __future__ import annotations

from pathlib import Path

import torch
from _common import factored_test_split, run_folders_arguments, steps_trained
from harness import machine, write_results

from vaekit.evaluation.runs import disentanglement_scores
from vaekit.models.saving import model_from_checkpoint
from vaekit.training.ema import WeightAverage
from vaekit.utils.files import read_checkpoint


def checkpoint_model(path: Path, checkpoint: dict) -> torch.nn.Module:
    """The model of a checkpoint, with the moving average of its weights where the run kept one
    (``--ema``): what the run's model.safetensors holds and ``evaluate`` scores, not the trained weights."""
    model = model_from_checkpoint(checkpoint, path)
    if "ema" in checkpoint:  # the training's own average: it checks the names, then puts its weights in
        average = WeightAverage(model, decay=0.0)
        average.load_state_dict(checkpoint["ema"])
        average.copy_into_model()
    return model


def trajectory(run: Path) -> list[dict]:
    """One row per kept checkpoint (oldest first, then last.pt): its steps, MIG and FactorVAE score."""
    config, dataset, images, x = factored_test_split(run)
    rows = []
    for path in [*sorted((run / "checkpoints").glob("epoch_*.pt")), run / "checkpoints" / "last.pt"]:
        checkpoint = read_checkpoint(path)  # once: its weights, its step and its average all come from it
        model = checkpoint_model(path, checkpoint)
        scores = disentanglement_scores(model, x, None, images.factors, dataset.factor_names)
        rows.append({
            "checkpoint": path.name,
            "steps": steps_trained(config, checkpoint),
            **scores,
        })  # fmt: skip
        print(run.name, path.name, rows[-1]["steps"], f"MIG {scores['mig']:.3f}",
              f"FactorVAE {scores['factor_vae_score']:.1%}", flush=True)  # fmt: skip
    return rows


def main() -> None:
    args = run_folders_arguments(__doc__, "shapes_trajectory")
    results = {run.name: trajectory(run) for run in args.runs}
    write_results(args.name, {"machine": machine(), "runs": results}, args.results_dir)


if __name__ == "__main__":
    main()
