"""What the example notebooks need beyond vaekit's own dependencies, checked in their first cell.

A notebook that fails halfway, on an import deep inside a library, is worse than one that says at the
top what to install: ``require("notebook", "serve")`` raises one ``VaekitError`` naming every missing
module and the ``pip install`` line that brings them.
"""

from __future__ import annotations

import importlib

from vaekit.utils.errors import VaekitError

# extra -> the modules a notebook uses from it (import names; "a|b": either will do, named by the first)
EXTRAS: dict[str, tuple[str, ...]] = {
    "notebook": ("ipywidgets", "ipykernel"),  # progress bars as widgets (tqdm.auto), the kernel itself
    # the explorer's app, driven in-process by fastapi.testclient, which runs on httpx (newer starlette
    # prefers httpx2)
    "serve": ("fastapi", "httpx|httpx2"),
}


def missing(*extras: str) -> list[str]:
    """The modules of ``extras`` (names in ``EXTRAS``) that cannot be imported, in order."""
    unknown = [extra for extra in extras if extra not in EXTRAS]
    if unknown:
        raise VaekitError(f"unknown extra {', '.join(unknown)}: choose from {', '.join(EXTRAS)}")
    return [
        choices.split("|")[0]
        for extra in extras
        for choices in EXTRAS[extra]
        if not any(_imports(module) for module in choices.split("|"))
    ]


def _imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def require(*extras: str) -> None:
    """Raise a one-line ``VaekitError`` unless every module of ``extras`` imports.

    Example:
        ```python
        from vaekit.notebook import require

        require("notebook", "serve")  # VaekitError: this notebook needs fastapi: pip install 'vaekit[...]'
        ```
    """
    absent = missing(*extras)
    if absent:
        raise VaekitError(
            f"this notebook needs {', '.join(absent)}: pip install 'vaekit[{','.join(extras)}]'"
        )
