"""The whole life of one run folder, driven by Hypothesis: each rule is a command a user runs on it (train,
resume, a kill at a random moment, two trains at once, evaluate, sample, train-prior, compare, export,
encode) or what a disk does to it (a flipped byte, a file cut short or gone). Checked after every step: no
traceback; a refusal is one line, ``vaekit CMD: error: ...``, exit 1; every finished epoch is still in
metrics.jsonl, with the numbers of a run that never stopped; the folder is usable (sample, evaluate) or
the command its error names repairs it; a run trained to N epochs, however stopped and resumed, holds the
weights of one trained straight to N. benchmarks/run_folder_soak.py runs this machine for thousands of
steps; docs/faults.md lists the bugs it found (all fixed, each with its own test)."""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, namedtuple
from pathlib import Path

import torch
from hypothesis import HealthCheck, settings, stateful
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.conftest import assert_refused
from tests.training.test_loop import metrics, weights
from vaekit.cli import main

# --save-every 1: every epoch leaves a checkpoint that a damaged last.pt can fall back on
TRAIN = ["--dataset", "digits", "--hidden", "16", "--latent-dim", "2", "--batch-size", "64",
         "--save-every", "1", "--no-progress"]  # fmt: skip
MAX_EPOCHS = 10  # the reference runs (one per epoch count) stay under a second each
TARGETS = ("model.safetensors", "config.json", "metrics.jsonl", "checksums.json", "checkpoints/last.pt",
           "newest epoch_NNN.pt", "oldest epoch_NNN.pt", "every checkpoint")  # fmt: skip
RULES: Counter = Counter()  # rule -> steps run, in this process (the soak reports them)
STEPS: list[str] = []  # the steps of the example running
ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))  # what export needs
USES = ("evaluate", "sample", "train-prior", "compare", *["export"][: int(ONNX)], "encode")


Answer = namedtuple("Answer", "code out err")


def vaekit(*argv: object) -> Answer:
    """A command in this process, its answer held to what every answer must be: a traceback would leave
    main() as an exception and fail the step; a refusal is one line with exit 1 (2 for usage)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    answer = Answer(code, out.getvalue(), err.getvalue())
    check_refusal(str(argv[0]), answer)
    return answer


def check_refusal(command: str, answer: Answer) -> None:
    assert "Traceback" not in answer.err, answer.err
    if answer.code != 0:
        assert_refused(answer.code, answer.err, f"vaekit {command}: error: ")
        assert answer.err.startswith(f"vaekit {command}: error: "), answer.err


def spawn(*argv: object) -> subprocess.Popen:
    """``python -m vaekit`` on one thread (the machine is shared), unbuffered: a kill waits for a line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "vaekit", *map(str, argv)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


_REFERENCES: dict[int, Path] = {}


def reference(epochs: int) -> Path:
    """A run trained straight to ``epochs``, once per process: what any run of that many must equal."""
    if epochs not in _REFERENCES:
        folder = Path(tempfile.mkdtemp(prefix="vaekit-states-reference-"))
        atexit.register(shutil.rmtree, folder, True)
        assert vaekit("train", *TRAIN, "--epochs", epochs, "--out", folder / "run").code == 0
        _REFERENCES[epochs] = folder / "run"
    return _REFERENCES[epochs]


def assert_straight(run: Path, epochs: int) -> None:
    """The run holds the weights and metrics of one trained to ``epochs`` without a stop."""
    expected, got = weights(reference(epochs)), weights(run)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected), f"weights differ from a straight {epochs}"
    assert metrics(run) == metrics(reference(epochs))


def checkpoint_position(run: Path) -> tuple[int, int] | None:
    """(epochs done, step inside the next) of checkpoints/last.pt; None if it is missing or unreadable."""
    try:
        checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        return int(checkpoint["epoch"]), int(checkpoint["step"])
    except Exception:  # a damaged file: the machine's own damage, which the other checks handle
        return None


