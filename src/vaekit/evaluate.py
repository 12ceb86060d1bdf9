"""Deprecated alias of vaekit.evaluation (runs, likelihood, latents, report), kept for one release."""

from vaekit.utils.aliases import moved

__getattr__ = moved(
    __name__,
    "vaekit.evaluation.runs",
    "vaekit.evaluation.likelihood",
    "vaekit.evaluation.latents",
    "vaekit.evaluation.report",
)
