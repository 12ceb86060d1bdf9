"""What a step does after the loss (training/updates.py, ema.py, optim.py's Adamax and schedule): the
numbers against torch's own, skipped updates, the weights' average, the hvae's defaults and refusals,
and exact resume inside a cosine schedule."""

import json
import math

import pytest
import torch

from tests.conftest import quiet_trainer, tiny_config
from vaekit import load
from vaekit.models import build_model
from vaekit.training.ema import WeightAverage
from vaekit.training.optim import Adamax, scheduled_lr
from vaekit.utils.errors import VaekitError

HVAE = {"model": "hvae", "hidden": None, "latent_dim": None, "width": 8, "latent_channels": 2, "groups": 1,
        "stem": 1}  # fmt: skip


def test_adamax_matches_torch_optim_adamax_and_its_state_moves_between_them():
    config = {"name": "mlp", "image_shape": [1, 8, 8], "latent_dim": 2, "hidden": [16]}
    torch.manual_seed(0)
    a, b = build_model(config), build_model(config)
    b.load_state_dict(a.state_dict())
    ours, theirs = Adamax(a.parameters(), lr=5e-3), torch.optim.Adamax(b.parameters(), lr=5e-3)
    for i in range(5):
        x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(i))
        for model, optimizer in ((a, ours), (b, theirs)):
            torch.manual_seed(100 + i)
            optimizer.zero_grad()
            model.loss(x).objective.backward()
            optimizer.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    moved = torch.optim.Adamax(a.parameters(), lr=5e-3)
    moved.load_state_dict(ours.state_dict())  # our state in torch's layout
    assert set(moved.state_dict()["state"][0]) == {"step", "exp_avg", "exp_inf"}


def test_cosine_schedule_falls_from_lr_to_zero():
    assert scheduled_lr(0.01, "constant", 3.0, 10) == 0.01
    assert scheduled_lr(0.01, "cosine", 0.0, 10) == pytest.approx(0.01)
    assert scheduled_lr(0.01, "cosine", 5.0, 10) == pytest.approx(0.005)
    assert scheduled_lr(0.01, "cosine", 10.0, 10) == pytest.approx(0.0, abs=1e-12)
    assert scheduled_lr(0.01, "cosine", 2.5, 10) == pytest.approx(0.01 * (1 + math.cos(math.pi / 4)) / 2)


def test_the_average_warms_up_and_is_swapped_in_and_out():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, 0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update()  # d_0 = min(0.9, 1/10) = 0.1: mostly the new weights already
    torch.testing.assert_close(average.average[0], 0.1 * start + 0.9 * model.weight.detach())
    trained = model.weight.detach().clone()
    with average.applied():
        torch.testing.assert_close(model.weight.detach(), average.average[0])
    torch.testing.assert_close(model.weight.detach(), trained)


