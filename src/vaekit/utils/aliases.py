"""Old import paths kept for one release: a module that moved leaves behind a file that forwards to it.

An alias module is two lines (see vaekit/evaluate.py); each name taken from it is looked up in the new
modules, in order, with a DeprecationWarning that names where it lives now.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved(old: str, *new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the old module ``old`` whose names now live in the modules ``new``."""

    def forward(name: str) -> Any:
        modules = [importlib.import_module(module_name) for module_name in new]
        found = [m for m in modules if not name.startswith("_") and hasattr(m, name)]
        # the module that defines the name, rather than one that imports it
        home = next((m for m in found if getattr(getattr(m, name), "__module__", None) == m.__name__), None)
        home = home or (found[0] if found else None)
        if home is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(
            f"{old}.{name} moved to {home.__name__}.{name}; the old path goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(home, name)

    return forward
