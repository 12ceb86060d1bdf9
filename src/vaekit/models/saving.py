"""A model on disk is its config (JSON) plus its weights (safetensors); checkpoints carry the config too.

``vaekit.load`` rebuilds any registered model, fitted prior included, from a run folder, a safetensors
file or a checkpoint; no file is unpickled (see ``vaekit.utils.files``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from vaekit.models import VAE, build_model
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import (
    first_intact_checkpoint,
    read_checkpoint,
    read_run_config,
    read_safetensors,
    write_safetensors,
)
from vaekit.utils.integrity import DamagedRecord, write_recorded

CONFIG_KEY = "vaekit_model_config"


def save_model(model: VAE, path: str | os.PathLike) -> None:
    """Write the weights as safetensors, with the model config in the file's metadata."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {CONFIG_KEY: json.dumps(model.config)}
    # in a run folder, its digest goes in checksums.json (checked whenever it is read)
    write_recorded(path, lambda tmp: write_safetensors(state, tmp, metadata))


def _load_weights(model: VAE, state: dict[str, torch.Tensor], source: Path) -> VAE:
    state = model.upgrade_state_dict(dict(state))
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


def _run_weights(
    run: Path, source: Path, run_config: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A run folder's weights and their metadata, or an error that says which command gives them back: a
    run whose training stopped inside its first epoch has none yet; a damaged or lost file is rebuilt
    from a checkpoint (once a damaged checksums.json, which stops any from being read, is removed)."""
    try:
        return read_safetensors(source)
    except DamagedRecord:  # the record's fault (its message says what to do), not the file's
        raise
    except VaekitError as exc:
        try:
            rebuildable = _has_intact_checkpoint(run)
        except DamagedRecord as record:
            raise VaekitError(f"{exc}; {record}") from None
        if not rebuildable:
            raise
        if not source.exists() and not run_config.get("epochs_completed"):
            raise VaekitError(
                f"{run} has no weights yet: its training stopped inside the first epoch; go on with "
                f"vaekit train --resume --out {run}"
            ) from None
        raise VaekitError(
            f"{exc}; vaekit train --resume --out {run} writes it again from the run's checkpoint"
        ) from None


def _has_intact_checkpoint(run: Path) -> bool:
    """Whether a checkpoint of the run reads (last.pt, or one --save-every kept), for a resume to start;
    DamagedRecord if the run's checksums.json cannot be read, so that none can be checked."""
    folder = run / "checkpoints"
    return first_intact_checkpoint([folder / "last.pt", *sorted(folder.glob("epoch_*.pt"))]) is not None


def _run_model_config(in_config_json: dict[str, Any], metadata: dict[str, str]) -> dict[str, Any]:
    """The model a run folder holds: config.json's model section, unless the config written in one file
    with the weights differs from it in the fitted prior alone (whether there is one, or its size and
    kind): then that one, which always describes the weights. Every command that changes a run's prior
    (a resume's first epoch drops it; the end of training, ``fit-prior`` and ``train-prior`` fit one,
    with ``--overwrite`` one of another size) writes model.safetensors, then config.json, each whole; a
    process killed between the two leaves config.json one prior behind."""
    if CONFIG_KEY not in metadata:  # a file from before the config went into its metadata
        return in_config_json
    with_weights = json.loads(metadata[CONFIG_KEY])
    without_prior = [{k: v for k, v in c.items() if k != "prior"} for c in (with_weights, in_config_json)]
    return with_weights if without_prior[0] == without_prior[1] else in_config_json


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> VAE:
    """Rebuild a trained model from a run folder, a ``.safetensors`` file or a ``.pt`` checkpoint.

    A run folder is read as its config.json plus model.safetensors. The model comes back in eval mode.
    """
    path = Path(path)
    if path.is_dir():
        run_config, source = read_run_config(path), path / "model.safetensors"
        state, metadata = _run_weights(path, source, run_config)
        config = _run_model_config(run_config["model"], metadata)
    elif path.suffix == ".safetensors":
        state, metadata = read_safetensors(path)
        if CONFIG_KEY not in metadata:
            raise VaekitError(f"{path} carries no vaekit model config")
        config, source = json.loads(metadata[CONFIG_KEY]), path
    elif path.suffix == ".pt":
        return model_from_checkpoint(read_checkpoint(path), path).to(device)
    elif not path.exists():
        raise VaekitError(f"{path} does not exist")
    else:
        raise VaekitError(f"cannot load {path}: expected a run folder, .safetensors or .pt file")
    return _load_weights(build_model(config), state, source).to(device)


def model_from_checkpoint(checkpoint: dict, source: str | os.PathLike) -> VAE:
    """The model of a checkpoint already read (``utils.files.read_checkpoint``), in eval mode: what
    ``load`` gives for its ``.pt`` file, for a caller that also needs the checkpoint's other entries
    (its step, its weights' moving average) and so reads it once. ``source`` names it in errors."""
    config = json.loads(checkpoint["config"])["model"]
    return _load_weights(build_model(config), checkpoint["model"], Path(source))
