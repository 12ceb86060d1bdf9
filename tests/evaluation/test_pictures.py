"""Latent-space analysis: the scatter of latent means, by label."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import quiet_trainer, tiny_config
from vaekit import load
from vaekit.cli import main
from vaekit.data import load_dataset
from vaekit.evaluation.latents import latent_means, latent_statistics, project, slerp
from vaekit.evaluation.pictures import latent_scatter, manifold, traverse
from vaekit.utils.errors import VaekitError


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


def test_manifold_of_a_2d_latent_decodes_the_normal_quantiles(trained_run):
    result = manifold(trained_run, n=5)
    assert result["basis"] == "z1, z2"
    model = load(trained_run)
    steps = torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(5) + 0.5) / 5)
    # top-left tile: lowest z1, highest z2
    expected = model.decode(torch.tensor([[steps[0].item(), steps[-1].item()]])).detach()
    with Image.open(trained_run / "manifold.png") as picture:
        grid = np.asarray(picture)
    scale = picture.size[0] // (5 * 10 + 2)
    tile = grid[2 * scale : 10 * scale : scale, 2 * scale : 10 * scale : scale] / 255.0
    assert np.abs(tile - expected[0, 0].numpy()).max() < 1 / 255 + 1e-6


def test_manifold_of_a_wider_latent_uses_principal_directions_and_cvae_needs_a_label(tmp_path, capsys):
    out = tmp_path / "run"
    quiet_trainer(tiny_config(latent_dim=4, epochs=1), out).run()
    assert main(["manifold", str(out), "--n", "4"]) == 0
    assert "principal directions" in capsys.readouterr().out and (out / "manifold.png").is_file()
    cvae = tmp_path / "cvae"
    quiet_trainer(tiny_config(model="cvae", epochs=1), cvae).run()
    assert main(["manifold", str(cvae)]) == 1
    assert "needs --label" in capsys.readouterr().err
    assert main(["manifold", str(cvae), "--label", "3", "--n", "3"]) == 0
    assert main(["manifold", str(out), "--label", "3"]) == 1
    assert "--label applies to a conditional model (cvae), not mlp" in capsys.readouterr().err


def test_slerp_keeps_the_norm_between_equal_norm_ends_and_ends_at_both():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    torch.testing.assert_close(path.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(slerp(a, 2 * a, torch.tensor([0.5])), torch.tensor([[1.5, 0.0]]))


def test_interpolation_row_runs_from_one_image_to_the_other(trained_run, capsys):
    assert main(["interpolate", str(trained_run), "--from", "0", "--to", "5", "--steps", "6", "--slerp"]) == 0
    assert "spherical interpolation from test image 0 to 5" in capsys.readouterr().out
    with Image.open(trained_run / "interpolation.png") as picture:
        assert picture.size[0] / picture.size[1] == pytest.approx((8 * 10 + 2) / 12)  # 2 originals + 6
    assert main(["interpolate", str(trained_run), "--from", "0", "--to", "100000"]) == 1
    assert "outside the test split" in capsys.readouterr().err


def test_traversal_varies_one_dimension_per_row_largest_kl_first(tmp_path, capsys):
    out = tmp_path / "run"
    quiet_trainer(tiny_config(latent_dim=3, epochs=1), out).run()
    result = traverse(out, index=2, steps=4, limit=2.0)
    model = load(out)
    test = load_dataset("digits").test.as_float()
    kl = latent_statistics(model, test)["kl_per_dim"]
    assert sorted(result["dims"]) == [0, 1, 2]
    assert result["kl"] == sorted(kl, reverse=True)
    assert result["kl"] == pytest.approx([kl[d] for d in result["dims"]])
    base = model.encode(test[2:3])[0][0]
    with Image.open(out / "traversal.png") as picture:
        grid = np.asarray(picture)
        scale = picture.size[1] // (3 * 10 + 2)
        margin = picture.size[0] - (4 * 10 + 2) * scale  # the row labels' strip, left of the tiles
    assert margin > 0 and (grid[:, :margin] < 128).any()  # labels are drawn there
    for row, d in enumerate(result["dims"]):
        z = base.repeat(4, 1)
        z[:, d] = torch.linspace(-2, 2, 4)
        expected = model.decode(z).detach()
        for col in range(4):
            top, left = (2 + row * 10) * scale, margin + (2 + col * 10) * scale
            tile = grid[top : top + 8 * scale : scale, left : left + 8 * scale : scale] / 255.0
            assert np.abs(tile - expected[col, 0].numpy()).max() < 1 / 255 + 1e-6
    assert main(["traverse", str(out), "--dims", "2"]) == 0
    shown = ", ".join(f"z{d + 1}" for d in result["dims"][:2])
    assert f"traversal of {shown} (largest KL first)" in capsys.readouterr().out
    assert main(["traverse", str(out), "--steps", "1"]) == 2
