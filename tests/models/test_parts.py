"""The parts' registry (models/parts.py): specs, their checks, and a part from outside the package,
registered by decorator in a file of its own, trained, resumed and evaluated through the command line."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import dataclass

import pytest
import torch

from tests.conftest import error_of
from vaekit.cli import main
from vaekit.models.objectives import OBJECTIVES
from vaekit.models.parts import (
    PARTS,
    AddedModule,
    PartSpec,
    option,
    parts,
    register_objective,
    register_part,
)
from vaekit.training import TrainConfig

OUTSIDE = '''
    """An objective of one's own: the ELBO with the batch's KL kept from falling below a floor."""
    from dataclasses import dataclass

    import torch

    from vaekit.models.base import LossOutput
    from vaekit.models.objectives.elbo import draw, elbo_terms
    from vaekit.models.parts import option, register_objective


    @dataclass
    class Options:
        kl_floor: float = option(1.0, "the batch's KL counts at least this many nats", minimum=0)


    @register_objective("floored", "the ELBO with its KL floored", Options)
    def floored(model, x, labels=None, *, kl_floor=1.0, kl_weight=1.0, generator=None, noise_rows=None):
        d = draw(model, x, labels, generator, noise_rows)
        kl = torch.clamp(d.kl.mean(), min=kl_floor)
        return LossOutput(d.recon.mean() + kl_weight * kl, elbo_terms(d, floored_kl=kl))
'''


@pytest.fixture
def clean_parts():
    """Whatever a test registers is gone after it (the built-ins loaded first: they load once)."""
    before = {kind: dict(parts(kind)) for kind in PARTS}
    yield
    for kind, specs in before.items():
        PARTS[kind].clear()
        PARTS[kind].update(specs)


@pytest.fixture
def outside(tmp_path, monkeypatch, clean_parts):
    """my_objectives.py outside the package, named in VAEKIT_PLUGINS as a script's module would be."""
    (tmp_path / "my_objectives.py").write_text(textwrap.dedent(OUTSIDE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VAEKIT_PLUGINS", "my_objectives")
    monkeypatch.setattr("vaekit.utils.packages._imported_env_modules", set())
    yield tmp_path
    sys.modules.pop("my_objectives", None)


def test_an_objective_in_a_file_of_its_own_trains_resumes_and_evaluates(outside, capsys):
    run = outside / "run"
    base = ["train", "--dataset", "digits", "--hidden", "16", "--latent-dim", "2", "--no-progress"]
    flags = ["--objective", "floored", "--kl-floor", "3"]
    assert main([*base, *flags, "--epochs", "1", "--out", str(run)]) == 0
    stored = json.loads((run / "config.json").read_text())
    assert stored["train"]["part_options"] == {"kl_floor": 3.0}
    assert stored["parts"] == {"objective": {"name": "floored", "module": "my_objectives"}}  # its origin
    assert "train_floored_kl" in json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2", "--no-progress"]) == 0
    straight = outside / "straight"
    assert main([*base, *flags, "--epochs", "2", "--out", str(straight)]) == 0
    lines = [(r / "metrics.jsonl").read_text().splitlines() for r in (run, straight)]
    rows = [[{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in ls] for ls in lines]
    assert rows[0] == rows[1] and len(rows[0]) == 2  # resumed exactly
    capsys.readouterr()
    assert main(["evaluate", str(run), "--samples", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_loss"] > 0
    assert main([*base, "--kl-floor", "3", "--out", str(outside / "no")]) == 1
    assert "--kl-floor applies to --objective floored, not elbo" in capsys.readouterr().err


def test_a_run_whose_outside_objective_is_gone_names_where_it_came_from(outside, monkeypatch, capsys):
    run = outside / "run"
    args = ["train", "--dataset", "digits", "--objective", "floored", "--epochs", "1", "--no-progress"]
    assert main([*args, "--out", str(run)]) == 0
    PARTS["objective"].pop("floored")
    monkeypatch.delenv("VAEKIT_PLUGINS")
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2"]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "the objective 'floored' is not installed: it came from no package (module my_objectives); "
            "name my_objectives in VAEKIT_PLUGINS"
        )
    )


@dataclass
class Weights:
    gamma: float = option(2.0, "another gamma")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: register_objective("Bad Name", "x")(lambda model, x: None), "lower case letters"),
        (lambda: register_part(PartSpec("sampler", "x", "x")), "a part is a prior, posterior, objective"),
        (lambda: register_objective("x", "x", requires=("a gpu",))(lambda model, x: None), "not among"),
        (lambda: register_objective("x", "x", options=dict)(lambda model, x: None), "must be a dataclass"),
        (lambda: register_objective("elbo", "mine")(lambda model, x: None), "'elbo' of tests.models"),
        (lambda: register_objective("x", "x", Weights)(lambda model, x: None), "option 'gamma' is the"),
    ],
)
def test_bad_parts_are_one_line_errors(make, message, clean_parts):
    assert message in error_of(make)


