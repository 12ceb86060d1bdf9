"""The JSON API of vaekit serve, through FastAPI's test client: every endpoint, and every bad input a 4xx
after which the server still answers."""

import io
import json
import socket

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import quiet_trainer, tiny_config
from vaekit import load
from vaekit.cli import main
from vaekit.data import load_dataset
from vaekit.evaluation.latents import latent_means
from vaekit.serve.app import STATIC, create_app


@pytest.fixture(scope="module")
def client(run):
    return TestClient(create_app([run, run]))


def png(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_info_has_the_contract_fields(client):
    info = client.get("/api/info").json()
    assert info["latent_dim"] == 2 and info["image_shape"] == [1, 8, 8]
    assert info["classes"] == [str(d) for d in range(10)]
    assert [r["index"] for r in info["runs"]] == [0, 1] and info["runs"][0]["priors"] == ["trained", "fitted"]
    assert sorted(info["runs"][0]["kl_order"]) == [0, 1]


def test_decode_returns_the_models_own_decode_as_png(client, run):
    z = [0.5, -1.25]
    pixels = png(client.post("/api/decode", json={"z": z}))
    expected = load(run).decode(torch.tensor([z]))[0, 0].mul(255).round().to(torch.uint8).numpy()
    assert pixels.shape == (8, 8) and np.array_equal(pixels, expected)
    body = client.post("/api/decode", json={"z": z, "format": "base64", "run": 1}).json()
    assert body["image"].startswith("data:image/png;base64,")


def test_sample_grid_is_seeded(client):
    a = png(client.post("/api/sample", json={"n": 4, "seed": 3}))
    b = png(client.post("/api/sample", json={"n": 4, "seed": 3}))
    c = png(client.post("/api/sample", json={"n": 4, "seed": 4, "prior": "trained", "temperature": 0.5}))
    assert a.shape == (2 * 10 + 2, 2 * 10 + 2) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert (
        png(client.post("/api/sample", json={"n": 3, "label": 7})).shape[0] > 8
    )  # the fitted prior's classes


def test_encode_an_upload_gives_the_latent_mean_of_that_image(client, run):
    digits = load_dataset("digits")
    image = digits.test.images[0, 0].numpy()
    buffer = io.BytesIO()
    Image.fromarray(image).resize((32, 32), Image.Resampling.NEAREST).save(buffer, format="PNG")
    body = client.post("/api/encode", files={"file": ("digit.png", buffer.getvalue(), "image/png")}).json()
    model = load(run)
    direct = latent_means(model, torch.from_numpy(image).float().div(255).view(1, 1, 8, 8))[0]
    assert len(body["z"]) == 2 and len(body["logvar"]) == 2
    assert np.allclose(body["z"], direct.numpy(), atol=0.15)  # resized down again with antialiasing
    assert body["reconstruction"].startswith("data:image/png;base64,")


def test_interpolate_traverse_neighbours_and_test_images(client):
    strip = png(client.post("/api/interpolate", json={"start": 0, "end": 5, "steps": 6, "spherical": True}))
    assert strip.shape == (12, 6 * 10 + 2)
    row = png(client.post("/api/traverse", json={"z": [0, 0], "dim": 1, "steps": 5}))
    assert row.shape == (12, 5 * 10 + 2)
    means = client.get("/api/latents").json()["means"]
    near = client.post("/api/neighbours", json={"z": means[3], "k": 4}).json()
    assert near["indices"][0] == 3 and near["distances"][0] == pytest.approx(0, abs=1e-3)
    assert png(client.get("/api/test-image/3")).shape == (8, 8)


BAD = [
    (
        "post",
        "/api/decode",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        422,
        "",
    ),
    ("post", "/api/decode", {"json": {"z": [1.0]}}, 422, "z has 1 values; run run takes 2"),
    (
        "post",
        "/api/decode",
        {"content": b'{"z": [NaN, 0]}', "headers": {"content-type": "application/json"}},
        422,
        "",
    ),
    ("post", "/api/decode", {"json": {"z": [1e6, 0]}}, 422, "within +-50"),
    ("post", "/api/decode", {"json": {"z": [0, 0], "run": 7}}, 404, "no run 7"),
    ("post", "/api/decode", {"json": {"z": [0, 0], "label": 1}}, 422, "takes no label"),
    ("post", "/api/decode", {"json": {"z": [0, 0], "colour": "red"}}, 422, ""),
    ("post", "/api/sample", {"json": {"n": 100000}}, 422, ""),
    ("post", "/api/sample", {"json": {"n": 4, "label": 10}}, 422, "label must be in 0..9"),
    ("post", "/api/sample", {"json": {"n": 4, "temperature": 0}}, 422, ""),
    ("post", "/api/interpolate", {"json": {"start": 0, "end": 99999}}, 422, "not among"),
    ("post", "/api/interpolate", {"json": {"start": 0, "end": 1, "steps": 1000}}, 422, ""),
    ("post", "/api/traverse", {"json": {"z": [0, 0], "dim": 5}}, 422, "dim must be in 0..1"),
    (
        "post",
        "/api/encode",
        {"files": {"file": ("x.png", b"not an image", "image/png")}},
        415,
        "not an image",
    ),
    (
        "post",
        "/api/encode",
        {"files": {"file": ("x.png", b"0" * (5 * 2**20 + 10), "image/png")}},
        413,
        "over 5 MB",
    ),
    ("get", "/api/test-image/100000", {}, 404, "not among"),
    ("get", "/api/../../etc/passwd", {}, 404, ""),
    ("get", "/static/..%2f..%2fpyproject.toml", {}, 404, ""),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), BAD)
