"""The shared VAE maths against torch.distributions and hand computations."""

import math

import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaekit.models.maths import bernoulli_nll, gaussian_kl, reparameterize


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(7, 5), torch.randn(7, 5)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(dim=1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)


def test_gaussian_kl_by_hand():
    # one dimension, mu = 1, sigma^2 = e: KL = 1/2 (sigma^2 + mu^2 - 1 - log sigma^2) = (e - 1) / 2
    kl = gaussian_kl(torch.tensor([[1.0]]), torch.tensor([[1.0]]))
    assert math.isclose(kl.item(), (math.e - 1) / 2, rel_tol=1e-6)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


def test_bernoulli_nll_matches_torch_distributions_on_binary_pixels():
    logits = torch.randn(6, 1, 4, 4) * 3
    x = (torch.rand(6, 1, 4, 4) > 0.5).float()
    expected = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(dim=1)
    torch.testing.assert_close(bernoulli_nll(logits, x), expected)


def test_bernoulli_nll_on_grey_pixels_is_summed_cross_entropy():
    logits, x = torch.randn(3, 10), torch.rand(3, 10)
    p = torch.sigmoid(logits)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum(dim=1)
    torch.testing.assert_close(bernoulli_nll(logits, x), expected)


def test_bernoulli_nll_is_finite_where_sigmoid_saturates():
    nll = bernoulli_nll(torch.tensor([[200.0, -200.0]]), torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(nll, torch.tensor([400.0]))


def test_reparameterize_moments_and_gradient():
    mu = torch.full((200_000, 2), 1.5, requires_grad=True)
    logvar = torch.full((200_000, 2), math.log(4.0), requires_grad=True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - 1.5) < 0.02 and abs(z.var().item() - 4.0) < 0.05
    z.sum().backward()
    assert torch.all(mu.grad == 1)
    assert logvar.grad.abs().sum() > 0


def test_reparameterize_generator_is_reproducible():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    a = reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    b = reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
