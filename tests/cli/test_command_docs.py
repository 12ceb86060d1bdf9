"""Each command's page in docs/commands/ holds exactly the options its parser defines, each with its
default where it has one: an option added to a parser and not to its page (or the reverse) fails here."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from pathlib import Path

import pytest

from vaekit.cli import build_parser
from vaekit.cli.applicability import subparser
from vaekit.training import TrainConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "commands"
PAGES = {"latent": "pictures", "manifold": "pictures", "interpolate": "pictures", "traverse": "pictures"}
PARSER = build_parser()
COMMANDS = sorted(next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices)
FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def page_rows(command: str) -> dict[str, str]:
    """The option rows of ``command``'s page: each flag in a row's first cell -> the rest of the row. A
    page of several commands keeps each one's rows under its "## vaekit NAME" heading, and the rows
    before the first heading for all of them."""
    name = PAGES.get(command, command.replace("-", "_"))
    parts = re.split(r"^## vaekit ([a-z-]+)\s*$", (DOCS / f"{name}.md").read_text(), flags=re.M)
    text = parts[0] + "".join(parts[i + 1] for i in range(1, len(parts), 2) if parts[i] == command)
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            first, _, rest = line[2:].partition(" | ")
            for flag in FLAG.findall(first):  # an option in several rows (--objective): all of them
                rows[flag] = f"{rows.get(flag, '')} {rest}"
    return rows


def parser_options(command: str) -> dict[str, argparse.Action]:
    return {
        flag: action
        for action in subparser(PARSER, command)._actions
        if not isinstance(action, argparse._HelpAction) and action.help != argparse.SUPPRESS
        for flag in action.option_strings
        if flag.startswith("--")
    }


def default_of(command: str, action: argparse.Action):
    """The default a user gets: the parser's, or for train's settings TrainConfig's."""
    if command == "train" and action.default is None:
        fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
        field = fields.get(action.dest)
        return None if field is None or field.default is dataclasses.MISSING else field.default
    return action.default


def shows(rest: str, default) -> bool:
    """Whether a row's text gives ``default`` in brackets ([10000; 0 skips it], [`samples.png`], [3])."""
    for shown in re.findall(r"\[([^\]]*)\]", rest):
        shown = shown.strip("`")
        if shown.startswith(str(default)):
            return True
        number = re.match(r"[-+0-9.e]+", shown)
        try:
            if number and isinstance(default, (int, float)) and math.isclose(float(number[0]), default):
                return True
        except ValueError:
            continue
    return False


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_page_lists_exactly_its_options_with_their_defaults(command):
    rows, options = page_rows(command), parser_options(command)
    assert sorted(set(options) - set(rows)) == [], f"not on the page of vaekit {command}"
    assert sorted(set(rows) - set(options)) == [], f"on the page of vaekit {command}, not in its parser"
    for flag, action in options.items():
        default = default_of(command, action)
        if default in (None, False, True) or isinstance(action, argparse._StoreFalseAction):
            continue  # flags, and options whose default depends on the run or the model (said in words)
        if command == "train" and not isinstance(default, (int, float, str)):
            continue
        assert shows(rows[flag], default), f"vaekit {command} {flag}: its default {default!r} is not shown"