def test_bad_input_is_a_4xx_and_the_server_answers_the_next_request(
    client, method, path, kwargs, status, message
):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    if message:
        assert message in json.dumps(response.json()["detail"])
    assert client.get("/api/info").status_code == 200


def test_the_cli_refuses_a_folder_that_is_not_a_run_and_a_port_in_use(tmp_path, run, capsys):
    assert main(["serve", str(tmp_path)]) == 1
    assert "config.json" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(run), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and len(err.strip().splitlines()) == 1


def test_attribute_vector_walks_from_one_class_mean_to_the_other(client, run):
    means = torch.tensor(client.get("/api/latents").json()["means"])
    labels = torch.tensor(client.get("/api/latents").json()["labels"])
    mean_0, mean_1 = means[labels == 0].mean(0), means[labels == 1].mean(0)
    request = {"z": mean_0.tolist(), "a": {"label": 0}, "b": {"label": 1}, "steps": 3, "format": "base64"}
    body = client.post("/api/attribute", json=request).json()
    assert np.allclose(body["direction"], (mean_1 - mean_0).numpy(), atol=1e-3)
    strip = png(client.post("/api/attribute", json={**request, "format": "png"}))
    model = load(run)
    end = model.decode(mean_1.view(1, -1))[0, 0].mul(255).round().to(torch.uint8).numpy()
    assert np.abs(strip[2:10, 22:30].astype(int) - end.astype(int)).max() <= 1  # the third tile
    marked = {"z": [0, 0], "a": {"indices": [0, 1]}, "b": {"indices": [2]}}
    assert client.post("/api/attribute", json=marked).status_code == 200
    both = {"z": [0, 0], "a": {"label": 0, "indices": [1]}, "b": {"label": 1}}
    assert "not both or neither" in client.post("/api/attribute", json=both).json()["detail"]


def test_every_label_needs_a_conditional_model(client, tmp_path):
    assert "is not conditional" in client.post("/api/labels", json={"z": [0, 0]}).json()["detail"]
    out = tmp_path / "cvae"
    quiet_trainer(tiny_config(model="cvae", epochs=1, fit_prior=False), out).run()
    cvae = TestClient(create_app([out]))
    strip = png(cvae.post("/api/labels", json={"z": [0, 0]}))
    assert strip.shape == (12, 10 * 10 + 2)
    assert cvae.post("/api/decode", json={"z": [0, 0]}).status_code == 422  # a label is needed
    assert png(cvae.post("/api/decode", json={"z": [0, 0], "label": 3})).shape == (8, 8)


def test_wide_latents_get_principal_axes_that_match_scikit_learn(tmp_path):
    from sklearn.decomposition import PCA

    out = tmp_path / "wide"
    quiet_trainer(tiny_config(latent_dim=40, epochs=1, fit_prior=False), out).run()
    client = TestClient(create_app([out]))
    run = client.get("/api/info").json()["runs"][0]
    means = np.array(client.get("/api/latents").json()["means"])
    reference = PCA(n_components=32).fit(means)
    sliders, pad = run["sliders"], run["pad"]
    assert len(sliders["vectors"]) == 32 and sliders["dims"] == [None] * 32  # beyond 32: principal directions
    vectors = np.array(sliders["vectors"])
    assert np.allclose(vectors @ vectors.T, np.eye(32), atol=1e-4)
    # the variance along each direction is the reference's; the leading (well separated) ones match
    # as vectors too, up to sign (the untrained trailing dimensions share near-equal variances)
    variance = ((means - means.mean(0)) @ vectors.T).var(0, ddof=1)
    assert np.allclose(variance, reference.explained_variance_, rtol=1e-2, atol=1e-6)
    signs = np.sign((vectors * reference.components_).sum(1))
    assert np.allclose(vectors[:3] * signs[:3, None], reference.components_[:3], atol=1e-3)
    assert np.allclose(sliders["origin"], reference.mean_, atol=1e-3)
    assert np.allclose(np.array(pad["vectors"]) * signs[:2, None], reference.components_[:2], atol=1e-3)
    share = reference.explained_variance_ratio_[0]
    assert sliders["names"][0] == f"PC1 · {100 * share:.0f}% var"


