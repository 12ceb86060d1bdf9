"""Objectives: what a Gaussian-latent VAE minimises, as functions of the model and a batch.

Every objective is ``objective(model, x, labels, *, generator, noise_rows, **its options) -> LossOutput``:
it asks the model's parts for what it needs (``model.posterior_of(x, labels)``: q(z|x);
``model.trained_prior``: p(z); ``model.decode_logits`` and ``model.recon_nll``: -log p(x|z)) and returns
the scalar to minimise with its detached terms per image. Whatever it minimises, the ``loss`` term is
the plain negative ELBO, so runs trained on different objectives compare. ``OBJECTIVES`` is the
registry that ``--objective`` chooses from.
"""

from vaekit.models.objectives.elbo import elbo
from vaekit.models.objectives.iwae import iwae, log_weights

OBJECTIVES = {"elbo": elbo, "iwae": iwae}

__all__ = ["OBJECTIVES", "elbo", "iwae", "log_weights"]
