"""The JSON API behind ``vaekit serve``: one or more trained runs, loaded once, decoded on request.

Endpoints (all documented on /docs by FastAPI): ``GET /api/info``; ``POST /api/decode`` (one latent
vector -> PNG), ``/api/sample`` (a grid -> PNG), ``/api/encode`` (an uploaded image -> its latent),
``/api/interpolate`` and ``/api/traverse`` (strips -> PNG), ``/api/neighbours`` (nearest test images of a
latent), ``GET /api/test-image/{i}`` (PNG). Every input is checked at the edge: a bad request gets a 4xx
with a one-line ``detail`` and the server answers the next one.

This module builds the app; what its endpoints share is in served.py, the endpoints in routes.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from vaekit.serve import routes
from vaekit.serve.guard import Guard
from vaekit.serve.requests import MAX_BODY_BYTES
from vaekit.serve.routes import STATIC
from vaekit.serve.schema import document_errors
from vaekit.serve.served import ServedRuns
from vaekit.serve.state import load_run_state
from vaekit.utils.errors import VaekitError


def create_app(
    runs: list[str | Path],
    device: str | torch.device = "cpu",
    batch_window: float | None = 0.0,
    token: str | None = None,
) -> FastAPI:
    """The FastAPI app for ``runs`` (run folders), each loaded once on ``device``. Single decodes that
    arrive within ``batch_window`` seconds share one batch (0: those of one turn of the event loop;
    None: each decodes alone). With a ``token``, every request must carry it (``guard.py``)."""
    if not runs:
        raise VaekitError("vaekit serve needs at least one run folder")
    device = torch.device(device)
    served = ServedRuns([load_run_state(run, device) for run in runs], device, batch_window)
    app = FastAPI(title="vaekit explorer", description="Explore trained VAEs' latent spaces.")

    @app.exception_handler(VaekitError)
    async def vaekit_error(request: Any, exc: VaekitError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    # in this order, the order of the endpoints on /docs
    app.include_router(routes.image_routes(served))
    app.include_router(routes.walk_routes(served))
    app.include_router(routes.reference_routes(served))
    app.include_router(routes.page_routes())
    # StaticFiles answers any path outside the folder (../, encoded or not) with a 404
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.runs = served.runs
    app.add_middleware(Guard, token=token, max_body=MAX_BODY_BYTES)
    document_errors(app)
    return app
