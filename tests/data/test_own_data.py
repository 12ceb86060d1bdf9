"""Training, evaluating and drawing on data other than MNIST: folders of images (labelled or not, colour,
sizes the conv layers do not divide) and the generated shapes with their disentanglement figures."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import assert_refused, quiet_trainer, tiny_config
from vaekit import load
from vaekit.cli import main
from vaekit.evaluation.pictures import latent_scatter
from vaekit.evaluation.report import format_result
from vaekit.evaluation.runs import evaluate_run
from vaekit.training import resume


def write_images(folder, n_per_class=24, classes=("circle", "square"), size=(14, 10), flat=False):
    """Coloured blobs on black: a disc or a square per class, in the class's own colour."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    for c, name in enumerate(classes):
        for i in range(n_per_class):
            cy, cx, r = rng.integers(3, size[0] - 3), rng.integers(3, size[1] - 3), rng.integers(2, 4)
            inside = (
                (yy - cy) ** 2 + (xx - cx) ** 2 < r * r if c == 0 else (abs(yy - cy) < r) & (abs(xx - cx) < r)
            )
            image = np.zeros((*size, 3), np.uint8)
            image[inside] = (255, 80, 0) if c == 0 else (0, 120, 255)
            target = folder if flat else folder / name
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target / f"{name}-{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images") / "blobs")


def folder_config(folder, tmp_path, **overrides):
    values = dict(
        dataset=f"folder:{folder}", data_dir=str(tmp_path / "cache"), model="conv", channels=[4, 8],
        hidden=None, latent_dim=3, epochs=2, batch_size=16,
    )  # fmt: skip
    values.update(overrides)
    return tiny_config(**values)


def test_a_conv_vae_trains_on_a_labelled_colour_folder_of_odd_size_and_resumes(colour_folder, tmp_path):
    out = tmp_path / "run"
    trainer = quiet_trainer(folder_config(colour_folder, tmp_path, epochs=1), out)
    assert trainer.model.image_shape == (3, 14, 10) and trainer.model.padding == (1, 1, 1, 1)
    trainer.run()
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["classes"] == ["circle", "square"] and config["data"]["image_shape"] == [3, 14, 10]
    assert config["data"]["dataset"] == f"folder:{colour_folder.resolve()}"
    assert config["data"]["n_train"] + config["data"]["n_val"] + config["data"]["n_test"] == 48
    with Image.open(out / "samples" / "epoch_001.png") as grid:
        assert grid.mode == "RGB"
    model = load(out)
    assert model.fitted_prior.num_classes == 2  # one mixture per class folder
    assert model.sample(4, label=1).shape == (4, 3, 14, 10)
    resume(out, epochs=2, progress=False, log=lambda line: None)
    assert json.loads((out / "config.json").read_text())["epochs_completed"] == 2
    result = evaluate_run(out, write=False)
    assert math.isfinite(result["test_loss"]) and "mig" not in result


def test_resized_and_grey(colour_folder, tmp_path):
    trainer = quiet_trainer(
        folder_config(
            colour_folder, tmp_path, model="mlp", channels=None, hidden=[8], image_size=[6, 6], colour="grey"
        ),
        tmp_path / "run",
    )
    assert trainer.model.image_shape == (1, 6, 6) and trainer.data.images.dtype == torch.uint8


def test_an_unlabelled_folder_trains_one_mixture_and_says_why_there_is_no_sample_quality(tmp_path):
    folder = write_images(tmp_path / "flat", n_per_class=12, flat=True)
    out = tmp_path / "run"
    quiet_trainer(folder_config(folder, tmp_path, model="mlp", channels=None, hidden=[8]), out).run()
    assert load(out).fitted_prior.num_classes == 0
    notes = []
    result = evaluate_run(out, samples=50, write=False, log=notes.append)
    assert "frechet_distance" not in result and any("has no classes" in note for note in notes)
    drawn = latent_scatter(out, n=20)
    assert drawn["n"] <= 20 and (out / "latent.png").is_file()


def test_a_conditional_model_needs_classes(tmp_path, capsys):
    folder = write_images(tmp_path / "flat", n_per_class=6, flat=True)
    code = main(["train", "--dataset", f"folder:{folder}", "--model", "cvae", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert (
        code == 1 and "the cvae is conditioned on class labels" in err and len(err.strip().splitlines()) == 1
    )
    assert not (tmp_path / "run").exists()


def test_the_cli_trains_on_a_folder_with_image_size_and_rgb(colour_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["train", "--dataset", f"folder:{colour_folder}", "--image-size", "8x12", "--rgb",
            "--model", "mlp", "--hidden", "8", "--latent-dim", "2", "--epochs", "1", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["image_size"] == [8, 12] and train["colour"] == "rgb"
    assert load(out).image_shape == (3, 8, 12)
    assert main(["reconstruct", str(out), "--n", "4", "--out", str(tmp_path / "r.png")]) == 0
    assert "--image-size [16, 16] differs from the run's [8, 12]" in _resume_error(
        out, capsys, "--image-size", "16"
    )
    assert main(["train", "--resume", "--out", str(out), "--image-size", "8x12", "--epochs", "2"]) == 0


def _resume_error(out, capsys, *args):
    capsys.readouterr()
    code = main(["train", "--resume", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert_refused(code, err, "")
    return err


def test_shapes_evaluate_reports_mig_and_the_factor_vae_score(tmp_path):
    out = tmp_path / "run"
    config = tiny_config(
        dataset="shapes",
        image_size=[24, 24],
        hidden=[16],
        latent_dim=4,
        epochs=1,
        batch_size=256,
        fit_prior=False,
    )
    quiet_trainer(config, out).run()
    result = evaluate_run(out, write=False)
    assert set(result["mig_per_factor"]) == {"shape", "scale", "rotation", "x", "y"}
    assert 0 <= result["mig"] <= 1 and 0 <= result["factor_vae_score"] <= 1
    assert result["mig"] == pytest.approx(np.mean(list(result["mig_per_factor"].values())))
    named = result["factor_vae_per_factor"]
    assert list(named) == list(result["mig_per_factor"]) and all(0 <= value <= 1 for value in named.values())
    table = format_result(result)
    assert "MIG (Chen et al. 2018)" in table and "FactorVAE score" in table
    factor_vae_line = next(line for line in table.splitlines() if "FactorVAE score" in line)
    assert f"{result['factor_vae_score']:.1%}" in factor_vae_line
    assert all(f"{name} {value:.2f}" in factor_vae_line for name, value in named.items())
