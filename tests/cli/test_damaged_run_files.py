"""Every file a command reads from a run folder, missing, empty, cut short and garbled, through every
command that reads it: a one-line error that names the file (exit 1) and a folder left as it was, or,
where the file is derived or optional, the command doing its work (eval.json is output: evaluate
replaces a damaged one; metrics.jsonl is rewritten from the checkpoint on resume). Never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import folder_snapshot
from vaekit.cli import main

DAMAGES = ("missing", "empty", "cut short", "garbled")


def damage(path: Path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "cut short":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # every 7th byte changed, the length kept
        data = bytearray(path.read_bytes())
        for i in range(0, len(data), 7):
            data[i] ^= 0xA5
        path.write_bytes(bytes(data))


def commands(run: Path, out: Path) -> dict[str, list[str]]:
    return {
        "evaluate": ["evaluate", run, "--samples", "0"],
        "sample": ["sample", run, "--out", out / "s.png"],
        "reconstruct": ["reconstruct", run, "--n", "4", "--out", out / "r.png"],
        "latent": ["latent", run, "--n", "50", "--out", out / "l.png"],
        "manifold": ["manifold", run, "--n", "3", "--out", out / "m.png"],
        "traverse": ["traverse", run, "--steps", "3", "--out", out / "t.png"],
        "encode": ["encode", run, "--split", "test", "--out", out / "z.csv"],
        "score": ["score", run, "--split", "test", "--k", "2", "--out", out / "scores.csv"],
        "compare": ["compare", run, "--out", out / "cmp"],
        "train-prior": ["train-prior", run, "--overwrite", "--components", "2"],
        "export": ["export", run, "--out", out / "onnx"],
        "resume": ["train", "--resume", "--out", run, "--epochs", "3", "--no-progress"],
    }


EVERY = tuple(commands(Path(), Path()))
# file -> the commands that read it
READERS = {
    "config.json": EVERY,
    "model.safetensors": EVERY,
    "checksums.json": EVERY,
    "checkpoints/last.pt": ("resume", "evaluate"),
    "eval.json": ("evaluate", "compare", "resume"),
    "metrics.jsonl": ("compare", "resume"),
}


def expected_failure(file: str, how: str, command: str) -> bool:
    """Whether the command must refuse (exit 1, naming the file) rather than do its work."""
    if file == "config.json":
        return True
    if file == "model.safetensors":
        return command != "resume"  # the checkpoint holds the weights: resume writes the file anew
    if file == "checksums.json":
        return how != "missing"  # a run without the record is read unchecked, as older runs are
    if file == "checkpoints/last.pt":
        return command == "resume"
    if file == "eval.json":
        return how != "missing" and command == "compare"
    return how != "missing" and how != "empty" and command == "compare"  # metrics.jsonl


CASES = [(file, how, command) for file, readers in READERS.items() for how in DAMAGES for command in readers]


@pytest.fixture(scope="module")
def template(trained_run_template, tmp_path_factory) -> Path:
    """The tiny digits run with a record of per-run files, and with a checksums.json to damage."""
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(trained_run_template, run)
    assert main(["evaluate", str(run), "--samples", "0"]) == 0  # eval.json with its figures
    return run


@pytest.mark.parametrize("file, how, command", CASES, ids=["-".join(case) for case in CASES])
def test_a_damaged_run_file_is_named_in_one_line_or_rebuilt(file, how, command, template, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "out"
    shutil.copytree(template, run)
    out.mkdir()
    damage(run / file, how)
    before = folder_snapshot(run)
    capsys.readouterr()
    code = main([str(part) for part in commands(run, out)[command]])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if expected_failure(file, how, command):
        line = err.strip()
        assert code == 1 and "\n" not in line and Path(file).name in line, err
        assert folder_snapshot(run) == before  # nothing of the run touched
        assert not any(out.iterdir())  # nothing written
    else:
        assert code == 0, err
        if file == "eval.json" and command == "evaluate":  # output: replaced by this evaluation
            assert "test_loss" in json.loads((run / "eval.json").read_text())
        if file == "metrics.jsonl" and command == "resume":  # rewritten from the checkpoint
            assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
