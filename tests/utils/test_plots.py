import numpy as np
import torch
from PIL import Image

from vaekit.utils import plots


def test_image_grid_places_each_image():
    images = torch.stack([torch.full((1, 2, 3), v) for v in (0.0, 0.5, 1.0)])
    grid = plots.image_grid(images, ncol=2, pad=1)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1) and grid.dtype == np.uint8
    assert (grid[1:3, 1:4] == 0).all() and (grid[1:3, 5:8] == 128).all() and (grid[4:6, 1:4] == 255).all()


def test_small_grids_are_scaled_up_to_a_visible_size(tmp_path):
    plots.save_grid(torch.rand(64, 1, 8, 8), tmp_path / "g.png", ncol=8)
    with Image.open(tmp_path / "g.png") as picture:
        assert min(picture.size) >= plots.MIN_GRID_PIXELS


def test_reconstructions_put_each_original_above_its_reconstruction(tmp_path):
    originals, recons = torch.zeros(10, 1, 4, 4), torch.ones(10, 1, 4, 4)
    plots.save_reconstructions(originals, recons, tmp_path / "r.png")
    with Image.open(tmp_path / "r.png") as picture:
        array = np.asarray(picture)
    scale = array.shape[1] // (8 * 6 + 2)
    row = lambda r: array[(2 + r * 6 + 1) * scale, (2 + 1) * scale]  # noqa: E731 (a pixel of column 0)
    assert [row(r) for r in range(4)] == [0, 255, 0, 255]


def test_loss_curve(tmp_path):
    history = [{"epoch": e, "train_loss": 10 - e, "val_loss": 11 - e} for e in (1, 2, 3)]
    plots.save_loss_curve(history, tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as picture:
        assert picture.size == (600, 400)


def test_samples_gif_holds_one_frame_per_epoch(trained_run):
    with Image.open(trained_run / "samples.gif") as gif:
        assert gif.n_frames == 2 and gif.info["loop"] == 0
        with Image.open(trained_run / "samples" / "epoch_002.png") as last:
            assert gif.size == last.size
