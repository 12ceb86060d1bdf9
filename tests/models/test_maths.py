"""The shared VAE maths against torch.distributions and hand computations."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from tests.conftest import Z_MISS
from vaekit.models.labels import check_labels, labels_checked
from vaekit.models.maths import (
    bernoulli_nll,
    calibrated_log_std,
    free_bits_kl,
    gauss_hermite,
    gaussian_kl,
    gaussian_kl_per_dim,
    gaussian_nll,
    iwae_bound,
    log_normal,
    log_standard_normal,
    reparameterize,
)
from vaekit.utils.errors import VaekitError


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
    # the sample mean's standard error is sigma / sqrt(n), the sample variance's sigma^2 sqrt(2 / (n - 1))
    n = z.numel()
    assert abs(z.mean().item() - 1.5) < Z_MISS * 2.0 / math.sqrt(n)
    assert abs(z.var().item() - 4.0) < Z_MISS * 4.0 * math.sqrt(2 / (n - 1))
    z.sum().backward()
    assert torch.all(mu.grad == 1)
    assert logvar.grad.abs().sum() > 0


def test_reparameterize_generator_is_reproducible():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    a = reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    b = reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_gaussian_kl_per_dim_sums_to_the_kl():
    mu, logvar = torch.randn(4, 6), torch.randn(4, 6)
    per_dim = gaussian_kl_per_dim(mu, logvar)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(per_dim, expected)
    torch.testing.assert_close(per_dim.sum(1), gaussian_kl(mu, logvar))


def test_free_bits_by_hand():
    # two dimensions with batch-mean KLs 0.1 and 2.0: with lambda = 0.5 the term is 0.5 + 2.0
    kl_dims = torch.tensor([[0.0, 1.0], [0.2, 3.0]])
    assert free_bits_kl(kl_dims, 0.5).item() == pytest.approx(2.5)
    assert free_bits_kl(kl_dims, 0.0).item() == pytest.approx(kl_dims.sum(1).mean().item())


def test_free_bits_stop_the_gradient_of_dimensions_below_the_floor():
    kl_dims = torch.tensor([[0.1, 3.0]], requires_grad=True)
    free_bits_kl(kl_dims, 0.5).backward()
    assert kl_dims.grad.tolist() == [[0.0, 1.0]]


def test_log_normal_and_standard_normal_match_torch_distributions():
    z, mu, logvar = torch.randn(3, 5, 4), torch.randn(5, 4), torch.randn(5, 4)
    expected = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(log_normal(z, mu, logvar), expected)
    torch.testing.assert_close(log_standard_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_gaussian_nll_matches_torch_distributions():
    mean, x = torch.rand(4, 1, 3, 3), torch.rand(4, 1, 3, 3)
    for log_std in (torch.tensor(-1.3), torch.randn(1, 3, 3)):
        expected = -Normal(mean, log_std.exp()).log_prob(x).flatten(1).sum(1)
        torch.testing.assert_close(gaussian_nll(mean, log_std, x), expected)


def test_the_calibrated_std_is_the_gaussian_likelihoods_best():
    mean, x = torch.rand(8, 1, 5, 5), torch.rand(8, 1, 5, 5)
    best = calibrated_log_std(mean, x)
    total = lambda log_std: gaussian_nll(mean, log_std, x).sum()  # noqa: E731
    assert all(total(best) < total(best + step) for step in (-0.05, -0.01, 0.01, 0.05))  # the minimum
    log_std = best.clone().requires_grad_()
    total(log_std).backward()
    assert abs(log_std.grad.item()) < 1e-3  # the derivative in the std is 0 there


def test_a_calibrated_decoder_trains_on_each_batchs_best_std_and_evaluates_with_their_running_mean():
    from vaekit.models import MLPVAE

    model = MLPVAE((1, 4, 4), latent_dim=2, hidden=[8], likelihood="gaussian", decoder_std="calibrated")
    assert not any(name == "log_std" for name, _ in model.named_parameters())  # a buffer, saved
    assert {"log_std", "calibration_steps"} <= set(model.state_dict())
    logits, batches = torch.zeros(3, 1, 4, 4), [torch.rand(3, 1, 4, 4) * scale for scale in (1.0, 0.5, 0.2)]
    model.train()
    bests = []
    for x in batches:
        bests.append(calibrated_log_std(torch.full_like(x, 0.5), x))
        torch.testing.assert_close(
            model.recon_nll(logits, x), gaussian_nll(torch.full_like(x, 0.5), bests[-1], x)
        )
    torch.testing.assert_close(model.log_std, torch.stack(bests).mean())  # the plain mean of the first ones
    model.eval()
    x = batches[0]
    torch.testing.assert_close(
        model.recon_nll(logits, x), gaussian_nll(torch.full_like(x, 0.5), model.log_std, x)
    )
    assert int(model.calibration_steps) == 3  # evaluation leaves it as it was
    with pytest.raises(ValueError, match="decoder_std must be a positive number or 'calibrated'"):
        MLPVAE((1, 4, 4), likelihood="gaussian", decoder_std="big")


def test_iwae_bound_is_the_log_mean_weight_and_stays_finite():
    log_w = torch.randn(7, 3)
    torch.testing.assert_close(iwae_bound(log_w), log_w.exp().mean(0).log())
    # weights around exp(-1000) underflow when exponentiated; the log-sum-exp form does not
    tiny = torch.tensor([[-1000.0], [-1001.0]])
    expected = -1000.0 + math.log((1 + math.exp(-1.0)) / 2)
    assert iwae_bound(tiny).item() == pytest.approx(expected)
    assert iwae_bound(log_w[:1]).tolist() == log_w[0].tolist()  # k = 1: the ELBO estimate itself


@pytest.mark.parametrize("n", [1, 4, 16])
def test_gauss_hermite_is_numpys_probabilists_rule_normalised(n):
    nodes, weights = gauss_hermite(n)
    assert nodes.dtype == weights.dtype == torch.float64 and nodes.shape == weights.shape == (n,)
    expected_nodes, expected_weights = np.polynomial.hermite_e.hermegauss(n)  # weight exp(-t^2 / 2)
    np.testing.assert_allclose(nodes.numpy(), expected_nodes, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weights.numpy(), expected_weights / math.sqrt(2 * math.pi), rtol=1e-10)


def test_gauss_hermite_integrates_polynomials_up_to_degree_2n_minus_1_exactly():
    n = 5
    nodes, weights = gauss_hermite(n)
    for degree in range(2 * n + 1):  # E[t^k] under N(0, 1): 0 for odd k, (k - 1)!! for even k
        moment = 0.0 if degree % 2 else float(np.prod(np.arange(degree - 1, 0, -2)))
        estimate = (weights * nodes**degree).sum().item()
        if degree < 2 * n:
            assert estimate == pytest.approx(moment, abs=1e-9)
        else:  # degree 2n is beyond the rule
            assert abs(estimate - moment) > 1.0
    # a Gaussian's E[(z - c)^2] = s^2 + (m - c)^2, by the rescaled nodes m + s t
    m, s, c = 0.7, 1.9, -0.4
    estimate = (weights * (m + s * nodes - c) ** 2).sum().item()
    assert estimate == pytest.approx(s**2 + (m - c) ** 2, rel=1e-12)


def test_labels_are_checked_unless_a_run_checked_them_already():
    bad = torch.tensor([0, 3])
    with pytest.raises(VaekitError, match="labels must be in 0..2"):
        check_labels(bad, 3)
    with labels_checked():  # a training step's labels, checked once at the run's start
        check_labels(bad, 3)
    with pytest.raises(VaekitError):
        check_labels(bad, 3)
