"""Reading what vaekit wrote: safetensors files, checkpoints and run configs, each with a one-line error;
and writing the first two so that a failed write (a full disk, a read-only folder) is the OSError it is.

Nothing here unpickles objects or runs code from a file: checkpoints are read with
``torch.load(weights_only=True)``, which admits only tensors and plain containers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

import safetensors.torch
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from vaekit.utils.errors import VaekitError, first_line
from vaekit.utils.integrity import DamagedRecord, verify


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file, its digest checked against its run's record."""
    if Path(path).is_file():
        verify(Path(path), "corrupt weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except FileNotFoundError:
        raise VaekitError(f"no weights file {path}") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise VaekitError(f"corrupt weights file {path}: {exc}") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint, read with ``weights_only``, its digest checked against its run's record."""
    if Path(path).is_file():
        verify(Path(path), "corrupt checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise VaekitError(f"no checkpoint {path}") from None
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise VaekitError(f"corrupt checkpoint {path}: {first_line(exc)}") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise VaekitError(f"{path} is not a vaekit checkpoint")
    return ckpt


def first_intact_checkpoint(paths: list[Path]) -> tuple[Path, dict[str, Any]] | None:
    """The first of ``paths`` whose checkpoint reads (``read_checkpoint``), with it; None if none does.
    A damaged run record (``DamagedRecord``) is raised: it stops every checkpoint from being checked."""
    for path in paths:
        try:
            return path, read_checkpoint(path)
        except DamagedRecord:
            raise
        except VaekitError:
            continue
    return None


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    try:
        config = read_json(path)
    except FileNotFoundError:
        if not run_dir.exists():
            raise VaekitError(f"run folder {run_dir} does not exist") from None
        raise VaekitError(f"{run_dir} is not a vaekit run folder (no config.json)") from None
    if not isinstance(config.get("model"), dict) or not isinstance(config.get("data", {}), dict):
        raise VaekitError(f"corrupt {path}: no model section")
    return config


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object that vaekit wrote (config.json, eval.json, ...), or a one-line error naming the file
    when it is not one (empty, cut short, garbled). A missing file raises FileNotFoundError, for the
    caller to say what its absence means."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VaekitError(f"corrupt {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(value, dict):
        raise VaekitError(f"corrupt {path}: not a JSON object")
    return value


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file that vaekit wrote (metrics.jsonl): one object per line, [] if it is missing, a
    one-line error naming the file if a line is not an object."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise VaekitError(f"corrupt {path}: {' '.join(str(exc).split())}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise VaekitError(f"corrupt {path}, line {number}: {exc}") from None
        if not isinstance(record, dict):
            raise VaekitError(f"corrupt {path}, line {number}: not a JSON object")
        records.append(record)
    return records


class _KeepsWriteErrors:
    """A file that torch.save writes through, keeping the OSError of a write: torch reports it only as
    a RuntimeError of its own ("unexpected pos ...")."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def write_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    """torch.save ``checkpoint`` into ``path``; a write that fails raises its OSError (ENOSPC, EACCES)."""
    with open(path, "wb") as file:
        sink = _KeepsWriteErrors(file)
        try:
            torch.save(checkpoint, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``tensors`` as a safetensors file at ``path``: serialized in memory and written by Python, since
    the library's own writer reports a failed write as a SafetensorError, not the OSError it is."""
    Path(path).write_bytes(safetensors.torch.save(tensors, metadata=metadata))
