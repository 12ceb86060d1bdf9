"""The end of a sweep: every trial summarised, best first, in trials.md, trials.json and a
comparison report."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.evaluation.compare import compare_runs
from vaekit.evaluation.compare_report import markdown_table
from vaekit.utils.atomic import write_json, write_text
from vaekit.utils.errors import VaekitError


# ------------------------------------------------------------------------------------------ reports
def summarise(study: Any, folder: Path) -> dict[str, Any]:
    """Every trial of the study (finished, pruned, failed, running) with its parameters and figures."""
    rows = []
    for t in study.trials:
        run = folder / t.user_attrs.get("run", f"trials/{t.number:04d}")
        metrics = run / "metrics.jsonl"
        epochs = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
        last = max(t.intermediate_values) if t.intermediate_values else None
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "val_loss": t.value
                if t.value is not None
                else (t.intermediate_values[last] if last else None),
                "epochs": epochs,
                "params": t.params,
                "seconds": t.duration.total_seconds() if t.duration else None,
                "run": str(run.relative_to(folder)),
            }
        )
    done = [r for r in rows if r["state"] == "complete"]
    best = min(done, key=lambda r: r["val_loss"]) if done else None
    order = sorted(
        rows,
        key=lambda r: (r["state"] != "complete", r["val_loss"] if r["val_loss"] is not None else math.inf),
    )
    return {"study": study.study_name, "best": best, "trials": order}


def trials_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = sorted({k for r in summary["trials"] for k in r["params"]})
    header = ["trial", "state", "val loss", "epochs", *names, "seconds", "run folder"]
    rows = []
    best = summary["best"]["trial"] if summary["best"] else None
    for r in summary["trials"]:
        values = [r["params"].get(n) for n in names]
        rows.append(
            [
                f"{r['trial']}" + (" (best)" if r["trial"] == best else ""),
                r["state"],
                f"{r['val_loss']:.2f}" if r["val_loss"] is not None else "-",
                str(r["epochs"]),
                *[f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v)) for v in values],
                f"{r['seconds']:.1f}" if r["seconds"] is not None else "-",
                r["run"],
            ]
        )
    return header, rows


def write_summary(folder: Path, summary: dict[str, Any], log: Callable[[str], None]) -> None:
    header, rows = trials_table(summary)
    table = markdown_table(header, rows)
    best = summary["best"]
    if best:
        headline = (
            f"best: trial {best['trial']}, val loss {best['val_loss']:.2f}, {best['params']} ({best['run']})"
        )
    else:
        headline = "no trial has finished yet"
    write_text(folder / "trials.md", f"# Sweep {summary['study']}\n\n{headline}\n\n{table}")
    write_json(folder / "trials.json", summary)
    log(table.rstrip())
    log(headline)
    finished = [folder / r["run"] for r in summary["trials"] if r["state"] == "complete"]
    if finished:
        try:
            compare_runs(
                finished, out=folder / "comparison", overwrite=True, extra=("Sweep trials", header, rows)
            )
        except (OSError, VaekitError) as exc:  # another worker writing it at the same moment
            print(f"note: the comparison report was not written ({exc})", file=sys.stderr)
            return
        log(f"trials.md, trials.json and comparison/report.html written to {folder}")
