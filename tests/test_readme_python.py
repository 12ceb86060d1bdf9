"""The README's Python examples run as written: the API tour, and the model from outside the package, which
then trains from the command line as its comment says."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from vaekit.cli import main
from vaekit.models import MODELS, unregister_model

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_shows_two_python_examples():
    blocks = python_blocks()
    assert len(blocks) == 2 and "evaluate_run" in blocks[0] and "@register_model" in blocks[1]


def test_the_api_tour_runs_and_gives_what_its_comments_say(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(python_blocks()[0], "README.md", "exec"), names)  # noqa: S102 (our own README)
    assert names["mu"].shape == (8, 2) and names["logvar"].shape == (8, 2)
    assert (
        names["images"].shape == (64, 1, 8, 8) and names["images"].min() >= 0 and names["images"].max() <= 1
    )
    assert names["nll"].shape == (8,) and torch.isfinite(names["nll"]).all()
    assert names["figures"]["test_loss"] > 0 and (tmp_path / "runs" / "digits-z2" / "eval.json").is_file()


def test_the_model_from_outside_the_package_trains_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(python_blocks()[1], "README.md", "exec"), {})  # noqa: S102 (our own README)
        assert "tiny" in MODELS
        argv = ["train", "--dataset", "digits", "--model", "tiny", "--model-option", "hidden_units=64"]
        assert main([*argv, "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")]) == 0
        assert (tmp_path / "run" / "model.safetensors").is_file()
    finally:
        if "tiny" in MODELS:
            unregister_model("tiny")