def test_the_views_read_the_registry_when_used(clean_parts):
    assert "later" not in OBJECTIVES

    @register_objective("later", "registered after the view was made")
    def later(model, x, labels=None, *, generator=None, noise_rows=None):
        raise AssertionError

    assert OBJECTIVES["later"] is later and "later" in parts("objective")


ADDS = '''
    """An objective of one's own that adds a trainable module to the model: the KL weighted by a learned
    gate, trained at its own rate."""
    from dataclasses import dataclass

    import torch
    from torch import nn

    from vaekit.models.base import LossOutput
    from vaekit.models.objectives.elbo import draw, elbo_terms
    from vaekit.models.parts import AddedModule, option, register_objective


    class Gate(nn.Module):
        def __init__(self, start):
            super().__init__()
            self.value = nn.Parameter(torch.tensor(float(start)))


    @dataclass
    class Options:
        gate_start: float = option(0.5, "the gate's first value")


    @register_objective(
        "gated", "the ELBO with a learned gate on the KL", Options,
        model_config=lambda options: {"kl_gate": options["gate_start"]},
        adds=AddedModule("kl_gate", "gate", lambda model, start: Gate(start), optimizer={"lr": 0.05}),
    )
    def gated(model, x, labels=None, *, kl_weight=1.0, generator=None, noise_rows=None):
        d = draw(model, x, labels, generator, noise_rows)
        gate = torch.sigmoid(model.gate.value)
        return LossOutput(d.recon.mean() + kl_weight * (1 + gate) * d.kl.mean(), elbo_terms(d, gate=gate))
'''


@pytest.mark.parametrize(
    "model",
    [
        ["--hidden", "16", "--latent-dim", "2"],
        ["--model", "hvae", "--width", "8", "--lr-schedule", "constant"],
    ],
)
def test_an_outside_objective_adds_its_module_to_any_model_it_applies_to(
    tmp_path, monkeypatch, clean_parts, model
):
    from safetensors.torch import load_file

    import vaekit

    (tmp_path / "gated_objective.py").write_text(textwrap.dedent(ADDS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VAEKIT_PLUGINS", "gated_objective")
    monkeypatch.setattr("vaekit.utils.packages._imported_env_modules", set())
    try:
        base = ["train", "--dataset", "digits", *model, "--objective", "gated", "--no-progress"]
        run, straight = tmp_path / "run", tmp_path / "straight"
        assert main([*base, "--gate-start", "0.25", "--epochs", "1", "--out", str(run)]) == 0
        assert json.loads((run / "config.json").read_text())["model"]["kl_gate"] == 0.25
        weights = load_file(run / "model.safetensors")
        assert weights["gate.value"].item() != 0.25  # trained, and saved under the attribute's name
        loaded = vaekit.load(run)
        groups = loaded.parameter_groups(1e-3)
        assert [g["lr"] for g in groups][-1] == 0.05 and groups[-1]["params"] == [loaded.gate.value]
        assert main(["train", "--resume", "--out", str(run), "--epochs", "2", "--no-progress"]) == 0
        assert main([*base, "--gate-start", "0.25", "--epochs", "2", "--out", str(straight)]) == 0
        a, b = load_file(run / "model.safetensors"), load_file(straight / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)  # resumed exactly, the gate's own group included
    finally:
        sys.modules.pop("gated_objective", None)


def test_the_entry_of_a_module_a_part_adds_is_refused_as_a_model_option_naming_what_sets_it(clean_parts):
    @dataclass
    class Options:
        gate_start: float = option(0.5, "the gate's first value")

    def gate(model, start):
        return torch.nn.Linear(1, 1)

    def elbo_like(model, x, labels=None, *, generator=None, noise_rows=None):
        raise AssertionError  # never trained here

    register_objective(
        "gated", "a gate set by an option", Options,
        adds=AddedModule("kl_gate", "gate", gate, option="gate_start"),
    )(elbo_like)  # fmt: skip
    register_objective("fixed-gate", "a gate no option sets", adds=AddedModule("fixed_gate", "gate", gate))(
        elbo_like
    )

    def refusal(entry):
        return error_of(TrainConfig(dataset="digits", model="mlp", model_options={entry: 1}).validate)

    assert refusal("kl_gate") == "model option 'kl_gate' is set by --gate-start, not as a model option"
    assert (
        refusal("fixed_gate")
        == "model option 'fixed_gate' is set by --objective fixed-gate, not as a model option"
    )
    assert (
        refusal("prior_adversary")
        == "model option 'prior_adversary' is set by --adversary, not as a model option"
    )
