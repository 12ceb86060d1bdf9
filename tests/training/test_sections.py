"""The settings in sections (training/sections.py): every setting in one section, a file in sections is
the same run as the flat [train] table and the flags, the sections round-trip, and sweeps search by
section."""

from __future__ import annotations

from dataclasses import fields

import pytest

from vaekit.cli import main
from vaekit.sweep.spec import read_sweep_file
from vaekit.training import TrainConfig
from vaekit.training.config_files import config_toml, read_config_file
from vaekit.training.sections import SECTION_OF, SECTIONS, flatten, sectioned, sweep_key
from vaekit.utils.errors import VaekitError


def test_every_setting_is_in_exactly_one_section():
    listed = [name for names in SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(f.name for f in fields(TrainConfig)) and len(set(listed)) == len(listed)


def test_a_file_in_sections_is_the_flat_table_and_the_flags(tmp_path, capsys):
    (tmp_path / "sections.toml").write_text(
        '[data]\ndataset = "digits"\n[model]\nname = "mlp"\nlatent_dim = 3\nhidden = [16]\n'
        '[parts]\nobjective = "factorvae"\ngamma = 5.0\nbeta = 2\n[optimization]\nepochs = 2\nlr = 0.002\n'
        "[run]\nseed = 4\n"
    )
    (tmp_path / "flat.toml").write_text(
        '[train]\ndataset = "digits"\nlatent_dim = 3\nhidden = [16]\nobjective = "factorvae"\ngamma = 5.0\n'
        "beta = 2\nepochs = 2\nlr = 0.002\nseed = 4\n"
    )
    flags = ["--dataset", "digits", "--latent-dim", "3", "--hidden", "16", "--objective", "factorvae"]
    flags += ["--gamma", "5", "--beta", "2", "--epochs", "2", "--lr", "0.002", "--seed", "4"]
    printed = []
    for args in (
        ["--config", str(tmp_path / "sections.toml")],
        ["--config", str(tmp_path / "flat.toml")],
        flags,
    ):
        assert main(["train", *args, "--print-config"]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] == printed[2]
    assert '[parts]\nobjective = "factorvae"' in printed[0] and "gamma = 5.0" in printed[0]


def test_a_hierarchy_and_a_model_s_own_options_sit_in_model(tmp_path):
    settings = flatten({"model": {"name": "hvae", "width": 8, "groups": 1}, "parts": {"k": 3}})
    assert settings == {"model": "hvae", "width": 8, "groups": 1, "part_options": {"k": 3}}
    plugin = flatten({"model": {"name": "gconv", "depth": 2, "latent_dim": 4}})
    assert plugin == {"model": "gconv", "model_options": {"depth": 2}, "latent_dim": 4}
    assert sectioned({"model": "gconv", "model_options": {"depth": 2}, "lr": None}) == {
        "model": {"name": "gconv", "depth": 2}
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"model": "hvae", "width": 8, "latent_channels": 2, "objective": "iwae", "kl_balance": True},
        {"prior": "vamp", "pseudo_inputs": 4, "posterior": "iaf", "flow_steps": 1, "max_time": 60.0},
        {
            "model": "conv",
            "channels": [8, 16],
            "dataset": "shapes",
            "image_size": [16, 16],
            "precision": "bf16",
        },
    ],
)
def test_the_sections_read_back_to_the_same_validated_config(tmp_path, overrides):
    config = TrainConfig.of(**{"dataset": "digits", "epochs": 1, **overrides})
    config.validate()
    (tmp_path / "again.toml").write_text(config_toml(config))
    again = TrainConfig(**read_config_file(tmp_path / "again.toml"))
    again.validate()
    assert again == config
    assert config_toml(again) == config_toml(config)


def test_sweeps_search_every_section_by_its_names(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        '[data]\ndataset = "digits"\n[model]\nhidden = [16]\nlatent_dim = 2\n'
        '[parts]\nobjective = "factorvae"\n[optimization]\nepochs = 1\n[run]\nfit_prior = false\n'
        "[search]\noptimization.lr = [1e-4, 1e-2]\nparts.gamma = [1.0, 20.0]\n"
        '"model.likelihood" = ["bernoulli", "gaussian"]\n'
    )
    dims = {d.name: d for d in read_sweep_file(path).search}
    assert set(dims) == {"lr", "gamma", "likelihood"} and dims["lr"].log and dims["gamma"].kind == "float"
    assert sweep_key("model.depth") == ("model_options", "depth") and sweep_key("parts.gamma") == (
        "part_options",
        "gamma",
    )
    with pytest.raises(VaekitError, match="lr goes in \\[optimization\\], not \\[run\\]"):
        sweep_key("run.lr")
    path.write_text(path.read_text().replace("parts.gamma = [1.0, 20.0]", "run.lr = [0.1, 0.2]"))
    with pytest.raises(VaekitError, match="sweep.toml: \\[search\\] lr goes in \\[optimization\\]"):
        read_sweep_file(path)


def test_each_section_holds_its_own_settings():
    for name, section in SECTION_OF.items():
        if name in ("model_options", "part_options", "model"):
            continue
        others = [other for other in SECTIONS if other != section]
        assert flatten({section: {name: 1}}) == {name: 1}
        with pytest.raises(VaekitError, match=f"{name} goes in \\[{section}\\]"):
            flatten({others[0]: {name: 1}})