def test_the_hvae_trains_with_its_own_defaults_and_others_keep_theirs(tmp_path):
    config = tiny_config(**HVAE)
    config.validate()
    assert (config.optimizer, config.lr, config.lr_schedule, config.ema) == (
        "adamax",
        1.2e-2,
        "cosine",
        0.0,
    )
    assert config.kl_balance and config.grad_clip == 200 and config.skip_threshold == 1000
    plain = tiny_config()
    plain.validate()
    assert (plain.optimizer, plain.lr, plain.lr_schedule, plain.ema, plain.kl_warmup) == (
        "adam",
        1e-3,
        "constant",
        0.0,
        0,
    )
    on_iwae = tiny_config(**HVAE, objective="iwae")  # the KL term's defaults are the elbo's
    on_iwae.validate()
    assert (on_iwae.kl_warmup, on_iwae.kl_balance, on_iwae.optimizer) == (0, False, "adamax")
    mine = tiny_config(**HVAE, lr=1e-3, ema=0.999, optimizer="adam")
    mine.validate()
    assert (mine.lr, mine.ema, mine.optimizer) == (1e-3, 0.999, "adam")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {**HVAE, "prior": "vamp"},
            r"--prior vamp applies to the one-latent Gaussian models \(conv, cvae, mlp\), not hvae",
        ),
        ({**HVAE, "posterior": "iaf"}, "--posterior iaf applies to the one-latent Gaussian models"),
        (
            {**HVAE, "objective": "btcvae"},
            "--objective btcvae applies to .*, not hvae \\(objectives: elbo, iwae\\)",
        ),
        ({**HVAE, "free_bits": 0.5}, "--free-bits applies to the one-latent Gaussian models"),
        ({**HVAE, "groups": 0}, "groups must be an integer >= 1"),
        ({**HVAE, "latent_channels": -2}, "latent_channels must be an integer >= 1"),
        ({**HVAE, "scales": 4}, "scales .* halve a 8x8 image below one pixel"),
        ({**HVAE, "latent_dim": 20}, "latent_dim is the top group's size"),
        ({"kl_balance": True}, r"--kl-balance applies to the hierarchies \(hvae\), not mlp"),
        ({"scales": 2}, "--scales does not apply to model mlp"),
        ({"width": 32}, "--width does not apply to model mlp"),
        ({"optimizer": "sgd"}, "unknown optimizer 'sgd'"),
        ({"lr_schedule": "step"}, "unknown lr schedule 'step'"),
        ({"ema": 1.0}, "ema must be a number in \\[0, 1\\)"),
        ({"max_skipped": -0.1}, "max-skipped must be a number in \\[0, 1\\)"),
        ({"grad_clip": float("nan")}, "grad clip must be a finite number >= 0"),
    ],
)
def test_hierarchy_options_that_do_not_apply_are_refused_before_anything_is_written(
    tmp_path, overrides, message
):
    with pytest.raises(VaekitError, match=message):
        quiet_trainer(tiny_config(**overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def poison_steps(monkeypatch, steps):
    """Make the loss of the given training steps NaN (counted across the run, from 0)."""
    from vaekit.training import loop

    original = loop.Trainer.step
    seen = {"n": 0}

    def step(self, index):
        poisoned = seen["n"] in steps
        seen["n"] += 1
        if poisoned:
            loss_of = self.loss_of
            self.loss_of = lambda x, y, options: (lambda out: type(out)(out.objective * math.nan, out.terms))(
                loss_of(x, y, options)
            )
            try:
                return original(self, index)
            finally:
                self.loss_of = loss_of
        return original(self, index)

    monkeypatch.setattr(loop.Trainer, "step", step)


def test_a_nan_update_is_skipped_counted_and_the_run_goes_on(tmp_path, monkeypatch):
    poison_steps(monkeypatch, {3})
    config = tiny_config(model="mlp", hidden=[16], epochs=2, grad_clip=100.0, max_skipped=0.2)
    quiet_trainer(config, tmp_path / "run").run()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["skipped_updates"] == 1 and "skipped_updates" not in records[1]
    assert all(math.isfinite(r["train_loss"]) for r in records)
    weights = load(tmp_path / "run").state_dict()
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_without_the_guard_the_same_nan_is_skipped_by_its_loss(tmp_path, monkeypatch):
    """Every model skips a non-finite update (issue 24): without clipping or a threshold, the loss tells."""
    poison_steps(monkeypatch, {3})
    quiet_trainer(tiny_config(model="mlp", hidden=[16], epochs=2), tmp_path / "run").run()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["skipped_updates"] == 1 and all(math.isfinite(r["train_loss"]) for r in records)
    assert all(torch.isfinite(w).all() for w in load(tmp_path / "run").state_dict().values())


def test_too_many_skipped_updates_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch):
    # digits at batch 64: 21 steps an epoch; epoch 2's first steps all blow up
    poison_steps(monkeypatch, set(range(21, 42)))
    config = tiny_config(model="mlp", hidden=[16], epochs=3, skip_threshold=1e6, max_skipped=0.1)
    run = tmp_path / "run"
    with pytest.raises(
        VaekitError, match=r"3 of 3 updates in epoch 2 were skipped .* more than --max-skipped"
    ):
        quiet_trainer(config, run).run()
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == 0


def test_an_hvae_run_resumes_exactly_inside_its_cosine_schedule(tmp_path):
    """Stopped after its first epoch (of 3) and resumed: the same weights, averages and metrics as a
    run that never stopped; the schedule and the average carry over."""

    class Stop(Exception):
        pass

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Stop

    config = lambda: tiny_config(**HVAE, epochs=3, ema=0.999)  # noqa: E731
    quiet_trainer(config(), tmp_path / "straight").run()
    with pytest.raises(Stop):
        quiet_trainer(config(), tmp_path / "resumed", on_epoch=stop_after_first).run()
    quiet_trainer(config(), tmp_path / "resumed", resume=True).run()
    straight, resumed = (load(tmp_path / run).state_dict() for run in ("straight", "resumed"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    lines = [(tmp_path / run / "metrics.jsonl").read_text().splitlines() for run in ("straight", "resumed")]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
    assert [strip(line) for line in lines[0]] == [strip(line) for line in lines[1]]
    # the saved model is the average, not the trained weights the checkpoint holds
    checkpoint = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=False)
    assert not all(torch.equal(checkpoint["model"][k], straight[k]) for k in checkpoint["ema"]["weights"])
    assert all(
        torch.equal(checkpoint["ema"]["weights"][k], straight[k]) for k in checkpoint["ema"]["weights"]
    )


def test_a_skipped_update_leaves_the_average_and_its_count_alone():
    model = torch.nn.Linear(3, 2)
    average, reference = WeightAverage(model, 0.9), WeightAverage(model, 0.9)
    for applied in (True, False, True, False, False, True):
        with torch.no_grad():
            model.weight.add_(torch.randn(2, 3))
        average.update(torch.tensor(applied))
        if applied:  # the reference sees only the updates that were applied
            reference.update()
        assert all(torch.equal(a, r) for a, r in zip(average.average, reference.average, strict=True))
    assert average.updates == reference.updates == 3


def trained_with_poison(tmp_path, monkeypatch, name, steps, reads_every_step, **settings):
    """A run whose given steps have a NaN loss, reading the device's counts each step (a CPU) or at the
    progress bar's refresh (an accelerator's cadence)."""
    poison_steps(monkeypatch, steps)
    trainer = quiet_trainer(tiny_config(model="mlp", hidden=[16], **settings), tmp_path / name)
    trainer.reads_every_step = reads_every_step
    return trainer


def test_read_at_an_accelerators_cadence_the_skipped_updates_count_the_same(tmp_path, monkeypatch):
    """Issue 33: the skip is decided and counted on the device; read every 20 steps instead of every
    step, the run is the same bit for bit."""
    runs = {}
    for reads_every_step in (True, False):
        name = f"reads_every_step={reads_every_step}"
        trained_with_poison(tmp_path, monkeypatch, name, {3, 25}, reads_every_step, epochs=2, grad_clip=100.0,
                            max_skipped=0.2).run()  # fmt: skip
        monkeypatch.undo()  # the next run counts its steps from 0
        runs[reads_every_step] = tmp_path / name
    records = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
               for run in runs.values()]  # fmt: skip
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(records[0]) == strip(records[1])
    assert [r["skipped_updates"] for r in records[0]] == [1, 1]
    weights = [load(run).state_dict() for run in runs.values()]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_read_at_an_accelerators_cadence_too_many_skips_stop_the_run_at_the_next_read(tmp_path, monkeypatch):
    # 21 steps an epoch: every update of epoch 2 blows up; the first read is after its 20th step
    trainer = trained_with_poison(tmp_path, monkeypatch, "run", set(range(21, 42)), False, epochs=3,
                                  skip_threshold=1e6, max_skipped=0.1)  # fmt: skip
    with pytest.raises(VaekitError, match=r"20 of 20 updates in epoch 2 were skipped .* than --max-skipped"):
        trainer.run()
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == 0


@pytest.mark.parametrize("objective", ["factorvae", "wae-gan"])
def test_the_schedule_lowers_an_added_modules_rate_with_the_models(tmp_path, objective):
    """Each group falls from its own rate by the same factor (as torch's schedulers scale each group),
    so a discriminator does not keep its full rate while the model's goes to 0."""
    config = tiny_config(objective=objective, lr_schedule="cosine", epochs=2)
    quiet_trainer(config, tmp_path / "run").run()
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    model_lr, module_lr = (group["lr"] for group in checkpoint["optimizer"]["param_groups"])
    start = load(tmp_path / "run").parameter_groups(1e-3)[1]["lr"]  # the module's own starting rate
    assert 0 < model_lr < 1e-3 / 10  # near the cosine's end
    assert module_lr == pytest.approx(start * model_lr / 1e-3, rel=1e-9)