def inode(path: Path) -> int | None:  # which folder: --overwrite moves the old one aside for a new one
    return path.stat().st_ino if path.exists() else None


# a training process the kill rule starts, and the folder it starts on (its inode, last.pt's position)
Launch = namedtuple("Launch", "target resumed overwrite inode position")


def damage_file(path: Path, how: str, where: float) -> None:
    data = path.read_bytes()
    if how == "delete" or not data:
        path.unlink()
    elif how == "flip":  # ^0xFF: a text file gets a byte that is not UTF-8, a binary one a changed value
        at = int(where * len(data))
        path.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
    else:
        path.write_bytes(data[: int(where * len(data))])


# The command an error names to repair the folder (a pattern of the message -> what to run)
RESUME_NAMED = re.compile(r"vaekit train --resume --out (\S+)")
UNCHECKED_NAMED = "remove it to read them unchecked"


class RunFolderMachine(RuleBasedStateMachine):
    """One run folder (digits, a tiny MLP) and the model of it: the epochs finished, as its checkpoint
    counts them; the epochs metrics.jsonl must hold; the files damaged since a command rewrote them."""

    subprocess_steps = 1  # kills and pairs of trains per example, seconds each (the soak allows more)

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="vaekit-states-"))
        self.run = self.tmp / "run"
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the subprocesses: the same numbers, and a fair share of the cores
        self.outputs = self.subprocesses = 0
        STEPS.clear()
        self.reset(0)

    def teardown(self) -> None:
        torch.set_num_threads(self.threads)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def reset(self, epochs: int) -> None:
        self.epochs = epochs  # finished, as the checkpoint counts them
        self.floor = epochs  # the epochs metrics.jsonl must hold (a SIGKILL may leave it one behind)
        self.checkpointed = epochs > 0
        self.damaged: dict[str, str] = {}  # file -> how, until a command rewrites it
        self.silent = False  # a binary file changed where no digest was recorded: nothing can tell

    def step(self, name: str, **args: object) -> None:
        RULES[name] += 1
        STEPS.append(f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})")

    def fresh(self, suffix: str) -> Path:
        """A new output path each time: what a command does with an existing one is not this test's."""
        self.outputs += 1
        return self.tmp / f"out_{self.outputs}{suffix}"

    @property
    def clean(self) -> bool:
        return not self.damaged and not self.silent

    @property
    def healthy(self) -> bool:
        """Every command on the run must succeed."""
        return self.floor >= 1 and self.clean

    @property
    def spawns_left(self) -> bool:
        return self.subprocesses < self.subprocess_steps

    def resumable(self, extra: int) -> bool:
        return self.checkpointed and self.clean and self.epochs + extra <= MAX_EPOCHS

    def trained(self, epochs: int) -> None:
        """A train call returned 0 having trained: the run holds ``epochs``; every file a finished epoch
        writes is new, and only the checkpoints of earlier epochs keep their damage."""
        kept = [name for name in self.damaged if name.startswith("checkpoints/epoch_")]
        self.damaged = {k: self.damaged[k] for k in kept if int(k[-6:-3]) <= self.epochs}
        self.epochs = self.floor = epochs
        self.checkpointed = True
        if not self.silent:
            assert_straight(self.run, epochs)

    @initialize(epochs=st.integers(1, 2))
    def first_train(self, epochs: int) -> None:
        self.train(epochs, overwrite=False)

    @rule(epochs=st.integers(1, 2), overwrite=st.booleans())
    def train(self, epochs: int, overwrite: bool) -> None:
        self.step("train", epochs=epochs, overwrite=overwrite)
        answer = vaekit("train", *TRAIN, "--epochs", epochs, "--out", self.run, *["--overwrite"][:overwrite])
        if overwrite or not (self.checkpointed or self.damaged):  # an empty or never-saved folder is taken
            assert answer.code == 0, answer.err
        elif self.checkpointed:
            assert answer.code == 1 and "pass --resume to continue it or --overwrite" in answer.err
        if answer.code == 0:
            self.reset(0)
            self.trained(epochs)

    @rule(extra=st.integers(0, 2))
    def resume(self, extra: int) -> None:
        self.step("resume", extra=extra)
        target, before = max(1, min(self.epochs + extra, MAX_EPOCHS)), checkpoint_position(self.run)
        answer = vaekit("train", "--resume", "--out", self.run, "--epochs", target, "--no-progress")
        past = before is not None and before[1] > 0 and target <= before[0]  # stopped inside a later epoch
        if self.checkpointed and self.clean:
            assert answer.code == (1 if past else 0), answer.err
        if past and answer.code == 1 and "checkpoints/last.pt" not in self.damaged:
            assert f"pass --epochs {before[0] + 1} or more" in answer.err, answer.err
        if answer.code == 1 and "no checkpoint to resume from" in answer.err:  # only with none left
            assert not self.intact_checkpoints(self.run), answer.err
        if "its model.safetensors is rebuilt" in answer.out:  # a finished run's, from its checkpoint
            rewritten = ("model.safetensors", "config.json")
            self.damaged = {k: v for k, v in self.damaged.items() if k not in rewritten}
            if not self.silent:
                assert_straight(self.run, self.epochs)
        elif answer.code == 0 and "has already trained" not in answer.out:
            final = (checkpoint_position(self.run) or (target,))[0]
            assert final == target, f"--epochs {target} from {before} trained to {final}"
            self.trained(final)

    def intact_checkpoints(self, run: Path) -> list[Path]:
        """The run's checkpoints that this machine has not damaged, oldest first, last.pt last."""
        found = [*sorted(run.glob("checkpoints/epoch_*.pt")), run / "checkpoints" / "last.pt"]
        return [p for p in found if p.is_file() and p.relative_to(run).as_posix() not in self.damaged]

    @precondition(lambda self: self.spawns_left)  # a counter: what timing decides must not choose rules
    @rule(stop=st.sampled_from(["SIGTERM", "SIGKILL"]), after=st.sampled_from(["start", "training"]),
          moment=st.floats(0, 1))  # fmt: skip
    def kill(self, stop: str, after: str, moment: float) -> None:
        """A training process stopped at a random moment: from its start (import, the folder's checks,
        training, the end), or once training has begun (a resume if the run can take one)."""
        self.step("kill", stop=stop, after=after, moment=moment)
        self.subprocesses += 1
        resumed = self.resumable(5)
        overwrite = not resumed and (self.checkpointed or bool(self.damaged))
        target = self.epochs + 5 if resumed else 5
        launch = Launch(target, resumed, overwrite, inode(self.run), checkpoint_position(self.run))
        process = spawn(*self.training(launch.target, resumed, launch.overwrite))
        try:
            if after == "training":
                for line in process.stdout:  # the start line: the folder is open, training begins
                    if line.startswith("training "):
                        break
            time.sleep(moment * (0.6 if after == "training" else 3.0))
            if process.poll() is None:
                process.send_signal(getattr(signal, stop))
            _, err = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        code = process.returncode
        assert code in ({0, 143, -15} if stop == "SIGTERM" else {0, -9}), (code, err)
        assert "Traceback" not in err, err
        self.after_kill(code, err, launch)

    def training(self, epochs: int, resumed: bool, overwrite: bool) -> list[object]:
        if resumed:
            return ["train", "--resume", "--out", self.run, "--epochs", epochs, "--no-progress"]
        return ["train", *TRAIN, "--epochs", epochs, "--out", self.run, *["--overwrite"][:overwrite]]

    def after_kill(self, code: int, err: str, launch: Launch) -> None:
        position = checkpoint_position(self.run)
        if code == 143:  # the handler ran: one line that says where, and the checkpoint holds that place
            line = err.strip()
            assert "\n" not in line and line.startswith("vaekit train: stopped by SIGTERM in epoch "), err
            said = re.search(r"in epoch (\d+) at step (\d+)/", line)
            assert position is not None and (position[0] + 1, position[1]) == (int(said[1]), int(said[2])), (
                f"the message says epoch {said[1]} step {said[2]}; last.pt holds {position}"
            )
        if launch.overwrite and inode(self.run) == launch.inode and code != 0:
            return  # the old run was not replaced (or was put back): it stands, damage and all
        if not launch.resumed:
            self.reset(0)
        if code == 0:  # it had ended before the signal came
            self.trained(launch.target)
            return
        assert position is not None or not (launch.resumed and self.checkpointed), "the checkpoint was lost"
        if position is not None:
            self.epochs, self.checkpointed = position[0], True
            # the checkpoint is written first, the epoch's other files after it: SIGKILL may fall between
            self.floor = max(self.floor, position[0] - (code != 143))

    @precondition(lambda self: self.spawns_left)  # a counter: what timing decides must not choose rules
    @rule(first=st.integers(1, 3), second=st.integers(1, 3), delay=st.floats(0, 1.5))
    def two_trains_at_once(self, first: int, second: int, delay: float) -> None:
        """A second train into the same folder while the first runs (a job started twice): both resume
        the run if they can, else both start one (with --overwrite where the folder holds one)."""
        self.step("two_trains_at_once", first=first, second=second, delay=delay)
        self.subprocesses += 1
        resumed = self.resumable(3)
        overwrite = not resumed and (self.checkpointed or bool(self.damaged))
        targets = (self.epochs * resumed + first, self.epochs * resumed + second)
        processes = [spawn(*self.training(targets[0], resumed, overwrite))]
        time.sleep(delay)
        processes.append(spawn(*self.training(targets[1], resumed, overwrite)))
        done = []
        for process, target in zip(processes, targets, strict=True):
            _, err = process.communicate(timeout=300)
            check_refusal("train", Answer(process.returncode, "", err))
            if process.returncode == 0:
                done.append(target)
        if done:  # (both refused: the folder is as it was, which the next steps hold it to)
            self.after_two(resumed, overwrite, done)

    def after_two(self, resumed: bool, overwrite: bool, done: list[int]) -> None:
        """One train at a time held the folder: the other was refused, or came after the first had
        ended and went on from its end (a resume) or replaced it (--overwrite); never a mix."""
        if not resumed:
            self.reset(0)
        position = checkpoint_position(self.run)
        ends = json.loads((self.run / "config.json").read_text())["epochs_completed"]
        assert position is not None and position[0] == len(metrics(self.run)) == ends, (done, position, ends)
        assert position[0] == max(done) if resumed else position[0] in done, (done, position)
        self.trained(position[0])

    @rule(command=st.sampled_from(USES), components=st.integers(1, 3))
    def use(self, command: str, components: int) -> None:
        """A command that reads the run: on a healthy one it must succeed; on another, succeed or refuse."""
        self.step(command, **({"components": components} if command == "train-prior" else {}))
        out = self.fresh({"sample": ".png", "encode": ".npy"}.get(command, ""))
        answer = vaekit(command, self.run, *{
            "evaluate": ["--samples", "0"],
            "sample": ["--n", "4", "--out", out],
            "train-prior": ["--overwrite", "--components", components],
            "compare": ["--out", out],
            "export": ["--out", out],
            "encode": ["--split", "test", "--no-progress", "--out", out],
        }[command])  # fmt: skip
        if self.healthy:
            assert answer.code == 0, answer.err

    @rule(file=st.sampled_from(TARGETS), how=st.sampled_from(["flip", "truncate", "delete"]),
          where=st.floats(0, 1, exclude_max=True))  # fmt: skip
    def damage(self, file: str, how: str, where: float) -> None:
        self.step("damage", file=file, how=how, where=where)  # a folder a kill left unmade: nothing
        epochs = sorted(p.relative_to(self.run).as_posix() for p in self.run.glob("checkpoints/epoch_*.pt"))
        names = {"newest epoch_NNN.pt": epochs[-1:], "oldest epoch_NNN.pt": epochs[:1]}.get(file, [file])
        if file == "every checkpoint":
            names = [*epochs, "checkpoints/last.pt"]
        try:
            record = set(json.loads((self.run / "checksums.json").read_text()))
        except (OSError, ValueError):
            record = set()  # no record, or a damaged one: nothing is checked
        for name in [n for n in names if (self.run / n).is_file()]:
            damage_file(self.run / name, how, where)
            if name == "checksums.json" and how == "delete":
                continue  # a run without the record is read unchecked, as older runs are: no damage
            self.damaged[name] = how
            self.silent |= how != "delete" and name.endswith((".pt", ".safetensors")) and name not in record

    @invariant()
    def finished_epochs_are_in_the_metrics(self) -> None:
        if self.floor == 0 or "metrics.jsonl" in self.damaged:
            return
        records = metrics(self.run)
        assert len(records) >= self.floor, f"metrics.jsonl has {len(records)} epochs of {self.floor} finished"
        assert records == metrics(reference(MAX_EPOCHS))[: len(records)], "an epoch's numbers changed"

    @invariant()
    def usable_or_repairable(self) -> None:
        """On a copy of the folder: sample and evaluate work, or the command the refusal names repairs it
        (run, then they must work), or the refusal names a file the machine damaged past repair."""
        if not self.checkpointed or not self.run.is_dir():
            return  # no run yet: a fresh train takes the folder over (the train rule holds it to that)
        copy = self.tmp / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(self.run, copy)
        silent = self.silent
        for _ in range(3):  # a repair may uncover the next fault
            refusal = self.refusal_of_use(copy)
            if refusal is None:
                return
            if RESUME_NAMED.search(refusal):
                assert vaekit("train", "--resume", "--out", copy, "--no-progress").code == 0
                if not silent and checkpoint_position(copy):
                    assert_straight(copy, checkpoint_position(copy)[0])
            elif UNCHECKED_NAMED in refusal and "checksums.json" in refusal:
                (copy / "checksums.json").unlink()  # what was damaged is now read unchecked: no telling
                silent |= any(how != "delete" and name.endswith((".pt", ".safetensors"))
                              for name, how in self.damaged.items())  # fmt: skip
            else:
                return self.unrepairable(copy, refusal)
        raise AssertionError(f"still unusable after three repairs: {refusal}")

    def refusal_of_use(self, copy: Path) -> str | None:
        for argv in (["sample", "--n", "4", "--out", self.fresh(".png")], ["evaluate", "--samples", "0"]):
            answer = vaekit(argv[0], copy, *argv[1:])
            if answer.code != 0:
                return answer.err.strip()
        return None

    def unrepairable(self, copy: Path, refusal: str) -> None:
        named = [name for name in self.damaged if Path(name).name in refusal]
        if "config.json" in named:
            return  # the run's description is gone: refused, naming it (as test_damaged_run_files.py)
        if "weights" in refusal and self.intact_checkpoints(copy):
            raise AssertionError(
                f"a checkpoint could rebuild the weights; the refusal does not say: {refusal}"
            )
        if not named:
            raise AssertionError(f"unusable, and the refusal names no repair: {refusal}")
        # every copy of what it needs is damaged or gone: refused, naming the file


# 3 examples of 8 steps (the first, the simplest, is shorter), each with at most one subprocess step
# (a kill, or two trains at once): 10-30 s on 2 cores
SUITE = settings(max_examples=3, stateful_step_count=8, deadline=None, suppress_health_check=[*HealthCheck])


def test_a_run_folder_stays_usable_or_repairable_through_what_users_and_disks_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default output, if any command wrote one, lands here
    stateful.run_state_machine_as_test(RunFolderMachine, settings=SUITE)
