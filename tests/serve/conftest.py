"""A real `vaekit serve` process and a real Chromium (Debian's, driven by Playwright) for the page tests."""

from __future__ import annotations

import base64
import contextlib
import io
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(*runs: Path, timeout: float = 60, options: tuple[str, ...] = ()) -> Iterator[str]:
    """``vaekit serve RUN... [options]`` in a subprocess on a free port; yields its base URL, stops it
    after (it is up once /api/info answers, 401 for a server with a token)."""
    port = free_port()
    command = [sys.executable, "-m", "vaekit.cli", "serve", *map(str, runs), "--port", str(port), *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"vaekit serve exited: {process.stdout.read().decode()}")
            try:
                if httpx.get(base + "/api/info", timeout=1).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("vaekit serve did not answer in time")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def run(trained_run_template, tmp_path_factory) -> Path:
    """This module's own copy of the tiny digits run (2-D latent, fitted prior), named "run"."""
    out = tmp_path_factory.mktemp("serve") / "run"
    shutil.copytree(trained_run_template, out)
    return out


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: make install puts it there (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class Page:
    """A page of the explorer, with the errors it logged and every request it made off the server."""

    def __init__(
        self, browser, base: str, hash_: str = "", viewport=(1280, 900), phone=False, decoded="decoded"
    ):
        self.base = base
        self.errors: list[str] = []
        self.foreign: list[str] = []
        size = {"width": viewport[0], "height": viewport[1]}
        self.context = browser.new_context(viewport=size, has_touch=phone, is_mobile=phone)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

        def route(route):
            if route.request.url.startswith(base) or route.request.url.startswith(("data:", "blob:")):
                route.continue_()
            else:  # offline: anything else would be a CDN, a font, a tracker
                self.foreign.append(route.request.url)
                route.abort()

        self.page.route("**/*", route)
        self.page.goto(self.base + "/" + hash_)
        self.page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        self.settle(decoded)

    def testid(self, name: str):
        return self.page.get_by_test_id(name)

    def z(self) -> list[float]:
        return [float(v) for v in eval_json(self.testid("z-value").get_attribute("data-z"))]

    def settle(self, decoded: str = "decoded") -> None:
        """Wait until the decoded image shows the page's current z."""
        self.page.wait_for_function(
            """(id) => { const img = document.querySelector(`[data-testid=${id}]`);
                         const z = document.querySelector('[data-testid=z-value]').dataset.z;
                         return img && img.dataset.z === z && img.complete && img.naturalWidth > 0; }""",
            arg=decoded,
            timeout=15_000,
        )

    def image(self, testid: str) -> np.ndarray:
        return data_url_pixels(self.testid(testid).get_attribute("src"))

    def close(self) -> None:
        self.context.close()


def eval_json(text: str):
    import json

    return json.loads(text)


def data_url_pixels(url: str) -> np.ndarray:
    assert url and url.startswith("data:image/png;base64,"), url
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def png_pixels(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)))
