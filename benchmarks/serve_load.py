"""vaekit serve under load: 8 concurrent clients on loopback, decode and sample requests.

Why: issue 12 asks that the explorer answer a pointer dragged over the pad at once: decode p99 under
50 ms for the MNIST MLP (784-400-20) on a 2-core CPU with 8 clients at a time. Each client sends its
next request as soon as the last is answered (a closed loop), for a bounded number of requests and a
bounded time. Scenarios, each against the server with decode batching (decodes whose requests arrive
in one turn of the event loop share one decode call) and without it (each decodes alone), in one run:

  decode   POST /api/decode, one random z each (the pad and the sliders)
  sample   POST /api/sample, n=36 (the sample grid), a random seed each
  mixed    four decodes to one sample, as a page with two runs side by side asks
  single   one client, decodes only: the floor of the round trip

Latency is measured by the clients (send to full response) and reported as p50 and p99 with requests
per second and the count of errors (non-200 answers or failed connections). The clients run in one
asyncio process beside the server on the same 2 cores: their share of the CPU is part of the figure,
as it is for a browser on the same machine.

Results: benchmarks/results/serve_load.json. Run alone (no other torch process) from the repository root:
    .venv/bin/python benchmarks/serve_load.py [--requests 250] [--seconds 60] [--run RUN]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from _common import DEFAULT_DATA_DIR, check_data_dir
from harness import format_table, percentile, quiet, write_results

CLIENTS = 8
SCENARIOS = (("decode", CLIENTS), ("sample", CLIENTS), ("mixed", CLIENTS), ("single", 1))
SERVER = """
import sys, uvicorn
from vaekit.serve.app import create_app
window = None if sys.argv[2] == "none" else float(sys.argv[2])
uvicorn.run(create_app([sys.argv[1]], "cpu", batch_window=window), host="127.0.0.1",
            port=int(sys.argv[3]), log_level="warning")
"""


def train_run(out: Path, data_dir: Path) -> Path:
    """The classic MNIST MLP (784-400-20), one epoch: its speed, not its quality, is measured here."""
    from vaekit.training import TrainConfig, Trainer

    config = TrainConfig(dataset="mnist", data_dir=str(data_dir.parent), epochs=1, seed=0, fit_prior=False)
    Trainer(config, out, progress=False, log=quiet).run()
    return out


def free_port() -> int:
    """A loopback port that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, run: Path, batch_window: float | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(run), str(batch_window).lower(), str(self.port)]
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.base + "/api/info", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("error: the server did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def request_for(kind: str, latent_dim: int, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A request of ``kind`` ("decode" or "sample"): its path and JSON body, random by ``rng``."""
    if kind == "decode":
        return "/api/decode", {"z": [rng.gauss(0, 1) for _ in range(latent_dim)]}
    return "/api/sample", {"n": 36, "seed": rng.randrange(2**31)}


async def load(
    base: str, scenario: str, clients: int, requests: int, seconds: float, latent_dim: int
) -> tuple[dict[str, list[float]], int, float]:
    """``clients`` closed-loop clients, ``requests`` each or ``seconds`` in all, whichever ends first.
    aiohttp, not httpx: its client costs the shared CPU a fraction of httpx's per request."""
    latencies: dict[str, list[float]] = {"decode": [], "sample": []}
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(index: int, http: aiohttp.ClientSession) -> None:
        nonlocal errors
        rng = random.Random(index)
        for i in range(requests):
            if time.perf_counter() > deadline:
                return
            kind = scenario if scenario in ("decode", "sample") else ("sample" if i % 5 == 4 else "decode")
            path, body = request_for(kind, latent_dim, rng)
            start = time.perf_counter()
            try:
                async with http.post(base + path, json=body) as response:
                    content = await response.read()
                    ok = response.status == 200 and content[:4] == b"\x89PNG"
            except aiohttp.ClientError:
                ok = False
            if ok:
                latencies[kind].append(time.perf_counter() - start)
            else:
                errors += 1

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        for _ in range(2):  # warm the connections and the server's first calls
            async with http.post(base + "/api/decode", json={"z": [0.0] * latent_dim}) as response:
                await response.read()
        start = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        wall = time.perf_counter() - start
    return latencies, errors, wall


def summarise(latencies: dict[str, list[float]], errors: int, wall: float) -> dict[str, Any]:
    """Requests per second over the scenario's wall time, and p50 / p99 latency (ms) per request kind."""
    out: dict[str, Any] = {"errors": errors, "seconds": round(wall, 2)}
    total = sum(len(v) for v in latencies.values())
    out["requests_per_second"] = round(total / wall, 1)
    for kind, values in latencies.items():
        if values:
            ms = [1000 * v for v in values]
            out[kind] = {
                "requests": len(values),
                "p50_ms": round(percentile(ms, 50), 2),
                "p99_ms": round(percentile(ms, 99), 2),
            }
    return out


def measure_server(run: Path, window: float | None, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every scenario against one server (``window`` None: without decode batching), one after another."""
    mode = "batched" if window is not None else "unbatched"
    scenarios = {}
    server = Server(run, window)
    try:
        latent_dim = httpx.get(server.base + "/api/info").json()["latent_dim"]
        for scenario, clients in SCENARIOS:
            kind = "decode" if scenario == "single" else scenario
            latencies, errors, wall = asyncio.run(
                load(server.base, kind, clients, args.requests, args.seconds, latent_dim)
            )
            scenarios[f"{scenario}/{mode}"] = {"clients": clients, **summarise(latencies, errors, wall)}
    finally:
        server.stop()
    return scenarios


def table_rows(scenarios: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """A row per scenario and request kind, for the table printed at the end."""
    return [
        [name, k, summary["clients"], summary[k]["requests"], summary["errors"], summary[k]["p50_ms"],
         summary[k]["p99_ms"], summary["requests_per_second"]]
        for name, summary in scenarios.items()
        for k in ("decode", "sample")
        if k in summary
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=250, help="requests per client (default 250)")
    parser.add_argument("--seconds", type=float, default=60, help="time bound per scenario (default 60)")
    parser.add_argument("--run", type=Path, help="a run folder to serve (default: train the MLP for 1 epoch)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.run is None:
            check_data_dir(args.data_dir)
            run = train_run(Path(tmp) / "mlp", args.data_dir)
        else:
            run = args.run
        results: dict[str, Any] = {"clients": CLIENTS, "requests_per_client": args.requests, "scenarios": {}}
        for window in (0.0, None):
            results["scenarios"].update(measure_server(run, window, args))
    header = [
        "scenario/server",
        "request",
        "clients",
        "answered",
        "errors",
        "p50 ms",
        "p99 ms",
        "req/s (all)",
    ]
    print(format_table(header, table_rows(results["scenarios"])))
    decode_p99 = results["scenarios"]["decode/batched"]["decode"]["p99_ms"]
    print(f"decode p99 with {CLIENTS} clients: {decode_p99} ms (goal: under 50 ms)")
    path = write_results("serve_load", results)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
