"""vaekit encode: every image's posterior, label and file name, in the dataset's order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from tests.conftest import error_of, quiet_trainer, tiny_config, write_tiny_mnist
from vaekit.cli import main
from vaekit.data import load_dataset
from vaekit.export.latents import encode_run


def test_encode_writes_each_images_posterior_and_label_in_order(trained_run, tmp_path):
    result = encode_run(trained_run, tmp_path / "z.npz", split="test", progress=False)
    table = np.load(tmp_path / "z.npz")
    test = load_dataset("digits").test
    model = vaekit.load(trained_run)
    with torch.no_grad():
        mean, logvar = model.encode(test.as_float())
    assert result["n"] == len(test) == len(table["mean"]) and result["columns"] == ["mean", "logvar", "label"]
    assert np.allclose(table["mean"], mean.numpy(), atol=1e-6) and np.allclose(
        table["logvar"], logvar.numpy()
    )
    assert np.array_equal(table["label"], test.labels.numpy())
    everything = np.load(encode_run(trained_run, tmp_path / "all.npy", progress=False)["path"])
    assert len(everything) == len(load_dataset("digits").train) + len(test)  # train rows, then test
    assert np.allclose(everything["mean"][-len(test) :], table["mean"], atol=1e-6)


def write_folder(root, n=12, size=8, invert=False):
    """Two class folders of small grey PNGs whose brightness says the class."""
    for i in range(n):
        label = i % 2
        pixels = np.full((size + 4, size + 4), 40 + 180 * label, dtype=np.uint8)
        pixels[i % size] = 255 - pixels[i % size] if invert else pixels[i % size]
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")
    return root


def test_a_folder_is_resized_to_the_model_and_keeps_its_file_names(trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "cache"))
    folder = write_folder(tmp_path / "pictures")  # 12x12 images, the model takes 8x8
    assert (
        main(["encode", str(trained_run), "--dataset", f"folder:{folder}", "--out", str(tmp_path / "z.csv")])
        == 0
    )
    rows = (tmp_path / "z.csv").read_text().splitlines()
    assert rows[0].split(",")[-2:] == ["label", "filename"] and len(rows) == 13
    names = [row.split(",")[-1] for row in rows[1:]]
    labels = [int(row.split(",")[-2]) for row in rows[1:]]
    assert sorted(names) == sorted(f"class{i % 2}/img{i:02d}.png" for i in range(12))
    assert all(name.startswith(f"class{label}/") for name, label in zip(names, labels, strict=True))


def test_a_dataset_of_another_shape_and_a_bad_output_are_one_line_errors(trained_run, tmp_path, capsys):
    data = write_tiny_mnist(tmp_path / "mnist")
    out = tmp_path / "z.npz"
    message = error_of(encode_run, trained_run, out, dataset="mnist", data_dir=data, progress=False)
    assert (
        message == "the images of mnist are [1, 28, 28] (channels, height, width); the model takes [1, 8, 8]"
    )
    (tmp_path / "file").write_text("not a folder")
    assert main(["encode", str(trained_run), "--out", str(tmp_path / "file" / "z.npz")]) == 1
    assert main(["encode", str(trained_run), "--out", str(tmp_path / "z.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "file is not a folder" in err[0] and "must end in" in err[1]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["file", "mnist", "run"]


@pytest.mark.parametrize("model", ["vqvae", "cvae"])
def test_a_vqvae_gives_its_codes_and_a_cvae_uses_the_labels(model, tmp_path):
    settings = {"vqvae": dict(hidden=None, channels=[8], latent_dim=2), "cvae": {}}[model]
    quiet_trainer(tiny_config(model=model, epochs=1, **settings), tmp_path / "run").run()
    table = np.load(encode_run(tmp_path / "run", tmp_path / "z.npz", split="test", progress=False)["path"])
    if model == "vqvae":
        assert table["codes"].dtype == np.int64 and table["codes"].ndim == 3 and "mean" not in table
    else:
        assert table["mean"].shape == (len(load_dataset("digits").test), 2)
