"""Faults of the disk itself, not injected: a run on a real, small filesystem (tmpfs) that fills up, and a
run whose checkpoint folder is made read-only for the (non-root) user training. Each stops the run with
one line that says what was kept, leaves the last checkpoint whole and no partial file, and the run
resumes to the same weights as one that never stopped.

Both need root's powers (to mount; to train without the right to write through permissions); where the
machine refuses, they are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from tests.training.test_loop import assert_same_run
from vaekit.cli import main
from vaekit.utils.integrity import verify

# A checkpoint of 2.5 MB (the weights and Adam's moments): a 4 MB filesystem holds the folder after one
# epoch, and not the second checkpoint written beside the first.
TRAIN = [
    "train",
    "--dataset",
    "digits",
    "--hidden",
    "1500",
    "--latent-dim",
    "2",
    "--no-progress",
    "--no-fit-prior",
]


def test_a_full_filesystem_stops_the_run_with_the_last_checkpoint_whole(small_filesystem, tmp_path, capsys):
    folder, remount = small_filesystem
    run = folder / "run"
    assert main([*TRAIN, "--epochs", "3", "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"vaekit train: error: could not write into {run} (No space left on device); the checkpoint before "
        f"it is kept whole: free space or make the folder writable, then continue with: vaekit train "
        f"--resume --out {run}"
    )
    verify(run / "checkpoints" / "last.pt")
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]  # no partial file
    remount("size=64m")  # space freed
    assert main([*TRAIN, "--epochs", "3", "--resume", "--out", str(run)]) == 0
    assert main([*TRAIN, "--epochs", "3", "--out", str(tmp_path / "straight")]) == 0
    assert_same_run(tmp_path / "straight", run)


# Root writes through permissions: the training process runs without the capabilities that let it.
NO_OVERRIDE = [
    "setpriv",
    "--bounding-set",
    "-dac_override,-dac_read_search",
    "--inh-caps",
    "-dac_override,-dac_read_search",
]


def _train_without_override(*args: str) -> subprocess.CompletedProcess:
    command = [*NO_OVERRIDE, "--", sys.executable, "-m", "vaekit", *TRAIN, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_a_checkpoint_folder_made_read_only_stops_the_run_and_it_resumes(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux), to train without the right to write through permissions")
    run = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(run)]) == 0
    (run / "checkpoints").chmod(0o555)  # read-only: files in it can be neither made nor replaced
    try:
        done = _train_without_override("--epochs", "3", "--resume", "--out", str(run))
        if "setpriv" in done.stderr:
            pytest.skip(f"cannot drop capabilities here: {done.stderr.strip()}")
    finally:
        (run / "checkpoints").chmod(0o755)
    assert done.returncode == 1 and done.stderr.strip() == (
        f"vaekit train: error: could not write into {run} (Permission denied); the checkpoint before it is "
        f"kept whole: free space or make the folder writable, then continue with: vaekit train --resume "
        f"--out {run}"
    ), done.stderr
    verify(run / "checkpoints" / "last.pt")
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt"]
    assert main([*TRAIN, "--epochs", "3", "--resume", "--out", str(run)]) == 0
    assert main([*TRAIN, "--epochs", "3", "--out", str(tmp_path / "straight")]) == 0
    assert_same_run(tmp_path / "straight", run)
