"""The diagonal Gaussian posterior against torch.distributions."""

import torch
from torch.distributions import Independent, Normal

from vaekit.models.posteriors import DiagonalGaussian


def test_log_prob_and_draws_match_torch_distributions():
    mean, logvar = torch.randn(5, 3), torch.randn(5, 3)
    q = DiagonalGaussian(mean, logvar)
    reference = Independent(Normal(mean, (0.5 * logvar).exp()), 1)
    z = q.rsample(k=4, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, 5, 3)
    torch.testing.assert_close(q.log_prob(z), reference.log_prob(z))
    eps = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0))  # the same noise
    torch.testing.assert_close(z, mean + (0.5 * logvar).exp() * eps)


def test_draws_are_differentiable_and_unpack_as_mean_and_logvar():
    mean = torch.zeros(2, 3, requires_grad=True)
    q = DiagonalGaussian(mean, torch.zeros(2, 3))
    q.rsample().sum().backward()
    assert torch.equal(mean.grad, torch.ones(2, 3))
    mu, logvar = q
    assert mu is q.mean and logvar is q.logvar


def test_moments_of_many_draws():
    q = DiagonalGaussian(torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, 2 * torch.tensor(0.5).log()]]))
    z = q.rsample(k=100_000, generator=torch.Generator().manual_seed(1))[:, 0]
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01, rtol=0)
