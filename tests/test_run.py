"""vaekit.Run reads a run folder's files as they are, and shows itself in one line and as HTML."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path

import torch

import vaekit
from tests.conftest import error_of
from vaekit.run import Run


def test_run_is_exported_at_the_top_level():
    assert vaekit.Run is Run
    from vaekit import Run as imported

    assert imported is Run


def test_each_property_is_its_file(trained_run: Path):
    run = Run(trained_run)
    config = json.loads((trained_run / "config.json").read_text(encoding="utf-8"))
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert run.path == trained_run
    assert run.config == config["train"] and run.config["dataset"] == "digits"
    assert run.model_config == config["model"] and run.model_config["latent_dim"] == 2
    assert run.metrics == records and [r["epoch"] for r in records] == [1, 2]
    assert run.last_metrics == records[-1]
    assert run.eval == json.loads((trained_run / "eval.json").read_text(encoding="utf-8"))
    assert run.sample_grid == trained_run / "samples" / "epoch_002.png"


def test_the_model_is_loaded_once_on_first_use(trained_run: Path):
    run = Run(trained_run)
    assert "model" not in vars(run)  # opening a run loads no weights
    model = run.model
    assert run.model is model and model.latent_dim == 2
    expected = vaekit.load(trained_run)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(model.encode(x)[0], expected.encode(x)[0])


def test_properties_follow_the_files(trained_run: Path):
    """Nothing but the model is cached: a file changed on disk (a resumed run, a new evaluation) shows."""
    run = Run(trained_run)
    (trained_run / "eval.json").unlink()
    shutil.rmtree(trained_run / "samples")
    assert run.eval is None and run.sample_grid is None
    with (trained_run / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"epoch": 3, "val_loss": 1.5}) + "\n")
    assert run.last_metrics == {"epoch": 3, "val_loss": 1.5}


def test_repr_is_one_line(trained_run: Path):
    text = repr(Run(trained_run))
    assert "\n" not in text
    assert text.startswith(f"Run({str(trained_run)!r}: digits mlp z=2, 2/2 epochs, val_loss ")


def test_a_run_as_long_as_its_max_time_shows_the_time_not_none_epochs(trained_run: Path):
    config = json.loads((trained_run / "config.json").read_text())
    config["train"].update(epochs=None, max_time=600.0)
    (trained_run / "config.json").write_text(json.dumps(config))
    run = Run(trained_run)
    assert ", 2 epochs, --max-time 10m, val_loss " in repr(run) and "None" not in repr(run)
    assert (
        dict(re.findall(r"<td>(.*?)</td><td>(.*?)</td>", run._repr_html_()))["epochs"] == "2 (--max-time 10m)"
    )


def test_html_shows_settings_metrics_evaluation_and_the_sample_grid(trained_run: Path):
    run = Run(trained_run)
    page = run._repr_html_()
    cells = re.findall(r"<td>(.*?)</td><td>(.*?)</td>", page)
    table = dict(cells)
    assert table["dataset"] == "digits" and table["model"] == "mlp" and table["latent_dim"] == "2"
    assert table["epochs"] == "2 of 2" and table["image shape"] == "1x8x8"
    assert table["val_loss"] == f"{run.last_metrics['val_loss']:.4g}"
    assert table["test_loss"] == f"{run.eval['test_loss']:.4g}"
    assert all(header in page for header in (">settings<", ">last epoch<", ">eval.json<"))
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 1
    assert base64.b64decode(images[0]) == run.sample_grid.read_bytes()


def test_html_without_evaluation_or_pictures(trained_run: Path):
    (trained_run / "eval.json").unlink()
    shutil.rmtree(trained_run / "samples")
    page = Run(trained_run)._repr_html_()
    assert ">settings<" in page and ">eval.json<" not in page and "<img" not in page


def test_html_escapes_what_it_shows(trained_run: Path, tmp_path: Path):
    odd = Path(shutil.copytree(trained_run, tmp_path / "a <b>&'run"))
    config = json.loads((odd / "config.json").read_text(encoding="utf-8"))
    config["train"]["dataset"] = "folder:<script>alert(1)</script>"
    (odd / "config.json").write_text(json.dumps(config), encoding="utf-8")
    page = Run(odd)._repr_html_()
    assert "<script>" not in page and "<b>&" not in page
    assert html.escape("folder:<script>alert(1)</script>") in page and html.escape(str(odd)) in page


def test_a_folder_that_is_not_a_run_is_a_one_line_error(tmp_path: Path):
    assert "does not exist" in error_of(Run, tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    assert "not a vaekit run folder" in error_of(Run, tmp_path / "plain")


def test_corrupt_metrics_are_a_one_line_error(trained_run: Path):
    (trained_run / "metrics.jsonl").write_text('{"epoch": 1}\n{"epo', encoding="utf-8")
    assert "corrupt" in error_of(lambda: Run(trained_run).metrics)
