"""What a training step does after the loss: the backward pass, the gradient's norm (clipped, and an
update skipped where it is not finite or enormous), the optimizer's step at the scheduled learning
rate, and the weights' moving average.

Skipping is VDVAE's guard (Child 2021, sec. 5.4): one batch with a huge gradient can throw a deep VAE's
weights far off or make them NaN, and dropping that one update costs nothing. Under torchrun the
gradients are already averaged over ranks when the norm is taken, so every rank skips the same steps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from vaekit.models import VAE
from vaekit.training.ema import WeightAverage
from vaekit.training.optim import Adam, make_optimizer, scheduled_lr
from vaekit.training.settings import TrainConfig
from vaekit.utils.errors import VaekitError


class Updates:
    """The optimizer (``config.optimizer`` at ``config.lr`` on ``config.lr_schedule``), the gradient guard
    (``grad_clip``, ``skip_threshold``) and the weights' average (``ema``) of one run.

    Every decision of a step is taken on the device and nothing is read back: the guard's skip reaches
    the optimizer as a flag (the fused Adam kernel takes it; other optimizers undo a masked update), the
    average and the counts of skipped updates follow the same flag, and the loop reads the counts
    (``read_skipped``) only where it reads anything (the progress bar's refresh, the epoch's end), so
    that an accelerator never waits for the host between steps.
    """

    def __init__(self, model: VAE, config: TrainConfig, distributed_run: bool = False) -> None:
        self.config = config
        self.optimizer: Adam = make_optimizer(config.optimizer, model.parameter_groups(config.lr), config.lr)
        # the schedule scales every group from its own rate, as torch's schedulers do (a discriminator's
        # 1e-4 falls with the model's 1e-3): the config's rates, which a resumed state keeps
        self.start_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.average = WeightAverage(model, config.ema) if config.ema > 0 else None
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.guarded = config.grad_clip > 0 or config.skip_threshold > 0
        # A non-finite loss or gradient never reaches the weights, for every model: by the gradient's norm
        # where it is taken anyway, and under torchrun (the gradients are averaged there, so every rank
        # decides alike, where one rank's loss alone would not); else by the loss, one number a step.
        self.by_norm = self.guarded or distributed_run
        device = self.params[0].device
        # skipped updates and their images since the last read, and the last skipped update's norm
        self.skipped_updates = torch.zeros((), dtype=torch.int64, device=device)
        self.skipped_images = torch.zeros((), dtype=torch.int64, device=device)
        self.skipped_norm = torch.full((), math.nan, device=device)

    def read_skipped(self, state: Any, n_batches: int, last_checkpoint: Path) -> None:
        """Move the skipped updates counted on the device since the last read into ``state`` (a
        ``run_folder.TrainingState``) with their images (their losses are not in the epoch's means); the
        run stops once more than ``max_skipped`` of the epoch's ``n_batches`` updates are gone, its last
        good checkpoint kept."""
        updates = self.skipped_updates.item()
        if not updates:
            return
        images = self.skipped_images.item()
        self.skipped_updates.zero_()
        self.skipped_images.zero_()
        state.skipped += updates
        state.skipped_images += images
        cfg = self.config
        if state.skipped > cfg.max_skipped * n_batches:
            why = (
                f"gradient norm {self.skipped_norm.item():.3g}, over --skip-threshold {cfg.skip_threshold:g} "
                "or not finite"
                if self.by_norm
                else "the loss was not finite"
            )
            if last_checkpoint.is_file():
                after = f" (after epoch {state.epoch})" if state.epoch else ""
                kept = f"The last good checkpoint{after} is kept in {last_checkpoint}"
            else:  # the folder holds what a start makes, and a new start may take it (check_folder)
                kept = "No epoch was completed, so nothing was saved: the same command starts afresh"
            raise VaekitError(
                f"{state.skipped} of {state.step} updates in epoch {state.epoch + 1} were skipped "
                f"({why}), more than --max-skipped {cfg.max_skipped:g} of the epoch's {n_batches}; stopped. "
                f"{kept}; try a lower --lr"
            )

    def apply(self, objective: torch.Tensor, progress: float, images: int) -> torch.Tensor:
        """Backward and one update from a batch of ``images`` at the learning rate for ``progress``, the
        share of the run done (of its epochs; of its --max-time in a run without epochs); returns whether
        it was skipped, a bool tensor on the device (a skipped one is counted there)."""
        cfg = self.config
        for group, start in zip(self.optimizer.param_groups, self.start_lrs, strict=True):
            group["lr"] = scheduled_lr(start, cfg.lr_schedule, progress, 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()  # a non-finite loss too: its update is skipped below, its gradients dropped
        if self.by_norm:
            limit = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            norm = torch.nn.utils.clip_grad_norm_(self.params, limit)  # the norm before clipping
            skip = not_finite(norm)
            if cfg.skip_threshold > 0:
                skip = skip | (norm.double() > cfg.skip_threshold)  # as the float norm compared
            self.skipped_norm = torch.where(skip, norm.detach().float(), self.skipped_norm)
        else:
            skip = not_finite(objective.detach())
        self.optimizer.step(skip)
        if self.average is not None:
            self.average.update(~skip)
        self.skipped_updates.add_(skip)
        self.skipped_images.add_(skip, alpha=images)
        return skip

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"optimizer": self.optimizer.state_dict()}
        if self.average is not None:
            state["ema"] = self.average.state_dict()
        return state

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """The optimizer's and the average's state from ``checkpoint``; each group's learning rate stays
        the run's own (a resume may set another --lr), which ``apply`` schedules before every update."""
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        for group, start in zip(self.optimizer.param_groups, self.start_lrs, strict=True):
            group["lr"] = start
        if self.average is not None:
            if "ema" not in checkpoint:
                raise ValueError("the checkpoint has no averaged weights, though the run averages them")
            self.average.load_state_dict(checkpoint["ema"])


def not_finite(value: torch.Tensor) -> torch.Tensor:
    """Whether each element is inf or NaN, as a bool tensor on its device: value * 0 is NaN exactly there
    (two kernels a step, where ``~torch.isfinite`` launches five)."""
    return torch.isnan(value * 0)
