"""Ctrl-C during training: the loop finishes its step, saves a checkpoint at the exact position and
stops with ``TrainingInterrupted``, so that ``vaekit train --resume`` goes on as if it had never stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training; a checkpoint at the exact position was saved."""


class CtrlC:
    """Turns the first Ctrl-C into a flag checked between steps (a second one interrupts at once)."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
