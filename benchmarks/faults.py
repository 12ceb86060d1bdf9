"""Faults injected into real training runs, and what each left: the table of issue 24's closing note.

Why: vaekit promises that nothing is lost. Here each fault is made for real against the CLI, in fresh
processes, on scikit-learn's digits (an MLP of 1,500 hidden units, 12 epochs, about 0.1 s an epoch):

- a stop signal (SIGTERM, SIGUSR1, SIGINT) or SIGKILL at a random moment of a run, then ``--resume``:
  the position saved, the exit status, and whether the final weights equal an uninterrupted run's;
- a flipped byte, and a cut-short copy, of each file kind with a recorded digest (model.safetensors,
  checkpoints/last.pt, then the newer epoch_NNN.pt too, then every checkpoint) and of the record itself
  (checksums.json): what ``evaluate``, ``sample`` and ``train --resume`` (one epoch more) then do, and
  whether the resumed weights equal those of a run that never stopped.

A full disk (a real tmpfs), a read-only checkpoint folder and a rank killed under torchrun are tested in
the suite (tests/training/test_disk_faults.py, test_distributed.py); their rows cite the tests.

Results: benchmarks/results/faults.json. Run from the repository root (about two minutes):
    .venv/bin/python benchmarks/faults.py [--trials 8]
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import machine, write_results
from safetensors.torch import load_file

EPOCHS = 12
TRAIN = ["train", "--dataset", "digits", "--hidden", "1500", "--latent-dim", "2", "--no-progress",
         "--no-fit-prior", "--save-every", "4"]  # fmt: skip
SIGNALS = ["SIGTERM", "SIGUSR1", "SIGINT", "SIGKILL"]


def vaekit(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vaekit", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip


def finished(*args: str) -> tuple[int, str]:
    """Exit status, and the error or the notes printed."""
    process = vaekit(*args)
    out, err = process.communicate(timeout=600)
    lines = [line for line in err.splitlines() if line.strip()]
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    return process.returncode, (lines[-1] if lines else " ".join(notes))


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def signal_trial(work: Path, straight: Path, name: str, delay: float, index: int) -> dict:
    run = work / f"signal_{index}"
    process = vaekit(*TRAIN, "--epochs", EPOCHS, "--out", run)
    deadline = time.monotonic() + 60
    while not (run / "checkpoints" / "last.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.01)  # the first epoch is saved: training is under way
    time.sleep(delay)
    process.send_signal(getattr(signal, name))
    _, err = process.communicate(timeout=120)
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    position = f"epoch {checkpoint['epoch'] + 1} step {checkpoint['step']}"
    hit = process.returncode != 0
    resumed, _ = finished(*TRAIN, "--epochs", EPOCHS, "--resume", "--out", run)
    return {
        "signal": name,
        "delay_s": round(delay, 3),
        "hit_the_run": hit,
        "exit_status": process.returncode,
        "saved_position": position,
        "resume_exit_status": resumed,
        "bit_identical": resumed == 0 and same_weights(straight, run),
    }


def damage(path: Path, how: str, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    if how == "flipped byte":
        at = rng.randrange(len(data))
        data[at] ^= 0xFF
    else:  # cut short: the first half of the file
        del data[len(data) // 2 :]
    path.write_bytes(bytes(data))


# file kind -> the files damaged (checkpoints every 4 epochs: epoch_004, 008 and 012, and last.pt)
DAMAGED = {
    "model.safetensors": ["model.safetensors"],
    "checkpoints/last.pt": ["checkpoints/last.pt"],
    "last.pt, epoch_012.pt, epoch_008.pt": [
        f"checkpoints/{n}.pt" for n in ("last", "epoch_012", "epoch_008")
    ],  # noqa: E501
    "every checkpoint": [f"checkpoints/{n}.pt" for n in ("last", "epoch_012", "epoch_008", "epoch_004")],
    "checksums.json": ["checksums.json"],
}


def file_trials(work: Path, straight: Path, longer: Path, rng: random.Random) -> list[dict]:
    rows = []
    for kind, files in DAMAGED.items():
        for how in ("flipped byte", "cut short"):
            run = work / f"{len(rows)}"
            shutil.copytree(straight, run)
            for name in files:
                damage(run / name, how, rng)
            row: dict = {"damaged": kind, "damage": how}
            for command, args in {
                "evaluate": ["evaluate", run, "--samples", "0"],
                "sample": ["sample", run, "--out", run / "s.png"],
                "resume": [*TRAIN, "--epochs", EPOCHS + 1, "--resume", "--out", run],
            }.items():
                code, said = finished(*args)
                row[command] = {"exit_status": code, "said": said[:240]}
            if row["resume"]["exit_status"] == 0:  # one more epoch, against a run that never stopped
                row["resume"]["bit_identical"] = same_weights(longer, run)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="signals sent, at random moments")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        straight = work / "straight"
        start = time.perf_counter()
        code, _ = finished(*TRAIN, "--epochs", EPOCHS, "--out", straight)
        assert code == 0
        seconds = time.perf_counter() - start
        signals = []
        for index in range(args.trials):
            name = SIGNALS[index % len(SIGNALS)]
            row = signal_trial(work, straight, name, rng.uniform(0.0, 1.0), index)
            signals.append(row)
            print(row)
        longer = work / "longer"
        assert finished(*TRAIN, "--epochs", EPOCHS + 1, "--out", longer)[0] == 0
        files = file_trials(work, straight, longer, rng)
        for row in files:
            print(row)
    write_results(
        "faults",
        {"machine": machine(), "epochs": EPOCHS, "straight_run_seconds": round(seconds, 1),
         "signals": signals, "files": files},
    )  # fmt: skip


if __name__ == "__main__":
    main()
