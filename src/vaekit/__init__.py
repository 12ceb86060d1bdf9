"""vaekit: variational autoencoders on PyTorch, from one CLI and one Python API."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any  # noqa: E402

from vaekit.models.saving import load, save_model  # noqa: E402
from vaekit.utils import aliases  # noqa: E402
from vaekit.utils.errors import VaekitError  # noqa: E402

aliases.install()  # the import paths of release 0.1 (vaekit.evaluate, ...), for one release

if TYPE_CHECKING:
    from vaekit.run import Run

__all__ = ["Run", "VaekitError", "__version__", "load", "save_model"]


def __getattr__(name: str) -> Any:
    """``vaekit.Run``, imported on first use: it reads run folders through vaekit.training (the loop,
    matplotlib), which ``import vaekit`` to load a model should not have to pay for; and the old module
    paths (``vaekit.evaluate``, ...: ``utils.aliases.MOVED``) as attributes."""
    if name == "Run":
        from vaekit.run import Run

        return Run
    if f"vaekit.{name}" in aliases.MOVED:
        import importlib

        return importlib.import_module(f"vaekit.{name}")
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")
