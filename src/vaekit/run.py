"""A trained run as one Python object: ``vaekit.Run(path)`` opens a run folder (its settings, metrics,
evaluation, model and pictures); as the last expression of a Jupyter cell it shows itself as a table of
the key settings, the last epoch's metrics and eval.json's figures, beside its last sample grid."""

from __future__ import annotations

import base64
import html
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from vaekit.models.base import VAE
from vaekit.models.saving import load
from vaekit.training.budget import format_duration
from vaekit.training.run_folder import RunDir
from vaekit.utils.files import read_json, read_json_lines, read_run_config

GRID_WIDTH = 256  # pixels: the sample grid inlined in the HTML (8x8 digits are scaled up to at least this)


class Run:
    """A run folder, read on demand: every property reads its file when asked, so a resumed run's
    ``metrics`` are current; only ``model`` is loaded once.

    Example:
        ```python
        run = vaekit.Run("runs/digits-z2")
        run.last_metrics["val_loss"], run.eval["test_loss"], run.model.sample(16)
        ```
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._dir = RunDir(self.path)
        read_run_config(self.path)  # a one-line VaekitError now for a folder that is not a run

    @property
    def info(self) -> dict[str, Any]:
        """The whole of config.json: ``train`` (the settings), ``model``, ``data``, versions, epochs."""
        return read_run_config(self.path)

    @property
    def config(self) -> dict[str, Any]:
        """The training settings (config.json's ``train``: ``TrainConfig``'s fields, resolved)."""
        return self.info["train"]

    @property
    def model_config(self) -> dict[str, Any]:
        """The model's keyword arguments (config.json's ``model``), the ones that rebuild it."""
        return self.info["model"]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """metrics.jsonl: one record per epoch (``epoch``, ``train_loss``, ``val_loss``, ...)."""
        return read_json_lines(self._dir.metrics)

    @property
    def last_metrics(self) -> dict[str, Any] | None:
        """The last epoch's metrics record, or None before the first epoch ends."""
        return (self.metrics or [None])[-1]

    @property
    def eval(self) -> dict[str, Any] | None:
        """eval.json (the test evaluation, and whatever ``evaluate_run`` added), or None if not written."""
        try:
            return read_json(self._dir.eval)
        except FileNotFoundError:
            return None

    @cached_property
    def model(self) -> VAE:
        """The trained model (``vaekit.load(path)``), loaded on first use."""
        return load(self.path)

    @property
    def sample_grid(self) -> Path | None:
        """The last epoch's sample grid (samples/epoch_NNN.png), or None if there is none."""
        last = self.last_metrics
        epoch = last["epoch"] if last else self.info.get("epochs_completed", 0)
        grid = self._dir.sample_grid(epoch)
        return grid if epoch and grid.is_file() else None

    def __repr__(self) -> str:
        info, last = self.info, self.last_metrics
        train, model = info["train"], info["model"]
        z = f" z={model['latent_dim']}" if model.get("latent_dim") is not None else ""
        epochs = _epochs(info, "{done}/{epochs} epochs", "{done} epochs, --max-time {max_time}")
        loss = f", val_loss {last['val_loss']:.2f}" if last and "val_loss" in last else ""
        return f"Run({str(self.path)!r}: {train.get('dataset')} {model.get('name')}{z}, {epochs}{loss})"

    def _repr_html_(self) -> str:
        """Jupyter's display: the settings, last metrics and evaluation as one table, beside the samples."""
        sections = [("settings", _settings(self.info)), ("last epoch", _figures(self.last_metrics or {}))]
        evaluation = self.eval
        sections += [("eval.json", _figures(evaluation))] if evaluation else []
        rows = []
        for title, entries in sections:
            rows.append(f'<tr><th colspan="2" style="text-align:left">{html.escape(title)}</th></tr>')
            rows += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in entries]
        picture, grid = "", self.sample_grid
        if grid is not None:  # inlined, so the notebook shows it wherever it is opened
            data = base64.b64encode(grid.read_bytes()).decode("ascii")
            alt = html.escape(f"samples after epoch {int(grid.stem.removeprefix('epoch_'))}")
            picture = (
                f'<img src="data:image/png;base64,{data}" alt="{alt}" title="{alt}" '
                f'style="width:{GRID_WIDTH}px;image-rendering:pixelated">'
            )
        return (
            f"<div><p><b>vaekit run</b> <code>{html.escape(str(self.path))}</code></p>"
            '<div style="display:flex;gap:2em;align-items:flex-start">'
            f"<table>{''.join(rows)}</table>{picture}</div></div>"
        )


def _settings(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The settings worth a glance, as (name, text); those a run leaves unset are left out."""
    train, model, shape = info["train"], info["model"], info.get("data", {}).get("image_shape")
    values = {
        "dataset": train.get("dataset"),
        "model": model.get("name"),
        "latent_dim": model.get("latent_dim"),
        "image shape": "x".join(map(str, shape)) if shape else None,
        "epochs": _epochs(info, "{done} of {epochs}", "{done} (--max-time {max_time})"),
        **{key: train.get(key) for key in ("batch_size", "lr", "objective", "beta", "prior", "posterior")},
        "fitted prior": (model.get("prior") or {}).get("kind"),
        "likelihood": model.get("likelihood"),
    }
    return [(key, _text(value)) for key, value in values.items() if value is not None]


def _epochs(info: dict[str, Any], with_epochs: str, with_max_time: str) -> str:
    """The epochs done, against --epochs, or for a run as long as its --max-time against that."""
    train, done = info["train"], info.get("epochs_completed", 0)
    if train.get("epochs") is None and train.get("max_time") is not None:
        return with_max_time.format(done=done, max_time=format_duration(train["max_time"]))
    return with_epochs.format(done=done, epochs=train.get("epochs"))


def _figures(record: dict[str, Any]) -> list[tuple[str, str]]:
    """A metrics or eval.json record's single numbers, as (name, text); lists (per dimension, per class)
    stay in the file."""
    return [(key, _text(value)) for key, value in record.items() if isinstance(value, (int, float, str))]


def _text(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
