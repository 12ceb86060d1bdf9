"""``vaekit serve``: a local web app over trained runs (see app.py for its JSON API)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_run_config


def check_port(host: str, port: int) -> None:
    """A clear error, before anything loads, when ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise VaekitError(f"port {port} on {host} is in use; pick another with --port") from None
            raise VaekitError(f"cannot listen on {host}:{port} ({exc.strerror})") from None


def serve(
    runs: list[str | os.PathLike],
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    token: str | None = None,
) -> None:
    """Load ``runs`` once and serve them on ``host:port`` until interrupted. Another address than loopback
    needs a ``token`` (or $VAEKIT_TOKEN), which every request must then carry (``guard.py``)."""
    from vaekit.serve.guard import server_token

    token = server_token(host, token)
    for run in runs:
        read_run_config(Path(run))  # a one-line error for a folder that is not a run
    check_port(host, port)
    try:
        import uvicorn

        from vaekit.serve.app import create_app
    except ImportError as exc:
        raise VaekitError(
            f"vaekit serve needs FastAPI and uvicorn: pip install 'vaekit[serve]' ({exc.name})"
        ) from None
    from vaekit.utils.devices import resolve_device

    app = create_app(list(runs), resolve_device(device), token=token)
    print(f"serving {len(runs)} run{'s' if len(runs) > 1 else ''} on http://{host}:{port}/ (API docs: /docs)")
    if token is not None:
        print(f"every request needs the token: open http://{host}:{port}/?token=TOKEN")
    # an idle keep-alive connection is closed after 5 s; a stalled one holds only its own coroutine
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=5)
