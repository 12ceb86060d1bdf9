"""vaekit sweep: the sweep file, Optuna trials as run folders, pruning, and two workers on one journal."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import optuna
import pytest

import vaekit
from tests.conftest import error_of, folder_snapshot
from vaekit.cli import main
from vaekit.models.parts import part
from vaekit.sweep.run import run_sweep, suggest
from vaekit.sweep.spec import read_sweep_file

TRAIN = """
[train]
dataset = "digits"
hidden = [16]
latent_dim = 2
epochs = 2
batch_size = 128
fit_prior = false
"""


def sweep_file(tmp_path, search='lr = [1e-3, 3e-2]\nlikelihood = ["bernoulli", "gaussian"]', extra=""):
    path = tmp_path / "sweep.toml"
    path.write_text(TRAIN + "\n[search]\n" + textwrap.dedent(search) + "\n" + extra)
    return path


def test_ranges_choices_and_their_scales(tmp_path):
    path = sweep_file(
        tmp_path,
        """
        lr = [1e-4, 1e-2]
        free_bits = [0.0, 1.0]
        beta = {low = 0.5, high = 4, log = false}
        kl_warmup = [0, 3]
        likelihood = ["bernoulli", "gaussian"]
        hidden = {choices = ["16", "32,16"]}
        """,
    )
    path.write_text(path.read_text().replace("hidden = [16]\n", ""))
    dims = {d.name: d for d in read_sweep_file(path).search}
    assert (dims["lr"].kind, dims["lr"].log) == ("float", True)  # lr acts by ratio: log-uniform
    assert (dims["free_bits"].kind, dims["free_bits"].log) == ("float", False)  # 0 cannot be log-scaled
    assert (dims["beta"].kind, dims["beta"].log) == ("float", False)  # the table overrides the default
    assert (dims["kl_warmup"].kind, dims["kl_warmup"].low, dims["kl_warmup"].high) == ("int", 0, 3)
    assert dims["likelihood"].choices == ["bernoulli", "gaussian"]
    # the distributions the study really samples from
    study = optuna.create_study()
    trial = study.ask()
    values = {name: suggest(trial, d) for name, d in dims.items()}
    assert isinstance(values["kl_warmup"], int) and 1e-4 <= values["lr"] <= 1e-2
    assert trial.distributions["lr"].log and not trial.distributions["beta"].log
    assert values["hidden"] in ("16", "32,16")


@pytest.mark.parametrize(
    "search, message",
    [
        ("nonsense = [1, 2]", "unknown setting 'nonsense'"),
        ("lr = [0.1, 0.01]", "low must be below high"),
        ("latent_dim = [2.5, 8]", "integer bounds"),
        ("lr = {low = 0, high = 1, log = true}", "needs low > 0"),
        ("lr = {low = 0.1}", "needs both low and high"),
        ("lr = 0.1", "must be [low, high]"),
        ('likelihood = ["bernoulli"]', "at least two values"),
        ('likelihood = ["bernoulli", "bernoulli"]', "listed twice"),
        ('likelihood = ["bernoulli", "poisson"]', "does not make a valid run"),
        ("epochs = [1, 3]", "both fixed in [train] and searched"),
        ("", "has no [search] table"),
    ],
)
def test_bad_sweep_files_are_one_line_errors_naming_the_file(tmp_path, search, message):
    path = sweep_file(tmp_path, search)
    text = error_of(read_sweep_file, path)
    assert message in text and str(path) in text


def test_bad_sweep_options(tmp_path):
    assert "unknown option 'color'" in error_of(
        read_sweep_file, sweep_file(tmp_path, extra="[sweep]\ncolor = 1")
    )
    assert "pruner must be" in error_of(read_sweep_file, sweep_file(tmp_path, extra='[sweep]\npruner = "x"'))
    path = sweep_file(tmp_path)
    path.write_text(path.read_text().replace("fit_prior = false", "fit_prior = false\nval_fraction = 0.0"))
    assert "val_fraction must be > 0" in error_of(read_sweep_file, path)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    path = sweep_file(folder, extra='[sweep]\nseed = 0\npruner = "none"')
    lines = []
    summary = run_sweep(path, folder / "out", trials=3, log=lines.append)
    return folder / "out", summary, lines


def test_each_trial_is_a_run_folder_and_its_value_is_its_validation_loss(finished_sweep):
    out, summary, lines = finished_sweep
    assert [r["trial"] for r in sorted(summary["trials"], key=lambda r: r["trial"])] == [0, 1, 2]
    for row in summary["trials"]:
        run = out / row["run"]
        assert row["state"] == "complete" and row["epochs"] == 2
        config = json.loads((run / "config.json").read_text())
        assert config["train"]["lr"] == row["params"]["lr"]
        assert config["train"]["likelihood"] == row["params"]["likelihood"]
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert row["val_loss"] == pytest.approx(last["val_loss"], rel=1e-12)  # what the run itself recorded
        vaekit.load(run)
    best = min(summary["trials"], key=lambda r: r["val_loss"])
    assert summary["best"]["trial"] == best["trial"] and summary["trials"][0] == best  # best first
    assert any(line.startswith("best: trial") for line in lines)


def test_the_summary_files_and_the_compare_report_hold_every_trial(finished_sweep):
    out, summary, _ = finished_sweep
    table = (out / "trials.md").read_text()
    assert f"best: trial {summary['best']['trial']}" in table
    assert all(f"| {row['run']} |" in table for row in summary["trials"])
    assert json.loads((out / "trials.json").read_text())["best"] == json.loads(json.dumps(summary["best"]))
    report = (out / "comparison" / "report.md").read_text()
    assert "## Sweep trials" in report and f"{summary['best']['trial']} (best)" in report
    assert "Sweep trials" in (out / "comparison" / "report.html").read_text()
    assert (out / "sweep.toml").is_file() and (out / "journal.log").is_file()


def test_a_worker_joining_the_folder_continues_the_study(finished_sweep, tmp_path):
    out, _, _ = finished_sweep
    summary = run_sweep(out / "sweep.toml", out, trials=1, log=lambda line: None)
    assert sorted(r["trial"] for r in summary["trials"]) == [0, 1, 2, 3]
    assert (out / "trials" / "0003" / "model.safetensors").is_file()
    other = sweep_file(tmp_path, "lr = [1e-3, 2e-2]")
    assert "another sweep file" in error_of(run_sweep, other, out, 1)


@pytest.mark.parametrize("file", ["sweep.toml", "journal.log"])
@pytest.mark.parametrize("how", ["missing", "empty", "cut short", "cut at a line end", "garbled"])
def test_a_damaged_sweep_folder_file_is_named_in_one_line_and_left_alone(finished_sweep, tmp_path, file, how):
    out = shutil.copytree(finished_sweep[0], tmp_path / "out")
    data = bytearray((out / file).read_bytes())
    if how == "missing":
        (out / file).unlink()
    else:
        if how == "empty":
            data = bytearray()
        elif how == "cut short":
            del data[len(data) // 2 :]
        elif how == "cut at a line end":  # whole lines, the last without its line end
            del data[data.rindex(b"\n", 0, len(data) - 1) :]
        else:
            data[::7] = bytes(b ^ 0xA5 for b in data[::7])
        (out / file).write_bytes(bytes(data))
    before = folder_snapshot(out)
    message = error_of(
        run_sweep, out / "sweep.toml" if file == "journal.log" else finished_sweep[0] / "sweep.toml", out, 1
    )
    assert str(out / file) in message
    assert folder_snapshot(out) == before


def test_pruned_trials_stop_with_their_epochs_kept(tmp_path):
    path = sweep_file(tmp_path, "lr = [1e-3, 3e-2]")
    pruner = optuna.pruners.ThresholdPruner(upper=0.0)  # any validation loss above 0 nats: prune
    summary = run_sweep(path, tmp_path / "out", trials=2, pruner=pruner, log=lambda line: None)
    assert [r["state"] for r in summary["trials"]] == ["pruned", "pruned"] and summary["best"] is None
    for row in summary["trials"]:
        assert row["epochs"] == 1  # pruned after its first epoch; the folder keeps that epoch
        assert (tmp_path / "out" / row["run"] / "checkpoints" / "last.pt").is_file()
    assert "no trial has finished yet" in (tmp_path / "out" / "trials.md").read_text()


def test_two_workers_on_one_journal_lose_and_repeat_no_trial(tmp_path):
    path = sweep_file(tmp_path)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "vaekit",
        "sweep",
        "--config",
        str(path),
        "--trials",
        "2",
        "--out",
        str(out),
    ]
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"
    ]
    results = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [r[1][-500:] for r in results]
    study = optuna.load_study(
        study_name="vaekit",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(out / "journal.log"))
        ),
    )
    numbers = sorted(t.number for t in study.trials)
    assert numbers == [0, 1, 2, 3]
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # none failed or hung
    assert all(t.state in finished for t in study.trials)
    folders = sorted(p.name for p in (out / "trials").iterdir())
    assert folders == ["0000", "0001", "0002", "0003"]
    runs = {t.user_attrs["run"] for t in study.trials}
    assert len(runs) == 4  # each trial trained into a folder of its own


def test_the_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("mine")
    code = main(
        ["sweep", "--config", str(sweep_file(tmp_path)), "--trials", "1", "--out", str(tmp_path / "taken")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and "not a sweep folder" in err and "\n" not in err
    assert (tmp_path / "taken" / "file.txt").read_text() == "mine"
    assert main(["sweep", "--config", str(tmp_path / "missing.toml"), "--trials", "1", "--out", "x"]) == 1
    assert main(["sweep", "--config", "x", "--trials", "0", "--out", "x"]) == 2


def test_a_layer_size_choice_that_is_not_sizes_is_a_one_line_error(tmp_path):
    path = sweep_file(tmp_path, 'hidden = {choices = ["16", "wide"]}')
    path.write_text(path.read_text().replace("hidden = [16]\n", ""))
    assert "does not make a valid run" in error_of(read_sweep_file, path)


def test_a_sweep_searches_the_objectives_and_their_weights(tmp_path):
    search = 'objective = ["btcvae", "dip-i"]\nbeta = [1.0, 8.0]'
    # Seed 0 draws each objective once, so both objectives' options are checked on every run of the suite.
    path = sweep_file(tmp_path, search, extra='[sweep]\nseed = 0\npruner = "none"')
    summary = run_sweep(path, tmp_path / "out", trials=2, log=lambda line: None)
    assert [r["state"] for r in summary["trials"]] == ["complete", "complete"]
    runs = [tmp_path / "out" / row["run"] for row in summary["trials"]]
    configs = [json.loads((run / "config.json").read_text())["train"] for run in runs]
    assert sorted(config["objective"] for config in configs) == ["btcvae", "dip-i"]
    for config in configs:
        assert config["objective"] in ("btcvae", "dip-i") and 1.0 <= config["beta"] <= 8.0
        # Every option of the chosen objective is written out with its default (none is searched here),
        # and no option of the objective that was not chosen.
        assert config["part_options"] == part("objective", config["objective"]).defaults()


def test_a_worker_that_loses_the_race_to_create_the_folder_joins_it(tmp_path, monkeypatch):
    """Two workers started together: the other makes the folder between this one's look and its
    rename. This one must join the other's whole folder, not call it a foreign folder."""
    from vaekit.sweep import run as sweep_run

    sweep = read_sweep_file(sweep_file(tmp_path))
    out = tmp_path / "out"
    real_rename = os.rename

    def other_worker_first(source, target):
        monkeypatch.setattr(sweep_run.os, "rename", real_rename)
        sweep_run._create_folder(out, sweep)  # the other worker, whole, before this rename
        real_rename(source, target)

    monkeypatch.setattr(sweep_run.os, "rename", other_worker_first)
    sweep_run._prepare_folder(out, sweep)
    assert sorted(p.name for p in out.iterdir()) == ["sweep.toml", "trials"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert "is not a sweep folder" in error_of(sweep_run._prepare_folder, tmp_path / "sweep.toml", sweep)


def test_a_new_sweep_folder_is_never_seen_without_its_sweep_file(tmp_path, monkeypatch):
    """What another worker could see while this one creates the folder: nothing, or the whole folder.
    (A folder with trials/ but no sweep.toml yet made a second worker refuse it as a foreign folder.)"""
    from pathlib import Path

    from vaekit.sweep import run as sweep_run

    sweep = read_sweep_file(sweep_file(tmp_path))
    out = tmp_path / "out"
    seen = []
    real_write = Path.write_text

    def watched(self, *args, **kwargs):
        seen.append(not out.exists() or (out / "sweep.toml").is_file())
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", watched)
    sweep_run._prepare_folder(out, sweep)
    assert seen and all(seen) and (out / "sweep.toml").read_text() == sweep.text


def test_a_models_own_options_are_searched_typed_by_the_model(tmp_path):
    """Issue 34: a plugin's option (here ``depth: int``) is searchable, written either way TOML allows,
    and each trial's run is built with its value."""
    from tests.models.test_registry import tiny_network_vae
    from vaekit.models import register_model, unregister_model

    register_model(tiny_network_vae("deep"))
    try:
        for search in ("model_options.depth = [1, 3]", '"model_options.depth" = [1, 3]'):
            path = sweep_file(tmp_path, search)
            path.write_text(path.read_text().replace("hidden = [16]\n", 'model = "deep"\n'))
            [d] = read_sweep_file(path).search
            assert (d.name, d.kind, d.low, d.high) == ("model_options.depth", "int", 1, 3)

        def search(text):
            path.write_text(path.read_text().split("[search]")[0] + "[search]\n" + text + "\n")

        search('"model_options.depth" = [1.5, 3]')
        assert "integer bounds" in error_of(read_sweep_file, path)
        search("model_options.width = [1, 3]")
        assert "model deep takes no option 'width' (its own: depth)" in error_of(read_sweep_file, path)
        search("model_options.depth = [2, 3]")
        summary = run_sweep(path, tmp_path / "out", trials=2, log=lambda line: None)
        for row in summary["trials"]:
            model = json.loads((tmp_path / "out" / row["run"] / "config.json").read_text())["model"]
            assert model["depth"] == row["params"]["model_options.depth"] in (2, 3)
    finally:
        unregister_model("deep")
