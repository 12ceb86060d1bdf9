"""Deprecated alias of vaekit.evaluation.compare, kept for one release."""

from vaekit.utils.aliases import moved

__getattr__ = moved(__name__, "vaekit.evaluation.compare")
