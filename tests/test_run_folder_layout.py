"""docs/run_folder.md's picture of a run folder is the folder's: every file that training and the commands
write is in it, and what it says every run holds, a run holds."""

from __future__ import annotations

import re
from pathlib import Path

from vaekit.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "run_folder.md"
# Entries that only some runs have (an option, a model kind, a command that writes them)
OPTIONAL = {
    "samples/prior.png", "checkpoints/epoch_NNN.pt", "tb/", "mlflow.json", "prior_metrics.jsonl",
    "latent.png", "manifold.png", "interpolation.png", "traversal.png", "groups.png",
}  # fmt: skip


def documented_entries() -> list[str]:
    """The names in the layout block: the first word(s) of each line indented by two spaces."""
    block = DOC.read_text(encoding="utf-8").split("```")[1]
    entries = []
    for line in block.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            names = re.split(r"\s{2,}", line.strip())[0]
            entries += [name.strip() for name in names.split(",")]
    return entries


def pattern(entry: str) -> re.Pattern:
    return re.compile(re.escape(entry).replace("NNN", r"\d{3}") + (".*" if entry.endswith("/") else ""))


def test_every_file_of_a_run_is_documented_and_every_documented_file_is_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--hidden", "16", "--latent-dim", "2", "--epochs", "2"]
    assert main([*args, "--save-every", "1", "--no-progress", "--out", str(run)]) == 0
    for command in (
        ["latent"],
        ["manifold", "--n", "3"],
        ["interpolate", "--from", "0", "--to", "1"],
        ["traverse"],
    ):
        assert main([command[0], str(run), *command[1:]]) == 0
    assert main(["evaluate", str(run), "--samples", "0"]) == 0
    entries = documented_entries()
    assert "config.json" in entries and "checkpoints/last.pt" in entries and "groups.png" in entries
    files = [p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()]
    undocumented = [f for f in files if not any(pattern(e).fullmatch(f) for e in entries)]
    assert not undocumented, f"files of a run that docs/run_folder.md does not show: {undocumented}"
    missing = [e for e in entries if e not in OPTIONAL and not any(pattern(e).fullmatch(f) for f in files)]
    assert not missing, f"docs/run_folder.md shows files a run does not have: {missing}"
