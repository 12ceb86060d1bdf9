"""Where each option of each command acts: one table, beside the parsers it describes.

Every option of every command has a row (train's are tabled by ``training/applicability.py``, which its
settings pass through): it acts wherever the command runs (``ALWAYS``), or only with another option
given (``Applies(with_option=...)``: refused here, by ``check_options``, before any work), or only on
some runs (``Applies(runs=...)``: refused where the run is read, by the code the row names).
tests/cli/test_applicability.py checks the table against the argparse definitions, so that a new option
with no row fails the suite, and refuses every conditional row where it does not apply.

The parser (``arguments.Parser``) records which options the user typed (``options_given``), so that an
option given at its default value is still an option given, and refuses a single-valued option given
twice.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from vaekit.cli.arguments import GIVEN
from vaekit.utils.errors import VaekitError


@dataclass(frozen=True)
class Applies:
    """Where an option acts: with the option ``with_option`` (a dest) given, not with ``without_option``,
    or on ``runs`` (in words, with ``checked_by``: the function that refuses it elsewhere)."""

    with_option: str | None = None
    without_option: str | None = None
    runs: str | None = None
    checked_by: str | None = None


ALWAYS = Applies()
COMMON = {"run": ALWAYS, "runs": ALWAYS, "device": ALWAYS, "data_dir": ALWAYS, "no_progress": ALWAYS}
OUT = {"out": ALWAYS, "overwrite": ALWAYS}
LABELS = "a conditional model (cvae), or a run whose fitted prior has classes"
GAUSSIAN = "Gaussian-latent runs (a mixture prior), not vqvae"
VQVAE = "vqvae runs (an autoregressive prior over codes)"
MIXTURE_OPTIONS = ("components", "classes", "target")
CODE_PRIOR_OPTIONS = ("epochs", "batch_size", "lr", "width", "depth")

OPTIONS: dict[str, dict[str, Applies]] = {
    # train's settings: training/applicability.py (the options of TrainConfig and of the parts); these
    # are the command's own
    "train": {
        "config": ALWAYS, "out": ALWAYS, "resume": ALWAYS, "print_config": ALWAYS,
        "overwrite": Applies(without_option="print_config"),
        "no_progress": Applies(without_option="print_config"),
    },
    "sample": {
        **OUT, "n": ALWAYS, "seed": ALWAYS,
        "label": Applies(runs=LABELS, checked_by="VAE.sample_classes"),
        "source": Applies(runs="fitted: runs with a fitted prior", checked_by="VAE.uses_fitted_prior"),
        "prior": ALWAYS,  # release 0.1's name of --from
        "temperature": Applies(runs="a list: a hierarchy (hvae)", checked_by="cli.sample"),
    },
    "reconstruct": {**OUT, "n": ALWAYS, "split": ALWAYS},
    "evaluate": {"split": ALWAYS, "iwae_k": ALWAYS, "samples": ALWAYS, "precision": ALWAYS, "json": ALWAYS},
    "latent": {**OUT, "n": ALWAYS, "split": ALWAYS},
    "manifold": {
        **OUT, "n": ALWAYS,
        "label": Applies(runs="a conditional model (cvae)", checked_by="evaluation.pictures.manifold"),
    },
    "interpolate": {**OUT, "start": ALWAYS, "end": ALWAYS, "steps": ALWAYS, "slerp": ALWAYS},
    "traverse": {**OUT, "index": ALWAYS, "steps": ALWAYS, "limit": ALWAYS, "dims": ALWAYS},
    "compare": {
        **OUT, "evaluate": ALWAYS,
        "iwae_k": Applies(with_option="evaluate"), "samples": Applies(with_option="evaluate"),
    },
    "train-prior": {
        "seed": ALWAYS, "overwrite": ALWAYS,
        **{name: Applies(runs=GAUSSIAN, checked_by="cli.runs") for name in MIXTURE_OPTIONS},
        **{name: Applies(runs=VQVAE, checked_by="cli.runs") for name in CODE_PRIOR_OPTIONS},
    },
    "serve": {"host": ALWAYS, "port": ALWAYS, "token": ALWAYS},
    "export": {**OUT, "format": ALWAYS},
    "encode": {**OUT, "dataset": ALWAYS, "split": ALWAYS, "batch_size": ALWAYS},
    "score": {
        **OUT, "dataset": ALWAYS, "split": ALWAYS, "k": ALWAYS, "reference": ALWAYS, "background": ALWAYS,
        "seed": ALWAYS, "json": ALWAYS, "reference_split": Applies(with_option="reference"),
    },
    "sweep": {"config": ALWAYS, "trials": ALWAYS, "out": ALWAYS, "storage": ALWAYS},
}  # fmt: skip


def options_given(args: argparse.Namespace) -> dict[str, str]:
    """The options the user typed: dest -> the option string (as the parser recorded it)."""
    return dict(getattr(args, GIVEN, {}))


def row(command: str, dest: str) -> Applies:
    """The table's row; COMMON's options act wherever a command has them."""
    rows = {**COMMON, **OPTIONS.get(command, {})}
    return rows[dest]


def check_options(args: argparse.Namespace) -> None:
    """Refuse, before any work, an option given without the option it goes with."""
    given = options_given(args)
    rows = {**COMMON, **OPTIONS[args.command]}
    for dest, typed in given.items():
        if dest not in rows:  # train's settings: training/applicability.py
            continue
        needed, excluded = rows[dest].with_option, rows[dest].without_option
        if needed is not None and needed not in given:
            raise VaekitError(f"{typed} applies only with {flag_of(args, needed)}; give both, or neither")
        if excluded is not None and excluded in given:
            raise VaekitError(f"{typed} does nothing with {given[excluded]}; give one of them")


def flag_of(args: argparse.Namespace, dest: str) -> str:
    """The long option string of ``dest`` in ``args.command``'s parser."""
    from vaekit.cli import build_parser

    return option_strings(build_parser(), args.command)[dest]


def option_strings(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """Each option of ``command``: dest -> its first long option string (a positional: its dest)."""
    sub = subparser(parser, command)
    found = {}
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        long = [s for s in action.option_strings if s.startswith("--")]
        found.setdefault(action.dest, long[0] if long else action.dest)
    return found


def subparser(parser: argparse.ArgumentParser, command: str) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)
