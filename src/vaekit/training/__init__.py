"""Training runs.

settings.py (TrainConfig, what may change on resume), config_files.py (--config), run_folder.py (the
folder and its checkpoints), data.py (datasets placed on the device), loop.py (the Trainer: one plain,
model-agnostic loop), step.py (the KL warm-up, model.loss's options, mixed precision), finish.py (the
test evaluation and the prior after the last epoch), interrupt.py (Ctrl-C), optim.py (Adam), loggers.py
(metrics, pictures, TensorBoard, the console line), distributed.py (torchrun), priors.py and
code_prior.py (a run's fitted mixture prior, a VQ-VAE's prior over codes).
"""

from vaekit.training.finish import PRIOR_FIT_IMAGES
from vaekit.training.interrupt import CtrlC, TrainingInterrupted
from vaekit.training.loop import Trainer, resume, train
from vaekit.training.optim import Adam
from vaekit.training.run_folder import TERMS, RunDir, default_run_dir
from vaekit.training.settings import (
    FIXED_ON_RESUME,
    MODEL_SETTINGS,
    TrainConfig,
    model_config,
    resumed_config,
)

__all__ = [
    "Adam",
    "FIXED_ON_RESUME",
    "MODEL_SETTINGS",
    "PRIOR_FIT_IMAGES",
    "TERMS",
    "CtrlC",
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
