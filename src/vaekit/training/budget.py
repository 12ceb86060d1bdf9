"""--max-time: a training budget in wall-clock seconds, checked at step boundaries, so that runs can be
compared at equal time.

Without --epochs the budget is the run's length: it trains until it has trained that long in all (a
resume goes on within what is left, or up to a new --max-time, the run's new total), and the learning
rate's schedule is laid over that time, not over epochs. With --epochs too, the epochs are the run's
length and its schedule's, and --max-time limits each invocation (a resume too gets the whole budget
again): training stops at whichever comes first, as the line after the first epoch forecasts.
config.json records what stopped the run (``stopped_by``) and the seconds it has trained."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

from vaekit.models.saving import save_model
from vaekit.training import distributed
from vaekit.utils.atomic import write_json
from vaekit.utils.errors import VaekitError


class TimeBudget:
    """A run's training clock. ``max_time``: seconds (None: no limit); ``whole_run``: they are the run's
    length (no --epochs), of which it trained ``trained`` seconds before this invocation (its
    checkpoint's); else they are this invocation's own."""

    def __init__(
        self, max_time: float | None, whole_run: bool, trained: float, ranks: distributed.Ranks
    ) -> None:
        self.ranks, self.before = ranks, trained
        self.total = max_time if whole_run else None  # the run's length in seconds, its schedule's span
        self.seconds = max(max_time - trained, 0.0) if self.total is not None else max_time  # this run's
        self.elapsed = 0.0  # this invocation's seconds at the last check (rank 0's, where there is a limit)
        self.started = time.monotonic()
        self.start_epochs = 0.0  # where this invocation started, in epochs, and whether it has forecast
        self.forecast_due = max_time is not None

    @classmethod
    def of(
        cls, config: Any, trained: float, ranks: distributed.Ranks, log: Callable[[str], None]
    ) -> TimeBudget:
        """The budget of a TrainConfig ``config`` for a run that has trained ``trained`` seconds; ``log``
        hears if a run without epochs has nothing left (the CLI then says what it has trained)."""
        budget = cls(config.max_time, config.epochs is None, trained, ranks)
        if budget.run_is_over:
            limit = format_duration(config.max_time)
            log(f"the run has trained its --max-time {limit} (no --epochs): a larger --max-time extends it")
        return budget

    def start(self, epochs_done: float) -> None:
        self.started, self.elapsed, self.start_epochs = time.monotonic(), 0.0, epochs_done

    @property
    def spent(self) -> float:
        """Seconds the run has trained, those of this invocation up to the last check included."""
        return self.before + self.elapsed

    @property
    def fraction(self) -> float:
        """How much of a whole run's time is spent, 0 to 1: the learning rate's schedule follows it."""
        return min(self.spent / self.total, 1.0) if self.total else 0.0

    @property
    def run_is_over(self) -> bool:
        """Whether a run without --epochs has trained its --max-time (a resume then has nothing to do)."""
        return self.total is not None and self.spent >= self.total

    def is_up(self) -> bool:
        """Whether the budget is spent (under torchrun every rank takes rank 0's clock, so that all stop
        at the same step and schedule the same learning rate)."""
        elapsed = time.monotonic() - self.started
        if self.seconds is not None and self.ranks.enabled:
            elapsed = float(distributed.broadcast(elapsed, self.ranks))
        self.elapsed = elapsed
        if self.total is not None:  # the same sum as run_is_over's, so that a resume agrees with it
            return self.spent >= self.total
        return self.seconds is not None and elapsed >= self.seconds


def stopped_by(trainer: Any) -> str | None:
    """What ended the training of a ``loop.Trainer``, as config.json records it: "epochs", "early_stopping"
    or "max_time" (this invocation's budget; in a run without epochs, the run's); None while it goes on,
    or after a signal."""
    s, epochs = trainer.state, trainer.config.epochs
    if s.step == 0 and epochs is not None and s.epoch >= epochs:
        return "epochs"
    if s.step == 0 and trainer.stopped_early:
        return "early_stopping"
    return "max_time" if trainer.out_of_time or trainer.budget.run_is_over else None


def run_progress(trainer: Any) -> float:
    """The share of a ``loop.Trainer``'s run done, which the learning rate's schedule follows: of its
    epochs, or in a run without epochs of its --max-time (rank 0's clock at the budget's last check)."""
    if trainer.config.epochs is None:
        return trainer.budget.fraction
    return trainer.epochs_done / trainer.config.epochs


def limits_line(config: Any, budget: TimeBudget) -> str | None:
    """The line that opens a run with --max-time (``config`` a TrainConfig): what will end it. Which
    limit comes first is forecast after the first epoch (``forecast_line``)."""
    if config.max_time is None:
        return None
    limit = f"--max-time {format_duration(config.max_time)}"
    if config.epochs is not None:
        return f"training until epoch {config.epochs} or {limit}, whichever comes first"
    what = f"for the {format_duration(budget.seconds)} left of {limit}" if budget.before else f"for {limit}"
    line = f"training {what} (no --epochs: the run ends when its time is up)"
    if config.lr_schedule != "constant":
        line += f"; the {config.lr_schedule} learning rate falls over that time"
    return line


def forecast_line(trainer: Any) -> str | None:
    """After the first epoch that an invocation with --max-time ends (``trainer`` a ``loop.Trainer``, on
    rank 0), at that epoch's pace, its files' writing included: which limit will end the run, and when
    (a first epoch that draws the loss curve or compiles is slower than the rest: "about")."""
    budget, config, epoch = trainer.budget, trainer.config, trainer.state.epoch
    if not budget.forecast_due or budget.seconds is None:
        return None
    budget.forecast_due = False
    elapsed = time.monotonic() - budget.started  # now, the epoch's files written: rank 0's clock
    pace = max(elapsed / (epoch - budget.start_epochs), 1e-9)  # seconds an epoch
    reach = epoch + (budget.seconds - elapsed) / pace  # the epoch at which the time is up
    at, limit = f"at {format_duration(pace)} an epoch", f"--max-time {format_duration(config.max_time)}"
    if config.epochs is None:
        line = f"{at}, {limit} ends the run at about epoch {math.floor(reach)}"
        if config.kl_warmup and reach < config.kl_warmup:
            line += f", before the KL warm-up's {config.kl_warmup} epochs are over"
        return line
    if reach >= config.epochs:
        left = format_duration((config.epochs - epoch) * pace)
        return f"{at}, the {config.epochs} epochs end the run first, in about {left} (before {limit})"
    return (
        f"{at}, {limit} ends the run first, at about epoch {math.floor(reach)} of {config.epochs} "
        "(--resume goes on from there)"
    )


def save_at_time_limit(trainer: Any) -> None:
    """The budget of a ``loop.Trainer`` ran out (typed Any: loop.py imports this module). Inside an
    epoch, the checkpoint keeps the position (a resume goes on from it exactly) and the folder the model
    as it is now, which the run's end then evaluates; at an epoch's end the folder is saved already."""
    s, run_dir, config = trainer.state, trainer.run_dir, trainer.config
    where = (
        f"in epoch {s.epoch + 1} at step {s.step}/{trainer.n_batches}" if s.step else f"after epoch {s.epoch}"
    )
    if trainer.budget.total is None:
        trainer.log(
            f"--max-time {config.max_time:g}s reached {where}; "
            f"continue with: vaekit train --resume --out {run_dir.path}"
        )
    else:
        trainer.log(
            f"--max-time {format_duration(config.max_time)} is up {where}, the run's end (no --epochs); to "
            f"train it longer: vaekit train --resume --out {run_dir.path} --max-time LONGER (the total)"
        )
    if s.step:
        trainer.gather_epoch_sums()
    if not trainer.ranks.main or s.step == 0:
        return
    trainer._save_checkpoint(run_dir.last_checkpoint)
    if not config.early_stopping:  # with early stopping the folder keeps the best model
        save_model(trainer.model, run_dir.model)
    write_json(run_dir.config, trainer.run_config())


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float) -> float:
    """Seconds from a number of seconds or a duration such as "90s", "15m", "1h30m" or "1.5h"."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    pieces = re.fullmatch(r"\s*((?:\d+(?:\.\d*)?|\.\d+)\s*[smhd]?\s*)+", str(text))
    if pieces is None:
        raise VaekitError(f"expected a duration such as 90s, 15m or 1h30m, got {text!r}")
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)", str(text))
    if len(parts) > 1 and not all(unit for _, unit in parts):
        raise VaekitError(f"expected a duration such as 90s, 15m or 1h30m, got {text!r}")
    seconds = sum(float(number) * DURATION_UNITS[unit or "s"] for number, unit in parts)
    if not math.isfinite(seconds):  # 400 nines parse as a float: infinity, no budget at all
        raise VaekitError(f"a duration of {len(str(text)):,} characters is past what a clock counts")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` as parse_duration reads them: "4.2s" under a minute, else whole seconds ("6m12s",
    "1h30m")."""
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (rest, "s")) if n) or "0s"
