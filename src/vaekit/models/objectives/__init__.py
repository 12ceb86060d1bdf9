"""Objectives: what a Gaussian-latent VAE minimises, as functions of the model and a batch.

Every objective is ``objective(model, x, labels, *, generator, noise_rows, **its options) -> LossOutput``:
it asks the model's parts for what it needs (``elbo.draw``: q(z|x), a draw z, -log p(x|z) and the KL
against the trained prior) and returns the scalar to minimise with its detached terms per image.
Whatever it minimises, the ``loss`` term is the plain negative ELBO, so runs trained on different
objectives compare. ``OBJECTIVES`` is the registry that ``--objective`` chooses from; ``OPTIONS`` names
the training settings each one takes beyond the KL weight.
"""

from vaekit.models.objectives.btcvae import btcvae
from vaekit.models.objectives.dip import dip_i, dip_ii
from vaekit.models.objectives.elbo import elbo
from vaekit.models.objectives.factorvae import factorvae
from vaekit.models.objectives.iwae import iwae, log_weights
from vaekit.models.objectives.mmd import mmd

OBJECTIVES = {
    "elbo": elbo,
    "iwae": iwae,
    "btcvae": btcvae,
    "factorvae": factorvae,
    "dip-i": dip_i,
    "dip-ii": dip_ii,
    "mmd": mmd,
}

__all__ = ["OBJECTIVES", "btcvae", "dip_i", "dip_ii", "elbo", "factorvae", "iwae", "log_weights", "mmd"]
