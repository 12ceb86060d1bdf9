"""A run's settings in sections: data, model, parts, optimization, run.

TrainConfig keeps every setting as one flat field (what the code reads: ``config.lr``); files, sweeps and
``vaekit train --print-config`` group them by what they are about:

- ``[data]``: the dataset and what is done to its images;
- ``[model]``: ``name`` and that model's own options, the built-ins' (``latent_dim``, ``hidden``, ...)
  exactly as a plugin's (``depth``): each is checked by the model's constructor's signature;
- ``[parts]``: the objective, the prior trained with, the posterior, and every option of theirs by its
  own name (``gamma``, ``pseudo_inputs``), with the KL's weighting;
- ``[optimization]``: epochs, batches, the optimizer and what guards its steps;
- ``[run]``: the seed, the device, checkpoints, time, tracking and the prior fitted at the end.

``flatten`` turns sections into TrainConfig's fields (a key in the wrong section, or in none, is a
one-line error naming the section it belongs to); ``sectioned`` the reverse. The flat ``[train]``
table of earlier releases, flags and every saved config.json (whose ``train`` object stays flat) keep
loading unchanged.
"""

from __future__ import annotations

from typing import Any

from vaekit.training.model_settings import MODEL_SETTINGS
from vaekit.utils.errors import VaekitError

SECTIONS: dict[str, tuple[str, ...]] = {
    "data": ("dataset", "data_dir", "image_size", "colour", "val_fraction", "augment", "binarize"),
    "model": ("model", *MODEL_SETTINGS, "model_options"),
    "parts": (
        "objective", "prior", "posterior", "part_options", "beta", "kl_warmup", "kl_balance", "free_bits",
    ),
    "optimization": (
        "epochs", "batch_size", "lr", "optimizer", "lr_schedule", "grad_clip", "skip_threshold",
        "max_skipped", "ema", "precision", "compile", "early_stopping",
    ),
    "run": (
        "seed", "device", "save_every", "max_time", "fit_prior", "prior_components", "tensorboard", "mlflow",
    ),
}  # fmt: skip
SECTION_OF = {name: section for section, names in SECTIONS.items() for name in names}
# Fields whose keys a section spreads out: the model's own options and the parts' options sit in their
# section by their own names; the model's name is ``name`` in [model].
SPREAD = {"model": "model_options", "parts": "part_options"}


def flatten(document: dict[str, Any], where: str = "") -> dict[str, Any]:
    """TrainConfig's fields from settings in sections. ``where``: the file, for the errors."""
    at = f"{where}: " if where else ""
    flat: dict[str, Any] = {}
    for section, table in document.items():
        if section not in SECTIONS:
            home = SECTION_OF.get(section)
            hint = f"; {section} goes in [{home}]" if home else f"; the sections are {', '.join(SECTIONS)}"
            raise VaekitError(f"{at}unknown section {section!r}{hint}")
        if not isinstance(table, dict):
            raise VaekitError(f"{at}[{section}] must be a table of settings, got {table!r}")
        for key, value in table.items():
            flat.update(_place(section, key, value, flat, at))
    return flat


def _place(section: str, key: str, value: Any, flat: dict[str, Any], at: str) -> dict[str, Any]:
    """The flat field(s) that ``key = value`` of ``[section]`` sets."""
    if section == "model" and key == "name":
        return {"model": value}
    if section == "model" and key == "model":
        raise VaekitError(f"{at}the model is `name` in [model]")
    if key in SPREAD.values():
        raise VaekitError(f"{at}{key} are written by their own names in [{section}]")
    home = SECTION_OF.get(key)
    if home == section:
        return {key: value}
    if home is not None:
        raise VaekitError(f"{at}{key} goes in [{home}], not [{section}]")
    if section in SPREAD:  # a model's own option (a plugin's ``depth``) or a part's (``gamma``)
        spread = SPREAD[section]
        return {spread: {**flat.get(spread, {}), key: value}}
    raise VaekitError(
        f"{at}unknown setting {key!r} in [{section}]; its settings are: {', '.join(SECTIONS[section])}"
    )


def sectioned(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat settings (TrainConfig's fields, as ``asdict`` gives them) in sections, in the sections' order;
    settings that are None (the model's own defaults) are left out."""
    document: dict[str, dict[str, Any]] = {}
    for section, names in SECTIONS.items():
        table: dict[str, Any] = {}
        for name in names:
            value = settings.get(name)
            if value is None:
                continue
            if name == "model":
                table["name"] = value
            elif name in SPREAD.values():
                table.update(value)
            else:
                table[name] = value
        if table:
            document[section] = table
    return document


def sweep_key(key: str) -> tuple[str, str | None]:
    """A sweep's setting as the flat field it searches and, for a model's or a part's own option, that
    option's name: "optimization.lr" -> ("lr", None), "model.depth" -> ("model_options", "depth"),
    "parts.gamma" -> ("part_options", "gamma"); a key without a section is returned as it is."""
    if "." not in key:
        return key, None
    section, name = key.split(".", 1)
    if section not in SECTIONS:
        return key, None  # "model_options.depth", as sweeps wrote it before sections
    field = next(iter(_place(section, name, None, {}, "")))
    return field, (name if field in SPREAD.values() else None)
