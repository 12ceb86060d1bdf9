"""The explorer's API fuzzed from its own OpenAPI schema, counted per operation: issue 24's figure.

Why: the suite fuzzes every operation with 25 examples each (tests/serve/test_schema_fuzz.py); here
Schemathesis runs longer against a real ``vaekit serve`` of two runs (an MLP and a conv VAE on digits),
with the checks not_a_server_error, response_schema_conformance and status_code_conformance, and its HAR
report gives every request sent: how many each operation got, the statuses answered, and the count of
5xx (the goal: 0).

Results: benchmarks/results/fuzz_api.json. Run from the repository root:
    .venv/bin/python benchmarks/fuzz_api.py [--max-examples 100]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

from harness import machine, write_results

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(out: Path, *options: str) -> None:
    subprocess.run(
        [str(BIN / "vaekit"), "train", "--dataset", "digits", "--latent-dim", "2", "--epochs", "2",
         "--no-progress", "--out", str(out), *options],
        check=True, capture_output=True,
    )  # fmt: skip


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urlopen(url + "/api/info", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def template_of(path: str, templates: list[str]) -> str:
    """The schema's path (``/api/test-image/{index}``) that a requested path is an instance of."""
    for template in templates:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            return template
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        train(work / "mlp", "--hidden", "64")
        train(work / "conv", "--model", "conv", "--channels", "8,16")
        port = free_port()
        server = subprocess.Popen(
            [str(BIN / "vaekit"), "serve", str(work / "mlp"), str(work / "conv"), "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url)
            start = time.perf_counter()
            done = subprocess.run(
                [str(BIN / "schemathesis"), "run", f"{url}/openapi.json", "--checks",
                 "not_a_server_error,response_schema_conformance,status_code_conformance",
                 "--max-examples", str(args.max_examples), "--seed", "1", "--no-color",
                 "--report", "har", "--report-har-path", str(work / "requests.har")],
                capture_output=True, text=True, cwd=work,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            with urlopen(url + "/api/info", timeout=5) as answer:
                alive_after = answer.status == 200
            with urlopen(url + "/openapi.json", timeout=5) as answer:
                templates = list(json.loads(answer.read())["paths"])
        finally:
            server.terminate()
            server.wait(10)
        entries = json.loads((work / "requests.har").read_text())["log"]["entries"]
    per_operation: dict[str, Counter] = defaultdict(Counter)
    for entry in entries:
        request = entry["request"]
        operation = f"{request['method']} {template_of(urlsplit(request['url']).path, templates)}"
        per_operation[operation][entry["response"]["status"]] += 1
    rows = {
        operation: {"requests": sum(statuses.values()), "statuses": dict(sorted(statuses.items()))}
        for operation, statuses in sorted(per_operation.items())
    }
    server_errors = sum(n for statuses in per_operation.values() for s, n in statuses.items() if s >= 500)
    for operation, row in rows.items():
        print(f"{operation:<32} {row['requests']:>6}  {row['statuses']}")
    print(f"{len(entries)} requests, {server_errors} 5xx, schemathesis exit {done.returncode}, "
          f"{seconds:.0f} s; server answering after: {alive_after}")  # fmt: skip
    write_results(
        "fuzz_api",
        {"machine": machine(), "max_examples": args.max_examples, "requests": len(entries),
         "server_errors": server_errors, "schemathesis_exit_status": done.returncode,
         "summary": done.stdout[-1500:], "seconds": round(seconds, 1), "alive_after": alive_after,
         "operations": rows},
    )  # fmt: skip


if __name__ == "__main__":
    main()
