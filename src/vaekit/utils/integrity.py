"""The SHA-256 of every weights and checkpoint file of a run, recorded when it is written and checked
when it is read, so that a file whose bytes changed (a bad disk, a half-copied folder, a flipped bit)
is refused instead of giving wrong numbers.

The record is the run folder's ``checksums.json``: each file's path in the folder -> the digests it may
have. A write keeps a file and its record in step through a crash at any moment: the new file's digest
joins the record before the file is renamed into place (then either file matches) and the old one
leaves after it. Files outside a run folder, and runs written before this record existed, are read
unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.utils.atomic import atomic_write, write_json
from vaekit.utils.errors import VaekitError

MANIFEST = "checksums.json"
RUN_MARKER = "config.json"  # a folder with one is a run folder


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_root(path: Path) -> Path | None:
    """The run folder that ``path`` (its model.safetensors, or a file in its checkpoints/) belongs to."""
    for folder in (path.parent, path.parent.parent):
        if (folder / RUN_MARKER).is_file():
            return folder
    return None


class DamagedRecord(VaekitError):
    """checksums.json itself is damaged: no file of the run can be checked (not one file's fault)."""


def _read_manifest(root: Path) -> dict[str, list[str]]:
    unchecked = "the run's files cannot be checked (remove it to read them unchecked)"
    try:
        record = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DamagedRecord(f"corrupt {root / MANIFEST} ({exc}): {unchecked}") from None
    if not isinstance(record, dict):
        raise DamagedRecord(f"corrupt {root / MANIFEST}: not a table of files: {unchecked}")
    return record


def write_recorded(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """``atomic_write(path, write)``, with the file's digest recorded in its run's checksums.json (a file
    outside a run folder is written as atomic_write writes it)."""
    path = Path(path)
    root = run_root(path)
    if root is None:
        atomic_write(path, write)
        return
    name = path.relative_to(root).as_posix()
    record = _read_manifest(root)
    previous = record.get(name, [])[:1]
    new: list[str] = []

    def before_rename(tmp: Path) -> None:
        new.append(sha256_of(tmp))
        write_json(root / MANIFEST, {**record, name: [new[0], *previous]})  # either file matches now

    atomic_write(path, write, before_replace=before_rename)
    write_json(root / MANIFEST, {**_read_manifest(root), name: new})


def verify(path: Path, what: str = "damaged file") -> None:
    """Raise a one-line VaekitError (``what`` and the path first) if ``path``'s digest is not one its run
    recorded for it."""
    root = run_root(path)
    if root is None:
        return
    name = path.relative_to(root).as_posix()
    recorded = _read_manifest(root).get(name)
    if not recorded:  # written before vaekit recorded digests, or by hand
        return
    actual = sha256_of(path)
    if actual not in recorded:
        raise VaekitError(
            f"{what} {path}: its SHA-256 {actual[:16]}... is not the {recorded[0][:16]}... recorded in "
            f"{root / MANIFEST} when it was written"
        )


def forget(path: Path) -> None:
    """Drop ``path``'s record (the file was removed)."""
    root = run_root(path)
    if root is not None:
        record = _read_manifest(root)
        if record.pop(path.relative_to(root).as_posix(), None) is not None:
            write_json(root / MANIFEST, record)
