"""Deprecated alias of vaekit.training.priors and vaekit.training.code_prior, kept for one release."""

from vaekit.utils.aliases import moved

__getattr__ = moved(__name__, "vaekit.training.priors", "vaekit.training.code_prior")
