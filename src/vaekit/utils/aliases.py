"""Old import paths kept for one release: the modules of release 0.1 that moved, in one table.

``vaekit.evaluate``, ``vaekit.quality``, ``vaekit.compare``, ``vaekit.disentanglement`` and
``vaekit.train_prior`` are no files: importing one (``install`` puts a finder on ``sys.meta_path``
when vaekit is imported) gives a module whose names are looked up in their new modules, in order, with
a DeprecationWarning that names where each lives now.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

# old module -> the modules its names live in now
MOVED: dict[str, tuple[str, ...]] = {
    "vaekit.evaluate": (
        "vaekit.evaluation.runs", "vaekit.evaluation.likelihood", "vaekit.evaluation.latents",
        "vaekit.evaluation.report",
    ),
    "vaekit.quality": ("vaekit.evaluation.quality", "vaekit.evaluation.classifier"),
    "vaekit.compare": ("vaekit.evaluation.compare",),
    "vaekit.disentanglement": ("vaekit.evaluation.disentanglement",),
    "vaekit.train_prior": ("vaekit.training.priors", "vaekit.training.code_prior"),
}  # fmt: skip


def moved(old: str, *new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the old module ``old`` whose names now live in the modules ``new``."""

    def forward(name: str) -> Any:
        modules = [importlib.import_module(module_name) for module_name in new]
        found = [module for module in modules if not name.startswith("_") and name in vars(module)]
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


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and makes the modules of MOVED: each one a module with ``moved``'s ``__getattr__``."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: Any) -> ModuleType | None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED[module.__name__]
        module.__doc__ = f"Deprecated alias of {', '.join(new)}, kept for one release."
        module.__getattr__ = moved(module.__name__, *new)  # type: ignore[method-assign]


def install() -> None:
    """Make the old paths importable (once)."""
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(_OldPaths())
