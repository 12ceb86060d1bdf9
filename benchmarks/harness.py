"""The timing and results machinery every benchmark shares.

Timing: contenders (zero-argument callables, one per pipeline being compared) run in interleaved
rounds: each round calls every contender once, and the order rotates from round to round, so that a
slow spell of a shared machine, or whatever one contender leaves warm in the caches for the next,
falls on all of them alike. Each call is timed with ``time.perf_counter`` (the clock is a parameter,
so that tests can drive the harness with a fake one). The figures reported are medians over rounds,
which one disturbed round does not move, with the minimum beside them.

Results: one JSON file per benchmark in benchmarks/results/ (the folder is a parameter), written
atomically and stamped with the machine's CPU model and core count, because timings (and the last
digits of losses) differ from CPU to CPU; tables as fixed-width text for the console and as
markdown for the documents some benchmarks write.

No benchmark-specific code lives here; the tutorial baseline is in _common.py.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MACHINE_KEYS = ("cpu", "cpu_count")  # what write_results stamps on every result

T = TypeVar("T")
Clock = Callable[[], float]
RoundHook = Callable[[int, dict[str, float]], None]


def quiet(message: str) -> None:
    """A log function that prints nothing (for vaekit's Trainer and loaders, whose progress lines would
    otherwise interleave with the benchmark's own)."""


# ----------------------------------------------------------------------------------------- timing
def timed(fn: Callable[[], T], clock: Clock = time.perf_counter) -> tuple[T, float]:
    """Call ``fn`` once; return its result and the seconds it took by ``clock``."""
    start = clock()
    result = fn()
    return result, clock() - start


def round_order(names: Sequence[str], round_index: int, rotate: bool = True) -> list[str]:
    """The order in which round ``round_index`` (from 0) calls ``names``: rotated left by the round
    index, so that with n contenders each one goes first, second, ..., once every n rounds."""
    if not rotate or not names:
        return list(names)
    shift = round_index % len(names)
    return [*names[shift:], *names[:shift]]


def round_orders(names: Sequence[str], rounds: int, rotate: bool = True) -> list[list[str]]:
    """The orders of all ``rounds`` rounds, as ``interleaved`` runs them (recorded with some results)."""
    return [round_order(names, r, rotate) for r in range(rounds)]


def warm_up(
    contenders: Mapping[str, Callable[[], object]], clock: Clock = time.perf_counter
) -> dict[str, float]:
    """Call each contender once, in the order given, and return the seconds of each call.

    These calls are not part of the medians: the first one pays for lazy imports, allocator growth,
    oneDNN's kernel selection and cold file caches, which later calls do not.
    """
    return {name: timed(fn, clock)[1] for name, fn in contenders.items()}


def interleaved(
    rounds: int,
    contenders: Mapping[str, Callable[[], object]],
    *,
    warmup: bool = False,
    rotate: bool = True,
    clock: Clock = time.perf_counter,
    on_round: RoundHook | None = None,
) -> dict[str, list[float]]:
    """Time every contender once per round, for ``rounds`` rounds; return ``{name: [seconds, ...]}``.

    The order rotates from round to round (``round_order``) unless ``rotate`` is False, which is for
    contenders that depend on each other within a round (one builds a cache the next one reads).
    ``warmup`` first calls each contender once, untimed (``warm_up`` when its seconds are wanted).
    ``on_round(round_index, {name: seconds})`` is called after each round with that round's times,
    in the contenders' order (``round_printer`` makes one that prints them).
    """
    if rounds < 1 or not contenders:
        raise ValueError(f"need at least one round and one contender, got {rounds} and {len(contenders)}")
    if warmup:
        warm_up(contenders, clock)
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in round_order(names, r, rotate):
            times[name].append(timed(contenders[name], clock)[1])
        if on_round is not None:
            on_round(r, {name: times[name][-1] for name in names})
    return times


def format_seconds(
    seconds: Mapping[str, float], digits: int = 3, labels: Mapping[str, str] | None = None
) -> str:
    """One line of named timings, "a 1.234s, b 2.345s" (``labels`` renames some of the names)."""
    labels = labels or {}
    return ", ".join(f"{labels.get(name, name)} {value:.{digits}f}s" for name, value in seconds.items())


def round_printer(rounds: int, digits: int = 3) -> RoundHook:
    """An ``on_round`` hook printing "round 2/5: a 1.234s, b 2.345s" after each round, flushed at once
    so that a long benchmark shows its progress through a pipe or a log file."""

    def report(round_index: int, seconds: dict[str, float]) -> None:
        print(f"round {round_index + 1}/{rounds}: {format_seconds(seconds, digits)}", flush=True)

    return report


# ------------------------------------------------------------------------------------- statistics
def median(values: Iterable[float]) -> float:
    """The median (the mean of the middle two for an even count)."""
    return statistics.median(values)


def medians(times: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """``{name: median of its seconds}`` for the result of ``interleaved``."""
    return {name: median(values) for name, values in times.items()}


def minima(times: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """``{name: fastest of its seconds}``: what each contender does when nothing disturbs it."""
    return {name: min(values) for name, values in times.items()}


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: how far apart the rounds were, relative to the figure reported."""
    return (max(values) - min(values)) / median(values)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max, spread and count of one contender's seconds."""
    return {
        "median": median(values),
        "min": min(values),
        "max": max(values),
        "spread": spread(values),
        "n": len(values),
    }


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None for a single value) and count, e.g. over seeds."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 to 100), linearly interpolated between the two nearest ranks."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def speedups(values: Mapping[str, float], baseline: str) -> dict[str, float]:
    """``{name: values[baseline] / values[name]}``: for seconds, how many times faster than the baseline
    each contender is (the baseline's own entry is 1)."""
    return {name: values[baseline] / value for name, value in values.items()}


def ratios(values: Mapping[str, float], reference: str) -> dict[str, float]:
    """``{name: values[name] / values[reference]}``: each figure as a multiple of the reference's."""
    return {name: value / values[reference] for name, value in values.items()}


def rates(count: float, seconds: Mapping[str, float]) -> dict[str, float]:
    """``{name: count / seconds}``: e.g. images per second from seconds per epoch."""
    return {name: count / value for name, value in seconds.items()}


# ---------------------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """The processor's model name (/proc/cpuinfo on Linux; platform's guess elsewhere). Recorded with every
    result because timings, and float rounding in the last digits of losses, differ from CPU to CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU model and cores, torch's intra-op threads, the torch and
    Python versions and the architecture."""
    import torch  # here, not at the top: the harness's own tests should not pay for importing torch

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "machine": platform.machine(),
    }


def environment(*keys: str) -> dict[str, Any]:
    """The named entries of ``machine()``, in the order named: each benchmark keeps the keys its results
    have always had (README and docs figures read them)."""
    described = machine()
    unknown = set(keys) - set(described)
    if unknown:
        raise KeyError(f"unknown machine keys {sorted(unknown)}; known: {sorted(described)}")
    return {key: described[key] for key in keys}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: recorded before and after a timing benchmark, they show
    whether something else was running on the machine meanwhile."""
    return list(os.getloadavg())


def utc_now() -> str:
    """The current UTC time, to the second, in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_stamp(load_average_start: list[float]) -> dict[str, Any]:
    """The closing entries of a timing result: the load averages at the start and now, and the time."""
    return {
        "load_average_start": load_average_start,
        "load_average_end": load_average(),
        "finished": utc_now(),
    }


# ---------------------------------------------------------------------------------------- results
def results_path(name: str, results_dir: Path = RESULTS_DIR) -> Path:
    """Where the results of benchmark ``name`` are kept: <results_dir>/<name>.json."""
    return results_dir / f"{name}.json"


def read_results(name: str, results_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    """The results last written for ``name``, or {} if there are none.

    For the benchmarks made of parts (``--only``): the parts not run keep their last figures. The machine
    stamp is left out, so that writing puts this machine's at the end again.
    """
    path = results_path(name, results_dir)
    if not path.is_file():
        return {}
    previous = json.loads(path.read_text(encoding="utf-8"))
    return {key: value for key, value in previous.items() if key not in MACHINE_KEYS}


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temp file in the same folder, then os.replace, so that a
    reader (or a benchmark stopped half-way) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be read by anyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_results(name: str, results: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``results``, stamped with the CPU model and core count, to <results_dir>/<name>.json."""
    stamped = {**results, "cpu": cpu_model(), "cpu_count": os.cpu_count()}
    return write_text(results_path(name, results_dir), json.dumps(stamped, indent=2) + "\n")


def write_document(path: Path, lines: Sequence[str]) -> Path:
    """Write a markdown document from its lines, ending in exactly one newline, atomically."""
    return write_text(path, "\n".join(lines).rstrip("\n") + "\n")


# ----------------------------------------------------------------------------------------- tables
def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table: first column left-aligned, the others right-aligned (numbers)."""
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None
) -> list[str]:
    """A markdown table as lines. ``align`` has one letter per column, "l" or "r"; by default the first
    column is left-aligned and the others, the figures, right-aligned."""
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align needs one of 'l' or 'r' per column, got {align!r} for {len(header)} columns")

    def line(row: Sequence[Any]) -> str:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells under {len(header)} columns: {row}")
        return "| " + " | ".join(str(c) for c in row) + " |"

    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    return [line(header), rule, *(line(r) for r in rows)]
