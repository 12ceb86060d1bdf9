"""Data-parallel training under torchrun (gloo, 2 processes on this CPU): the same numbers as one
process, resume with another number of processes, an elastic restart that resumes by itself, and a
failing rank that stops the job with a clear message."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vaekit.cli import main
from vaekit.models.maths import reparameterize
from vaekit.training.distributed import Ranks, share

TORCHRUN = Path(sys.executable).parent / "torchrun"
pytestmark = pytest.mark.usefixtures("_subprocess_temp_files_in_pytests_tmp")
TINY = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "2", "--batch-size", "64", "--no-progress"]


def torchrun(nproc: int, *args: str, restarts: int = 0, tiny: list[str] = TINY, **popen) -> subprocess.Popen:
    command = [str(TORCHRUN), "--standalone", f"--nproc-per-node={nproc}", f"--max-restarts={restarts}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*command, "-m", "vaekit", "train", *tiny, *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen,
    )  # fmt: skip


def one_process(*args: str, tiny: list[str] = TINY) -> str:
    """The same command as one plain process, here: the reference that two processes must match (a
    torchrun of one would cost two more Python starts for the same numbers)."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = main(["train", *tiny, *args])
    assert code == 0, output.getvalue()
    return output.getvalue()


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    output, _ = process.communicate(timeout=timeout)
    return output


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_shares_cover_each_batch_once_and_a_short_batch_is_taken_whole():
    index = torch.arange(10)
    parts = [share(index, Ranks(r, 3, r)) for r in range(3)]
    assert torch.equal(torch.cat([p for p, _, _ in parts]), index)
    assert [start for _, start, _ in parts] == [0, 4, 7]
    assert sum(fraction for _, _, fraction in parts) == pytest.approx(1.0)
    short = torch.arange(2)
    for r in range(3):
        mine, start, fraction = share(short, Ranks(r, 3, r))
        assert torch.equal(mine, short) and start == 0 and fraction == pytest.approx(1 / 3)


def test_noise_rows_are_the_rows_of_the_whole_batchs_noise():
    mu, logvar = torch.zeros(10, 3), torch.zeros(10, 3)
    whole = reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    part = reparameterize(mu[4:7], logvar[4:7], torch.Generator().manual_seed(1), rows=(4, 10))
    assert torch.equal(part, whole[4:7])
    k = reparameterize(
        mu[4:7].expand(2, 3, 3), logvar[4:7].expand(2, 3, 3), torch.Generator().manual_seed(1), rows=(4, 10)
    )
    assert torch.equal(
        k,
        reparameterize(mu.expand(2, 10, 3), logvar.expand(2, 10, 3), torch.Generator().manual_seed(1))[
            :, 4:7
        ],
    )


