"""Priors p(z): the ones models train with, and the ones fitted or trained after training to sample from.

- ``standard``: N(0, I) (``StandardNormalPrior``) and a conditional model's N(m_y, I) (``ClassMeanPrior``),
  trained with the model; the KL of a Gaussian posterior against them is in closed form;
- ``vamp``: the VampPrior (``VampPrior``), a mixture of the posteriors of learned pseudo-inputs, trained
  with the model (per class for a conditional model);
- ``mixture``: ``MixturePrior``, full-covariance Gaussian mixtures (one per class where there are labels)
  fitted by EM to the training images' latents at the end of training (``vaekit.training.priors``);
- ``codes``: ``CodePrior``, a causal transformer over a VQ-VAE's code grids, trained after the
  autoencoder (``vaekit.training.code_prior``).

A prior is an ``nn.Module`` with ``log_prob`` and ``sample``; its constructor arguments are its
``config``, so that ``vaekit.load`` rebuilds a fitted prior from config.json and fills its weights.
"""

from vaekit.models.parts import PartView
from vaekit.models.priors.codes import CodePrior
from vaekit.models.priors.mixture import MixturePrior
from vaekit.models.priors.standard import ClassMeanPrior, StandardNormalPrior
from vaekit.models.priors.vamp import VampPrior

TRAINED_PRIORS = PartView("prior")  # what --prior picks: the priors a model trains with, by name

__all__ = [
    "TRAINED_PRIORS",
    "ClassMeanPrior",
    "CodePrior",
    "MixturePrior",
    "StandardNormalPrior",
    "VampPrior",
]
