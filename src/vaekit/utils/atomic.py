"""Atomic file writes: a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vaekit.utils.errors import VaekitError

# mkstemp creates files readable by the owner alone; a run folder's files get the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
DIRECTORY_MODE = 0o777 & ~_UMASK  # what mkdir gives; mkdtemp's folders are the owner's alone


class WriteError(OSError, VaekitError):
    """A write that failed (ENOSPC, EACCES, EROFS), told by the path the user asked for: still an
    OSError (the training loop reads its errno), printed as one line."""

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


def write_error(exc: OSError, path: str | os.PathLike) -> WriteError:
    """``exc`` re-told as a failure to write ``path`` (not the temporary file it happened in)."""
    reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
    return WriteError(exc.errno or errno.EIO, reason, str(path))


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Any OSError raised inside becomes a WriteError naming ``path``."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise write_error(exc, path) from None


def missing_folders(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, the deepest first (what a write would make)."""
    missing = []
    folder = path.parent if str(path.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_made(folders: list[Path]) -> None:
    """Remove the folders a failed write made (``missing_folders`` before it), where they are still
    empty: a failure leaves nothing behind."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], Any], before_replace: Callable[[Path], Any] | None = None
) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``
    (``before_replace(tmp_path)`` in between: integrity.py records the new file's digest there).

    The rename is atomic on POSIX filesystems, so ``path`` holds either the old or the new content. A
    write that fails raises a ``WriteError`` (an OSError) naming ``path``, not the temporary file.
    """
    path = Path(path)
    made = missing_folders(path)
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
    except BaseException:
        remove_made(made)
        raise
    try:
        with writing(path):
            write(Path(tmp))
            os.chmod(tmp, _FILE_MODE)
            if before_replace is not None:
                before_replace(Path(tmp))
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        remove_made(made)  # a failed write leaves nothing behind, not even the folders it made
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")
