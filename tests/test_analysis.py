"""Latent-space analysis: the scatter of latent means, by label."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import quiet_trainer, tiny_config
from vaekit import load
from vaekit.analysis import latent_means, latent_scatter, project
from vaekit.cli import main
from vaekit.data import load_dataset
from vaekit.errors import VaekitError


def test_latent_means_are_the_encoder_means(trained_run):
    model = load(trained_run)
    x = load_dataset("digits").test.as_float()[:30]
    torch.testing.assert_close(latent_means(model, x, batch_size=7), model.encode(x)[0])


def test_projections_keep_the_structure_of_separated_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 10)) * 10
    points = np.concatenate([c + rng.normal(size=(40, 10)) for c in centres])
    for method in ("pca", "tsne"):
        flat = project(points, method)
        assert flat.shape == (120, 2)
        means = np.stack([flat[i * 40 : (i + 1) * 40].mean(0) for i in range(3)])
        spread = max(flat[i * 40 : (i + 1) * 40].std(0).max() for i in range(3))
        gaps = [np.linalg.norm(means[i] - means[j]) for i in range(3) for j in range(i + 1, 3)]
        assert min(gaps) > 2 * spread, method
    with pytest.raises(VaekitError, match="unknown projection"):
        project(points, "umap")


def test_a_2d_latent_is_drawn_directly(trained_run):
    result = latent_scatter(trained_run, n=200)
    assert result["panels"] == ["latent means (z1, z2)"] and result["n"] == 200
    with Image.open(trained_run / "latent.png") as picture:
        assert picture.size == (550, 500)


def test_a_wider_latent_gets_pca_and_tsne_panels_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    quiet_trainer(tiny_config(latent_dim=5, epochs=1), out).run()
    assert main(["latent", str(out), "--n", "150", "--out", str(tmp_path / "l.png")]) == 0
    assert "PCA of the 5-D latent means and t-SNE" in capsys.readouterr().out
    with Image.open(tmp_path / "l.png") as picture:
        assert picture.size == (1100, 500)


def test_latent_refuses_discrete_codes_and_bad_input(tmp_path, trained_run, capsys):
    out = tmp_path / "vq"
    config = tiny_config(
        model="vqvae", hidden=None, channels=[8, 16], codebook_size=8, latent_dim=2, epochs=1
    )
    quiet_trainer(config, out).run()
    assert main(["latent", str(out)]) == 1
    assert "discrete codes" in capsys.readouterr().err
    assert main(["latent", str(trained_run), "--n", "1"]) == 1
    assert "--n must be >= 2" in capsys.readouterr().err
