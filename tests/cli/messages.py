"""What a refusal may name: the options of the command that refused (or of a command it tells the user
to run, ``vaekit train --resume ...``), and it must name one of them or something the user gave (a run
folder, a file, a value). tests/conftest.py checks every refusal that ``vaekit.cli.main`` prints in
the whole suite against these rules, through ``vaekit.cli.report_error``."""

from __future__ import annotations

import argparse
import os
import re

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
MENTION = re.compile(r"\bvaekit ([a-z][a-z-]*)")


def command_options() -> dict[str, frozenset[str]]:
    """Every command's option strings (long and short), plugins' options included: built each time, as
    a test may register a part."""
    from vaekit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: frozenset(s for action in p._actions for s in action.option_strings)
        for name, p in sub.choices.items()
    }


def _typed_values(args: argparse.Namespace) -> list[str]:
    """The texts the user gave: paths, names, numbers (a message may name any of them)."""
    values: list[str] = []
    for value in vars(args).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, os.PathLike, int, float)) and not isinstance(item, bool):
                text = str(item)
                values += [text, os.path.basename(text.rstrip("/")) or text]
    return [v for v in values if len(v) >= 1]


def foreign_flags(command: str, message: str) -> list[str]:
    """The options ``message`` names that neither ``command`` nor a command it mentions has."""
    options = command_options()
    allowed = set(options.get(command, ()))
    for mentioned in MENTION.findall(message):
        allowed |= options.get(mentioned, frozenset())
    return [flag for flag in FLAG.findall(message) if flag not in allowed]


def names_something(args: argparse.Namespace, message: str) -> bool:
    """Whether ``message`` names an option of the command or something the user gave."""
    if FLAG.search(message):
        return True
    return any(value in message for value in _typed_values(args))
