"""Objectives: what a Gaussian-latent VAE minimises, as functions of the model and a batch.

Every objective is ``objective(model, x, labels, *, generator, noise_rows, **its options) -> LossOutput``:
it asks the model's parts for what it needs (``elbo.draw``: q(z|x), a draw z, -log p(x|z) and the KL
against the trained prior) and returns the scalar to minimise with its detached terms per image.
Whatever it minimises, the ``loss`` term is the plain negative ELBO, so runs trained on different
objectives compare. Each one registers itself (``models.parts.register_objective``: its name, options
and requirements); ``OBJECTIVES`` is the view of that registry that ``--objective`` chooses from, and a
new objective is one file here.
"""

from vaekit.models.objectives.btcvae import btcvae
from vaekit.models.objectives.dip import dip_i, dip_ii
from vaekit.models.objectives.elbo import elbo
from vaekit.models.objectives.factorvae import factorvae
from vaekit.models.objectives.iwae import iwae, log_weights
from vaekit.models.objectives.mmd import mmd
from vaekit.models.objectives.wae_gan import wae_gan
from vaekit.models.parts import PartView

OBJECTIVES = PartView("objective", functions=True)  # every registered objective's function, by name

__all__ = [
    "OBJECTIVES",
    "btcvae",
    "dip_i",
    "dip_ii",
    "elbo",
    "factorvae",
    "iwae",
    "log_weights",
    "mmd",
    "wae_gan",
]
