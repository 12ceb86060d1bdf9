"""examples/plugin/, a model from outside the package: installed with pip into a folder of its own (its
entry point found through sys.path, as an installed package's is), then driven through every command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vaekit
from vaekit.cli import main
from vaekit.models import MODELS, model_names, unregister_model

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "plugin"
TORCHRUN = Path(sys.executable).parent / "torchrun"
pytestmark = pytest.mark.usefixtures("_subprocess_temp_files_in_pytests_tmp")
TINY = ["--dataset", "digits", "--latent-dim", "4", "--width", "8", "--batch-size", "64", "--no-progress"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The plugin installed by pip (no index, no build isolation: offline) into a folder on sys.path."""
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN, work / "source")  # the build writes beside the sources
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    if "resnet" in MODELS:
        unregister_model("resnet")
    sys.modules.pop("vaekit_resnet", None)


def run(*argv: str) -> None:
    assert main([str(a) for a in argv]) == 0, argv


def history(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_the_plugin_is_one_short_file_and_an_entry_point():
    assert len((PLUGIN / "vaekit_resnet.py").read_text().splitlines()) <= 60
    assert '[project.entry-points."vaekit.models"]' in (PLUGIN / "pyproject.toml").read_text()


def test_the_installed_entry_point_is_listed_before_it_is_imported(site):
    assert "resnet" in model_names()
    assert "vaekit_resnet" not in sys.modules or "resnet" in MODELS


def test_every_command_runs_on_the_plugin(site, tmp_path, monkeypatch, capsys, digits_classifier_dir):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "resnet.toml"
    config.write_text(
        '[train]\ndataset = "digits"\nmodel = "resnet"\nlatent_dim = 4\nwidth = 8\nbatch_size = 64\n'
        "epochs = 2\nmodel_options = { blocks = 1 }\n"
    )
    # train from a config file with the plugin's own option, then resume: the same weights as 3 epochs
    run("train", "--config", config, "--out", "a", "--no-progress")
    stored = json.loads(Path("a/config.json").read_text())["model"]
    assert stored["blocks"] == 1 and stored["plugin"]["package"] == "vaekit-resnet"
    run("train", "--resume", "--epochs", "3", "--out", "a", "--no-progress")
    run("train", "--config", config, "--epochs", "3", "--out", "b", "--no-progress")
    weights_a, weights_b = load_file("a/model.safetensors"), load_file("b/model.safetensors")
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_b)
    model = vaekit.load("a")
    assert type(model).__module__ == "vaekit_resnet" and model.fitted_prior is not None  # fitted at the end
    # evaluate, sample by class from the fitted prior, refit the prior, pictures, export
    run("evaluate", "a", "--iwae-k", "5")
    assert json.loads(Path("a/eval.json").read_text())["iwae_nll"] > 0
    run("sample", "a", "--label", "3", "--out", "threes.png")
    run("train-prior", "a", "--overwrite", "--components", "2")
    assert vaekit.load("a").config["prior"]["components"] == 2
    run("latent", "a")
    run("traverse", "a", "--out", "traverse.png")
    run("export", "a", "--out", "onnx")
    assert (tmp_path / "onnx" / "decoder.onnx").is_file()
    # latents and anomaly scores for other programs
    run("encode", "a", "--out", "latents.npz")
    latents = np.load("latents.npz")
    images = torch.from_numpy(np.concatenate([d.images.numpy() for d in _digits()])).float() / 255
    with torch.no_grad():
        mean, _ = vaekit.load("a").encode(images[:5])
    assert np.allclose(latents["mean"][:5], mean.numpy(), atol=1e-5)
    run("score", "a", "--dataset", "digits", "--reference", "digits", "--k", "4", "--out", "scores.csv")
    assert "complexity_score" in capsys.readouterr().out
    # the explorer, runs side by side, and a sweep over the plugin
    from fastapi.testclient import TestClient

    from vaekit.serve.app import create_app

    client = TestClient(create_app([tmp_path / "a"]))
    assert client.get("/api/info").json()["latent_dim"] == 4
    picture = client.post("/api/sample", json={"n": 4, "seed": 0})
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    run("compare", "a", "b", "--out", "cmp")
    assert "resnet" in (tmp_path / "cmp" / "report.md").read_text()
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        config.read_text().replace("epochs = 2", "epochs = 1\nfit_prior = false")
        + '[search]\nlr = [1e-3, 1e-2]\n[sweep]\nseed = 0\npruner = "none"\n'
    )
    run("sweep", "--config", sweep, "--trials", "2", "--out", "sweep")
    trials = json.loads((tmp_path / "sweep" / "trials.json").read_text())["trials"]
    assert [t["state"] for t in trials] == ["complete", "complete"]


def _digits():
    from vaekit.data import load_dataset

    dataset = load_dataset("digits")
    return dataset.train, dataset.test


def test_torchrun_trains_the_plugin_as_one_process_does(site, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    command = [str(TORCHRUN), "--standalone", "--nproc-per-node=2", "-m", "vaekit", "train"]
    done = subprocess.run(
        [*command, "--model", "resnet", *TINY, "--epochs", "2", "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run("train", "--model", "resnet", *TINY, "--epochs", "2", "--out", tmp_path / "one")
    for a, b in zip(history(tmp_path / "one"), history(tmp_path / "two"), strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)


def test_a_run_whose_plugin_is_not_installed_names_the_package(site, tmp_path):
    run("train", "--model", "resnet", *TINY, "--epochs", "1", "--out", tmp_path / "run")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "vaekit", "evaluate", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "vaekit evaluate: error: model 'resnet' is not installed: it came from the package vaekit-resnet "
        "0.1.0 (module vaekit_resnet); pip install vaekit-resnet"
    ]
