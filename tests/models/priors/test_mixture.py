"""Gaussian mixtures: log-densities against torch.distributions, EM against scikit-learn, the fitted prior."""

import math

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from vaekit.models.maths import (
    class_mixture_log_prob,
    gaussian_components_log_prob,
    mixture_log_prob,
    mixture_sample,
)
from vaekit.models.priors.mixture import MixturePrior, fit_gaussian_mixture, kmeans_assignments
from vaekit.utils.errors import VaekitError


def random_mixture(k: int, d: int, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    log_weights = torch.randn(k, generator=g, dtype=dtype).log_softmax(0)
    means = 3 * torch.randn(k, d, generator=g, dtype=dtype)
    a = torch.randn(k, d, d, generator=g, dtype=dtype)
    covariance = a @ a.transpose(1, 2) / d + 0.1 * torch.eye(d, dtype=dtype)
    return log_weights, means, torch.linalg.cholesky(covariance)


def reference(log_weights, means, scale_tril):
    return MixtureSameFamily(
        Categorical(logits=log_weights), MultivariateNormal(means, scale_tril=scale_tril)
    )


def test_component_and_mixture_log_densities_match_torch_distributions():
    log_weights, means, scale_tril = random_mixture(4, 3)
    z = torch.randn(7, 5, 3, dtype=torch.float64)  # any leading shape
    components = gaussian_components_log_prob(z, means, scale_tril)
    expected = MultivariateNormal(means, scale_tril=scale_tril).log_prob(z.unsqueeze(-2))
    torch.testing.assert_close(components, expected)
    torch.testing.assert_close(
        mixture_log_prob(z, log_weights, means, scale_tril),
        reference(log_weights, means, scale_tril).log_prob(z),
    )


def test_class_mixture_is_the_class_mixture_given_a_label_and_the_marginal_without():
    mixtures = [random_mixture(3, 2, seed) for seed in range(4)]
    log_weights, means, scale_tril = (torch.stack(parts) for parts in zip(*mixtures, strict=True))
    class_log_weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64).log()
    z = torch.randn(9, 2, dtype=torch.float64)
    labels = torch.arange(9) % 4
    given = class_mixture_log_prob(z, class_log_weights, log_weights, means, scale_tril, labels)
    for i, y in enumerate(labels.tolist()):
        torch.testing.assert_close(given[i], reference(*mixtures[y]).log_prob(z[i]))
    marginal = class_mixture_log_prob(z, class_log_weights, log_weights, means, scale_tril)
    flat = reference(
        (class_log_weights.unsqueeze(1) + log_weights).flatten(),
        means.flatten(0, 1),
        scale_tril.flatten(0, 1),
    )
    torch.testing.assert_close(marginal, flat.log_prob(z))


def test_mixture_samples_have_the_mixture_moments_and_repeat_with_a_seed():
    log_weights, means, scale_tril = random_mixture(3, 2)
    groups = torch.zeros(200_000, dtype=torch.long)
    z = mixture_sample(
        log_weights[None], means[None], scale_tril[None], groups, torch.Generator().manual_seed(0)
    )
    ref = reference(log_weights, means, scale_tril)
    torch.testing.assert_close(z.mean(0), ref.mean, atol=0.05, rtol=0)
    torch.testing.assert_close(z.var(0), ref.variance, rtol=0.03, atol=0)
    again = mixture_sample(
        log_weights[None], means[None], scale_tril[None], groups, torch.Generator().manual_seed(0)
    )
    assert torch.equal(z, again)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 15 fixed steps, on purpose
