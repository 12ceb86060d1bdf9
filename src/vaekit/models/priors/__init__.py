"""Priors p(z): the ones models train with, and the ones fitted or trained after training to sample from.

A prior a model trains with is one file that registers itself (``models.parts.register_prior``) and is
an ``nn.Module`` with ``forward(labels or None) -> distribution`` (``models.distributions``: ``log_prob``,
``sample``), ``for_model(model, **its model config entries)`` and ``distribution``, the type it
returns (what the KL registry looks up); it may offer ``start_from_data``, called once before training.

- ``standard``: N(0, I) (``StandardNormalPrior``) and a conditional model's N(m_y, I) (``ClassMeanPrior``),
  trained with the model; the KL of a Gaussian posterior against them is in closed form;
- ``vamp``: the VampPrior (``VampPrior``), a mixture of the posteriors of learned pseudo-inputs, trained
  with the model (per class for a conditional model);
- ``mog``: a mixture of K learned diagonal Gaussians (``mog.MixtureOfGaussiansPrior``), trained with
  the model;
- ``mixture``: ``MixturePrior``, full-covariance Gaussian mixtures (one per class where there are labels)
  fitted by EM to the training images' latents at the end of training (``vaekit.training.priors``): not
  a training prior, but what ``sample`` draws from when a run has one;
- ``codes``: ``CodePrior``, a causal transformer over a VQ-VAE's code grids, trained after the
  autoencoder (``vaekit.training.code_prior``).

A fitted prior's constructor arguments are its ``config``, so that ``vaekit.load`` rebuilds it from
config.json and fills its weights.
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
