"""Argument types of the ``vaekit`` command: each turns a bad value into a one-line usage error."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

from vaekit.utils.devices import DEVICES
from vaekit.utils.errors import VaekitError

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
# The reader of stdout went (vaekit ... | head): 128 + SIGPIPE, the status a shell gives `yes | head`'s yes.
EXIT_PIPE_CLOSED = 141


GIVEN = "_options_given"  # the namespace's record of the options typed: dest -> option string


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not the usage block; and the options the user typed are
    recorded (``cli.applicability.options_given``), each single-valued one refused if given twice."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        for action in self._actions:
            if action.option_strings and not isinstance(
                action, (argparse._HelpAction, argparse._VersionAction)
            ):
                action.__class__ = _recorded(type(action))
        return super().parse_known_args(args, namespace)


NOT_RECORDED = (argparse._HelpAction, argparse._VersionAction)
_RECORDED: dict[type, type] = {}


def _recorded(cls: type) -> type:
    """``cls`` (an argparse action), recording each use and refusing a second one unless it repeats."""
    if cls in _RECORDED.values():
        return cls
    if cls not in _RECORDED:

        class Recorded(cls):  # type: ignore[misc, valid-type]
            def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
                given = namespace.__dict__.setdefault(GIVEN, {})
                if self.dest in given and not getattr(self, "repeats", False):
                    before = given[self.dest]
                    also = "" if before == option else f" (as {before})"
                    raise argparse.ArgumentError(self, f"given twice{also}: give it once")
                given[self.dest] = option
                super().__call__(parser, namespace, values, option)

        Recorded.__name__ = cls.__name__
        _RECORDED[cls] = Recorded
    return _RECORDED[cls]


def int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def decoder_std(text: str) -> float | str:
    """--decoder-std: "calibrated", "learned" or a positive number."""
    return text if text in ("calibrated", "learned") else positive_float(text)


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    value = finite_float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def sizes(example: str) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        try:
            return [positive_int(part.strip()) for part in text.split(",")]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"expected sizes like {example}: {exc}") from None

    return parse


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def image_size(text: str) -> list[int]:
    from vaekit.data.folder import parse_image_size

    try:
        return parse_image_size(text)
    except VaekitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration(text: str) -> float:
    """Seconds, from 90, 90s, 15m, 1h30m (``training.settings.parse_duration``); more than 0."""
    from vaekit.training.settings import parse_duration

    try:
        seconds = parse_duration(text)
    except VaekitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return seconds


def temperatures(text: str) -> float | list[float]:
    """A positive temperature, or several separated by commas (one per latent group, from the top)."""
    values = [positive_float(part) for part in text.split(",")]
    return values[0] if len(values) == 1 else values


class ModelOption(argparse.Action):
    """``--model-option NAME=VALUE``, repeatable, into a dict: the value read as JSON where it is (3, 0.5,
    true, [32, 64], "text"), else taken as a string. A name given twice is refused."""

    repeats = True  # for different names

    def __call__(self, parser: Any, namespace: Any, text: Any, option: Any = None) -> None:
        name, sep, value = str(text).partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentError(self, f"expected NAME=VALUE, got {text!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        options = dict(getattr(namespace, self.dest, None) or {})
        if name.strip() in options:
            raise argparse.ArgumentError(self, f"{name.strip()} given twice: give it once")
        options[name.strip()] = parsed
        setattr(namespace, self.dest, options)


def add_run_command(sub: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("run", help="run folder")
    p.add_argument("--device", choices=DEVICES, default="auto")
    return p
