"""The controlled-capacity objective (models/objectives/capacity.py), added as one file (issue 34): its
value against torch.distributions on the same draw, its target's rise, and a run through the generated
flags, resumed exactly."""

import json

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from tests.conftest import error_of, quiet_trainer, tiny_config
from tests.models.objectives.test_objectives import model_and_batch
from tests.training.test_options import record_loss_calls
from vaekit.cli import main
from vaekit.models.objectives.capacity import capacity, target
from vaekit.training import resume


@pytest.mark.parametrize("c", [0.0, 1.5, 40.0])
def test_the_objective_is_recon_plus_the_weighted_gap_of_the_kl_to_its_target(c):
    model, x, labels = model_and_batch("mlp")
    out = capacity(model, x, capacity_now=c, capacity_weight=7.0, generator=torch.Generator().manual_seed(0))
    mu, logvar = model.encode(x)
    q = Normal(mu, (0.5 * logvar).exp())
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    recon = -Independent(Bernoulli(logits=model.decode_logits(z)), 3).log_prob(x)
    kl = kl_divergence(q, Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(out.objective, recon.mean() + 7.0 * (kl.mean() - c).abs())
    torch.testing.assert_close(out.terms["loss"], (recon + kl).mean())  # the plain -ELBO, as ever
    torch.testing.assert_close(out.terms["kl_gap"], kl.mean() - c)
    assert out.terms["capacity"].item() == pytest.approx(c)


def test_the_target_rises_linearly_to_the_capacity_and_stays():
    options = {"capacity": 25.0, "capacity_steps": 100, "capacity_weight": 1.0}
    targets = [target(options, {"step": s})["capacity_now"] for s in (0, 40, 100, 500)]
    assert targets == [0.0, 10.0, 25.0, 25.0]


def test_a_run_takes_the_generated_flags_raises_its_target_and_resumes_exactly(tmp_path, monkeypatch, capsys):
    calls = record_loss_calls(monkeypatch)
    flags = ["--objective", "capacity", "--capacity", "5", "--capacity-steps", "15", "--capacity-weight", "2"]
    base = ["train", "--dataset", "digits", "--hidden", "16", "--latent-dim", "2", "--no-progress", *flags]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*base, "--epochs", "2", "--out", str(straight)]) == 0
    targets = [c["capacity_now"] for c in calls]
    assert targets[0] == 0.0 and targets == sorted(targets) and targets[-1] == 5.0  # 22 steps: it tops out
    assert {(c["objective"], c["capacity_weight"]) for c in calls} == {("capacity", 2.0)}
    stored = json.loads((straight / "config.json").read_text())["train"]
    assert stored["part_options"] == {"capacity": 5.0, "capacity_steps": 15, "capacity_weight": 2.0}
    assert main([*base, "--epochs", "1", "--out", str(resumed)]) == 0
    resume(resumed, epochs=2, progress=False, log=lambda line: None)
    for run in (straight, resumed):
        assert (run / "model.safetensors").is_file()
    lines = [(run / "metrics.jsonl").read_text().splitlines() for run in (straight, resumed)]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
    assert [strip(line) for line in lines[0]] == [strip(line) for line in lines[1]]
    capsys.readouterr()
    assert main(["train", "--dataset", "digits", "--capacity", "5", "--out", str(tmp_path / "no")]) == 1
    assert "--capacity applies to --objective capacity, not elbo" in capsys.readouterr().err
    message = error_of(tiny_config(objective="capacity", part_options={"capacity_steps": 0}).validate)
    assert message == "--capacity-steps must be >= 1, got 0"


def test_a_hierarchy_refuses_it_with_the_objectives_it_takes(tmp_path):
    config = tiny_config(model="hvae", hidden=None, latent_dim=None, objective="capacity")
    assert error_of(quiet_trainer, config, tmp_path / "run").endswith("not hvae (objectives: elbo, iwae)")
