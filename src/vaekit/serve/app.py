"""The JSON API behind ``vaekit serve``: one or more trained runs, loaded once, decoded on request.

Endpoints (all documented on /docs by FastAPI): ``GET /api/info``; ``POST /api/decode`` (one latent
vector -> PNG), ``/api/sample`` (a grid -> PNG), ``/api/encode`` (an uploaded image -> its latent),
``/api/interpolate`` and ``/api/traverse`` (strips -> PNG), ``/api/neighbours`` (nearest test images of a
latent), ``GET /api/test-image/{i}`` (PNG). Every input is checked at the edge: a bad request gets a 4xx
with a one-line ``detail`` and the server answers the next one.
"""

from __future__ import annotations

import base64
import io
import math
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, ImageOps

from vaekit.evaluation.latents import slerp
from vaekit.serve.batching import DecodeBatcher
from vaekit.serve.requests import (
    MAX_ABS_Z,
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
from vaekit.serve.state import RunState, load_run_state
from vaekit.utils.errors import VaekitError
from vaekit.utils.plots import image_grid

STATIC = Path(__file__).parent / "static"


# ------------------------------------------------------------------------------------------- the app
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


def create_app(
    runs: list[str | Path], device: str | torch.device = "cpu", batch_window: float | None = 0.0
) -> FastAPI:
    """The FastAPI app for ``runs`` (run folders), each loaded once on ``device``. Single decodes that
    arrive within ``batch_window`` seconds share one batch (0: those of one turn of the event loop;
    None: each decodes alone)."""
    if not runs:
        raise VaekitError("vaekit serve needs at least one run folder")
    device = torch.device(device)
    states = [load_run_state(run, device) for run in runs]
    app = FastAPI(title="vaekit explorer", description="Explore trained VAEs' latent spaces.")

    def state(index: int) -> RunState:
        if index >= len(states):
            raise HTTPException(404, f"no run {index}: this server has {len(states)}")
        return states[index]

    def check_z(run: RunState, z: list[float]) -> torch.Tensor:
        if len(z) != run.latent_dim:
            raise HTTPException(422, f"z has {len(z)} values; run {run.name} takes {run.latent_dim}")
        values = torch.tensor(z, dtype=torch.float64)
        if not torch.isfinite(values).all():
            raise HTTPException(422, "z must be finite numbers (no NaN or infinity)")
        if not run.gaussian:
            size = run.model.codebook_size
            if (values != values.round()).any() or values.min() < 0 or values.max() >= size:
                raise HTTPException(422, f"a VQ-VAE's z is its codes: whole numbers in 0..{size - 1}")
            return values.long().view(1, *run.model.grid).to(device)
        if values.abs().max() > MAX_ABS_Z:
            raise HTTPException(422, f"z values must be within +-{MAX_ABS_Z:g}")
        return values.float().view(1, -1).to(device)

    def check_label(run: RunState, label: int | None, n: int) -> torch.Tensor | None:
        if not run.model.conditional:
            if label is not None:
                raise HTTPException(422, f"run {run.name} ({run.model.name}) takes no label")
            return None
        if label is None:
            raise HTTPException(422, f"run {run.name} is conditional: give a label")
        if not 0 <= label < run.model.num_classes:
            raise HTTPException(422, f"label must be in 0..{run.model.num_classes - 1}, got {label}")
        return torch.full((n,), label, dtype=torch.long, device=device)

    def decode(run: RunState, z: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """Latents -> images on the CPU (which waits for a GPU to finish), and the seconds it took."""
        start = time.perf_counter()
        with torch.no_grad():
            images = run.model.decode(z, labels).cpu()
        return images, time.perf_counter() - start

    batchers = [
        DecodeBatcher(lambda z, y, run=run: decode(run, z, y)[0], batch_window or 0.0) for run in states
    ]

    @app.exception_handler(VaekitError)
    async def vaekit_error(request: Any, exc: VaekitError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """The runs served; the first run's latent_dim, image_shape and classes at the top level."""
        first = states[0].info(0)
        return {
            "latent_dim": first["latent_dim"],
            "image_shape": first["image_shape"],
            "classes": first["classes"],
            "runs": [s.info(i) for i, s in enumerate(states)],
            "device": str(device),
        }

    @app.post("/api/decode")
    async def decode_z(request: DecodeRequest) -> Response:
        """One latent vector -> its decoded image (pixel means) as PNG. Decodes that arrive together
        share one batch; the X-Decode-Seconds header counts the wait for the batch too."""
        run = state(request.run)
        z, labels = check_z(run, request.z), check_label(run, request.label, 1)
        if batch_window is None:
            images, seconds = decode(run, z, labels)
        else:
            start = time.perf_counter()
            images = await batchers[request.run](z, labels)
            seconds = time.perf_counter() - start
        return _picture(images, request.format, decode_seconds=round(seconds, 6))

    @app.post("/api/sample")
    def sample(request: SampleRequest) -> Response:
        """A grid of ``n`` samples from the prior (fitted where the run has one, unless "standard")."""
        run = state(request.run)
        model = run.model
        if request.label is not None:
            if not model.samples_by_class(request.prior):
                raise HTTPException(422, f"run {run.name} cannot sample by class")
            if not 0 <= request.label < len(run.classes):
                raise HTTPException(422, f"label must be in 0..{len(run.classes) - 1}")
        if not model.can_sample:
            raise HTTPException(409, f"run {run.name} cannot sample until vaekit train-prior has run")
        generator = torch.Generator(device=device).manual_seed(request.seed)
        start = time.perf_counter()
        with torch.no_grad():
            if run.gaussian:
                images = model.sample(
                    request.n, label=request.label, generator=generator, prior=request.prior,
                    temperature=request.temperature,
                )  # fmt: skip
            else:
                if request.prior == "fitted":
                    raise HTTPException(422, "a VQ-VAE has one prior, over its codes: leave prior unset")
                images = model.sample(request.n, generator=generator, temperature=request.temperature)
        seconds = time.perf_counter() - start
        return _picture(images, request.format, decode_seconds=round(seconds, 6))

    @app.post("/api/encode")
    async def encode(
        file: Annotated[UploadFile, File()], run: int = 0, label: int | None = None
    ) -> dict[str, Any]:
        """An uploaded image (PNG, JPEG, ...) -> resized and converted to the model's shape -> its latent
        mean and log-variance (a VQ-VAE: its codes), the reconstruction as a base64 PNG, and a class
        guess (``null`` where the run has neither a cached classifier nor labelled neighbours)."""
        run_state = state(run)
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MB")
        x = _image_tensor(data, run_state.model.image_shape).to(device)
        labels = check_label(run_state, label, 1)
        with torch.no_grad():
            if run_state.gaussian:
                mu, logvar = run_state.model.encode(x, labels)
                z, extra = mu.float(), {"logvar": logvar.float()[0].tolist()}
            else:
                z, extra = run_state.model.encode(x, labels), {}
            recon = run_state.model.decode(z, labels)
        return {
            "z": z[0].flatten().tolist(),
            **extra,
            "reconstruction": "data:image/png;base64," + base64.b64encode(png_bytes(recon)).decode(),
            "guess": run_state.guess(x, z if run_state.gaussian else None),
        }

    @app.post("/api/interpolate")
    def interpolate(request: InterpolateRequest) -> Response:
        """A strip from reference test image ``start``'s latent mean to ``end``'s (linear or spherical)."""
        run = state(request.run)
        if run.means is None:
            raise HTTPException(422, "interpolation needs a Gaussian latent")
        for i in (request.start, request.end):
            if i >= len(run.means):
                raise HTTPException(422, f"test image {i} is not among the {len(run.means)} reference images")
        a, b = run.means[request.start], run.means[request.end]
        t = torch.linspace(0, 1, request.steps)
        z = slerp(a, b, t) if request.spherical else a + t[:, None] * (b - a)
        labels = None
        if run.model.conditional:
            labels = run.labels[request.start].repeat(request.steps).to(device)
        images, seconds = decode(run, z.to(device), labels)
        return _picture(images, request.format, ncol=request.steps, decode_seconds=round(seconds, 6))

    @app.post("/api/traverse")
    def traverse(request: TraverseRequest) -> Response:
        """Dimension ``dim`` of ``z`` swept over [-limit, +limit] in ``steps`` images."""
        run = state(request.run)
        if not run.gaussian:
            raise HTTPException(422, "traversal needs a Gaussian latent")
        z = check_z(run, request.z)
        if request.dim >= run.latent_dim:
            raise HTTPException(422, f"dim must be in 0..{run.latent_dim - 1}, got {request.dim}")
        z = z.repeat(request.steps, 1)
        z[:, request.dim] = torch.linspace(-request.limit, request.limit, request.steps, device=device)
        labels = check_label(run, request.label, request.steps)
        images, seconds = decode(run, z, labels)
        return _picture(images, request.format, ncol=request.steps, decode_seconds=round(seconds, 6))

    @app.post("/api/labels")
    def every_label(request: NeighboursRequest) -> Response:
        """A conditional model's decoding of the same ``z`` under every label, as a strip."""
        run = state(request.run)
        if not run.model.conditional:
            raise HTTPException(422, f"run {run.name} ({run.model.name}) is not conditional")
        classes = run.model.num_classes
        z = check_z(run, request.z).repeat(classes, 1)
        images, seconds = decode(run, z, torch.arange(classes, device=device))
        return _picture(images, "png", ncol=classes, decode_seconds=round(seconds, 6))

    @app.post("/api/attribute")
    def attribute(request: AttributeRequest) -> Response:
        """Walk ``z`` along the difference of two groups' mean latents (group b minus group a); a group is
        a class or a list of reference test images. Steps from 0 to ``scale`` times the difference."""
        run = state(request.run)
        if run.means is None:
            raise HTTPException(422, "attribute vectors need a Gaussian latent")
        mean_a, mean_b = (group_mean(run, g, name) for g, name in ((request.a, "a"), (request.b, "b")))
        direction = mean_b - mean_a
        t = torch.linspace(0, request.scale, request.steps).unsqueeze(1)
        z = check_z(run, request.z).cpu() + t * direction
        labels = check_label(run, request.label, request.steps)
        images, seconds = decode(run, z.to(device), labels)
        return _picture(
            images, request.format, ncol=request.steps, decode_seconds=round(seconds, 6),
            **({"direction": [round(float(v), 5) for v in direction]} if request.format == "base64" else {}),
        )  # fmt: skip

    def group_mean(run: RunState, group: Group, name: str) -> torch.Tensor:
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

    @app.post("/api/neighbours")
    def neighbours(request: NeighboursRequest) -> dict[str, Any]:
        """The ``k`` reference test images whose latent means are nearest to ``z`` (Euclidean)."""
        run = state(request.run)
        if run.means is None:
            raise HTTPException(422, "neighbours need a Gaussian latent")
        z = check_z(run, request.z).cpu()
        distances = torch.cdist(z, run.means.float())[0]
        k = min(request.k, len(distances))
        nearest = torch.topk(distances, k, largest=False)
        return {
            "indices": nearest.indices.tolist(),
            "distances": [round(float(d), 5) for d in nearest.values],
            "labels": run.labels[nearest.indices].tolist(),
        }

    @app.get("/api/test-image/{index}")
    def test_image(index: int, run: int = 0) -> Response:
        """Reference test image ``index`` as PNG (its label in the X-Label header)."""
        run_state = state(run)
        if not 0 <= index < len(run_state.images):
            raise HTTPException(
                404, f"test image {index} is not among the {len(run_state.images)} reference images"
            )
        image = run_state.images[index : index + 1].float() / 255
        return Response(
            png_bytes(image), media_type="image/png", headers={"X-Label": str(int(run_state.labels[index]))}
        )

    @app.get("/api/latents")
    def latents(run: int = 0) -> dict[str, Any]:
        """The reference images' latent means (for the pad's scatter) and labels."""
        run_state = state(run)
        if run_state.means is None:
            raise HTTPException(422, "latent means need a Gaussian latent")
        return {"means": np.round(run_state.means.numpy(), 4).tolist(), "labels": run_state.labels.tolist()}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # StaticFiles answers any path outside the folder (../, encoded or not) with a 404
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.runs = states
    return app


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
