"""Every count a command takes is checked against the machine before the work: a grid past what one PNG
holds, images past half the memory available, a cache past the free disk. Each is one line, exit 1,
and nothing is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import folder_snapshot
from vaekit.cli import main
from vaekit.utils import limits

TINY_MEMORY = 100_000  # bytes "available": a tenth of a megabyte, so that any picture is too large


@pytest.mark.parametrize(
    "command, what",
    [
        (["manifold", "--n", "20"], "a 20x20 manifold of 400 images needs 200.0 KB"),
        (["interpolate", "--from", "0", "--to", "1", "--steps", "2000"], "an interpolation of 2,000 steps"),
        (["traverse", "--steps", "500"], "a traversal of 2 x 500 of 1,000 images needs"),
        (["reconstruct", "--n", "359"], "a grid of originals and reconstructions of 718 images"),
        (["sample", "--n", "400"], "a sample grid of 400 images"),
        (["evaluate", "--samples", "10000"], "sample quality of 10,000 images needs 4.9 MB"),
        (["encode", "--out", "z.csv"], "a batch of 359 images"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_images_past_the_memory_are_one_line_and_write_nothing(
    command, what, trained_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    before = folder_snapshot(tmp_path)
    monkeypatch.setattr(limits, "available_memory", lambda device: TINY_MEMORY)
    name, *options = command
    extra = ["--split", "test"] if name == "encode" else []
    assert main([name, str(trained_run), *options, *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and what in err, err
    assert err.endswith("has 97.7 KB available and one allocation may take half of it" + (
        "; lower --samples" if name == "evaluate" else "; lower --batch-size" if name == "encode" else ""
    ))  # fmt: skip
    assert folder_snapshot(tmp_path) == before  # eval.json untouched, no picture, no table


def test_a_grid_past_one_png_names_the_most_it_holds(trained_run, tmp_path, capsys):
    out = tmp_path / "m.png"
    assert main(["manifold", str(trained_run), "--n", "100000", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "a 100,000x100,000 manifold of 10,000,000,000 images is 640,000 megapixels" in err
    assert "one PNG grid holds at most 4,194,304 of these images" in err and not out.exists()


def test_counts_that_fit_still_draw(trained_run, tmp_path, capsys):
    out = tmp_path / "t.png"
    assert main(["traverse", str(trained_run), "--steps", "50", "--out", str(out)]) == 0
    with Image.open(out) as picture:
        assert picture.width > 50 * 8
    capsys.readouterr()
    assert main(["evaluate", str(trained_run), "--json", "--samples", "0"]) == 0
    assert "test_loss" in json.loads(capsys.readouterr().out)


def test_a_folder_cache_past_the_free_disk_is_refused_before_decoding(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(np.full((16, 16), i * 20, dtype=np.uint8)).save(folder / f"{i}.png")
    data = tmp_path / "data"
    real = limits.shutil.disk_usage
    monkeypatch.setattr(limits.shutil, "disk_usage", lambda path: real(path)._replace(free=1000))
    out = tmp_path / "run"
    code = main(["train", "--dataset", f"folder:{folder}", "--data-dir", str(data), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert "the cache of 12 decoded 16x16 images is 3.0 KB; " in err and err.endswith("has 1,000 bytes free")
    assert not out.exists()
    assert not [p for p in data.rglob("*") if p.is_file()]  # no partial cache
