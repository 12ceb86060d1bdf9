"""The output policy (vaekit.utils.targets) as a table: every command that writes x every case of its
target (a missing folder, on a disk with room and on a full one; an existing file or folder; a read-only
filesystem; a full one), each on a real filesystem (a tmpfs mounted for the test; skipped where the
machine cannot mount one). A missing folder is made; every other cell is refused: exit status 1, one
line naming the path the user gave (never a temporary name), and the filesystem exactly as it was. An
existing target is then replaced with --overwrite.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import assert_refused
from vaekit.cli import main
from vaekit.utils.atomic import WriteError, write_error
from vaekit.utils.errors import VaekitError
from vaekit.utils.targets import file_target, folder_target, staged_folder

SWEEP = """[train]
dataset = "digits"
hidden = [16]
latent_dim = 2
epochs = 1
fit_prior = false

[search]
lr = [1e-3, 3e-2]
"""


@dataclass(frozen=True)
class Command:
    """How a command is given its target: ``argv(run, target)``; ``kind``: a file or folder the user
    names, or a run folder the command writes into (evaluate, train-prior); ``name``: the target's name."""

    argv: Callable[[Path, Path], list[str]]
    kind: str = "file"
    name: str = "out.png"
    overwrite: tuple[str, ...] = ("--overwrite",)


