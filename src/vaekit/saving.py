"""A model on disk is its config (JSON) plus its weights (safetensors); checkpoints carry the config too.

Nothing here unpickles objects or runs code from a file: checkpoints are read with
``torch.load(weights_only=True)``, which admits only tensors and plain containers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from vaekit.atomic import atomic_write
from vaekit.errors import VaekitError
from vaekit.models import VAE, build_model

CONFIG_KEY = "vaekit_model_config"


def save_model(model: VAE, path: str | os.PathLike) -> None:
    """Write the weights as safetensors, with the model config in the file's metadata."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {CONFIG_KEY: json.dumps(model.config)}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def _load_weights(model: VAE, state: dict[str, torch.Tensor], source: Path) -> VAE:
    expected = model.state_dict()
    problems = [k for k in expected if k not in state] + [k for k in state if k not in expected]
    problems += [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if problems:
        raise VaekitError(f"weights in {source} do not match its config: {', '.join(problems[:3])}")
    model.load_state_dict(state)
    return model.eval()


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except FileNotFoundError:
        raise VaekitError(f"no weights file {path}") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise VaekitError(f"corrupt weights file {path}: {exc}") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
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


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> VAE:
    """Rebuild a trained model from a run folder, a ``.safetensors`` file or a ``.pt`` checkpoint.

    A run folder is read as its config.json plus model.safetensors. The model comes back in eval mode.
    """
    path = Path(path)
    if path.is_dir():
        config = read_run_config(path)["model"]
        state, _ = read_safetensors(path / "model.safetensors")
        source = path / "model.safetensors"
    elif path.suffix == ".safetensors":
        state, metadata = read_safetensors(path)
        if CONFIG_KEY not in metadata:
            raise VaekitError(f"{path} carries no vaekit model config")
        config, source = json.loads(metadata[CONFIG_KEY]), path
    elif path.suffix == ".pt":
        ckpt = read_checkpoint(path)
        config, state, source = json.loads(ckpt["config"])["model"], ckpt["model"], path
    elif not path.exists():
        raise VaekitError(f"{path} does not exist")
    else:
        raise VaekitError(f"cannot load {path}: expected a run folder, .safetensors or .pt file")
    return _load_weights(build_model(config), state, source).to(device)
