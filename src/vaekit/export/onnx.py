"""``vaekit export``: a run's encoder and decoder as two ONNX graphs, to run anywhere onnxruntime runs.

encoder.onnx  images [batch, C, H, W] float32 in [0, 1] (+ labels [batch] int64 for a conditional
              model) -> mean, logvar [batch, latent_dim] (a VQ-VAE: codes [batch, h, w] int64)
decoder.onnx  z [batch, latent_dim] (a VQ-VAE: codes) (+ labels) -> pixel_means [batch, C, H, W],
              exactly what ``model.decode`` returns
export.json   the shapes, names and dtypes above, how to prepare an image, the run's classes

The exporter is named, not left to the default (which changed from TorchScript to torch.export in
torch 2.9): ``torch.onnx.export(dynamo=True)``, the torch.export-based one, with the batch axis
declared dynamic. After writing, both graphs are run by onnxruntime at batch 1 and 7 against PyTorch,
and the largest difference is recorded in export.json (tests/test_export.py holds it below 1e-4).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import vaekit
from vaekit.models import VAE
from vaekit.models.base import io_spec
from vaekit.models.saving import load
from vaekit.utils.atomic import write_json
from vaekit.utils.errors import VaekitError, first_line
from vaekit.utils.files import read_run_config
from vaekit.utils.targets import folder_target, staged_folder

FORMATS = ("onnx",)
OPSET = 18
EXPORTER = "torch.onnx.export(dynamo=True)"
CHECK_BATCHES = (1, 7)


class EncoderGraph(nn.Module):
    """What encoder.onnx computes: the model's ``export_encoding``, labels given where it is conditional."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        return self.model.export_encoding(images, labels)


def decoder_graph(model: VAE) -> nn.Module:
    """What decoder.onnx computes (``VAE.export_decoder``)."""
    return model.export_decoder()


def expected_pixels(model: VAE, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """What decoder.onnx must give for ``inputs`` (``VAE.export_decoder_inputs``), from PyTorch."""
    return decoder_graph(model)(*inputs.values())


def _require_onnx() -> Any:
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401  (the torch.export-based exporter builds graphs with it)
    except ImportError:
        raise VaekitError(
            "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'vaekit[onnx]'"
        ) from None
    return onnxruntime


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter prints its progress and warns about torchvision's operators; a command says less."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_graph(
    graph: nn.Module, inputs: dict[str, torch.Tensor], output_names: list[str], path: Path
) -> None:
    """Export ``graph`` called on ``inputs`` (in order, named by their keys) with an open batch axis."""
    batch = torch.export.Dim("batch", min=1)
    shapes: tuple[Any, ...] = tuple({0: batch} for _ in inputs)
    parameters = list(inspect.signature(graph.forward).parameters.values())
    rest = [i for i, p in enumerate(parameters) if p.kind is p.VAR_POSITIONAL]
    if rest:  # forward(latents, *noise): torch.export takes the trailing inputs' shapes as one tuple
        shapes = (*shapes[: rest[0]], shapes[rest[0] :])
    try:
        with _quiet_exporter():
            torch.onnx.export(
                graph,
                tuple(inputs.values()),
                str(path),
                input_names=list(inputs),
                output_names=output_names,
                opset_version=OPSET,
                dynamo=True,
                external_data=False,  # one self-contained file a graph
                dynamic_shapes=shapes,
            )
    except OSError:  # the disk's, not the exporter's: the output policy says it (utils.targets)
        raise
    except Exception as exc:  # the exporter's errors are long; the first line says what failed
        raise VaekitError(f"the ONNX exporter failed on {path.name}: {first_line(exc)}") from None


