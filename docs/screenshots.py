"""The explorer's screenshots in docs/serve/: MNIST runs served by `vaekit serve`, a digit drawn on the
canvas by Chromium (Debian's, through Playwright), the page photographed on a desktop and a phone.

    .venv/bin/python docs/screenshots.py [--runs FOLDER]

Trains what it needs into FOLDER (default /tmp/vaekit-screenshot-runs) from ../shared/data/mnist: an
MLP with a 2-D latent, and 20-D MLPs at beta 1 and 4 (10 epochs each, a minute or so apiece).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serve.conftest import Page, serving  # noqa: E402 - the tests' server and browser helpers
from vaekit.training import TrainConfig, Trainer  # noqa: E402

OUT = REPO / "docs" / "serve"
RUNS = {
    "mnist-z2": dict(latent_dim=2),
    "mnist-beta1": dict(latent_dim=20, beta=1.0),
    "mnist-beta4": dict(latent_dim=20, beta=4.0),
}
SEVEN = [(0.25, 0.22), (0.75, 0.22), (0.62, 0.45), (0.5, 0.65), (0.42, 0.85)]  # a 7, in canvas fractions


def ensure_runs(folder: Path) -> dict[str, Path]:
    data = REPO.parent / "shared" / "data"
    for name, settings in RUNS.items():
        if not (folder / name / "model.safetensors").is_file():
            config = TrainConfig(dataset="mnist", data_dir=str(data), epochs=10, seed=0, **settings)
            Trainer(config, folder / name, progress=False, log=print).run()
    return {name: folder / name for name in RUNS}


def draw(page: Page, points: list[tuple[float, float]]) -> None:
    canvas = page.testid("draw-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    mouse = page.page.mouse
    at = [(box["x"] + u * box["width"], box["y"] + v * box["height"]) for u, v in points]
    mouse.move(*at[0])
    mouse.down()
    for point in at[1:]:
        mouse.move(*point, steps=8)
    mouse.up()
    page.page.wait_for_selector("[data-testid=draw-canvas][data-busy=false]")
    page.settle()
    page.page.mouse.move(0, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("/tmp/vaekit-screenshot-runs"))
    runs = ensure_runs(parser.parse_args().runs)
    OUT.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    from tests.serve.conftest import CHROMIUM, CHROMIUM_FLAGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        with serving(runs["mnist-z2"]) as url:
            page = Page(browser, url, viewport=(1280, 900))
            draw(page, SEVEN)
            page.page.screenshot(path=OUT / "explorer.png", full_page=True)
            page.close()
            phone = Page(browser, url, viewport=(390, 844), phone=True)
            phone.page.screenshot(path=OUT / "phone.png")
            phone.close()
        with serving(runs["mnist-beta1"], runs["mnist-beta4"]) as url:
            page = Page(browser, url, viewport=(1280, 900), decoded="decoded-1")
            draw(page, SEVEN)
            page.page.get_by_label("traverse").check()
            page.page.wait_for_selector("[data-testid=strip-1][data-tool=traverse]")
            page.page.screenshot(path=OUT / "side-by-side.png", full_page=True)
            page.close()
        browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