COMMANDS = {
    "train": Command(
        lambda run, t: [
            "train",
            "--dataset",
            "digits",
            "--hidden",
            "8",
            "--latent-dim",
            "2",
            "--epochs",
            "1",
            "--no-progress",
            "--no-fit-prior",
            "--out",
            str(t),
        ],
        kind="folder",
        name="run",
    ),  # fmt: skip
    "sample": Command(lambda run, t: ["sample", str(run), "--n", "4", "--out", str(t)]),
    "sample .npy": Command(lambda run, t: ["sample", str(run), "--n", "4", "--out", str(t)], name="s.npy"),
    "reconstruct": Command(lambda run, t: ["reconstruct", str(run), "--n", "4", "--out", str(t)]),
    "latent": Command(lambda run, t: ["latent", str(run), "--n", "40", "--out", str(t)]),
    "manifold": Command(lambda run, t: ["manifold", str(run), "--n", "3", "--out", str(t)]),
    "interpolate": Command(
        lambda run, t: ["interpolate", str(run), "--from", "0", "--to", "1", "--steps", "3", "--out", str(t)]
    ),
    "traverse": Command(
        lambda run, t: ["traverse", str(run), "--steps", "3", "--dims", "2", "--out", str(t)]
    ),
    "evaluate": Command(lambda run, t: ["evaluate", str(t), "--samples", "0"], kind="run", overwrite=()),
    "train-prior": Command(lambda run, t: ["train-prior", str(t)], kind="run"),
    "compare": Command(lambda run, t: ["compare", str(run), "--out", str(t)], kind="folder", name="report"),
    "export": Command(lambda run, t: ["export", str(run), "--out", str(t)], kind="folder", name="onnx"),
    "encode": Command(lambda run, t: ["encode", str(run), "--split", "test", "--out", str(t)], name="z.npy"),
    "score": Command(
        lambda run, t: ["score", str(run), "--split", "test", "--k", "2", "--out", str(t)], name="s.csv"
    ),
    "sweep": Command(
        lambda run, t: [
            "sweep",
            "--config",
            str(run.parent / "sweep.toml"),
            "--trials",
            "1",
            "--out",
            str(t),
        ],
        kind="folder",
        name="sweep",
        overwrite=(),
    ),  # fmt: skip
}
NEEDS = {"export": ("onnx", "onnxruntime"), "sweep": ("optuna",)}
CASES = ("missing folder", "missing folder, full", "existing", "read-only", "full")


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (hidden ones too) with a file's bytes: what "nothing left" compares."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def fill(folder: Path) -> None:
    """Fill the filesystem of ``folder`` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as f:
        for block in (65536, 1):  # then the last partial block
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError:
                pass


def _target(command: Command, case: str, fs: Path, run: Path) -> Path:
    if command.kind == "run":
        if case.startswith("missing folder"):  # the run folder itself: nothing to write into
            return fs / "absent" / "run"
        return Path(shutil.copytree(run, fs / "run"))
    if case.startswith("missing folder"):
        return fs / "absent" / "deeper" / command.name
    return fs / command.name


def _existing(target: Path, command: Command) -> None:
    if command.kind == "file":
        target.write_bytes(b"kept")
    elif command.kind == "folder":
        target.mkdir()
        (target / "kept.txt").write_bytes(b"kept")


EXPECTED = {  # what the one line must say, beside the path
    "missing folder": "does not exist",  # a run folder: the other commands make the folders
    "missing folder, full": "No space left on device",
    "read-only": "not writable",
    "full": "No space left on device",
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_under_every_case_of_its_target(name, case, small_filesystem, trained_run, capsys):
    for module in NEEDS.get(name, ()):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{name} needs {module}")
    fs, remount = small_filesystem
    command = COMMANDS[name]
    (trained_run.parent / "sweep.toml").write_text(SWEEP)
    target = _target(command, case, fs, trained_run)
    if case == "existing":
        if command.kind == "run":
            if name == "evaluate":  # a run's own eval.json is rewritten, not refused
                (target / "eval.json").write_text("{}")
                assert main(command.argv(trained_run, target)) == 0
                assert (target / "eval.json").read_text() != "{}"
                return
        else:
            _existing(target, command)
    argv = command.argv(trained_run, target)
    if command.kind == "run" and case != "existing":
        argv += command.overwrite  # a run's prior is replaced here; refused without it: "existing"
    if case == "read-only":
        remount("ro")
    if case.endswith("full"):
        fill(fs)
    before = tree(fs)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    if case == "missing folder" and command.kind != "run":  # made, as mkdir -p would
        assert code == 0, err
        assert target.exists() and (target.is_dir() or target.stat().st_size > 0)
        return
    if case == "read-only":
        remount("rw")
    assert_refused(code, err, str(target))
    assert code == 1
    expected = EXPECTED.get(case) or "already exists; pass --overwrite"
    if command.kind == "run" and case.startswith("missing folder"):
        expected = "does not exist"
    if name in ("train", "train-prior") and case == "existing":
        expected = "--overwrite to"  # train: "... --resume to continue it or --overwrite to replace it"
    if name == "sweep" and case == "existing":
        expected = "is not a sweep folder"
    if name == "sample .npy" and case.endswith("full"):
        expected = "bytes free"  # the free space is checked before the first sample is drawn
    assert expected in err, err
    assert ".tmp" not in err, err  # never a temporary file's name
    assert tree(fs) == before, f"{name} left something behind under {case}"
    if case == "existing" and command.overwrite:
        assert main([*command.argv(trained_run, target), *command.overwrite]) == 0
        assert not (target / "kept.txt").exists() if target.is_dir() else target.read_bytes() != b"kept"


def test_a_write_error_names_the_path_and_stays_an_oserror():
    error = write_error(PermissionError(13, "Permission denied", "/x/.a.png.k2j.tmp"), "/x/a.png")
    assert isinstance(error, OSError) and isinstance(error, VaekitError) and isinstance(error, WriteError)
    assert str(error) == "cannot write /x/a.png: Permission denied" and error.errno == 13


def test_the_checks_refuse_before_any_work(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(VaekitError, match=r"--out .*a.png already exists; pass --overwrite"):
        file_target(tmp_path / "a.png")
    assert file_target(tmp_path / "a.png", overwrite=True) == tmp_path / "a.png"
    with pytest.raises(VaekitError, match="is a folder; give a file name"):
        file_target(tmp_path / "folder", overwrite=True)
    with pytest.raises(VaekitError, match="is a file, not a folder"):
        folder_target(tmp_path / "a.png", overwrite=True)
    with pytest.raises(VaekitError, match=r"must end in \.npy"):
        file_target(tmp_path / "t.txt", suffixes=(".npy",))
    with pytest.raises(VaekitError, match="a.png is not a folder"):
        file_target(tmp_path / "a.png" / "b.png")
    assert file_target(tmp_path / "new" / "deeper" / "c.png") == tmp_path / "new" / "deeper" / "c.png"
    assert not (tmp_path / "new").exists()  # made when the file is written, not before the work


def test_a_staged_folder_replaces_the_old_one_whole_or_not_at_all(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(out) as staging:
        (staging / "new.txt").write_text("half")
        raise RuntimeError("the work failed")
    assert sorted(os.listdir(tmp_path)) == ["report"] and (out / "old.txt").read_text() == "old"
    with staged_folder(out) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(os.listdir(tmp_path)) == ["report"] and sorted(os.listdir(out)) == ["new.txt"]
