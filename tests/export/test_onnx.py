"""vaekit export: every registered model's encoder and decoder in onnxruntime against PyTorch."""

import json
import os
import sys

import numpy as np
import onnxruntime
import pytest
import torch

import vaekit
from tests.conftest import error_of, quiet_trainer, tiny_config
from vaekit.cli import main
from vaekit.export.onnx import decoder_graph, export_onnx
from vaekit.models import MODELS

SETTINGS = {
    "mlp": dict(model="mlp"),
    "conv": dict(model="conv", hidden=None, channels=[4, 8]),
    "cvae": dict(model="cvae"),
    "vqvae": dict(model="vqvae", hidden=None, channels=[4, 8], codebook_size=16, latent_dim=4),
    "hvae": dict(model="hvae", hidden=None, latent_dim=None, width=8, latent_channels=2, stem=1),
}


def test_every_registered_model_is_covered():
    assert set(SETTINGS) == set(MODELS)


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def exported(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    no_fit = {} if request.param == "vqvae" else {"fit_prior": False}  # a vqvae fits no mixture
    config = tiny_config(epochs=1, **no_fit, **SETTINGS[request.param])
    quiet_trainer(config, folder / "run").run()
    description = export_onnx(folder / "run", folder / "onnx", log=lambda line: None)
    return folder / "run", folder / "onnx", description


@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_gives_pytorchs_numbers(exported, batch):
    run, out, description = exported
    model = vaekit.load(run)
    encoder = onnxruntime.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    decoder = onnxruntime.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(batch)
    images = torch.rand(batch, *model.image_shape, generator=generator)
    labels = torch.randint(model.num_classes, (batch,), generator=generator) if model.conditional else None
    feeds = {"images": images.numpy(), **({"labels": labels.numpy()} if labels is not None else {})}
    got = encoder.run(None, feeds)
    with torch.no_grad():
        encoded = model.encode(images, labels)
    want = list(encoded) if isinstance(encoded, tuple) else [encoded]
    for have, expected in zip(got, want, strict=True):
        assert have.shape == tuple(expected.shape)
        if expected.dtype == torch.long:  # VQ-VAE codes: the same nearest code
            assert np.array_equal(have, expected.numpy())
        else:
            assert np.abs(have - expected.numpy()).max() < 1e-4
    latent_name = description["decoder"]["inputs"][0]["name"]
    latents = want[0]
    if latents.dtype != torch.long:  # decode a latent the encoder did not give, too
        latents = latents + torch.randn(latents.shape, generator=generator)
    inputs = {latent_name: latents, **({"labels": labels} if labels is not None else {})}
    for spec in description["decoder"]["inputs"][1:]:  # a hierarchy: every lower group's noise
        if spec["name"].startswith("noise"):
            inputs[spec["name"]] = torch.randn(batch, *spec["shape"][1:], generator=generator)
    (pixels,) = decoder.run(None, {name: value.numpy() for name, value in inputs.items()})
    with torch.no_grad():
        expected = decoder_graph(model)(*inputs.values())
        if model.latent_space.groups:  # zero noise: the lower groups at their prior means, as decode
            zeros = [torch.zeros_like(v) for k, v in inputs.items() if k.startswith("noise")]
            torch.testing.assert_close(decoder_graph(model)(latents, *zeros), model.decode(latents))
    assert pixels.shape == tuple(expected.shape) == (batch, *model.image_shape)
    assert np.abs(pixels - expected.numpy()).max() < 1e-4


def test_export_json_describes_the_graphs(exported):
    run, out, description = exported
    assert json.loads((out / "export.json").read_text()) == json.loads(json.dumps(description))
    assert description["exporter"] == "torch.onnx.export(dynamo=True)"
    assert description["check"]["max_abs_difference"] < 1e-4
    for part in ("encoder", "decoder"):
        session = onnxruntime.InferenceSession(str(out / f"{part}.onnx"), providers=["CPUExecutionProvider"])
        described = description[part]
        assert [i.name for i in session.get_inputs()] == [i["name"] for i in described["inputs"]]
        assert [o.name for o in session.get_outputs()] == [o["name"] for o in described["outputs"]]
        for graph_input, spec in zip(session.get_inputs(), described["inputs"], strict=True):
            assert isinstance(graph_input.shape[0], str)  # the batch axis is open
            assert graph_input.shape[1:] == spec["shape"][1:]
            assert graph_input.type == {"float32": "tensor(float)", "int64": "tensor(int64)"}[spec["dtype"]]
    model = vaekit.load(run)
    assert description["preprocessing"]["image_shape"] == list(model.image_shape)
    assert description["classes"] == [str(d) for d in range(10)]


def test_an_existing_folder_is_kept_unless_overwrite(trained_run, tmp_path, capsys):
    """The folder's handling is the same for every model (each model's export is tested above): one run."""
    run = trained_run
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaekit export: error:") and "--overwrite" in err and "\n" not in err
    assert (out / "mine.txt").read_text() == "keep"
    assert main(["export", str(run), "--out", str(out), "--overwrite"]) == 0
    assert "onnxruntime matches PyTorch" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "encoder.onnx", "export.json"]
    assert not list(tmp_path.glob(".onnx-*"))  # no staging folder left behind
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # an ordinary folder, not mkdtemp's private one


def test_bad_input_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    assert main(["export", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert "\n" not in capsys.readouterr().err.strip()
    assert main(["export", str(tmp_path), "--format", "tflite", "--out", str(tmp_path / "o")]) == 2
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the [onnx] extra were not installed
    assert "pip install 'vaekit[onnx]'" in error_of(export_onnx, tmp_path, tmp_path / "o")
