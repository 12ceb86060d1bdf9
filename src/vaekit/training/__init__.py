"""Training runs.

settings.py (TrainConfig, what may change on resume), config_files.py (--config), run_folder.py (the
folder and its checkpoints), data.py (datasets placed on the device), loop.py (the Trainer: one plain,
model-agnostic loop), step.py (the KL warm-up, model.loss's options, mixed precision), updates.py (the
backward pass, the gradient guard, the optimizer step, the weights' average of ema.py), finish.py (the
test evaluation and the prior after the last epoch), interrupt.py (Ctrl-C), optim.py (Adam, Adamax,
the cosine schedule), loggers.py
(metrics, pictures, TensorBoard, the console line), tracking.py (MLflow, --mlflow), distributed.py
(torchrun), priors.py and code_prior.py (a run's fitted mixture prior, a VQ-VAE's prior over codes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.training.finish import PRIOR_FIT_IMAGES
from vaekit.training.interrupt import CtrlC, StopSignals, TrainingInterrupted
from vaekit.training.loop import Trainer
from vaekit.training.model_settings import MODEL_SETTINGS, model_config
from vaekit.training.optim import Adam
from vaekit.training.run_folder import TERMS, RunDir, default_run_dir
from vaekit.training.settings import FIXED_ON_RESUME, TrainConfig, resumed_config


def train(config: TrainConfig, out: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """Train a new run into ``out`` (default runs/<dataset>-<model>-<time>); returns the run folder."""
    out = Path(out) if out is not None else default_run_dir(config)
    Trainer(config, out, **kwargs).run()
    return out


def resume(
    out: str | os.PathLike, progress: bool | None = None, log: Callable[[str], None] = print, **changes: Any
) -> Path:
    """Continue the run in ``out`` from its last checkpoint; ``epochs=N`` extends it to N in total (a run
    without epochs: ``max_time=T``, to T seconds of training in total)."""
    Trainer(resumed_config(out, **changes), out, resume=True, progress=progress, log=log).run()
    return Path(out)


__all__ = [
    "Adam",
    "FIXED_ON_RESUME",
    "MODEL_SETTINGS",
    "PRIOR_FIT_IMAGES",
    "TERMS",
    "CtrlC",
    "StopSignals",
    "RunDir",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "default_run_dir",
    "model_config",
    "resume",
    "resumed_config",
    "train",
]
