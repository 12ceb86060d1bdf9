"""Plugins' modules: where a module came from (the installed distribution that provides it, recorded
with a plugin's model or part, so that a run whose plugin is missing names what to install), and the
modules that ``VAEKIT_PLUGINS`` names, imported so that their decorators register."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from typing import Any

from vaekit.utils.errors import VaekitError

PLUGIN_MODULES_VARIABLE = "VAEKIT_PLUGINS"
_imported_env_modules: set[str] = set()
_entry_points_seen: dict[str, tuple[Any, tuple[importlib.metadata.EntryPoint, ...]]] = {}


def import_env_plugins() -> None:
    """Import the modules that ``VAEKIT_PLUGINS`` names (once each), so their decorators register."""
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGIN_MODULES_VARIABLE, "").split(","))):
        if module in _imported_env_modules:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:  # a plugin's own failure: reported in one line, not a traceback
            why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            raise VaekitError(f"cannot import {module!r} named in {PLUGIN_MODULES_VARIABLE}: {why}") from None
        _imported_env_modules.add(module)


def installed_entry_points(group: str) -> tuple[importlib.metadata.EntryPoint, ...]:
    """The installed entry points of ``group``, read again only when ``sys.path`` or the modification
    time of one of its folders has changed. Reading them parses every installed distribution's metadata
    (milliseconds), and one command asks several times. Installing or uninstalling a package adds or
    removes its ``*.dist-info`` folder, which changes its site folder's time; importlib.metadata keeps
    each folder's listing on the same key."""
    state = tuple(_folder_state(entry) for entry in sys.path)
    seen = _entry_points_seen.get(group)
    if seen is None or seen[0] != state:
        seen = state, tuple(importlib.metadata.entry_points(group=group))
        _entry_points_seen[group] = seen
    return seen[1]


def _folder_state(path_entry: str) -> tuple[str, int | None]:
    """The folder a ``sys.path`` entry names ("" is the working folder, which a program can change) and
    its modification time (None where it does not exist)."""
    folder = os.path.abspath(path_entry or ".")
    try:
        return folder, os.stat(folder).st_mtime_ns
    except OSError:
        return folder, None


def install_hint(what: str, origin: dict[str, Any] | None) -> VaekitError:
    """The error for a saved ``what`` (a model, a part) that is not installed here, naming what to install
    from its recorded ``origin`` (a package to pip install, or a module to name in VAEKIT_PLUGINS)."""
    package, module = (origin or {}).get("package"), (origin or {}).get("module")
    where = f"the package {package} {origin.get('version', '')}".rstrip() if package else "no package"
    hint = f"pip install {package}" if package else f"name {module} in {PLUGIN_MODULES_VARIABLE}"
    return VaekitError(f"{what} is not installed: it came from {where} (module {module}); {hint}")


def origin_of(module: str) -> dict[str, str]:
    """``module`` and the installed distribution (package, version) of its top-level package, if any."""
    top = module.split(".")[0]
    for dist_name in importlib.metadata.packages_distributions().get(top, []):
        try:
            return {"module": module, "package": dist_name, "version": importlib.metadata.version(dist_name)}
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"module": module}
