"""Config files for ``vaekit train --config FILE``: a TOML file's sections (``[data]``, ``[model]``,
``[parts]``, ``[optimization]``, ``[run]``: training/sections.py) or its flat ``[train]`` table, or a
run's own config.json (its ``train`` object), so that any run can be repeated exactly. Each value is
checked against its TrainConfig field's type, and an unknown key, a key in the wrong section, a wrong
type or a malformed file is an error naming the key and the file. Flags override the file.
"""

from __future__ import annotations

import json
import sys
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from vaekit.models.parts import require_parts
from vaekit.models.registry import model_class, require_model
from vaekit.training.model_settings import check_model_options
from vaekit.training.part_settings import fold_part_options
from vaekit.training.sections import SECTION_OF, SECTIONS, flatten, sectioned
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
        try:  # a missing plugin or part: say what to install, and whose run needs it
            if isinstance(model, dict) and model.get("plugin"):
                require_model(model.get("name"), model["plugin"])
            require_parts(document.get("parts"))
        except VaekitError as exc:
            raise VaekitError(f"{path}: {exc}") from None
        return document[TABLE]
    return settings_tables(parse_toml(text, path), path)


def settings_tables(document: dict[str, Any], path: Path, others: tuple[str, ...] = ()) -> dict[str, Any]:
    """The flat settings of a TOML ``document``: its sections, or its ``[train]`` table (not both);
    ``others``: the tables a file may also hold (a sweep's [search] and [sweep])."""
    known = (TABLE, *SECTIONS, *others)
    unknown = [key for key in document if key not in known]
    if unknown and unknown[0] in SECTION_OF:
        raise VaekitError(f"{path}: {unknown[0]} goes in the section [{SECTION_OF[unknown[0]]}]")
    if unknown:
        raise VaekitError(
            f"{path}: unknown key or table {unknown[0]!r}; settings go in the sections "
            f"[{'], ['.join(SECTIONS)}] (or one [{TABLE}] table)"
        )
    sections = {key: value for key, value in document.items() if key in SECTIONS}
    if TABLE in document and sections:
        raise VaekitError(f"{path}: settings go in sections or in one [{TABLE}] table, not both")
    if sections:
        return flatten(sections, str(path))
    if not isinstance(document.get(TABLE, {}), dict):
        raise VaekitError(f"{path}: [{TABLE}] must be a table")
    if TABLE not in document and not others:
        raise VaekitError(f"{path} has no settings: give the sections [{'], ['.join(SECTIONS)}]")
    return document.get(TABLE, {})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The training settings in ``path``, each checked to be a TrainConfig field of the right type, and
    the model's own options against its constructor (the error names the file)."""
    path = Path(path)
    settings = check_settings(_settings_of(path), path)
    try:
        model = model_class(settings.get("model", TrainConfig.model))
    except VaekitError:  # an unknown model: refused, with the choices, when the settings are checked
        return settings
    try:
        check_model_options(settings.get("model_options"), model)
    except VaekitError as exc:
        raise VaekitError(f"{path}: {exc}") from None
    return settings


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
    """``config`` as TOML in sections that read_config_file reads back to the same config (settings left
    None, the model's own defaults, are left out: TOML has no null)."""
    lines: list[str] = []
    for section, table in sectioned(asdict(config)).items():
        lines.append(f"{chr(10) if lines else ''}[{section}]")
        for key, value in table.items():  # JSON's strings, numbers, booleans and lists are TOML's too
            lines.append(f"{json.dumps(key) if not key.isidentifier() else key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
