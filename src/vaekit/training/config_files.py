"""Config files for ``vaekit train --config FILE``: a TOML file's ``[train]`` table, or a run's own
config.json (its ``train`` object), so that any run can be repeated exactly. Keys are TrainConfig's
fields, as in config.json; each value is checked against the field's type, and an unknown key, a
wrong type or a malformed file is an error naming the key and the file. Flags override the file.
"""

from __future__ import annotations

import json
import sys
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from vaekit.models.parts import require_parts
from vaekit.models.registry import require_model
from vaekit.training.part_settings import fold_part_options
from vaekit.training.settings import TrainConfig
from vaekit.utils.errors import VaekitError
from vaekit.utils.types import describe_type, matches

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the backport of Python 3.11's tomllib
    import tomli as tomllib

TABLE = "train"


def read_text_file(path: Path, what: str = "config file") -> str:
    """The UTF-8 text of ``path``, or a one-line error naming it as ``what``."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VaekitError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise VaekitError(f"{what} {path} is not UTF-8 text") from None


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise VaekitError(f"{path} is not valid TOML ({exc})") from None


def _settings_of(path: Path) -> dict[str, Any]:
    """The raw settings table of ``path``: a run's config.json, else TOML."""
    text = read_text_file(path)
    if path.suffix == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VaekitError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(document, dict) or not isinstance(document.get(TABLE), dict):
            raise VaekitError(f"{path} has no {TABLE!r} object: a JSON config is a run's config.json")
        model = document.get("model")
        if isinstance(model, dict) and model.get("plugin"):  # a missing plugin: say what to install
            require_model(model.get("name"), model["plugin"])
        require_parts(document.get("parts"))
        return document[TABLE]
    document = parse_toml(text, path)
    others = [key for key in document if key != TABLE]
    if others:
        raise VaekitError(f"{path}: unknown key or table {others[0]!r}; settings go in a [{TABLE}] table")
    if not isinstance(document.get(TABLE), dict):
        raise VaekitError(f"{path} has no [{TABLE}] table")
    return document[TABLE]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The training settings in ``path``, each checked to be a TrainConfig field of the right type."""
    path = Path(path)
    return check_settings(_settings_of(path), path)


def check_settings(settings: dict[str, Any], path: Path, table: str = TABLE) -> dict[str, Any]:
    """``settings`` (the ``[table]`` of the file ``path``) checked key by key against TrainConfig; a part
    option by its own name (``gamma = 5``, as files had it before ``part_options``) goes into
    ``part_options``, where the part's spec checks it."""
    settings = fold_part_options(settings)
    hints = typing.get_type_hints(TrainConfig)
    for key, value in settings.items():
        if key not in hints:
            known = ", ".join(f.name for f in fields(TrainConfig))
            raise VaekitError(f"{path}: unknown setting {key!r} in [{table}]; the settings are: {known}")
        hint = hints[key]
        if key == "image_size":  # like --image-size: 64, "64x48" or [64, 48]
            hint = int | str | list[int] | None
        if not matches(value, hint):
            raise VaekitError(f"{path}: {key} must be {describe_type(hint)}, got {value!r}")
        if float in typing.get_args(hint) + (hint,) and isinstance(value, int):
            settings[key] = float(value)  # beta = 4 is the 4.0 that --beta 4 gives
    return dict(settings)


def config_toml(config: TrainConfig) -> str:
    """``config`` as a TOML ``[train]`` table that read_config_file reads back to the same config
    (settings left None, the model's own defaults, are left out: TOML has no null)."""
    lines = [f"[{TABLE}]"]
    for key, value in asdict(config).items():
        if isinstance(value, dict):  # an inline table: JSON's quoted keys are TOML's too, not its colons
            value = "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()) + " }"
            lines.append(f"{key} = {value}")
        elif value is not None:  # JSON's strings, numbers, booleans and lists are TOML's too
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
