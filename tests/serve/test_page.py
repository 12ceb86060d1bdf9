"""The explorer page in a real Chromium against a real `vaekit serve`: what the page shows is checked
against the server's own answers and the model loaded directly."""

from __future__ import annotations

import base64
import json
import re

import httpx
import numpy as np
import pytest
import torch

from tests.conftest import quiet_trainer, tiny_config
from tests.serve.conftest import Page, png_pixels, serving
from vaekit import load


@pytest.fixture(scope="module")
def base(run):
    with serving(run) as url:
        yield url


@pytest.fixture
def page(browser, base):
    page = Page(browser, base)
    yield page
    assert page.errors == [] and page.foreign == []
    page.close()


SEED_1 = "() => document.querySelector('[data-testid=sample-grid]').dataset.seed === '1'"


def server_decode(base: str, z: list[float], run: int = 0, **extra) -> np.ndarray:
    response = httpx.post(base + "/api/decode", json={"z": z, "run": run, **extra})
    assert response.status_code == 200, response.text
    return png_pixels(response.content)


def marker_position(page: Page) -> tuple[float, float]:
    """Where the marker's centre sits on the pad, as fractions of the pad's width and height."""
    pad = page.testid("latent-pad").bounding_box()
    marker = page.testid("latent-marker").bounding_box()
    centre = (marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] / 2)
    return (centre[0] - pad["x"]) / pad["width"], (centre[1] - pad["y"]) / pad["height"]


def pad_range(page: Page) -> dict[str, float]:
    pad = page.testid("latent-pad")
    return {k: float(pad.get_attribute(f"data-{k}")) for k in ("u0", "u1", "v0", "v1")}


def test_the_page_loads_offline_with_samples_and_the_first_test_image(page, base, run):
    grid = page.testid("sample-grid")
    expected = png_pixels(httpx.post(base + "/api/sample", json={"n": 36, "seed": 0}).content)
    page.page.wait_for_function("() => document.querySelector('[data-testid=sample-grid]').src")
    assert np.array_equal(page.image("sample-grid"), expected)
    # no temperature sent until the slider moves: each run samples at its own (an hvae's chosen ones)
    assert page.page.text_content("#temperature-value") == "the run's" and "&t=" not in page.page.url
    means = httpx.get(base + "/api/latents").json()["means"]
    assert np.allclose(page.z(), means[0], atol=1e-4)  # the view opens on the first test image
    page.testid("resample").click()
    page.page.wait_for_function("() => document.querySelector('#sample-grids').dataset.seed === '1'")
    page.page.wait_for_function(SEED_1)
    assert not np.array_equal(page.image("sample-grid"), expected) and "seed=1" in page.page.url
    assert grid.is_visible()


def test_a_stroke_on_the_canvas_moves_the_marker_and_shows_the_servers_reconstruction(page, base):
    before_z, before_marker = page.z(), marker_position(page)
    assert page.testid("reconstruction").get_attribute("src") is None
    canvas = page.testid("draw-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    mouse = page.page.mouse
    mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    mouse.down()
    mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5, steps=12)
    mouse.up()
    page.page.wait_for_selector("[data-testid=draw-canvas][data-busy=false]")
    page.settle()
    # the drawing as the page sent it, encoded by the server directly: the same z and reconstruction
    drawing = page.testid("model-input").get_attribute("src").split(",", 1)[1]
    canvas_now = canvas.evaluate("c => c.toDataURL('image/png')").split(",", 1)[1]
    assert drawing == canvas_now  # digits: sent as drawn (framing like MNIST is for MNIST's family)
    encoded = httpx.post(
        base + "/api/encode", files={"file": ("d.png", base64.b64decode(drawing), "image/png")}
    ).json()
    z = page.z()
    assert z != before_z and np.allclose(z, encoded["z"], atol=1e-6)
    reconstruction = page.image("reconstruction")
    assert np.array_equal(reconstruction, server_decode(base, z))
    assert np.array_equal(page.image("decoded"), reconstruction)
    # the marker sits where the pad puts z (a 2-D latent: the pad's axes are z0 and z1)
    box = pad_range(page)
    x, y = marker_position(page)
    assert (x, y) != pytest.approx(before_marker, abs=1e-3)
    expected_x = (z[0] - box["u0"]) / (box["u1"] - box["u0"])
    expected_y = (box["v1"] - z[1]) / (box["v1"] - box["v0"])
    assert x == pytest.approx(min(max(expected_x, 0), 1), abs=0.02)  # pinned to the edge when off the pad
    assert y == pytest.approx(min(max(expected_y, 0), 1), abs=0.02)
    outside = not (0 <= expected_x <= 1 and 0 <= expected_y <= 1)
    assert ("outside" in page.testid("latent-marker").get_attribute("class").split()) == outside
    assert page.testid("guess").inner_text().startswith("looks like")
    assert len(page.testid("neighbours").locator(".card").all()) == 8


