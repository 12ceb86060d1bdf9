"""``vaekit sweep``: trials of a sweep file into a sweep folder that several workers may share."""

from __future__ import annotations

import argparse
from pathlib import Path

from vaekit.cli.arguments import positive_int
from vaekit.utils.errors import VaekitError
from vaekit.utils.targets import check_folder_for, writable


def add_sweep_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="search hyperparameters with Optuna, each trial a run folder (pip install 'vaekit[sweep]')",
        description="Run trials of a sweep file ([train] fixed settings, [search] ranges and choices) "
        "into a sweep folder; a second worker given the same --out joins the same study.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the sweep file (TOML)")
    p.add_argument("--trials", type=positive_int, required=True, help="trials this worker runs")
    p.add_argument("--out", required=True, help="sweep folder (shared by the workers of one study)")
    p.add_argument(
        "--storage",
        help="Optuna storage URL shared across machines, e.g. postgresql://... (default: DIR's journal)",
    )
    p.set_defaults(func=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from vaekit.sweep.run import run_sweep

    out = Path(args.out)  # the output policy (utils.targets): a sweep folder is joined, so it may exist
    if out.is_dir() and not writable(out):
        raise VaekitError(f"--out {out}: the folder {out} is not writable")
    if not out.exists():
        check_folder_for(out, "--out")
    run_sweep(args.config, args.out, args.trials, storage=args.storage)
    return 0
