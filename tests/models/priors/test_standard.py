"""The priors models train with, N(0, I) and N(m_y, I), against torch.distributions."""

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vaekit.models import distributions
from vaekit.models.distributions import DiagonalGaussian, exact_kl_per_dim
from vaekit.models.priors import ClassMeanPrior, StandardNormalPrior
from vaekit.utils.errors import VaekitError


def class_prior() -> ClassMeanPrior:
    prior = ClassMeanPrior(latent_dim=3, num_classes=4)
    with torch.no_grad():
        prior.means.copy_(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
    return prior


@pytest.mark.parametrize("kind", ["standard", "class means"])
def test_log_prob_and_kl_match_torch_distributions(kind):
    labels = torch.tensor([0, 3, 1, 1, 2])
    prior = StandardNormalPrior(3) if kind == "standard" else class_prior()
    centre = torch.zeros(5, 3) if kind == "standard" else prior.means[labels].detach()
    p = Normal(centre, 1.0)
    q = DiagonalGaussian(torch.randn(5, 3), torch.randn(5, 3))
    reference_kl = kl_divergence(Normal(q.mean, (0.5 * q.logvar).exp()), p)
    torch.testing.assert_close(exact_kl_per_dim(q, prior(labels)), reference_kl)
    z = torch.randn(7, 5, 3)  # k draws for each of 5 images
    torch.testing.assert_close(prior(labels).log_prob(z), p.log_prob(z).sum(-1))
    # the KL of a draw is the exact one: the rule, not log q - log p at the draw
    kl = distributions.kl_divergence(q, prior(labels), z[0], q.log_prob(z[0]))
    torch.testing.assert_close(kl, reference_kl.sum(-1))


def test_samples_have_the_prior_moments_and_temperature_scales_them():
    prior = class_prior()
    labels = torch.full((50_000,), 2)
    z = prior(labels).sample(50_000, torch.Generator().manual_seed(0), temperature=0.5)
    torch.testing.assert_close(z.mean(0), prior.means[2].detach(), atol=0.01, rtol=0)
    torch.testing.assert_close(z.std(0), torch.full((3,), 0.5), atol=0.01, rtol=0)
    assert StandardNormalPrior(3)().sample(4).shape == (4, 3)


def test_class_means_need_labels_in_range():
    with pytest.raises(VaekitError, match="needs the class labels"):
        class_prior()().log_prob(torch.zeros(2, 3))
    with pytest.raises(VaekitError, match="labels must be in 0..3"):
        class_prior().mean(torch.tensor([4]))
    assert not list(StandardNormalPrior(3).parameters())