def test_a_slider_moves_one_dimension_and_the_image_follows(page, base, run):
    info = httpx.get(base + "/api/info").json()
    dim = info["runs"][0]["kl_order"][0]
    before = page.z()
    slider = page.testid(f"latent-slider-{dim}")
    slider.focus()
    for _ in range(25):  # the keyboard moves a slider by its step (0.01)
        page.page.keyboard.press("ArrowRight")
    page.settle()
    z = page.z()
    other = 1 - dim
    assert z[dim] == pytest.approx(round(before[dim], 2) + 0.25, abs=0.011)
    assert z[other] == pytest.approx(before[other], abs=1e-9)
    decoded = page.image("decoded")
    assert np.array_equal(decoded, server_decode(base, z))
    direct = load(run).decode(torch.tensor([z], dtype=torch.float32))[0, 0].mul(255).round().to(torch.uint8)
    assert np.abs(decoded.astype(int) - direct.numpy().astype(int)).max() <= 1


def test_the_pad_decodes_where_the_pointer_is_and_answers_arrow_keys(page, base):
    pad = page.testid("latent-pad")
    box, area = pad_range(page), pad.bounding_box()
    page.page.mouse.move(area["x"] + 0.25 * area["width"], area["y"] + 0.75 * area["height"])
    page.settle()
    z = page.z()
    width = box["u1"] - box["u0"]  # the pad is square in latent units
    assert z[0] == pytest.approx(box["u0"] + 0.25 * width, abs=0.01 * width)
    assert z[1] == pytest.approx(box["v1"] - 0.75 * width, abs=0.01 * width)
    page.page.mouse.move(0, 0)  # off the pad: the point stays
    pad.focus()
    page.page.keyboard.press("ArrowUp")
    page.settle()
    moved = page.z()
    assert moved[0] == pytest.approx(z[0], abs=1e-9)
    assert moved[1] == pytest.approx(z[1] + 0.02 * (box["u1"] - box["u0"]), rel=1e-6)
    assert np.array_equal(page.image("decoded"), server_decode(base, moved))
    readout = page.testid("latency").inner_text()
    server_ms, round_trip_ms = map(float, re.findall(r"[\d.]+(?= ms)", readout))
    assert 0 < server_ms < round_trip_ms and "ms on the server" in readout


def test_a_shared_url_reloads_the_same_view(page, browser, base):
    page.testid("resample").click()
    page.page.wait_for_function(SEED_1)
    page.testid("latent-slider-0").focus()
    page.page.keyboard.press("PageUp")
    page.settle()
    page.page.get_by_label("traverse").check()
    url, z, decoded = page.page.url, page.z(), page.image("decoded")
    page.page.wait_for_selector("[data-testid=strip-0][data-tool=traverse]")
    strip = page.image("strip-0")
    other = Page(browser, base, "#" + url.split("#", 1)[1])
    try:
        other.page.wait_for_function(SEED_1)
        other.page.wait_for_selector("[data-testid=strip-0][data-tool=traverse]")
        assert np.allclose(other.z(), z, atol=1e-4)  # the URL keeps 4 decimals
        assert other.page.get_by_label("traverse").is_checked()
        assert np.array_equal(other.image("sample-grid"), page.image("sample-grid"))
        assert np.abs(other.image("decoded").astype(int) - decoded.astype(int)).max() <= 1
        assert np.abs(other.image("strip-0").astype(int) - strip.astype(int)).max() <= 1
        assert other.errors == [] and other.foreign == []
    finally:
        other.close()


def test_downloads_give_the_image_and_a_z_that_vaekit_load_decodes(page, run, tmp_path):
    page.page.mouse.move(0, 0)
    with page.page.expect_download() as download:
        page.testid("download-z").click()
    saved = json.loads(download.value.path().read_text())
    with page.page.expect_download() as download:
        page.testid("download-png").click()
    pixels = png_pixels(download.value.path().read_bytes())
    model = load(run)
    assert saved["z"] == page.z() and saved["run"] == run.name
    image = model.decode(torch.tensor([saved["z"]]))[0, 0].mul(255).round().to(torch.uint8).numpy()
    assert np.abs(pixels.astype(int) - image.astype(int)).max() <= 1