def test_narrow_latents_get_one_slider_per_dimension_by_kl(client):
    run = client.get("/api/info").json()["runs"][0]
    assert run["sliders"]["dims"] == run["kl_order"]
    assert run["sliders"]["vectors"] == [np.eye(2)[d].tolist() for d in run["kl_order"]]
    assert run["pad"]["dims"] == [0, 1] and run["pad"]["origin"] == [0.0, 0.0]


def drawing(image: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return {"file": ("digit.png", buffer.getvalue(), "image/png")}


def test_class_guess_by_nearest_neighbours_then_by_the_cached_classifier(run, digits_classifier_dir):
    digits = load_dataset("digits")
    client = TestClient(create_app([run]))  # the classifier is cached in $VAEKIT_DATA now
    assert client.get("/api/info").json()["runs"][0]["guess"] == "classifier"
    from vaekit.evaluation.classifier import load_classifier

    classifier, _ = load_classifier(digits, digits_classifier_dir)
    images = digits.test.images[:20]
    expected = classifier(images.float() / 255).argmax(1)
    for image, label in zip(images, expected, strict=True):
        guess = client.post("/api/encode", files=drawing(image[0].numpy())).json()["guess"]
        assert guess["source"] == "classifier" and guess["label"] == int(label)


def test_a_cached_classifier_below_the_accuracy_bar_is_not_used(run, digits_classifier_dir, monkeypatch):
    # evaluate withholds a classifier's figures below MIN_CLASSIFIER_ACCURACY; the explorer does the same
    import vaekit.evaluation.quality as quality

    monkeypatch.setattr(quality, "MIN_CLASSIFIER_ACCURACY", 1.01)  # above any accuracy
    client = TestClient(create_app([run]))
    assert client.get("/api/info").json()["runs"][0]["guess"] == "neighbours"


def test_without_a_classifier_the_guess_is_the_nearest_reference_latents_vote(run, tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path))  # no classifier cached here
    client = TestClient(create_app([run]))
    latents = client.get("/api/latents").json()
    means, labels = torch.tensor(latents["means"]), torch.tensor(latents["labels"])
    digits = load_dataset("digits")
    for i in range(10):
        body = client.post("/api/encode", files=drawing(digits.test.images[i, 0].numpy())).json()
        nearest = torch.cdist(torch.tensor([body["z"]]), means)[0].topk(10, largest=False).indices
        votes = torch.bincount(labels[nearest], minlength=10)
        assert body["guess"]["source"] == "neighbours"
        assert body["guess"]["label"] == int(votes.argmax())
        assert body["guess"]["confidence"] == pytest.approx(float(votes.max()) / 10)


def test_the_page_and_its_files_are_served_and_nothing_outside_them(client):
    page = client.get("/")
    assert page.status_code == 200 and 'data-testid="latent-pad"' in page.text
    # everything the page loads comes from this server: no http(s) URL in any of its files
    files = sorted(p.name for p in STATIC.iterdir())
    assert {"index.html", "app.js", "state.js", "style.css"} <= set(files)
    for name in files:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert "http://" not in response.text and "https://" not in response.text, name
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/missing.js"):
        assert client.get(path).status_code == 404, path


def test_a_vampprior_and_flow_run_is_served(tmp_path):
    """The explorer on a run with a VampPrior and an IAF posterior: its latent is the flow's point (what
    reconstructions decode), its samples come from the VampPrior, and the sliders read KL per dimension
    against the VampPrior's marginals."""
    out = tmp_path / "vamp-iaf"
    config = tiny_config(epochs=1, prior="vamp", part_options={"pseudo_inputs": 4}, posterior="iaf")
    quiet_trainer(config, out).run()
    client = TestClient(create_app([out]))
    info = client.get("/api/info").json()["runs"][0]
    assert len(info["sliders"]["dims"]) == 2
    assert png(client.post("/api/sample", json={"n": 4, "seed": 1, "prior": "standard"})).shape[0] > 8
    digits = load_dataset("digits")
    buffer = io.BytesIO()
    Image.fromarray(digits.test.images[0, 0].numpy()).save(buffer, format="PNG")
    body = client.post("/api/encode", files={"file": ("digit.png", buffer.getvalue(), "image/png")}).json()
    model = load(out)
    direct = model.latents(digits.test.images[:1].float().div(255))[0]
    assert np.allclose(body["z"], direct.detach().numpy(), atol=1e-4)


@pytest.mark.parametrize(
    "query", ["/api/latents?run=-4451", "/api/latents?run=-1", "/api/test-image/0?run=-1"]
)
def test_a_negative_run_index_is_refused_not_taken_from_the_end(client, query):
    response = client.get(query)  # -4451 was a 500 (IndexError), -1 quietly the last run
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "run"]
    assert client.get("/api/latents?run=2").status_code == 404  # two runs served: 0 and 1
    assert client.post("/api/decode", json={"z": [0.0, 0.0], "run": -1}).status_code == 422
