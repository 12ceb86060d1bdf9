"""Deprecated alias of vaekit.evaluation.disentanglement, kept for one release."""

from vaekit.utils.aliases import moved

__getattr__ = moved(__name__, "vaekit.evaluation.disentanglement")
