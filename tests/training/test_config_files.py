"""vaekit train --config: TOML files and a run's own config.json, flags over the file, --print-config,
and every bad file a one-line error that leaves no run folder behind."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from vaekit.cli import main
from vaekit.training import TrainConfig
from vaekit.training.config_files import config_toml, read_config_file

TINY = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "2", "--batch-size", "64", "--no-progress"]


def printed_config(args, capsys) -> str:
    assert main(["train", *args, "--print-config"]) == 0
    return capsys.readouterr().out


def test_a_toml_file_resolves_like_the_same_flags_and_flags_override_it(tmp_path, capsys):
    exp = tmp_path / "exp.toml"
    exp.write_text('[train]\ndataset = "digits"\nhidden = [32, 16]\nlatent_dim = 3\nbeta = 4\nepochs = 2\n')
    from_file = printed_config(["--config", str(exp)], capsys)
    from_flags = printed_config(
        ["--dataset", "digits", "--hidden", "32,16", "--latent-dim", "3", "--beta", "4", "--epochs", "2"],
        capsys,
    )
    assert from_file == from_flags and "beta = 4" in from_file
    overridden = printed_config(["--config", str(exp), "--beta", "1.5", "--epochs", "5"], capsys)
    assert "beta = 1.5" in overridden and "epochs = 5" in overridden and "latent_dim = 3" in overridden


def test_printed_config_reads_back_to_the_same_config(tmp_path, capsys):
    shapes = ["--dataset", "shapes", *TINY[2:-1]]  # --no-progress does nothing with --print-config
    text = printed_config([*shapes, "--objective", "iwae", "--image-size", "24"], capsys)
    (tmp_path / "again.toml").write_text(text)
    config = TrainConfig(**read_config_file(tmp_path / "again.toml"))
    config.validate()
    assert config_toml(config) == text and config.part_options == {"k": 5} and config.image_size == [24, 24]


def test_a_runs_config_json_repeats_it_bit_for_bit(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", *TINY, "--epochs", "2", "--beta", "2", "--seed", "3", "--out", str(first)]) == 0
    assert main(["train", "--config", str(first / "config.json"), "--no-progress", "--out", str(second)]) == 0
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def metrics(run):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert metrics(first) == metrics(second) and len(metrics(first)) == 2
    assert json.loads((second / "config.json").read_text())["train"]["beta"] == 2.0
    # and the run's own file resumes it (same settings); changing a fixed one is refused
    capsys.readouterr()
    resumed = ["train", "--config", str(first / "config.json"), "--resume", "--out", str(first)]
    assert main([*resumed, "--epochs", "3", "--no-progress"]) == 0
    assert main([*resumed, "--seed", "4", "--no-progress"]) == 1
    assert "cannot change on --resume" in capsys.readouterr().err


BAD = [
    ("exp.toml", "[train]\nlatent_dims = 2\n", "unknown setting 'latent_dims' in [train]"),
    ("exp.toml", '[train]\nepochs = "ten"\n', "epochs must be an integer, got 'ten'"),
    ("exp.toml", "[train]\nepochs = 2.5\n", "epochs must be an integer, got 2.5"),
    ("exp.toml", "[train]\nhidden = [32, true]\n", "hidden must be a list of integers"),
    ("exp.toml", "[train]\naugment = 1\n", "augment must be true or false, got 1"),
    ("exp.toml", "[train]\nepochs = \n", "is not valid TOML"),
    ("exp.toml", 'dataset = "digits"\n', "dataset goes in the section [data]"),
    ("exp.toml", "[models]\nlatent_dim = 2\n", "unknown key or table 'models'"),
    ("exp.toml", "[model]\nlatent_dims = 2\n", "model mlp takes no option 'latent_dims'"),
    ("exp.toml", "[run]\nlr = 0.1\n", "lr goes in [optimization], not [run]"),
    ("exp.toml", "[model]\nmodel = 'conv'\n", "the model is `name` in [model]"),
    ("exp.toml", "[parts]\npart_options = {k = 2}\n", "part_options are written by their own names"),
    ("exp.toml", "[train]\nepochs = 1\n[data]\ndataset = 'digits'\n", "sections or in one [train] table"),
    ("exp.toml", "[optimization]\nepochs = 'ten'\n", "epochs must be an integer, got 'ten'"),
    ("exp.toml", "", "has no settings: give the sections"),
    ("run.json", '{"model": {}}', "has no 'train' object"),
    ("run.json", "{not json", "is not valid JSON"),
    ("missing.toml", None, "cannot read config file"),
    ("exp.toml", "[train]\nepochs = 0\n", "epochs must be an integer >= 1"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD)
def test_bad_config_files_are_one_line_errors_naming_the_file(tmp_path, capsys, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert str(path) in err
    assert not out.exists()
