"""The objectives, each against a direct computation with torch.distributions on the same draws."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vaekit.models import MLPVAE, ConditionalVAE
from vaekit.models.objectives import OBJECTIVES, elbo, iwae
from vaekit.utils.errors import VaekitError


def model_and_batch(name: str):
    torch.manual_seed(0)
    if name == "mlp":
        model = MLPVAE(image_shape=(1, 4, 4), latent_dim=2, hidden=(8,))
    else:
        model = ConditionalVAE(image_shape=(1, 4, 4), latent_dim=2, hidden=(8,), num_classes=3)
        with torch.no_grad():
            model.trained_prior.means.copy_(torch.randn(3, 2))
    x = torch.bernoulli(torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1)))
    return model, x, torch.arange(6) % 3


def reference(model, x, labels, k):
    """q, p(z) and -log p(x|z) on the draws an objective seeded with 0 takes."""
    mu, logvar = model.encode(x, labels)
    q = Normal(mu, (0.5 * logvar).exp())
    centre = model.trained_prior.mean(labels) if model.conditional else torch.zeros_like(mu)
    p = Normal(centre, 1.0)
    z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape, generator=torch.Generator().manual_seed(0))
    pixels = Independent(Bernoulli(logits=model.decode_logits(z.reshape(-1, 2), labels.repeat(k))), 3)
    recon = -pixels.log_prob(x.repeat(k, 1, 1, 1)).view(k, -1)
    return q, p, z, recon


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_elbo_with_kl_weight(name):
    model, x, labels = model_and_batch(name)
    q, p, z, recon = reference(model, x, labels, 1)
    kl = kl_divergence(q, p).sum(-1)
    out = elbo(model, x, labels, kl_weight=3.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.objective, (recon[0] + 3.0 * kl).mean())
    torch.testing.assert_close(out.terms["loss"], (recon[0] + kl).mean())
    torch.testing.assert_close(out.terms["kl"], kl.mean())


def test_free_bits_floor_each_dimension_of_the_batch_mean_kl():
    model, x, labels = model_and_batch("mlp")
    q, p, _, recon = reference(model, x, labels, 1)
    per_dim = kl_divergence(q, p).mean(0)
    out = elbo(model, x, labels, free_bits=5.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.objective, recon[0].mean() + per_dim.clamp(min=5.0).sum())
    assert per_dim.max() < 5.0  # so the floor is what the objective holds


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_iwae_bound(name):
    model, x, labels = model_and_batch(name)
    k = 7
    q, p, z, recon = reference(model, x, labels, k)
    log_w = -recon + p.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
    bound = torch.logsumexp(log_w, 0) - math.log(k)
    out = iwae(model, x, labels, k=k, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.objective, -bound.mean())
    torch.testing.assert_close(out.terms["iwae"], -bound.mean())
    torch.testing.assert_close(out.terms["recon"], recon.mean())


def test_the_model_loss_dispatches_to_the_registry():
    model, x, labels = model_and_batch("mlp")
    assert set(OBJECTIVES) >= {"elbo", "iwae", "btcvae", "factorvae", "dip-i", "dip-ii", "mmd", "capacity"}
    for options, objective in (({}, elbo), ({"iwae_k": 3}, iwae), ({"objective": "iwae", "k": 3}, iwae)):
        kwargs = {"k": 3} if options else {}
        direct = objective(model, x, labels, generator=torch.Generator().manual_seed(0), **kwargs)
        through = model.loss(x, labels, generator=torch.Generator().manual_seed(0), **options)
        assert torch.equal(direct.objective, through.objective)
    with pytest.raises(VaekitError, match="unknown objective 'nope'"):
        model.loss(x, labels, objective="nope")