def _example(model: VAE, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Encoder inputs of ``batch`` images (uniform noise: the graph's arithmetic does not care)."""
    inputs = {"images": torch.rand(batch, *model.image_shape, generator=generator)}
    if model.conditional:
        inputs["labels"] = torch.randint(model.num_classes, (batch,), generator=generator)
    return inputs


def describe(model: VAE, run_config: dict[str, Any]) -> dict[str, Any]:
    """export.json without the check: the graphs' inputs and outputs and how to prepare images."""
    c, h, w = model.image_shape
    images = io_spec("images", ["batch", c, h, w], "float32", "pixels in [0, 1] (8-bit values / 255), NCHW")
    labels = io_spec(
        "labels", ["batch"], "int64", f"class indices 0..{model.num_classes - 1}, checked by the caller"
    )
    io = model.export_io()
    encoded, latent = io["encoder_outputs"], io["latent"]
    extra = [labels] if model.conditional else []
    decoder_extra = [*extra, *io["decoder_extra"]]
    pixels = io_spec("pixel_means", ["batch", c, h, w], "float32", "pixel means in [0, 1] (model.decode)")
    data, train = run_config.get("data", {}), run_config.get("train", {})
    return {
        "format": "onnx",
        "exporter": EXPORTER,
        "opset": OPSET,
        "torch_version": torch.__version__,
        "vaekit_version": vaekit.__version__,
        "model": {k: v for k, v in model.config.items() if k != "prior"},
        "encoder": {"file": "encoder.onnx", "inputs": [images, *extra], "outputs": encoded},
        "decoder": {"file": "decoder.onnx", "inputs": [latent, *decoder_extra], "outputs": [pixels]},
        "preprocessing": {
            "dataset": data.get("dataset"),
            "image_shape": [c, h, w],
            "channels": {1: "grey", 3: "RGB"}.get(c, f"{c} channels"),
            "scale": "uint8 / 255 -> float32 in [0, 1]",
            "binarize": train.get("binarize", "none"),
            "note": "images as the run's dataset gave them: the same size, channels and framing",
        },
        "classes": data.get("classes", []),
        "fitted_prior": "not exported: draw z from N(0, I), or use vaekit sample",
    }


def _check(model: VAE, folder: Path, seed: int = 0) -> float:
    """Largest |onnxruntime - PyTorch| over both graphs' outputs at batch 1 and 7."""
    onnxruntime = _require_onnx()
    sessions = {
        part: onnxruntime.InferenceSession(str(folder / f"{part}.onnx"), providers=["CPUExecutionProvider"])
        for part in ("encoder", "decoder")
    }
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    with torch.no_grad():
        for batch in CHECK_BATCHES:
            inputs = _example(model, batch, generator)
            labels = inputs.get("labels")
            encoded = model.export_encoding(inputs["images"], labels)
            decoding = model.export_decoder_inputs(encoded, labels, generator)
            expected = [*encoded, expected_pixels(model, decoding)]
            got = sessions["encoder"].run(None, {k: v.numpy() for k, v in inputs.items()})
            got += sessions["decoder"].run(None, {k: v.numpy() for k, v in decoding.items()})
            for want, have in zip(expected, got, strict=True):
                if tuple(have.shape) != tuple(want.shape):
                    raise VaekitError(
                        f"the exported graph gives shape {list(have.shape)} at batch {batch}, "
                        f"not {list(want.shape)}"
                    )
                worst = max(worst, float((torch.from_numpy(have).double() - want.double()).abs().max()))
    return worst


def export_onnx(
    run: str | os.PathLike,
    out: str | os.PathLike,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write encoder.onnx, decoder.onnx and export.json for the run in ``run`` into the folder ``out``
    (which must not exist unless ``overwrite``); returns export.json's contents."""
    _require_onnx()
    run, out = Path(run), folder_target(out, overwrite=overwrite)
    model = load(run, "cpu")  # exported in float32 from the CPU: the graphs do not depend on the device
    run_config = read_run_config(run)
    with staged_folder(out) as staging:  # an export is replaced whole, or not at all
        example = _example(model, 2, torch.Generator().manual_seed(0))  # batch 2: 1 could be taken as fixed
        description = describe(model, run_config)
        with torch.no_grad():
            encoded = model.export_encoding(example["images"], example.get("labels"))
        encoder_names = [o["name"] for o in description["encoder"]["outputs"]]
        _export_graph(EncoderGraph(model).eval(), example, encoder_names, staging / "encoder.onnx")
        generator = torch.Generator().manual_seed(1)
        decoding = model.export_decoder_inputs(encoded, example.get("labels"), generator)
        _export_graph(decoder_graph(model).eval(), decoding, ["pixel_means"], staging / "decoder.onnx")
        worst = _check(model, staging)
        description["check"] = {"batches": list(CHECK_BATCHES), "max_abs_difference": worst}
        write_json(staging / "export.json", description)
    check = description["check"]["max_abs_difference"]
    log(f"encoder.onnx and decoder.onnx written to {out}; onnxruntime matches PyTorch within {check:.1e}")
    return description
