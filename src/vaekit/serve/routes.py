"""vaekit serve's endpoints, in groups: pictures (info, decode, sample, encode), walks through latent
space (interpolate, traverse, labels, attribute), the reference test images (neighbours, test-image,
latents) and the page. Each group is an APIRouter over the runs the app serves (served.py)."""

from __future__ import annotations

import base64
import io
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import torch
from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image, ImageOps

from vaekit.evaluation.latents import slerp
from vaekit.serve.requests import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    AttributeRequest,
    DecodeRequest,
    Group,
    InterpolateRequest,
    NeighboursRequest,
    SampleRequest,
    TraverseRequest,
)
from vaekit.utils.plots import image_grid

# a query's run index: >= 0 in the schema, so that -1 is refused as the JSON bodies' run is
RunIndex = Annotated[int, Query(ge=0, description="which run (the order of vaekit serve's arguments)")]

if TYPE_CHECKING:
    from vaekit.serve.served import ServedRuns
    from vaekit.serve.state import RunState

STATIC = Path(__file__).parent / "static"


# ------------------------------------------------------------------------------------------ pictures
def png_bytes(images: torch.Tensor, ncol: int | None = None) -> bytes:
    """Images [N, C, H, W] in [0, 1] as one PNG (a grid of ``ncol`` columns; a single image as it is)."""
    if len(images) == 1:
        array = (images[0].detach().float().clamp(0, 1).cpu() * 255).round().to(torch.uint8)
        array = array.permute(1, 2, 0).numpy()
        array = array[:, :, 0] if array.shape[2] == 1 else array
    else:
        array = image_grid(images, ncol or math.ceil(math.sqrt(len(images))))
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _picture(images: torch.Tensor, fmt: str, ncol: int | None = None, **extra: Any) -> Response:
    start = time.perf_counter()
    data = png_bytes(images, ncol)
    headers = {"X-" + k.replace("_", "-").title(): str(v)
               for k, v in extra.items() if not isinstance(v, list)}  # fmt: skip
    headers["X-Encode-Seconds"] = f"{time.perf_counter() - start:.6f}"
    if fmt == "base64":
        body = {"image": "data:image/png;base64," + base64.b64encode(data).decode(), **extra}
        return JSONResponse(body, headers=headers)
    return Response(data, media_type="image/png", headers=headers)


def _image_tensor(data: bytes, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Upload bytes -> float [1, C, H, W] in [0, 1] at the model's shape (centre crop, antialiased resize)."""
    channels, height, width = image_shape
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_UPLOAD_PIXELS:
                raise HTTPException(413, f"the image is over {MAX_UPLOAD_PIXELS:,} pixels")
            image = image.convert("L" if channels == 1 else "RGB")
            image = ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)
            array = np.asarray(image, dtype=np.float32) / 255
    except HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever PIL makes of the bytes, it is not an image we can use
        raise HTTPException(415, f"the upload is not an image PIL can read ({type(exc).__name__})") from None
    tensor = torch.from_numpy(array)
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tensor.unsqueeze(0)


def _check_sample_request(run: RunState, request: SampleRequest) -> None:
    """A 4xx unless ``run`` can draw the samples ``request`` asks for (by class: a class it has)."""
    if request.label is not None:
        if not run.model.samples_by_class(request.prior):
            raise HTTPException(422, f"run {run.name} cannot sample by class")
        if not 0 <= request.label < len(run.classes):
            raise HTTPException(422, f"label must be in 0..{len(run.classes) - 1}")
    if not run.model.can_sample:
        raise HTTPException(409, f"run {run.name} cannot sample until vaekit train-prior has run")


def _draw_samples(run: RunState, request: SampleRequest, generator: torch.Generator) -> torch.Tensor:
    """``request.n`` samples of ``run``'s prior (a Gaussian latent: the one ``request.prior`` names)."""
    if request.temperature is None:  # the run's own: an hvae keeps other ones for a requested class
        temperature = run.model.sample_temperature(request.prior, request.label is not None)
    else:
        temperature = request.temperature
    with torch.no_grad():
        if run.gaussian:
            return run.model.sample(
                request.n, label=request.label, generator=generator, prior=request.prior,
                temperature=temperature,
            )  # fmt: skip
        if request.prior == "fitted":
            raise HTTPException(422, "a VQ-VAE has one prior, over its codes: leave prior unset")
        return run.model.sample(request.n, generator=generator, temperature=temperature)


