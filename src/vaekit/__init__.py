"""vaekit: variational autoencoders on PyTorch, from one CLI and one Python API."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any  # noqa: E402

from vaekit.models.saving import load, save_model  # noqa: E402
from vaekit.utils.errors import VaekitError  # noqa: E402

if TYPE_CHECKING:
    from vaekit.run import Run

__all__ = ["Run", "VaekitError", "__version__", "load", "save_model"]


def __getattr__(name: str) -> Any:
    """``vaekit.Run``, imported on first use: it reads run folders through vaekit.training (the loop,
    matplotlib), which ``import vaekit`` to load a model should not have to pay for."""
    if name == "Run":
        from vaekit.run import Run

        return Run
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")
