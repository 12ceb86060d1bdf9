"""Deprecated alias of vaekit.evaluation.quality and vaekit.evaluation.classifier, kept for one release."""

from vaekit.utils.aliases import moved

__getattr__ = moved(__name__, "vaekit.evaluation.quality", "vaekit.evaluation.classifier")
