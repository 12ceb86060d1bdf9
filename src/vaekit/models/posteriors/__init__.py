"""Posteriors q(z|x): what an encoder's output means as a distribution over latents.

A posterior is a batch of distributions with ``rsample`` (reparameterised draws, differentiable in the
encoder's output) and ``log_prob``; objectives use nothing else of it, so a flow on top of the Gaussian
fits behind the same calls: ``rsample_with_log_prob`` (draws and log q at them) and ``mode`` (the point
that stands for an image). ``DiagonalGaussian`` (Kingma & Welling 2013) also has ``log_prob`` anywhere
and a closed-form KL; ``FlowPosterior`` (an inverse autoregressive flow on top of it, iaf.py) does not.
"""

from vaekit.models.parts import PartView
from vaekit.models.posteriors.gaussian import DiagonalGaussian
from vaekit.models.posteriors.iaf import FlowPosterior, InverseAutoregressiveFlow

POSTERIORS = PartView("posterior")  # what --posterior picks, by name

__all__ = ["POSTERIORS", "DiagonalGaussian", "FlowPosterior", "InverseAutoregressiveFlow"]
