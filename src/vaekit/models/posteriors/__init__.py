"""Posteriors q(z|x): modules that map an encoder's output (mean, log-variance) to a distribution.

Each is one file that registers itself (``models.parts.register_posterior``) and is an ``nn.Module``
with ``forward(mean, logvar) -> distribution``, ``for_model(model, **its model config entries)`` and
``distribution``, the type it returns (``models.distributions``: what the KL registry looks up). The
distributions share one interface: ``rsample_with_log_prob`` (draws and log q at them), ``log_prob``
at any z, ``mode`` (the point that stands for an image) and ``moments``.

- ``gaussian``: ``GaussianPosterior`` -> ``DiagonalGaussian`` (Kingma & Welling 2013), with a
  closed-form KL to a Gaussian prior;
- ``iaf``: ``IAFPosterior`` -> ``FlowPosterior``, an inverse autoregressive flow on that Gaussian.
"""

from vaekit.models.distributions import DiagonalGaussian
from vaekit.models.parts import PartView
from vaekit.models.posteriors.gaussian import GaussianPosterior
from vaekit.models.posteriors.iaf import FlowPosterior, IAFPosterior, InverseAutoregressiveFlow

POSTERIORS = PartView("posterior")  # what --posterior picks, by name

__all__ = [
    "POSTERIORS",
    "DiagonalGaussian",
    "FlowPosterior",
    "GaussianPosterior",
    "IAFPosterior",
    "InverseAutoregressiveFlow",
]
