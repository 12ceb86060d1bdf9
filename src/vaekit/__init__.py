"""vaekit: variational autoencoders on PyTorch, from one CLI and one Python API."""

__version__ = "0.1.0"

from vaekit.models.saving import load, save_model  # noqa: E402
from vaekit.utils.errors import VaekitError  # noqa: E402

__all__ = ["VaekitError", "__version__", "load", "save_model"]