def _encoding(run: RunState, x: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
    """The /api/encode answer for image ``x`` [1, C, H, W]: its latent, reconstruction and class guess."""
    with torch.no_grad():
        if run.gaussian:
            _, logvar = run.model.encode(x, labels)  # with a flow: of its base Gaussian
            z, extra = run.model.latents(x, labels).float(), {"logvar": logvar.float()[0].tolist()}
        else:
            z, extra = run.model.encode(x, labels), {}
        recon = run.model.decode(z, labels)
    return {
        "z": z[0].flatten().tolist(),
        **extra,
        "reconstruction": "data:image/png;base64," + base64.b64encode(png_bytes(recon)).decode(),
        "guess": run.guess(x, z if run.gaussian else None),
    }


def image_routes(served: ServedRuns) -> APIRouter:
    """``GET /api/info`` and the single pictures: ``/api/decode``, ``/api/sample``, ``/api/encode``."""
    router = APIRouter()

    @router.get("/api/info")
    def info() -> dict[str, Any]:
        """The runs served; the first run's latent_dim, image_shape and classes at the top level."""
        first = served.runs[0].info(0)
        return {
            "latent_dim": first["latent_dim"],
            "image_shape": first["image_shape"],
            "classes": first["classes"],
            "runs": [s.info(i) for i, s in enumerate(served.runs)],
            "device": str(served.device),
        }

    @router.post("/api/decode")
    async def decode_z(request: DecodeRequest) -> Response:
        """One latent vector -> its decoded image (pixel means) as PNG. Decodes that arrive together
        share one batch; the X-Decode-Seconds header counts the wait for the batch too."""
        run = served.run(request.run)
        z, labels = served.check_z(run, request.z), served.check_label(run, request.label, 1)
        images, seconds = await served.decode_one(request.run, z, labels)
        return _picture(images, request.format, decode_seconds=round(seconds, 6))

    @router.post("/api/sample")
    def sample(request: SampleRequest) -> Response:
        """A grid of ``n`` samples from the prior (fitted where the run has one, unless "trained")."""
        run = served.run(request.run)
        _check_sample_request(run, request)
        generator = torch.Generator(device=served.device).manual_seed(request.seed)
        start = time.perf_counter()
        images = _draw_samples(run, request, generator)
        seconds = time.perf_counter() - start
        return _picture(images, request.format, decode_seconds=round(seconds, 6))

    @router.post("/api/encode")
    async def encode(
        file: Annotated[UploadFile, File()], run: RunIndex = 0, label: int | None = None
    ) -> dict[str, Any]:
        """An uploaded image (PNG, JPEG, ...) -> resized and converted to the model's shape -> its latent
        mean and log-variance (a VQ-VAE: its codes), the reconstruction as a base64 PNG, and a class
        guess (``null`` where the run has neither a cached classifier nor labelled neighbours)."""
        run_state = served.run(run)
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MB")
        x = _image_tensor(data, run_state.model.image_shape).to(served.device)
        labels = served.check_label(run_state, label, 1)
        return _encoding(run_state, x, labels)

    return router


# ------------------------------------------------------------------------------------------- walks
def _group_mean(run: RunState, group: Group, name: str) -> torch.Tensor:
    """The mean latent of a group of reference images: those of a class, or those listed."""
    if (group.label is None) == (group.indices is None):
        raise HTTPException(422, f"group {name}: give a label or indices, not both or neither")
    if group.label is not None:
        chosen = run.labels == group.label
        if not chosen.any():
            raise HTTPException(422, f"group {name}: no reference image has label {group.label}")
        return run.means[chosen].mean(0)
    indices = group.indices
    if not indices or max(indices) >= len(run.means) or min(indices) < 0:
        raise HTTPException(422, f"group {name}: indices must be 0..{len(run.means) - 1}")
    return run.means[indices].mean(0)


def _interpolation(run: RunState, request: InterpolateRequest) -> torch.Tensor:
    """The ``steps`` latents from reference image ``start``'s mean to ``end``'s, on the CPU."""
    if run.means is None:
        raise HTTPException(422, "interpolation needs a Gaussian latent")
    for i in (request.start, request.end):
        if i >= len(run.means):
            raise HTTPException(422, f"test image {i} is not among the {len(run.means)} reference images")
    a, b = run.means[request.start], run.means[request.end]
    t = torch.linspace(0, 1, request.steps)
    return slerp(a, b, t) if request.spherical else a + t[:, None] * (b - a)


def _attribute_walk(
    served: ServedRuns, run: RunState, request: AttributeRequest
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``steps`` latents (on the CPU) from ``z`` along the attribute vector, group b's mean latent
    minus group a's, and that vector."""
    if run.means is None:
        raise HTTPException(422, "attribute vectors need a Gaussian latent")
    mean_a, mean_b = (_group_mean(run, g, name) for g, name in ((request.a, "a"), (request.b, "b")))
    direction = mean_b - mean_a
    t = torch.linspace(0, request.scale, request.steps).unsqueeze(1)
    return served.check_z(run, request.z).cpu() + t * direction, direction


def walk_routes(served: ServedRuns) -> APIRouter:
    """Strips of pictures along a path through latent space: ``/api/interpolate``, ``/api/traverse``,
    ``/api/labels``, ``/api/attribute``."""
    router = APIRouter()
    device = served.device

    @router.post("/api/interpolate")
    def interpolate(request: InterpolateRequest) -> Response:
        """A strip from reference test image ``start``'s latent mean to ``end``'s (linear or spherical)."""
        run = served.run(request.run)
        z = _interpolation(run, request)
        labels = None
        if run.model.conditional:
            labels = run.labels[request.start].repeat(request.steps).to(device)
        images, seconds = served.decode(run, z.to(device), labels)
        return _picture(images, request.format, ncol=request.steps, decode_seconds=round(seconds, 6))

    @router.post("/api/traverse")
    def traverse(request: TraverseRequest) -> Response:
        """Dimension ``dim`` of ``z`` swept over [-limit, +limit] in ``steps`` images."""
        run = served.run(request.run)
        if not run.gaussian:
            raise HTTPException(422, "traversal needs a Gaussian latent")
        z = served.check_z(run, request.z)
        if request.dim >= run.latent_dim:
            raise HTTPException(422, f"dim must be in 0..{run.latent_dim - 1}, got {request.dim}")
        z = z.repeat(request.steps, 1)
        z[:, request.dim] = torch.linspace(-request.limit, request.limit, request.steps, device=device)
        labels = served.check_label(run, request.label, request.steps)
        images, seconds = served.decode(run, z, labels)
        return _picture(images, request.format, ncol=request.steps, decode_seconds=round(seconds, 6))

    @router.post("/api/labels")
    def every_label(request: NeighboursRequest) -> Response:
        """A conditional model's decoding of the same ``z`` under every label, as a strip."""
        run = served.run(request.run)
        if not run.model.conditional:
            raise HTTPException(422, f"run {run.name} ({run.model.name}) is not conditional")
        classes = run.model.num_classes
        z = served.check_z(run, request.z).repeat(classes, 1)
        images, seconds = served.decode(run, z, torch.arange(classes, device=device))
        return _picture(images, "png", ncol=classes, decode_seconds=round(seconds, 6))

    @router.post("/api/attribute")
    def attribute(request: AttributeRequest) -> Response:
        """Walk ``z`` along the difference of two groups' mean latents (group b minus group a); a group is
        a class or a list of reference test images. Steps from 0 to ``scale`` times the difference."""
        run = served.run(request.run)
        z, direction = _attribute_walk(served, run, request)
        labels = served.check_label(run, request.label, request.steps)
        images, seconds = served.decode(run, z.to(device), labels)
        return _picture(
            images, request.format, ncol=request.steps, decode_seconds=round(seconds, 6),
            **({"direction": [round(float(v), 5) for v in direction]} if request.format == "base64" else {}),
        )  # fmt: skip

    return router


# ------------------------------------------------------------------------------- reference images
def reference_routes(served: ServedRuns) -> APIRouter:
    """The reference test images and their latents: ``/api/neighbours``, ``GET /api/test-image/{i}``,
    ``GET /api/latents``."""
    router = APIRouter()

    @router.post("/api/neighbours")
    def neighbours(request: NeighboursRequest) -> dict[str, Any]:
        """The ``k`` reference test images whose latent means are nearest to ``z`` (Euclidean)."""
        run = served.run(request.run)
        if run.means is None:
            raise HTTPException(422, "neighbours need a Gaussian latent")
        z = served.check_z(run, request.z).cpu()
        distances = torch.cdist(z, run.means.float())[0]
        k = min(request.k, len(distances))
        nearest = torch.topk(distances, k, largest=False)
        return {
            "indices": nearest.indices.tolist(),
            "distances": [round(float(d), 5) for d in nearest.values],
            "labels": run.labels[nearest.indices].tolist(),
        }

    @router.get("/api/test-image/{index}")
    def test_image(index: int, run: RunIndex = 0) -> Response:
        """Reference test image ``index`` as PNG (its label in the X-Label header)."""
        run_state = served.run(run)
        if not 0 <= index < len(run_state.images):
            raise HTTPException(
                404, f"test image {index} is not among the {len(run_state.images)} reference images"
            )
        image = run_state.images[index : index + 1].float() / 255
        return Response(
            png_bytes(image), media_type="image/png", headers={"X-Label": str(int(run_state.labels[index]))}
        )

    @router.get("/api/latents")
    def latents(run: RunIndex = 0) -> dict[str, Any]:
        """The reference images' latent means (for the pad's scatter) and labels."""
        run_state = served.run(run)
        if run_state.means is None:
            raise HTTPException(422, "latent means need a Gaussian latent")
        return {"means": np.round(run_state.means.numpy(), 4).tolist(), "labels": run_state.labels.tolist()}

    return router


def page_routes() -> APIRouter:
    """``GET /``: the explorer page (its scripts and styles are the app's /static mount)."""
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return router
