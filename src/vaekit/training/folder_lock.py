"""One training process per run folder, and a run folder's replacement (--overwrite) as one step.

A training process holds an exclusive ``flock`` on its run folder's descriptor while it trains: the
kernel drops it when the process dies, and no file is left. Two things around it need more than the lock:

- what a process read before it took the lock (the checkpoint it resumes from, the folder it found
  empty) may be stale by then: ``folder_state`` is taken before anything is read and compared after the
  lock is taken; a folder that changed in between is refused (``held``);
- ``--overwrite`` moves the old folder aside (``.RUN.replaced-PID``, put back if the new run fails
  before its first checkpoint): the lock belongs to the folder moved, and the new folder made in its
  place must be locked before another process can take it. The run folder's parent is locked for that
  short while (the checks, the move, the new folder's lock), so that another train sees either the old
  folder locked or the new one locked, never the gap between.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vaekit.training.run_folder import RunDir
from vaekit.utils.atomic import missing_folders, remove_made
from vaekit.utils.errors import VaekitError

PARENT_WAIT_SECONDS = 30.0  # another train's start holds the parent for milliseconds; a nested run longer


def folder_state(run: RunDir) -> tuple[Any, ...] | None:
    """What a second process could have changed in the run folder: None while it is missing or empty,
    else its files' names and its last checkpoint's identity, size and time (a checkpoint is replaced
    whole, by a rename: a new one is another file)."""
    names = sorted(p.name for p in run.path.iterdir()) if run.path.is_dir() else []
    if not names:
        return None
    last = run.last_checkpoint.stat() if run.last_checkpoint.is_file() else None
    return (names, None if last is None else (last.st_ino, last.st_size, last.st_mtime_ns))


def made_folders(run: RunDir) -> list[Path]:
    """The folders a new run makes (its folder, then any missing above it), for ``remove_new_run`` if
    it fails before it keeps anything; none for a folder that exists."""
    return [] if run.path.exists() else [run.path, *missing_folders(run.path)]


def remove_new_run(made: list[Path]) -> None:
    """Remove a failed new run's folders (``made_folders``): the output policy (utils.targets)."""
    if made:
        shutil.rmtree(made[0], ignore_errors=True)
        remove_made(made[1:])


def _lock(folder: Path) -> int | None:
    """A descriptor of ``folder`` holding its exclusive lock, or None if another process holds it."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _parent_locked(folder: Path) -> Iterator[None]:
    """The run folder's parent locked while a train starts: waits for another's start (milliseconds);
    refused after ``PARENT_WAIT_SECONDS`` (the parent is itself a run folder being trained)."""
    deadline = time.monotonic() + PARENT_WAIT_SECONDS
    while (fd := _lock(folder.parent)) is None:
        if time.monotonic() > deadline:
            raise VaekitError(f"{folder.parent} is held by another vaekit process: give another --out")
        time.sleep(0.02)
    try:
        yield
    finally:
        os.close(fd)


def _busy(run: RunDir) -> VaekitError:
    return VaekitError(
        f"{run.path} is being trained by another process: wait for it to end, or give another --out"
    )


@contextlib.contextmanager
def held(
    run: RunDir, seen: tuple[Any, ...] | None, main: bool, overwrite: bool
) -> Iterator[tuple[list[Path], Path | None]]:
    """The run folder held by this process while it trains (rank 0; the others hold nothing). Refused
    when another process holds it, or when the folder changed since this one read it (``seen``: another
    train came and went). With ``overwrite``, a folder that holds something is moved aside and an empty
    one locked in its place. Yields the folders this run made (``made_folders``, removed if it keeps
    nothing) and where the old run went (None if none was moved: ``put_back`` or ``discard``)."""
    if not main:
        yield [], None
        return
    made = made_folders(run)
    run.path.parent.mkdir(parents=True, exist_ok=True)
    with _parent_locked(run.path):
        run.path.mkdir(exist_ok=True)
        if (fd := _lock(run.path)) is None:
            raise _busy(run)
        backup = None
        try:
            if folder_state(run) != seen:  # not removed: what is in it now is the other process's
                raise VaekitError(
                    f"{run.path} changed while this run was starting (another vaekit train wrote into it): "
                    "run the command again"
                )
            if overwrite and not run.is_empty():
                backup = run.path.with_name(f".{run.path.name}.replaced-{os.getpid()}")
                os.replace(run.path, backup)  # still locked by ``fd``, until the new folder is
                run.path.mkdir()
                new = _lock(run.path)  # no other train can be between: the parent is held
                os.close(fd)
                fd = new
                if fd is None:  # a process that took no parent lock (not a vaekit train)
                    raise _busy(run)
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
    try:
        yield made, backup
    finally:
        os.close(fd)


def settle(run: RunDir, made: list[Path], backup: Path | None, failed: bool) -> None:
    """The folder when training stops. A run with a checkpoint to resume from (an epoch's, or the one a
    stop signal saved) keeps it and the run it replaced (``backup``) is gone; one without gives the
    folder back to the run it replaced, or if it failed and replaced none, leaves nothing it made."""
    if run.last_checkpoint.is_file():
        discard(backup)
    elif backup is not None:
        shutil.rmtree(run.path, ignore_errors=True)
        os.replace(backup, run.path)
    elif failed:
        remove_new_run(made)


def discard(backup: Path | None) -> None:
    """The new run has a checkpoint to resume from: the run it replaced is gone for good."""
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