def test_em_matches_scikit_learn_from_the_same_start():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, s, size=(300, 3)) for c, s in ((-3, 0.5), (0, 1.0), (4, 0.7))])
    x = torch.from_numpy(x)
    assign = kmeans_assignments(x, 3, torch.Generator().manual_seed(0))
    resp = torch.nn.functional.one_hot(assign, 3)
    ours = fit_gaussian_mixture(x, 3, init=resp, max_iter=15, tol=0.0)
    counts = resp.sum(0).double()
    means0 = (resp.double().T @ x) / counts[:, None]
    covs0 = torch.stack([torch.cov((x[assign == k]).T, correction=0) + 1e-6 * torch.eye(3) for k in range(3)])
    sk = GaussianMixture(
        3, covariance_type="full", max_iter=15, tol=0.0, reg_covar=1e-6,
        weights_init=(counts / len(x)).numpy(), means_init=means0.numpy(),
        precisions_init=torch.linalg.inv(covs0).numpy(),
    ).fit(x.numpy())  # fmt: skip
    assert ours.iterations == sk.n_iter_ == 15
    torch.testing.assert_close(ours.means, torch.from_numpy(sk.means_), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(ours.log_weights.exp(), torch.from_numpy(sk.weights_), rtol=1e-6, atol=1e-8)
    covariances = ours.scale_tril @ ours.scale_tril.transpose(1, 2)
    torch.testing.assert_close(covariances, torch.from_numpy(sk.covariances_), rtol=1e-6, atol=1e-8)
    assert ours.mean_log_likelihood == pytest.approx(sk.lower_bound_, abs=1e-8)


def test_em_recovers_a_known_mixture_and_converges():
    log_weights, means, scale_tril = random_mixture(3, 2, seed=3)
    groups = torch.zeros(6000, dtype=torch.long)
    x = mixture_sample(
        log_weights[None], means[None], scale_tril[None], groups, torch.Generator().manual_seed(1)
    )
    fit = fit_gaussian_mixture(x, 3, seed=0)
    assert fit.converged
    truth = mixture_log_prob(x, log_weights, means, scale_tril).mean().item()
    fitted = mixture_log_prob(x, fit.log_weights, fit.means, fit.scale_tril).mean().item()
    assert fitted >= truth - 0.01  # maximum likelihood: at least the generating mixture's, up to tol
    order = fit.means[:, 0].argsort()
    torch.testing.assert_close(fit.means[order], means[means[:, 0].argsort()], atol=0.15, rtol=0)


def test_a_spread_around_each_point_adds_the_law_of_total_variance():
    """With one component: Cov(z) = Cov(E[z|x]) + E[Var(z|x)], the aggregate of the points' Gaussians."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 3, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.5, 0], [0, 1, 0], [0, 0, 0.1]], dtype=torch.float64
    )
    spread = torch.rand(800, 3, generator=g, dtype=torch.float64)
    plain, wide = fit_gaussian_mixture(x, 1), fit_gaussian_mixture(x, 1, spread=spread)
    covariance = wide.scale_tril[0] @ wide.scale_tril[0].T
    expected = torch.cov(x.T, correction=0) + 1e-6 * torch.eye(3) + torch.diag(spread.mean(0))
    torch.testing.assert_close(covariance, expected)
    torch.testing.assert_close(wide.means, plain.means)


def test_em_is_seeded():
    x = torch.randn(500, 4, dtype=torch.float64)
    a, b = fit_gaussian_mixture(x, 5, seed=1), fit_gaussian_mixture(x, 5, seed=1)
    assert torch.equal(a.means, b.means) and torch.equal(a.scale_tril, b.scale_tril)
    assert not torch.equal(a.means, fit_gaussian_mixture(x, 5, seed=2).means)


def test_a_constant_latent_unit_stays_invertible():
    x = torch.randn(400, 3, dtype=torch.float64)
    x[:, 1] = 0.25  # a collapsed unit: no variance at all
    fit = fit_gaussian_mixture(x, 4)
    assert torch.isfinite(mixture_log_prob(x, fit.log_weights, fit.means, fit.scale_tril)).all()


def test_prior_per_class_fits_each_class_and_samples_it():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
    labels = torch.arange(900) % 3
    latents = centres[labels] + 0.5 * torch.randn(900, 2, generator=g)
    prior, fits = MixturePrior.fit(latents, labels, components=2, num_classes=3)
    assert len(fits) == 3 and prior.has_classes
    torch.testing.assert_close(prior.class_log_weights.exp(), torch.full((3,), 1 / 3))
    for c in range(3):
        z = prior.sample(500, torch.full((500,), c), torch.Generator().manual_seed(c))
        torch.testing.assert_close(z.mean(0), centres[c], atol=0.15, rtol=0)
    z = torch.randn(6, 2)
    marginal = prior.log_prob(z)
    per_class = torch.stack([prior.log_prob(z, torch.full((6,), c)) for c in range(3)], 1)
    torch.testing.assert_close(marginal, torch.logsumexp(per_class + math.log(1 / 3), 1))
    mixed = prior.sample(3000, generator=torch.Generator().manual_seed(5))
    nearest = torch.cdist(mixed, centres).argmin(1)
    assert (torch.bincount(nearest, minlength=3) / 3000 - 1 / 3).abs().max() < 0.04


def test_prior_refuses_what_it_cannot_do():
    latents = torch.randn(20, 2)
    with pytest.raises(VaekitError, match="at least 1 component"):
        MixturePrior.fit(latents, components=0)
    with pytest.raises(VaekitError, match="more than the 20 latents"):
        MixturePrior.fit(latents, components=21)
    with pytest.raises(VaekitError, match="class 1 has 0 training images"):
        MixturePrior.fit(latents, torch.zeros(20, dtype=torch.long), components=2, num_classes=2)
    prior, _ = MixturePrior.fit(latents, components=2)
    with pytest.raises(VaekitError, match="no classes"):
        prior.sample(3, torch.zeros(3, dtype=torch.long))
