"""The ``vaekit`` command: each subcommand parses its options and calls library code.

arguments.py (argument types), train.py (``vaekit train``), runs.py (the commands on trained runs),
outputs.py (``vaekit encode`` and ``vaekit score``: tables for other programs), sweep.py (``vaekit sweep``).
"""

from __future__ import annotations

import argparse
import os
import select
import sys
from collections.abc import Sequence

from vaekit.cli.applicability import check_options
from vaekit.cli.arguments import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_PIPE_CLOSED, EXIT_USAGE, Parser
from vaekit.cli.outputs import add_output_commands
from vaekit.cli.runs import add_run_commands
from vaekit.cli.sweep import add_sweep_command
from vaekit.cli.train import add_train_command
from vaekit.utils.errors import VaekitError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="vaekit", description="Variational autoencoders: train, sample, evaluate.")
    from vaekit import __version__

    parser.add_argument("--version", action="version", version=f"vaekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_train_command(sub)
    add_run_commands(sub)
    add_output_commands(sub)
    add_sweep_command(sub)
    return parser


def report_error(args: argparse.Namespace, exc: BaseException) -> None:
    """The one line of a refusal (tests/cli/messages.py checks that it names what the user typed)."""
    rank = os.environ.get("RANK") if os.environ.get("WORLD_SIZE", "1") != "1" else None
    where = f" (rank {rank})" if rank is not None else ""  # under torchrun: which process failed
    print(f"vaekit {args.command}{where}: error: {exc}", file=sys.stderr)


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout not a real file
        return False


def main(argv: Sequence[str] | None = None) -> int:
    # Each line goes out as it is printed, not when a block fills: `vaekit train | tee log` shows every
    # epoch as it ends, and `| head` gets its lines (and ends the run) when they are written.
    if callable(reconfigure := getattr(sys.stdout, "reconfigure", None)):
        reconfigure(line_buffering=True)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors, --help, --version: a return code for in-process callers
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        check_options(args)
        return args.func(args)
    except BrokenPipeError as exc:
        if not stdout_closed():  # another pipe (a server's client, a child process): a real error
            report_error(args, exc)
            return EXIT_ERROR
        # The reader went (vaekit ... | head): stop quietly, as `yes | head` does. What stdout still
        # buffers goes to /dev/null, so that the interpreter's flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except (VaekitError, OSError) as exc:  # OSError: permissions, full disk: the user's to fix, not a bug
        report_error(args, exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"vaekit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
