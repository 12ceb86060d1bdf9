"""Many samples stream to a .npy file in batches; every count is checked against the machine before
anything is drawn."""

from __future__ import annotations

import numpy as np
import torch

import vaekit
from tests.conftest import error_of
from vaekit.cli import main
from vaekit.export.samples import stream_samples
from vaekit.utils import limits


def test_streamed_samples_are_the_models_own_batch_by_batch(trained_run, tmp_path):
    model = vaekit.load(trained_run)
    out = stream_samples(
        model, 25, tmp_path / "s.npy", batch_size=10, generator=torch.Generator().manual_seed(4)
    )
    array = np.load(out, allow_pickle=False)
    generator = torch.Generator().manual_seed(4)
    expected = torch.cat([model.sample(k, generator=generator) for k in (10, 10, 5)])
    assert array.shape == (25, 1, 8, 8) and array.dtype == np.uint8
    assert np.array_equal(array, (expected * 255).round().to(torch.uint8).numpy())


def test_counts_past_the_machine_are_one_line_errors_before_any_work(
    trained_run, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "grid.png"
    assert main(["sample", str(trained_run), "--n", "100000000", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "one PNG grid holds at most 4,194,304 of these images" in err and "--out samples.npy" in err
    assert main(["sample", str(trained_run), "--n", str(10**14), "--out", str(tmp_path / "s.npy")]) == 1
    assert "free" in capsys.readouterr().err
    monkeypatch.setattr(limits, "available_memory", lambda device: 1_000_000)  # a machine with 1 MB free
    assert main(["sample", str(trained_run), "--n", "10000", "--out", str(out)]) == 1
    message = capsys.readouterr().err.strip()
    assert message.endswith("has 976.6 KB available and one allocation may take half of it")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_limits_name_the_sizes(monkeypatch):
    assert limits.human(1536) == "1.5 KB" and limits.human(12) == "12 bytes"
    monkeypatch.setattr(limits, "available_memory", lambda device: 3 << 30)
    limits.check_memory(3 << 29, torch.device("cpu"), "half")  # exactly half: allowed
    message = error_of(limits.check_memory, (3 << 29) + 1, torch.device("cpu"), "more than half")
    assert message.startswith("more than half needs 1.5 GB of memory at once; cpu has 3.0 GB available")
