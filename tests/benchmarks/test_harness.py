"""The benchmarks' shared harness (benchmarks/harness.py), on fake clocks and callables: no real timing."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

HARNESS_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "harness.py"


def load_harness():
    """benchmarks/ is a folder of scripts, not a package: load harness.py from its path."""
    spec = importlib.util.spec_from_file_location("benchmarks_harness", HARNESS_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: typing.get_type_hints looks modules up there
    spec.loader.exec_module(module)
    return module


harness = load_harness()


class FakeClock:
    """A clock that only moves when a contender says how long it took."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def contenders(clock: FakeClock, log: list[str], durations: dict[str, list[float]]) -> dict:
    """Callables that log their name and advance the clock by their next duration."""

    def make(name: str):
        steps = iter(durations[name])

        def run() -> None:
            log.append(name)
            clock.advance(next(steps))

        return run

    return {name: make(name) for name in durations}


def test_interleaved_rotates_the_order_and_times_each_call():
    clock, log = FakeClock(), []
    durations = {"a": [1.0, 2.0, 3.0, 4.0], "b": [10.0, 20.0, 30.0, 40.0], "c": [0.5] * 4}
    times = harness.interleaved(4, contenders(clock, log, durations), clock=clock)
    assert log == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert times == durations
    assert list(times) == ["a", "b", "c"]
    assert harness.round_orders(["a", "b", "c"], 4) == [log[i : i + 3] for i in range(0, 12, 3)]


def test_interleaved_without_rotation_keeps_the_order_and_warms_up_untimed():
    clock, log = FakeClock(), []
    durations = {"build": [5.0, 1.0, 2.0], "read": [7.0, 3.0, 4.0]}
    times = harness.interleaved(2, contenders(clock, log, durations), rotate=False, warmup=True, clock=clock)
    assert log == ["build", "read"] * 3  # the warm-up first, then the same order every round
    assert times == {"build": [1.0, 2.0], "read": [3.0, 4.0]}


def test_warm_up_returns_the_seconds_of_each_first_call():
    clock, log = FakeClock(), []
    runners = contenders(clock, log, {"x": [2.5], "y": [0.25]})
    assert harness.warm_up(runners, clock=clock) == {"x": 2.5, "y": 0.25}
    assert log == ["x", "y"]


def test_on_round_gets_each_round_in_the_contenders_order(capsys):
    clock, rounds = FakeClock(), []
    runners = contenders(clock, [], {"a": [1.0, 2.0], "b": [3.0, 4.0]})
    harness.interleaved(2, runners, clock=clock, on_round=lambda r, seconds: rounds.append((r, seconds)))
    assert rounds == [(0, {"a": 1.0, "b": 3.0}), (1, {"a": 2.0, "b": 4.0})]
    assert [list(s) for _, s in rounds] == [["a", "b"], ["a", "b"]]  # not the run order (b first)
    harness.round_printer(2, digits=2)(1, {"a": 2.0, "b": 4.0})
    assert capsys.readouterr().out == "round 2/2: a 2.00s, b 4.00s\n"


def test_interleaved_refuses_no_rounds_or_no_contenders():
    with pytest.raises(ValueError):
        harness.interleaved(0, {"a": lambda: None})
    with pytest.raises(ValueError):
        harness.interleaved(1, {})


def test_timed_returns_the_result_and_the_seconds():
    clock = FakeClock()

    def work() -> str:
        clock.advance(1.5)
        return "done"

    assert harness.timed(work, clock=clock) == ("done", 1.5)


def test_medians_minima_and_summary():
    times = {"a": [3.0, 1.0, 2.0], "b": [4.0, 8.0, 6.0, 2.0]}
    assert harness.medians(times) == {"a": 2.0, "b": 5.0}
    assert harness.minima(times) == {"a": 1.0, "b": 2.0}
    assert harness.summary([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "spread": 1.0, "n": 3}
    assert harness.median(x for x in (5.0, 1.0, 3.0)) == 3.0  # any iterable


def test_mean_std_and_percentile():
    assert harness.mean_std([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2**0.5), "n": 2}
    assert harness.mean_std([4.0]) == {"mean": 4.0, "std": None, "n": 1}
    values = [float(v) for v in range(1, 101)]
    assert harness.percentile(values, 50) == pytest.approx(50.5)
    assert harness.percentile(values, 99) == pytest.approx(99.01)  # linear between the ranks


def test_speedups_ratios_and_rates():
    seconds = {"tutorial": 6.0, "vaekit": 2.0, "other": 3.0}
    assert harness.speedups(seconds, "tutorial") == {"tutorial": 1.0, "vaekit": 3.0, "other": 2.0}
    assert harness.ratios(seconds, "vaekit") == {"tutorial": 3.0, "vaekit": 1.0, "other": 1.5}
    assert harness.rates(12.0, seconds) == {"tutorial": 2.0, "vaekit": 6.0, "other": 4.0}


def test_machine_and_environment_describe_this_machine():
    described = harness.machine()
    assert set(described) == {"cpu", "cpu_count", "threads", "torch_version", "python_version", "machine"}
    assert described["cpu"] and described["cpu_count"] >= 1
    env = harness.environment("torch_version", "threads")
    assert list(env) == ["torch_version", "threads"]
    with pytest.raises(KeyError):
        harness.environment("gpu")
    stamp = harness.run_stamp([0.5, 0.4, 0.3])
    assert list(stamp) == ["load_average_start", "load_average_end", "finished"]
    assert stamp["load_average_start"] == [0.5, 0.4, 0.3] and len(stamp["load_average_end"]) == 3


def test_write_results_stamps_the_machine_and_read_results_drops_it(tmp_path):
    path = harness.write_results("demo", {"benchmark": "demo", "median_s": {"a": 1.5}}, results_dir=tmp_path)
    assert path == tmp_path / "demo.json" == harness.results_path("demo", tmp_path)
    written = json.loads(path.read_text())
    assert list(written) == ["benchmark", "median_s", "cpu", "cpu_count"]
    assert written["cpu"] == harness.cpu_model()
    assert path.read_text().endswith("}\n") and oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["demo.json"]  # no temp file left behind
    assert harness.read_results("demo", tmp_path) == {"benchmark": "demo", "median_s": {"a": 1.5}}
    assert harness.read_results("absent", tmp_path) == {}


def test_write_document_ends_with_one_newline(tmp_path):
    path = harness.write_document(tmp_path / "docs" / "report.md", ["# Title", "", "text", "", ""])
    assert path.read_text() == "# Title\n\ntext\n"


def test_format_table_aligns_the_first_column_left_and_the_others_right():
    table = harness.format_table(["name", "s"], [["a", "1.5"], ["longer", 12]])
    assert table.splitlines() == ["name      s", "------  ---", "a       1.5", "longer   12"]


def test_markdown_table():
    lines = harness.markdown_table(["model", "loss", "note"], [["mlp", "1.00", ""]], align="lrl")
    assert lines == ["| model | loss | note |", "|---|---:|---|", "| mlp | 1.00 |  |"]
    assert harness.markdown_table(["a", "b"], [])[1] == "|---|---:|"  # figures right-aligned by default
    with pytest.raises(ValueError):
        harness.markdown_table(["a", "b"], [["only one"]])
    with pytest.raises(ValueError):
        harness.markdown_table(["a", "b"], [], align="lx")
