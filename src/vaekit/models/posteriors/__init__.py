"""Posteriors q(z|x): what an encoder's output means as a distribution over latents.

A posterior is a batch of distributions with ``rsample`` (reparameterised draws, differentiable in the
encoder's output) and ``log_prob``; objectives use nothing else of it, so a flow on top of the Gaussian
fits behind the same two calls. Today: ``DiagonalGaussian`` (Kingma & Welling 2013).
"""

from vaekit.models.posteriors.gaussian import DiagonalGaussian

__all__ = ["DiagonalGaussian"]
