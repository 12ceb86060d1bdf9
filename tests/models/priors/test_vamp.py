"""The VampPrior: its mixture against torch.distributions, its KL per dimension against closed forms and
Monte Carlo, and the models that train with it (mlp and cvae)."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

import vaekit
from vaekit.models import build_model
from vaekit.models.distributions import DiagonalMixture, kl_divergence
from vaekit.models.maths import diagonal_mixture_log_prob, kl_per_dim_to_mixture
from vaekit.models.priors import VampPrior
from vaekit.utils.errors import VaekitError


def reference_mixture(means: torch.Tensor, logvars: torch.Tensor) -> MixtureSameFamily:
    """1/K sum_k N(m_k, diag(exp(v_k))) per group: means, logvars [..., K, D]."""
    uniform = Categorical(logits=torch.zeros(means.shape[:-1], dtype=means.dtype))
    return MixtureSameFamily(uniform, Independent(Normal(means, (0.5 * logvars).exp()), 1))


def random_components(groups: int, k: int, d: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(groups, k, d, generator=g, dtype=dtype)
    logvars = 0.7 * torch.randn(groups, k, d, generator=g, dtype=dtype)
    return means, logvars


def test_diagonal_mixture_log_prob_matches_torch_distributions():
    means, logvars = random_components(3, 4, 2, dtype=torch.float64)
    z = 2 * torch.randn(5, 7, 2, dtype=torch.float64)  # any leading shape
    expected = reference_mixture(means, logvars).log_prob(z.unsqueeze(-2))  # [5, 7, G]
    result = diagonal_mixture_log_prob(z, means, logvars)
    assert result.shape == (5, 7, 3)
    torch.testing.assert_close(result, expected)
    # far in the tail: still finite and exact (log-sum-exp)
    far = torch.full((1, 2), 40.0, dtype=torch.float64)
    far_expected = reference_mixture(means, logvars).log_prob(far.unsqueeze(-2))
    assert torch.all(far_expected < -100)
    torch.testing.assert_close(diagonal_mixture_log_prob(far, means, logvars), far_expected)


def test_diagonal_mixture_log_prob_is_exact_in_float32_with_narrow_components():
    # narrow components far from 0 make the expanded squares large and nearly cancelling: the products
    # run in float64, so float32 inputs lose nothing beyond float32 rounding of the result
    g = torch.Generator().manual_seed(1)
    means = 4 * torch.randn(1, 50, 20, generator=g, dtype=torch.float64)
    logvars = torch.full((1, 50, 20), -7.0, dtype=torch.float64)
    z = means[0, :8] + 0.01 * torch.randn(8, 20, generator=g, dtype=torch.float64)
    expected = reference_mixture(means, logvars).log_prob(z.unsqueeze(-2))
    result = diagonal_mixture_log_prob(z.float(), means.float(), logvars.float())
    assert result.dtype == torch.float32
    torch.testing.assert_close(result.double(), expected, rtol=1e-5, atol=2e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 matmuls would lose whole nats here
        torch.testing.assert_close(
            diagonal_mixture_log_prob(z.float(), means.float(), logvars.float()).double(),
            expected,
            rtol=1e-5,
            atol=2e-3,
        )


def encoder_giving(means: torch.Tensor, logvars: torch.Tensor):
    """An encoder that gives these components [G, K, D] for the pseudo-inputs, whatever they are."""
    return lambda images, labels: (means.reshape(-1, means.shape[-1]), logvars.reshape(-1, means.shape[-1]))


def test_vamp_log_prob_is_the_mixture_of_its_encoded_pseudo_inputs():
    means, logvars = random_components(1, 4, 2)
    prior = VampPrior(2, (1, 4, 4), pseudo_inputs=4, encode=encoder_giving(means, logvars))
    z = torch.randn(3, 6, 2)  # k draws of B images
    expected = reference_mixture(means[0], logvars[0]).log_prob(z)
    assert isinstance(prior(), DiagonalMixture)
    torch.testing.assert_close(prior().log_prob(z), expected)
    with pytest.raises(VaekitError, match="without an encoder"):
        VampPrior(2, (1, 4, 4), pseudo_inputs=4)()


def test_conditional_vamp_log_prob_picks_the_class_group():
    means, logvars = random_components(3, 4, 2)
    prior = VampPrior(2, (1, 4, 4), pseudo_inputs=4, num_classes=3, encode=encoder_giving(means, logvars))
    assert torch.equal(prior.labels, torch.tensor([0] * 4 + [1] * 4 + [2] * 4))
    labels = torch.tensor([2, 0, 1, 1, 0])
    z = torch.randn(3, 5, 2)
    expected = torch.stack(
        [reference_mixture(means[y], logvars[y]).log_prob(z[:, b]) for b, y in enumerate(labels)], dim=1
    )
    torch.testing.assert_close(prior(labels).log_prob(z), expected)
    with pytest.raises(VaekitError, match="labels"):
        prior().log_prob(z)


def mixture_moments(means: torch.Tensor, logvars: torch.Tensor, temperature: float = 1.0):
    """Mean and variance per dimension of a uniform mixture of diagonal Gaussians [K, D]."""
    mean = means.mean(0)
    second = (temperature**2 * logvars.exp() + means.pow(2)).mean(0)
    return mean, second - mean.pow(2)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_vamp_draws_have_the_mixture_moments(temperature):
    means, logvars = random_components(1, 3, 2, seed=1)
    prior = VampPrior(2, (1, 4, 4), pseudo_inputs=3, encode=encoder_giving(means, logvars))
    z = prior().sample(200_000, torch.Generator().manual_seed(0), temperature)
    assert z.shape == (200_000, 2)
    mean, var = mixture_moments(means[0], logvars[0], temperature)
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), var, atol=0, rtol=0.03)


def test_conditional_vamp_draws_come_from_the_class_components():
    means, logvars = random_components(3, 3, 2, seed=2)
    means = means + 100.0 * torch.arange(3).view(3, 1, 1)  # the classes far apart
    prior = VampPrior(2, (1, 4, 4), pseudo_inputs=3, num_classes=3, encode=encoder_giving(means, logvars))
    labels = torch.arange(3).repeat_interleave(60_000)
    z = prior(labels).sample(len(labels), torch.Generator().manual_seed(0))
    for y in range(3):
        own = z[labels == y]
        assert torch.all((own - 100.0 * y).abs() < 50)  # every draw near its own class
        mean, var = mixture_moments(means[y], logvars[y])
        torch.testing.assert_close(own.mean(0), mean, atol=0.05, rtol=0)
        torch.testing.assert_close(own.var(0), var, atol=0, rtol=0.05)
    with pytest.raises(VaekitError, match="labels"):
        prior().sample(3)


# ------------------------------------------------------------------------------- KL per dimension


def closed_form_kl(mu, logvar, m, v):
    """KL(N(mu, exp(logvar)) || N(m, exp(v))) per dimension."""
    return 0.5 * (v - logvar + (logvar.exp() + (mu - m).pow(2)) / v.exp() - 1.0)


def test_kl_per_dim_to_a_one_component_mixture_is_the_gaussian_kl():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g).double()
    m, v = torch.randn(1, 3, generator=g, dtype=torch.float64), torch.randn(1, 3, generator=g).double()
    result = kl_per_dim_to_mixture(mu, logvar, m, v)
    torch.testing.assert_close(result, closed_form_kl(mu, logvar, m, v), atol=1e-5, rtol=0)
    # per-row components [B, 1, D]: each row against its own Gaussian
    rows_m, rows_v = torch.randn(5, 1, 3, dtype=torch.float64), torch.randn(5, 1, 3, dtype=torch.float64)
    torch.testing.assert_close(
        kl_per_dim_to_mixture(mu, logvar, rows_m, rows_v),
        closed_form_kl(mu, logvar, rows_m[:, 0], rows_v[:, 0]),
        atol=1e-5,
        rtol=0,
    )


def monte_carlo_kl_per_dim(mu, logvar, means, logvars, n=100_000, seed=0):
    """E_q[log q(z_j) - log p_j(z_j)] per dimension, from n draws; means, logvars [B, K, D]."""
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(n, *mu.shape, generator=torch.Generator().manual_seed(seed), dtype=mu.dtype)
    log_q = Normal(mu, std).log_prob(z)  # [n, B, D]
    batch, components, dim = means.shape
    uniform = Categorical(logits=torch.zeros(batch, dim, components, dtype=mu.dtype))
    # each dimension's marginal: batch shape [B, D], K components each
    marginal = MixtureSameFamily(
        uniform, Normal(means.transpose(1, 2), (0.5 * logvars.transpose(1, 2)).exp())
    )
    return (log_q - marginal.log_prob(z)).mean(0)


def grid_kl_per_dim(mu, logvar, means, logvars, n=20_001):
    """The same KL by the trapezoid rule over mu +- 12 std (deterministic and accurate to ~1e-8)."""
    std = (0.5 * logvar).exp()
    z = mu[..., None] + std[..., None] * torch.linspace(-12, 12, n, dtype=torch.float64)  # [B, D, n]
    log_q = Normal(mu[..., None], std[..., None]).log_prob(z)
    m, v = means.transpose(1, 2)[..., None], logvars.transpose(1, 2)[..., None]  # [B, D, K, 1]
    log_p = torch.logsumexp(Normal(m, (0.5 * v).exp()).log_prob(z.unsqueeze(2)), 2) - math.log(means.shape[1])
    return torch.trapezoid(log_q.exp() * (log_q - log_p), z, dim=-1)


def kl_case(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    mu, logvar = torch.randn(4, 2, generator=g).double(), 0.5 * torch.randn(4, 2, generator=g).double()
    means = 1.5 * torch.randn(4, 3, 2, generator=g).double()
    logvars = 0.5 * torch.randn(4, 3, 2, generator=g).double()
    return mu, logvar, means, logvars


def test_kl_per_dim_to_a_mixture_matches_monte_carlo():
    mu, logvar, means, logvars = kl_case()
    expected = monte_carlo_kl_per_dim(mu, logvar, means, logvars)
    assert expected.min() > 0.05  # far from 0: a KL that ignored the mixture would not match
    torch.testing.assert_close(kl_per_dim_to_mixture(mu, logvar, means, logvars), expected, atol=0.01, rtol=0)


def test_kl_per_dim_to_a_mixture_matches_numerical_integration():
    mu, logvar, means, logvars = kl_case()
    torch.testing.assert_close(
        kl_per_dim_to_mixture(mu, logvar, means, logvars),
        grid_kl_per_dim(mu, logvar, means, logvars),
        atol=5e-3,  # 16-node quadrature of a log-mixture: close, not exact
        rtol=0,
    )
    # shared components [K, D]: as if every row had them
    shared = kl_per_dim_to_mixture(mu, logvar, means[0], logvars[0])
    expanded = means[:1].expand(4, 3, 2), logvars[:1].expand(4, 3, 2)
    torch.testing.assert_close(shared, grid_kl_per_dim(mu, logvar, *expanded), atol=5e-3, rtol=0)


# ---------------------------------------------------------------------------------- vamp models


def vamp_model(name: str, k: int = 3):
    torch.manual_seed(0)
    config = {"name": name, "image_shape": [1, 4, 4], "latent_dim": 2, "hidden": [8]}
    if name == "cvae":
        config["num_classes"] = 3
    model = build_model({**config, "trained_prior": "vamp", "pseudo_inputs": k})
    with torch.no_grad():  # pseudo-inputs spread over [0, 1], not the near-constant grey they start as,
        model.trained_prior.pixels.uniform_(0.0, 1.0)
        model.posterior.weight.mul_(4.0)  # and posteriors that differ between images, as a trained model's
    x = torch.bernoulli(torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1)))
    labels = torch.arange(6) % 3 if name == "cvae" else None
    return model, x, labels


def reference_log_prior(model, z, labels):
    """log p(z) (cvae: log p(z | y)) as the mixture of the encoder's posteriors of the pseudo-inputs."""
    prior = model.trained_prior
    k = prior.per_group
    pseudo = prior.pseudo_inputs()
    if labels is None:
        mu, logvar = model.encode(pseudo)
        return reference_mixture(mu, logvar).log_prob(z)
    columns = []
    for b, y in enumerate(labels.tolist()):
        mu, logvar = model.encode(pseudo[y * k : (y + 1) * k], torch.full((k,), y))
        columns.append(reference_mixture(mu, logvar).log_prob(z[..., b, :]))
    return torch.stack(columns, dim=-1)


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_vamp_model_kl_is_log_q_minus_the_mixture_log_prob(name):
    model, x, labels = vamp_model(name)
    assert not model.closed_form_kl and model.starts_from_data
    posterior = model.posterior_of(x, labels)
    z, log_q = posterior.rsample_with_log_prob(None, torch.Generator().manual_seed(0))
    mu, logvar = model.encode(x, labels)
    torch.testing.assert_close(log_q, Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1))
    log_p = reference_log_prior(model, z, labels)
    torch.testing.assert_close(model.prior_of(labels).log_prob(z), log_p)
    torch.testing.assert_close(kl_divergence(posterior, model.prior_of(labels), z, log_q), log_q - log_p)
    zk = posterior.rsample(4, torch.Generator().manual_seed(1))  # k draws per image, as IWAE's
    torch.testing.assert_close(model.log_prior(zk, labels), reference_log_prior(model, zk, labels))


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_vamp_model_kl_per_dim_is_against_the_mixture_marginals(name):
    model, x, labels = vamp_model(name)
    mu, logvar = model.encode(x, labels)
    prior = model.trained_prior
    k = prior.per_group
    with torch.no_grad():
        pm, pv = model.encode(prior.pseudo_inputs(), prior.labels if name == "cvae" else None)
        groups = labels.tolist() if labels is not None else [0] * len(x)
        means = torch.stack([pm[y * k : (y + 1) * k] for y in groups]).double()
        logvars = torch.stack([pv[y * k : (y + 1) * k] for y in groups]).double()
        mu, logvar = mu.double(), logvar.double()
        result = model.kl_per_dim(mu, logvar, labels).double()
    assert result.max() > 0.1
    torch.testing.assert_close(result, monte_carlo_kl_per_dim(mu, logvar, means, logvars), atol=0.01, rtol=0)
    torch.testing.assert_close(result, grid_kl_per_dim(mu, logvar, means, logvars), atol=1e-4, rtol=0)


