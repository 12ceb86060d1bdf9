"""--max-time: without --epochs a run trains until its time is up, its learning rate's schedule laid over
that time, and a resume goes on within what is left; with --epochs too, whichever comes first ends it,
and the run says which. budget.py's clock is a fake one, so that a run's length in epochs is the same
on any machine however loaded."""

import json

import pytest

from tests.conftest import quiet_trainer
from vaekit.cli import main
from vaekit.sweep.spec import read_sweep_file, trial_config
from vaekit.training import TrainConfig, Trainer, resume, resumed_config
from vaekit.training import budget as budget_module
from vaekit.utils.errors import VaekitError

# One step an epoch (the batch holds the 1,294 training images), so that epochs are fast.
TINY = dict(dataset="digits", hidden=[8], latent_dim=2, batch_size=2048, fit_prior=False, seed=0)
FLAGS = ["train", "--dataset", "digits", "--hidden", "8", "--latent-dim", "2", "--batch-size", "2048"]
FLAGS += ["--no-fit-prior", "--no-progress"]
TICK = 0.25  # seconds between two readings of the budget's clock: a budget of 3s is 11 epochs here


class Clock:
    """budget.py's ``time``: each reading of the clock is TICK seconds after the last (the budget reads
    it once at each epoch's end when an epoch is one step)."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += TICK
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(budget_module, "time", fake)
    return fake


def run_record(out):
    return json.loads((out / "config.json").read_text())


def learning_rates(config, out, **kwargs):
    """Train ``config`` into ``out``; the learning rate of each epoch's last step."""
    rates = []
    trainer = quiet_trainer(config, out, on_epoch=lambda record: rates.append(trainer_lr(trainer)), **kwargs)
    trainer.run()
    return rates


def trainer_lr(trainer):
    return trainer.updates.optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("source", ["flags", "config file"])
def test_max_time_without_epochs_trains_until_the_time_is_up(source, tmp_path, clock, capsys):
    out = tmp_path / "run"
    if source == "flags":
        args = ["--max-time", "3s"]
    else:  # a --config file with a time budget and no epochs
        (tmp_path / "exp.toml").write_text("[run]\nmax_time = 3.0\n")
        args = ["--config", str(tmp_path / "exp.toml")]
    assert main([*FLAGS, *args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = run_record(out)
    assert record["train"]["epochs"] is None and record["epochs_completed"] > 10  # not the default 10
    assert record["stopped_by"] == "max_time" and 3 <= record["trained_seconds"] < 3 + 2 * TICK
    assert "training for --max-time 3s (no --epochs: the run ends when its time is up)" in printed
    assert "--max-time 3s ends the run at about epoch" in printed  # the forecast after the first epoch
    assert f"--max-time 3s is up after epoch {record['epochs_completed']}, the run's end" in printed
    assert (out / "eval.json").is_file()  # ended as runs end: evaluated


def test_a_sweeps_time_budget_without_epochs_is_the_trials_length(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        '[data]\ndataset = "digits"\n[run]\nmax_time = 60.0\n[search]\noptimization.lr = [1e-4, 1e-2]\n'
    )
    config = trial_config(read_sweep_file(sweep), {"lr": 1e-3})
    assert (config.epochs, config.max_time) == (None, 60.0)
    plain = TrainConfig(dataset="digits")
    plain.validate()
    assert (plain.epochs, plain.max_time) == (10, None)  # neither given: the default 10 epochs


def test_the_cosine_learning_rate_is_laid_over_the_time_budget(tmp_path, clock):
    lr = 1e-2
    config = TrainConfig(**TINY, lr=lr, lr_schedule="cosine", max_time=3.25)
    rates = learning_rates(config, tmp_path / "run")
    assert len(rates) > 10
    assert rates == sorted(rates, reverse=True) and len(set(rates)) == len(rates)  # falling step by step
    assert rates[9] > 0.1 * lr  # at epoch 10, a quarter of the time is left: not spent (over 10 epochs:
    assert rates[-1] < 0.02 * lr  # 0.024 lr), and near its end, 0, when the time is up
    assert 3.25 <= run_record(tmp_path / "run")["trained_seconds"] < 3.25 + 2 * TICK


def test_a_resumed_time_budget_goes_on_within_what_is_left_and_a_larger_one_extends_it(tmp_path, clock):
    out, lr = tmp_path / "run", 1e-2
    config = TrainConfig(**TINY, lr=lr, lr_schedule="cosine", max_time=3.25)
    first = []

    def killed(record):  # the process dies after epoch 3's checkpoint
        first.append(trainer_lr(trainer))
        if record["epoch"] == 3:
            raise KeyboardInterrupt

    trainer = quiet_trainer(config, out, on_epoch=killed)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    spent = run_record(out)["trained_seconds"]
    assert 0 < spent < 1.5 and run_record(out)["stopped_by"] is None
    rest = learning_rates(resumed_config(out), out, resume=True)
    assert rest[0] < first[-1] and rest == sorted(rest, reverse=True)  # the schedule goes on, not anew
    record = run_record(out)
    assert 3.25 <= record["trained_seconds"] < 3.25 + 2 * TICK and record["stopped_by"] == "max_time"
    assert record["epochs_completed"] == 3 + len(rest) > 10
    lines = []
    assert Trainer(resumed_config(out), out, resume=True, progress=False, log=lines.append).finished
    assert lines == ["the run has trained its --max-time 3.25s (no --epochs): a larger --max-time extends it"]
    resume(out, max_time=4.25, progress=False, log=lambda line: None)  # the run's new total
    longer = run_record(out)
    assert 4.25 <= longer["trained_seconds"] < 4.25 + 2 * TICK
    assert longer["epochs_completed"] > record["epochs_completed"]
    with pytest.raises(VaekitError, match="its length is its --max-time, which a resume keeps"):
        resumed_config(out, max_time=None)


def test_with_epochs_too_the_epochs_end_the_run_when_they_come_first(tmp_path, clock, capsys):
    out = tmp_path / "run"
    assert main([*FLAGS, "--epochs", "3", "--max-time", "100s", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "training until epoch 3 or --max-time 1m40s, whichever comes first" in printed
    assert "the 3 epochs end the run first, in about" in printed and "--max-time 1m40s reached" not in printed
    assert (run_record(out)["epochs_completed"], run_record(out)["stopped_by"]) == (3, "epochs")


def test_with_epochs_too_the_time_ends_the_run_when_it_comes_first(tmp_path, clock, capsys):
    out = tmp_path / "run"
    assert main([*FLAGS, "--epochs", "50", "--max-time", "2s", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "training until epoch 50 or --max-time 2s, whichever comes first" in printed
    assert "--max-time 2s ends the run first, at about epoch" in printed and " of 50 " in printed
    record = run_record(out)
    assert f"--max-time 2s reached after epoch {record['epochs_completed']}" in printed
    assert record["stopped_by"] == "max_time" and 2 < record["epochs_completed"] < 50


@pytest.mark.parametrize("seconds, text", [(4.0, "4s"), (0.125, "0.125s"), (100, "1m40s"), (5400, "1h30m")])
def test_durations_are_written_as_they_are_read(seconds, text):
    from vaekit.training.budget import format_duration, parse_duration  # new: the module's tests run before

    assert format_duration(seconds) == text and parse_duration(text) == seconds