def test_two_processes_give_one_process_numbers_and_resume_with_another_count(tmp_path):
    """With a VampPrior and a flow posterior (their pseudo-inputs and flow weights are parameters like
    the others: DDP averages their gradients too), and the default parts' terms."""
    one, two = tmp_path / "one", tmp_path / "two"
    parts = ["--prior", "vamp", "--pseudo-inputs", "4", "--posterior", "iaf"]
    job = torchrun(2, *parts, "--epochs", "3", "--out", str(two))  # while the reference trains here
    out_one = one_process(*parts, "--epochs", "3", "--out", str(one))
    out_two = finish(job)
    assert "run saved" in out_one and "run saved" in out_two, out_two
    for a, b in zip(history(one), history(two), strict=True):
        for key in ("train_loss", "train_recon", "train_kl", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    test_one = json.loads((one / "eval.json").read_text())["test_loss"]
    test_two = json.loads((two / "eval.json").read_text())["test_loss"]
    assert abs(test_one - test_two) < 1e-3
    weights_one, weights_two = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert all(torch.allclose(weights_one[k], weights_two[k], atol=1e-4) for k in weights_one)
    assert not (two / "tb").exists() and len(history(two)) == 3  # one writer, no duplicate records
    # a 2-process run resumed by one process (and extended) matches the one-process run extended
    one_process("--epochs", "4", "--resume", "--out", str(one))
    one_process("--epochs", "4", "--resume", "--out", str(two))
    assert history(two)[-1]["train_loss"] == pytest.approx(history(one)[-1]["train_loss"], rel=1e-4)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
def test_an_elastic_restart_resumes_from_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    process = torchrun(2, "--epochs", "6", "--no-fit-prior", "--out", str(run), restarts=1)
    deadline = time.monotonic() + 60
    while not (run / "checkpoints" / "last.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(process.pid)
    assert len(workers) == 2, workers
    os.kill(max(workers), signal.SIGKILL)  # one worker dies mid-run
    output = finish(process, timeout=240)
    assert process.returncode == 0, output[-2000:]
    assert "restart 1: resuming" in output and "run saved" in output
    epochs = [h["epoch"] for h in history(run)]
    assert epochs == list(range(1, 7))


def test_a_failing_rank_stops_the_job_with_a_clear_message(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    start = time.monotonic()
    process = torchrun(2, "--epochs", "2", "--out", str(run))
    output = finish(process, timeout=120)
    assert process.returncode == 1 and time.monotonic() - start < 100  # torchrun: a worker failed
    assert "(rank 0): error:" in output and "already holds other files" in output
    assert "(rank 1): error:" in output  # rank 0's refusal reaches every rank: none is left waiting
    assert (run / "notes.txt").read_text() == "mine" and len(list(run.iterdir())) == 1


def test_factorvae_and_max_time_under_two_processes(tmp_path):
    """Batch-statistic objectives estimate from each rank's share; --max-time stops every rank at the
    same step (rank 0's clock), saved and evaluated."""
    out = tmp_path / "run"
    output = finish(
        torchrun(2, "--objective", "factorvae", "--epochs", "50", "--max-time", "1s", "--no-fit-prior",
                 "--out", str(out))
    )  # fmt: skip
    assert "--max-time 1s reached" in output and "run saved" in output, output
    checkpoint = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["epoch"] < 50 and "test_loss" in json.loads((out / "eval.json").read_text())
    assert len(checkpoint["optimizer"]["param_groups"]) == 2  # the discriminator's own Adam settings


def test_a_hierarchy_gives_one_process_numbers_under_two(tmp_path):
    """The hvae's noise per group (and per importance sample), its gradient guard (the norm of the
    averaged gradient) and its averaged weights agree across ranks: two processes give one process's
    numbers, for the ELBO and the IWAE objective (the two torchrun jobs run side by side)."""
    hvae = ["--dataset", "digits", "--batch-size", "64", "--no-progress", "--model", "hvae", "--width", "8",
            "--latent-channels", "2", "--groups", "1", "--stem", "1", "--epochs", "2", "--ema", "0.9",
            "--no-fit-prior"]  # fmt: skip
    objectives = {"elbo": [], "iwae": ["--objective", "iwae", "--k", "3"]}
    jobs = {
        name: torchrun(2, *extra, "--out", str(tmp_path / name / "two"), tiny=hvae)
        for name, extra in objectives.items()
    }
    for name, extra in objectives.items():
        one, two = tmp_path / name / "one", tmp_path / name / "two"
        assert "run saved" in one_process(*extra, "--out", str(one), tiny=hvae)
        assert "run saved" in finish(jobs[name]), name
        for a, b in zip(history(one), history(two), strict=True):
            keys = (
                "train_loss",
                "train_kl",
                "val_loss",
                *(("train_iwae",) if extra else ("train_kl1", "train_kl2")),
            )
            for key in keys:
                assert b[key] == pytest.approx(a[key], rel=1e-4), (name, key)
        weights_one, weights_two = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
        assert all(torch.allclose(weights_one[k], weights_two[k], atol=1e-4) for k in weights_one), name


def _rank_of(pid: int) -> int | None:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    ranks = [int(v.split(b"=", 1)[1]) for v in environ if v.startswith(b"RANK=")]
    return ranks[0] if ranks else None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step_and_resumes(tmp_path):
    """Preemption reaches the ranks at different moments; here only rank 1 is told. Every rank must stop
    after the same step (rank 0 saving it), or the others would wait forever in the next all-reduce."""
    from vaekit.training import resume

    run = tmp_path / "run"
    process = torchrun(2, "--epochs", "400", "--no-fit-prior", "--out", str(run))
    deadline = time.monotonic() + 60
    while not (run / "metrics.jsonl").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = {_rank_of(pid): pid for pid in _children(process.pid)}
    time.sleep(0.15)
    os.kill(workers[1], signal.SIGTERM)
    output = finish(process, timeout=120)
    assert output.count("stopped by SIGTERM in epoch") == 2, output[-2000:]  # both ranks, one step
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    epoch, step = checkpoint["epoch"], checkpoint["step"]
    assert step >= 1 and f"in epoch {epoch + 1} at step {step}/" in output
    # one process takes over, as a requeued job on a smaller allocation would
    resume(run, epochs=epoch + 1, progress=False, log=lambda line: None)
    from tests.conftest import quiet_trainer, tiny_config

    straight = tmp_path / "straight"  # the same settings as TINY, in this process
    quiet_trainer(tiny_config(epochs=epoch + 1, fit_prior=False), straight).run()
    for a, b in zip(history(straight), history(run), strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
