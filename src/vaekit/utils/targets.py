"""The output policy: what every command that writes does with the path it writes to, written once.

Each case has one rule, the same in every command (train, sample, reconstruct, the latent pictures,
evaluate, compare, export, encode, score, sweep, train-prior), and one message that names the path the
user gave, never an internal temporary name:

- the folder to write into does not exist: it is made (as ``mkdir -p``), if the nearest folder above
  it that exists can be written; a write that fails removes the folders it made.
- the file or folder exists: refused unless ``--overwrite`` (train: ``--resume`` or ``--overwrite``;
  sweep: a sweep folder is joined). A run's own files, written where no path was given (``eval.json``,
  ``RUN/latent.png``), are rewritten.
- the folder is read-only: refused before any work.
- a write fails partway (a full disk, a folder made read-only meanwhile): ``cannot write PATH: REASON``;
  the old file or folder is kept as it was and nothing partial is left.

tests/utils/test_targets.py holds the table: every command x every case.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vaekit.utils.atomic import DIRECTORY_MODE, missing_folders, remove_made, write_error, writing
from vaekit.utils.errors import VaekitError


def writable(folder: Path) -> bool:
    """Whether files can be made in ``folder``: access(2) also says no on a read-only filesystem, to root."""
    return os.access(folder, os.W_OK | os.X_OK)


def check_folder_for(path: Path, option: str) -> None:
    """The folder that ``path`` goes into can be made or written: the nearest that exists is a folder and
    writable (the missing ones below it are made when the file is written), or a one-line refusal."""
    named = f"{option} {path}" if option else str(path)
    missing = missing_folders(path)
    folder = missing[-1].parent if missing else (path.parent if str(path.parent) else Path("."))
    if not folder.is_dir():
        raise VaekitError(f"{named}: {folder} is not a folder")
    if not writable(folder):
        raise VaekitError(f"{named}: the folder {folder} is not writable")


def file_target(
    path: str | os.PathLike, option: str = "--out", overwrite: bool = False, suffixes: tuple[str, ...] = ()
) -> Path:
    """``path`` as a file a command may write, checked before any work: a known suffix (where
    ``suffixes`` are given), a folder that exists and can be written, and no file already there
    unless ``overwrite``."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise VaekitError(f"{option} {path}: the file name must end in {', '.join(suffixes)}")
    check_folder_for(path, option)
    if path.is_dir():
        raise VaekitError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise VaekitError(f"{option} {path} already exists; pass --overwrite to replace it")
    return path


def folder_target(path: str | os.PathLike, option: str = "--out", overwrite: bool = False) -> Path:
    """``path`` as a folder a command writes whole (a report, an export), checked before any work."""
    path = Path(path)
    check_folder_for(path, option)
    if path.exists() and not path.is_dir():
        raise VaekitError(f"{option} {path} is a file, not a folder")
    if path.exists() and not overwrite:
        raise VaekitError(f"{option} {path} already exists; pass --overwrite to replace it")
    return path


def check_run_writable(run: Path, what: str) -> None:
    """A command that saves into a run folder (evaluate's eval.json, train-prior's prior) refuses a
    read-only one before it does the work whose result it could not keep."""
    if run.is_dir() and not writable(run):
        raise VaekitError(f"{run} is not writable: {what} could not be saved into it")


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A folder written whole: yields a hidden folder beside ``out`` to fill; when the block ends well it
    takes ``out``'s place (an old ``out`` is removed only once the new one is in), otherwise it is
    removed and ``out`` is left as it was. A failed write names ``out``."""
    made = missing_folders(out)
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    done = False
    try:
        staging.chmod(DIRECTORY_MODE)  # mkdtemp makes it private; the result is an ordinary folder
        try:
            yield staging
        except OSError as exc:  # a file inside a hidden folder: the user knows the folder they named
            raise write_error(exc, out) from None
        with writing(out):
            old = None
            if out.exists():  # moved aside, not removed, until the new folder is in its place
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
                os.replace(out, old / out.name)
            try:
                os.replace(staging, out)
            except OSError:
                if old is not None:
                    os.replace(old / out.name, out)
                raise
            finally:
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            remove_made(made)


@contextlib.contextmanager
def all_or_nothing(paths: list[Path]) -> Iterator[None]:
    """Files that change together (a run's weights, config.json, checksums.json): if the block fails,
    each is put back as it was, or removed where it did not exist. The old files are kept by hard links,
    which need no space: a full disk cannot stop the putting back."""
    kept = {}
    for path in paths:
        if path.is_file():
            kept[path] = path.with_name(f".{path.name}.kept-{os.getpid()}")
            kept[path].unlink(missing_ok=True)
            os.link(path, kept[path])
    try:
        yield
    except BaseException:
        for path in paths:
            if path in kept:
                os.replace(kept[path], path)
            else:
                path.unlink(missing_ok=True)
        raise
    finally:
        for link in kept.values():
            link.unlink(missing_ok=True)
