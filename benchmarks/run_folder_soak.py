"""A soak of one run folder's whole life: the state machine of tests/training/test_run_folder_states.py
(train, resume, kills at random moments, two trains at once, evaluate, sample, train-prior, compare,
export, encode, and damaged files), run for thousands of steps instead of the suite's dozen.

Why: the suite's few steps keep it fast; the rare interleavings (a kill inside a checkpoint's write, two
trains ending in one order or the other, damage on damage) need many more. Every step is held to the
machine's invariants. A failure is recorded with its example's steps, and the soak goes on with fresh
examples. It is not shrunk: a kill's outcome depends on timing, so replays of it disagree, and minutes
of replays would go to what one failing example already shows. The bugs it found are in docs/faults.md.

Not a timing benchmark: other work may share the machine. Subprocesses run with OMP_NUM_THREADS=1.

Results: benchmarks/results/run_folder_soak.json. Run from the repository root:
    .venv/bin/python benchmarks/run_folder_soak.py --minutes 20 [--steps 5000]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported: one core of a shared machine
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the machine lives in the test suite

from harness import machine, write_results  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis.errors import HypothesisException  # noqa: E402
from hypothesis.reporting import with_reporter  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

from tests.training import test_run_folder_states as states  # noqa: E402


class TimeUp(BaseException):
    """Raised as an example starts once the soak's time or steps are spent: a BaseException, which
    Hypothesis passes through instead of shrinking it as a failure."""


class SoakMachine(states.RunFolderMachine):
    subprocess_steps = 3  # per example: more kills and concurrent trains than the suite's one
    stop_at = float("inf")
    max_steps = 0
    examples = 0
    failing = False  # a failure was met: Hypothesis replays it before it reports, whatever the time
    failure: dict | None = None  # the error and steps of the example that failed

    @staticmethod
    def spent() -> bool:
        return time.monotonic() > SoakMachine.stop_at or sum(states.RULES.values()) >= SoakMachine.max_steps

    def __init__(self) -> None:
        if SoakMachine.spent() and not SoakMachine.failing:
            raise TimeUp
        SoakMachine.examples += 1
        super().__init__()

    def teardown(self) -> None:
        # called in the machine's finally: sys.exc_info() is the step's failure, if it failed (not
        # Hypothesis's own control flow, such as StopTest, a BaseException, or its errors)
        failure = sys.exc_info()[1]
        if isinstance(failure, Exception) and not isinstance(failure, HypothesisException):
            SoakMachine.failing = True
            SoakMachine.failure = {"error": repr(failure)[:600], "steps": list(states.STEPS)}
        super().teardown()


def soak(steps_per_example: int) -> list[dict]:
    """Hypothesis runs until TimeUp; each failure found is recorded, and a fresh run begins."""
    failures = []
    every = settings(
        max_examples=10**6, stateful_step_count=steps_per_example, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), phases=[Phase.generate],
    )  # fmt: skip
    while True:
        SoakMachine.failing, SoakMachine.failure = False, None
        report: list[str] = []
        try:
            with with_reporter(report.append):
                run_state_machine_as_test(SoakMachine, settings=every)
        except TimeUp:
            return failures
        except Exception as exc:  # a failure (or Hypothesis finding the replay of one unreliable)
            if SoakMachine.failure is None and SoakMachine.spent():
                return failures  # TimeUp in the midst of Hypothesis's own bookkeeping: no failure of ours
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:600]
            lines = [line for text in report for line in str(text).splitlines()]
            sequence = [line for line in lines if line.startswith("state")]
            failures.append({"error": error, "example": SoakMachine.failure, "printed": sequence})
            print(f"FAILURE: {error}\n  " + "\n  ".join(sequence), flush=True)


def commit() -> str:
    """The commit the soak ran at ("+" if the working tree held changes beside it: bugs are being fixed)."""
    git = ["git", "-C", str(REPO_ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    changed = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True).stdout
    return head.strip() + ("+" if changed.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="how long to run (default 20)")
    parser.add_argument("--steps", type=int, default=10**9, help="stop after this many steps instead")
    parser.add_argument("--steps-per-example", type=int, default=30, help="steps of one run folder's life")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vaekit-soak-"))
    atexit.register(shutil.rmtree, work, True)
    os.environ.setdefault("VAEKIT_DATA", str(work / "data"))
    os.chdir(work)  # a default output, if one is written, lands here
    SoakMachine.stop_at = time.monotonic() + 60 * args.minutes
    SoakMachine.max_steps = args.steps
    start, at_start = time.monotonic(), commit()  # others may commit fixes while it runs
    failures = soak(args.steps_per_example)
    minutes = (time.monotonic() - start) / 60
    steps = sum(states.RULES.values())
    print(f"{steps} steps in {SoakMachine.examples} examples, {minutes:.1f} min; rules: {dict(states.RULES)}")
    print(f"failures: {len(failures)}")
    write_results(
        "run_folder_soak",
        {"machine": machine(), "commit": at_start, "commit_at_end": commit(), "minutes": round(minutes, 1),
         "steps": steps, "examples": SoakMachine.examples, "steps_per_example": args.steps_per_example,
         "spawns_per_example": SoakMachine.subprocess_steps,
         "rules": dict(states.RULES.most_common()), "failures": failures},
    )  # fmt: skip


if __name__ == "__main__":
    main()
