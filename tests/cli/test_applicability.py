"""The table of where each option of each command acts (vaekit.cli.applicability), checked against the
argparse definitions: every option has a row and every row an option; every conditional row is refused
where it does not apply, with one line that names the option as typed; and every single-valued option
given twice is refused."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import shutil
from pathlib import Path

import pytest

from tests.conftest import assert_refused, folder_snapshot, quiet_trainer, tiny_config
from vaekit.cli import build_parser, main
from vaekit.cli.applicability import COMMON, OPTIONS, subparser
from vaekit.training import TrainConfig

PARSER = build_parser()
COMMANDS = sorted(next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices)


def _actions(command: str) -> list[argparse.Action]:
    return [a for a in subparser(PARSER, command)._actions if not isinstance(a, argparse._HelpAction)]


def test_every_option_of_every_command_has_a_row_and_every_row_an_option():
    assert sorted(OPTIONS) == COMMANDS
    for command in COMMANDS:
        dests = {a.dest for a in _actions(command)}
        if command == "train":  # the settings: training/applicability.py tables them
            settings = {f.name for f in dataclasses.fields(TrainConfig)}
            dests = {d for d in dests if d not in settings and not d.startswith("part_option:")}
        rows = set(OPTIONS[command]) | (set(COMMON) & dests)
        assert dests == rows, (command, sorted(dests ^ rows))


# (command, the option as typed, where it does not apply: the rest of the command line)
WITHOUT_COMPANION = [
    ("score", ["--reference-split", "train"], ["RUN", "--out", "OUT/s.csv"]),
    ("score", ["--reference-split", "test"], ["RUN", "--out", "OUT/s.csv"]),  # its default, typed
    ("compare", ["--iwae-k", "5"], ["RUN"]),
    ("compare", ["--samples", "0"], ["RUN", "--out", "OUT/report"]),
    ("train", ["--overwrite"], ["--dataset", "digits", "--print-config"]),
    ("train", ["--no-progress"], ["--dataset", "digits", "--print-config"]),
]


def _fill(words: list[str], run: Path, out: Path) -> list[str]:
    return [w.replace("RUN", str(run)).replace("OUT", str(out)) for w in words]


@pytest.mark.parametrize(("command", "option", "rest"), WITHOUT_COMPANION)
def test_an_option_without_the_option_it_goes_with_is_refused_before_any_work(
    command, option, rest, trained_run, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    before = folder_snapshot(tmp_path)
    code = main([command, *_fill(rest, trained_run, tmp_path), *option])
    err = capsys.readouterr().err
    assert_refused(code, err, option[0])
    assert folder_snapshot(tmp_path) == before  # nothing written, the run untouched


def test_every_companion_row_has_a_case():
    rows = {
        (command, dest)
        for command, table in OPTIONS.items()
        for dest, applies in table.items()
        if applies.with_option or applies.without_option
    }
    flags = {(c, _dest(c, o[0])) for c, o, _ in WITHOUT_COMPANION}
    assert rows == flags


def _dest(command: str, flag: str) -> str:
    return next(a.dest for a in _actions(command) if flag in a.option_strings)


@pytest.fixture(scope="module")
def vqvae_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vqvae") / "run"
    settings = dict(model="vqvae", hidden=None, latent_dim=None, channels=[4, 8], codebook_size=8, epochs=1)
    quiet_trainer(tiny_config(**settings), out).run()
    return out


# (command, the option as typed, the rest, which run): each row that acts on some runs only
ON_OTHER_RUNS = [
    ("sample", ["--label", "3"], ["RUN", "--from", "trained", "--out", "OUT/s.png"], "mlp"),
    ("sample", ["--from", "fitted"], ["RUN", "--out", "OUT/s.png"], "mlp without prior"),
    ("sample", ["--temperature", "1,0.5"], ["RUN", "--out", "OUT/s.png"], "mlp"),
    ("manifold", ["--label", "1"], ["RUN", "--out", "OUT/m.png"], "mlp"),
    *[("train-prior", [f, "2"], ["RUN"], "mlp") for f in ("--epochs", "--batch-size", "--width", "--depth")],
    ("train-prior", ["--lr", "0.1"], ["RUN"], "mlp"),
    ("train-prior", ["--components", "2"], ["RUN"], "vqvae"),
    ("train-prior", ["--classes", "no"], ["RUN"], "vqvae"),
    ("train-prior", ["--target", "aggregate"], ["RUN"], "vqvae"),
]


def test_every_run_dependent_row_has_a_case():
    rows = {(c, d) for c, table in OPTIONS.items() for d, applies in table.items() if applies.runs}
    assert rows == {(c, _dest(c, o[0])) for c, o, _, _ in ON_OTHER_RUNS}


@pytest.mark.parametrize(("command", "option", "rest", "kind"), ON_OTHER_RUNS)
def test_an_option_on_a_run_it_does_not_apply_to_is_refused(
    command, option, rest, kind, trained_run, vqvae_run, tmp_path, capsys
):
    run = {"mlp": trained_run, "vqvae": Path(shutil.copytree(vqvae_run, tmp_path / "vq"))}.get(kind)
    if kind == "mlp without prior":
        run = tmp_path / "plain"
        quiet_trainer(tiny_config(fit_prior=False, epochs=1), run).run()
    before = folder_snapshot(tmp_path)
    code = main([command, *_fill(rest, run, tmp_path), *option])
    assert_refused(code, capsys.readouterr().err, option[0])
    assert folder_snapshot(tmp_path) == before


def _once(command: str, action: argparse.Action) -> list[str] | None:
    """The option once with a value that parses (None if none of the tried ones does)."""
    if action.nargs == 0:
        return [action.option_strings[0]]
    values = [str(c) for c in action.choices or []] or ["2", "x=1", "0.5", "a"]
    for value in values:
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                PARSER.parse_args([command, *_required(command, action), action.option_strings[0], value])
        except SystemExit:
            continue
        return [action.option_strings[0], value]
    return None


def _required(command: str, but: argparse.Action) -> list[str]:
    """The command's positionals and required options (but ``but``), each with a value that parses."""
    words = []
    for action in _actions(command):
        if not action.option_strings:
            words.append("RUN")
        elif action.required and action is not but:
            words += [action.option_strings[0], "2" if action.type is not None else "x.npy"]
    return words


CASES = [
    (command, action.dest)
    for command in COMMANDS
    for action in _actions(command)
    if action.option_strings and not getattr(action, "repeats", False)
]


@pytest.mark.parametrize(("command", "dest"), CASES)
def test_a_single_valued_option_given_twice_is_refused(command, dest, capsys):
    action = next(a for a in _actions(command) if a.dest == dest and a.option_strings)
    once = _once(command, action)
    assert once is not None, f"no value of {action.option_strings} parses"
    assert main([command, *_required(command, action), *once, *once]) == 2
    err = capsys.readouterr().err.strip()
    assert "given twice" in err and "\n" not in err, err


def test_a_model_option_given_twice_for_one_name_is_refused(capsys):
    assert main(["train", "--model-option", "a=1", "--model-option", "a=2"]) == 2
    assert "--model-option: a given twice" in capsys.readouterr().err
