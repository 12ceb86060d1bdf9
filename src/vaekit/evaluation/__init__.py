"""What a trained model is worth, in numbers and pictures.

- ``likelihood``: the negative ELBO and its parts, the importance-sampled -log p(x), bits per dimension;
- ``latents``: posterior means, active units, KL per dimension, projections;
- ``classifier`` and ``quality``: the cached measuring classifier, and the sample-quality figures;
- ``disentanglement``: MIG and the FactorVAE score against known factors;
- ``runs`` and ``report``: a run folder evaluated into eval.json, and its table for people;
- ``pictures``: the latent scatter, manifold, interpolation and traversal pictures;
- ``compare``: runs side by side in one report.
"""
