"""--max-time: a training budget in wall-clock seconds, checked at step boundaries, so that runs can be
compared at equal time. Each invocation (a resume too) gets the whole budget again."""

from __future__ import annotations

import math
import re
import time
from typing import Any

from vaekit.models.saving import save_model
from vaekit.training import distributed
from vaekit.utils.atomic import write_json
from vaekit.utils.errors import VaekitError


class TimeBudget:
    """``seconds`` of training from ``start()``; None: no limit."""

    def __init__(self, seconds: float | None, ranks: distributed.Ranks) -> None:
        self.seconds, self.ranks = seconds, ranks
        self.started = time.monotonic()

    def start(self) -> None:
        self.started = time.monotonic()

    def is_up(self) -> bool:
        """Whether the budget is spent (under torchrun every rank takes rank 0's answer, so that all stop
        at the same step)."""
        if self.seconds is None:
            return False
        up = time.monotonic() - self.started >= self.seconds
        return bool(distributed.broadcast(up, self.ranks)) if self.ranks.enabled else up


def save_at_time_limit(trainer: Any) -> None:
    """The budget of a ``loop.Trainer`` ran out (typed Any: loop.py imports this module). Inside an
    epoch, the checkpoint keeps the position (a resume goes on from it exactly) and the folder the model
    as it is now, which the run's end then evaluates; at an epoch's end the folder is saved already."""
    s, run_dir = trainer.state, trainer.run_dir
    where = (
        f"in epoch {s.epoch + 1} at step {s.step}/{trainer.n_batches}" if s.step else f"after epoch {s.epoch}"
    )
    trainer.log(
        f"--max-time {trainer.config.max_time:g}s reached {where}; "
        f"continue with: vaekit train --resume --out {run_dir.path}"
    )
    if s.step:
        trainer.gather_epoch_sums()
    if not trainer.ranks.main or s.step == 0:
        return
    trainer._save_checkpoint(run_dir.last_checkpoint)
    if not trainer.config.early_stopping:  # with early stopping the folder keeps the best model
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
