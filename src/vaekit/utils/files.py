"""Reading what vaekit wrote: safetensors files, checkpoints and run configs, each with a one-line error.

Nothing here unpickles objects or runs code from a file: checkpoints are read with
``torch.load(weights_only=True)``, which admits only tensors and plain containers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from vaekit.utils.errors import VaekitError
from vaekit.utils.integrity import verify


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
        raise VaekitError(f"corrupt checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise VaekitError(f"{path} is not a vaekit checkpoint")
    return ckpt


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not run_dir.exists():
            raise VaekitError(f"run folder {run_dir} does not exist") from None
        raise VaekitError(f"{run_dir} is not a vaekit run folder (no config.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VaekitError(f"corrupt {path}: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise VaekitError(f"corrupt {path}: no model section")
    return config
