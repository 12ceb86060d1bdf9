"""Runs written by release 0.1.0 (tests/fixtures/release_runs/README.md) against today's code: their
config.json repeats as --config and resumes its settings, their weights load, and ``vaekit evaluate``
gives the numbers they recorded."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

import vaekit
from vaekit.cli import main
from vaekit.training import TrainConfig
from vaekit.training.config_files import config_toml, read_config_file

RUNS = sorted(p for p in (Path(__file__).parents[1] / "fixtures" / "release_runs").iterdir() if p.is_dir())


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_a_release_runs_config_still_loads_as_the_same_run(run, tmp_path):
    stored = json.loads((run / "config.json").read_text())
    from_file = TrainConfig(**read_config_file(run / "config.json"))
    from_file.validate()
    saved = TrainConfig.from_dict(stored["train"])
    saved.validate()
    assert from_file == saved and from_file.model == stored["model"]["name"]
    # in today's sections it is still the same run
    (tmp_path / "sections.toml").write_text(config_toml(from_file))
    again = TrainConfig(**read_config_file(tmp_path / "sections.toml"))
    again.validate()
    assert again == from_file


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_a_release_runs_weights_load_and_evaluate_to_its_numbers(run, tmp_path, capsys):
    model = vaekit.load(run)
    stored = json.loads((run / "config.json").read_text())["model"]
    assert model.config["name"] == stored["name"]
    # the fitted prior, saved then as model.prior (its weights "prior.*"), is model.fitted_prior now
    assert (model.fitted_prior is not None) == ("prior" in stored) and model.prior is model.fitted_prior
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    assert main(["evaluate", str(copy), "--samples", "0"]) == 0, capsys.readouterr().err
    recorded = json.loads((run / "eval.json").read_text())
    now = json.loads((copy / "eval.json").read_text())
    numbers = [
        k for k, v in recorded.items() if isinstance(v, float) and "seconds" not in k and "time" not in k
    ]
    assert "test_loss" in numbers
    for key in numbers:  # equal but for the order of float32 sums (threads, batches)
        assert math.isclose(now[key], recorded[key], rel_tol=1e-5, abs_tol=1e-6), key