def test_vamp_pseudo_inputs_stay_in_the_unit_interval():
    model, _, _ = vamp_model("mlp")
    prior = model.trained_prior
    with torch.no_grad():
        prior.pixels.copy_(torch.linspace(-2.0, 3.0, prior.pixels.numel()).view_as(prior.pixels))
    pseudo = prior.pseudo_inputs()
    assert pseudo.min() == 0.0 and pseudo.max() == 1.0
    torch.testing.assert_close(pseudo, prior.pixels.detach().clamp(0.0, 1.0))
    mu, logvar = prior.components()  # the encoder sees the clamped images
    torch.testing.assert_close(torch.cat([mu[0], logvar[0]], 1), torch.cat(model.encode(pseudo), 1))


def training_images(n: int = 12):
    g = torch.Generator().manual_seed(3)
    images = 0.02 + 0.96 * torch.rand(n, 1, 4, 4, generator=g)  # inside the clamp of init_pixels
    labels = torch.arange(n) % 3
    return images, labels


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_start_from_data_copies_distinct_training_images(name):
    model, _, _ = vamp_model(name, k=3)
    images, labels = training_images()
    model.start_from_data(images, labels, torch.Generator().manual_seed(0))
    prior = model.trained_prior
    pseudo = prior.pseudo_inputs()
    assert len(pseudo) == (9 if name == "cvae" else 3)
    picked = []
    for p in pseudo:
        matches = [i for i in range(len(images)) if torch.equal(p, images[i])]
        assert len(matches) == 1
        picked.append(matches[0])
    assert len(set(picked)) == len(picked)  # no image twice
    if name == "cvae":  # block y of K pseudo-inputs: images of class y
        assert labels[picked].tolist() == prior.labels.tolist()


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_start_from_data_refuses_more_pseudo_inputs_than_images(name):
    model, _, _ = vamp_model(name, k=5)
    images, labels = training_images(12 if name == "cvae" else 4)  # cvae: 4 images per class
    with pytest.raises(VaekitError, match="--pseudo-inputs 5"):
        model.start_from_data(images, labels, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_vamp_model_save_and_load_keep_the_prior(tmp_path, name):
    model, x, labels = vamp_model(name)
    model.eval()
    path = tmp_path / "model.safetensors"
    vaekit.save_model(model, path)
    loaded = vaekit.load(path)
    assert isinstance(loaded.trained_prior, VampPrior)
    assert loaded.trained_prior.config == model.trained_prior.config
    torch.testing.assert_close(loaded.trained_prior.pixels, model.trained_prior.pixels)
    z = torch.randn(4, 6, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded.prior_of(labels).log_prob(z), model.prior_of(labels).log_prob(z))
    # a different prior gives different densities: the comparison above can fail
    with torch.no_grad():
        loaded.trained_prior.pixels.add_(0.3)
        assert not torch.allclose(loaded.prior_of(labels).log_prob(z), model.prior_of(labels).log_prob(z))
