"""Stopping training by a signal without losing work: Ctrl-C (SIGINT), and what clusters send before they
take a machine back: SIGTERM (Slurm, Kubernetes, torchrun's own shutdown, then SIGKILL after a grace
period) and SIGUSR1 (Slurm's early warning, ``--signal=USR1@90``). The loop finishes its step, saves a
checkpoint at the exact position and stops with ``TrainingInterrupted`` (``stop_interrupted``), so that
``vaekit train --resume`` goes on bit-identically. Under torchrun every rank stops at the same step
(``Trainer`` agrees on the flag at its reads: each step on CPUs, every 20 on GPUs).

Exit status: 130 for Ctrl-C, as a shell's; 128 + the signal's number for the others (143 for SIGTERM,
138 for SIGUSR1), the status of a process the signal ended, which schedulers read as preempted: Slurm
requeues such a job with ``--requeue``, Kubernetes restarts the pod, torchrun with ``--max-restarts``
starts the workers again, and they resume by themselves.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, NoReturn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class TrainingInterrupted(Exception):
    """A signal stopped training; a checkpoint at the exact position was saved. ``signal_number`` is the
    signal's (SIGINT for Ctrl-C)."""

    def __init__(self, message: str, signal_number: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signal_number = int(signal_number)

    @property
    def exit_status(self) -> int:
        """130 for Ctrl-C, else 128 + the signal's number (143 for SIGTERM)."""
        return 128 + self.signal_number


class StopSignals:
    """Turns the first SIGINT, SIGTERM or SIGUSR1 into a flag checked between steps. A second Ctrl-C
    interrupts at once (KeyboardInterrupt); a second SIGTERM too, as the grace period is running out."""

    def __init__(self) -> None:
        self.received: int | None = None  # the first signal's number
        self._previous: dict[int, Any] = {}

    @property
    def pressed(self) -> bool:
        return self.received is not None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum in (signal.SIGINT, signal.SIGTERM):
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous = {}


CtrlC = StopSignals  # the name of release 0.1


def stop_interrupted(trainer: Any, signal_number: int) -> NoReturn:
    """A stop signal (Ctrl-C, SIGTERM, SIGUSR1) reached a ``loop.Trainer`` (typed Any: loop.py imports
    this module): save the position inside the epoch (rank 0) and stop with how to resume."""
    s = trainer.state
    trainer.gather_epoch_sums()
    if trainer.ranks.main:
        trainer._save_checkpoint(trainer.run_dir.last_checkpoint)
    name = signal.Signals(signal_number).name
    how = "interrupted" if signal_number == signal.SIGINT else f"stopped by {name}"
    raise TrainingInterrupted(
        f"{how} in epoch {s.epoch + 1} at step {s.step}/{trainer.n_batches}; checkpoint "
        f"saved, continue with: vaekit train --resume --out {trainer.run_dir.path}",
        signal_number,
    )
