"""Training runs: settings.py (TrainConfig, what may change on resume), run_folder.py (the folder and
its checkpoints), loop.py (the Trainer: one plain, model-agnostic loop), loggers.py (metrics, pictures,
the console line)."""

from vaekit.training.loop import PRIOR_FIT_IMAGES, CtrlC, Trainer, TrainingInterrupted, adam, resume, train
from vaekit.training.run_folder import TERMS, RunDir, default_run_dir
from vaekit.training.settings import (
    FIXED_ON_RESUME,
    MODEL_SETTINGS,
    TrainConfig,
    model_config,
    resumed_config,
)

__all__ = [
    "FIXED_ON_RESUME",
    "MODEL_SETTINGS",
    "PRIOR_FIT_IMAGES",
    "TERMS",
    "CtrlC",
    "RunDir",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "adam",
    "default_run_dir",
    "model_config",
    "resume",
    "resumed_config",
    "train",
]