def test_a_phone_sized_viewport_has_no_sideways_scrolling(browser, base):
    phone = Page(browser, base, viewport=(390, 844), phone=True)
    try:
        width = phone.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390
        pad = phone.testid("latent-pad").bounding_box()
        assert pad["width"] > 200 and pad["x"] >= 0 and pad["x"] + pad["width"] <= 390
        canvas = phone.testid("draw-canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box["x"] + box["width"] <= 390
        phone.page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        phone.page.wait_for_selector("[data-testid=draw-canvas][data-busy=false]")  # a finger draws
        assert phone.testid("reconstruction").get_attribute("src").startswith("data:image/png")
        assert phone.errors == [] and phone.foreign == []
    finally:
        phone.close()


@pytest.fixture(scope="module")
def other_runs(tmp_path_factory):
    """A second digits run with a 2-D latent (beta 4), and one run of each other model kind."""
    root = tmp_path_factory.mktemp("kinds")
    runs = {
        "beta4": tiny_config(beta=4.0, epochs=1, fit_prior=False),
        "conv": tiny_config(
            model="conv", hidden=None, latent_dim=3, channels=[8, 16], epochs=1, fit_prior=False
        ),
        "cvae": tiny_config(model="cvae", epochs=1, fit_prior=False),
        "vqvae": tiny_config(
            model="vqvae", hidden=None, latent_dim=4, channels=[8, 16], codebook_size=16, epochs=1
        ),
    }
    for name, config in runs.items():
        quiet_trainer(config, root / name).run()
    return {name: root / name for name in runs}


def test_two_runs_side_by_side_decode_the_same_z(browser, run, other_runs):
    with serving(run, other_runs["beta4"]) as url:
        page = Page(browser, url)
        try:
            page.settle("decoded-1")
            z = page.z()
            assert np.array_equal(page.image("decoded"), server_decode(url, z, run=0))
            assert np.array_equal(page.image("decoded-1"), server_decode(url, z, run=1))
            assert not np.array_equal(page.image("decoded"), page.image("decoded-1"))
            assert page.errors == [] and page.foreign == []
        finally:
            page.close()


def test_every_model_kind_gets_a_working_page(browser, other_runs):
    kinds = ["conv", "cvae", "vqvae"]
    with serving(*(other_runs[k] for k in kinds)) as url:
        for index, kind in enumerate(kinds):
            decoded = f"decoded-{index}" if index else "decoded"
            page = Page(browser, url, f"#run={index}", decoded=decoded)
            try:
                z = page.z()
                label = {"label": 0} if kind == "cvae" else {}
                shown = page.image(decoded)
                assert np.array_equal(shown, server_decode(url, z, run=index, **label)), kind
                if kind == "conv":  # 3-D: sliders for each dimension, the pad on the principal plane
                    assert all(page.testid(f"latent-slider-{d}").count() == 1 for d in range(3))
                    assert "PC1" in page.page.locator("#pad-axes").inner_text()
                if kind == "vqvae":  # codes in a grid, no pad
                    assert not page.testid("latent-pad").is_visible()
                    code = page.testid("code-0")
                    code.fill(str((int(z[0]) + 1) % 16))
                    code.press("Tab")
                    page.settle(decoded)
                    assert page.z()[0] == (int(z[0]) + 1) % 16
                assert page.errors == [] and page.foreign == [], kind
            finally:
                page.close()


def test_framing_like_mnist_scales_the_drawing_to_20_of_28_and_centres_its_mass(page):
    page.page.locator("#frame").check()
    canvas = page.testid("draw-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    mouse = page.page.mouse
    mouse.move(box["x"] + 0.05 * box["width"], box["y"] + 0.1 * box["height"])  # a small stroke in a corner
    mouse.down()
    mouse.move(box["x"] + 0.15 * box["width"], box["y"] + 0.3 * box["height"], steps=6)
    mouse.up()
    page.page.wait_for_selector("[data-testid=draw-canvas][data-busy=false]")
    sent = page.image("model-input")[..., 0].astype(float)  # RGBA from the canvas; grey drawing
    rows, cols = np.nonzero(sent)
    side = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    assert side == pytest.approx(280 * 20 / 28, abs=3)
    grid = np.arange(280)
    centre = np.array([(sent.sum(1) * grid).sum(), (sent.sum(0) * grid).sum()]) / sent.sum()
    assert np.allclose(centre, 140, atol=1.5)
