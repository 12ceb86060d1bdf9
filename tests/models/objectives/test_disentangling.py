"""The disentangling objectives (beta-TCVAE, FactorVAE, DIP-VAE, InfoVAE's MMD, WAE-GAN) and the maths
they use, against exact mixtures from torch.distributions, numpy and hand-written loops, on the same draws."""

import copy
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from vaekit.models import build_model
from vaekit.models.maths import (
    aggregate_log_densities,
    covariance,
    dip_penalty,
    imq_mmd,
    permute_dims,
    stratified_log_weights,
)
from vaekit.models.objectives import OBJECTIVES, btcvae, dip_i, dip_ii, elbo, factorvae, mmd, wae_gan
from vaekit.utils.errors import VaekitError

LATENT = 3


def model_and_batch(name: str = "mlp", batch: int = 6, **parts):
    torch.manual_seed(0)
    config = {"name": name, "image_shape": [1, 4, 4], "latent_dim": LATENT, "hidden": [8], **parts}
    if name == "cvae":
        config["num_classes"] = 3
    model = build_model(config)
    with torch.no_grad():  # posteriors spread apart, as a trained model's: a total correlation far from 0
        model.posterior.weight.mul_(4.0)
    if name == "cvae" and "trained_prior" not in parts:
        with torch.no_grad():
            model.trained_prior.means.copy_(torch.randn(3, LATENT))
    x = torch.bernoulli(torch.rand(batch, 1, 4, 4, generator=torch.Generator().manual_seed(1)))
    labels = torch.arange(batch) % 3 if name == "cvae" else None
    return model, x, labels


class Reference:
    """One draw per image with the noise of ``seed``, and what the ELBO makes of it, by torch.distributions.
    ``generator`` continues where the draw left it, as the objectives' generator does."""

    def __init__(self, model, x, labels, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self.mu, self.logvar = model.encode(x, labels)
        self.std = (0.5 * self.logvar).exp()
        self.z = self.mu + self.std * torch.randn(self.mu.shape, generator=self.generator)
        self.q = Normal(self.mu, self.std)
        centre = model.trained_prior.mean(labels) if model.conditional else torch.zeros_like(self.mu)
        self.p = Normal(centre, 1.0)
        pixels = Independent(Bernoulli(logits=model.decode_logits(self.z, labels)), 3)
        self.recon = -pixels.log_prob(x)
        self.kl = kl_divergence(self.q, self.p).sum(-1)
        self.log_q = self.q.log_prob(self.z).sum(-1)
        self.log_p = self.p.log_prob(self.z).sum(-1)


def exact_aggregate(z, mu, logvar):
    """log q(z_i) and sum_j log q(z_ij) under q(z) = 1/N sum_n N(z; mu_n, sigma_n^2), N = len(mu)."""
    n, d = mu.shape
    std = (0.5 * logvar).exp()
    joint = MixtureSameFamily(
        Categorical(logits=torch.zeros(n, dtype=mu.dtype)), Independent(Normal(mu, std), 1)
    )
    marginals = MixtureSameFamily(
        Categorical(logits=torch.zeros(d, n, dtype=mu.dtype)), Normal(mu.T, std.T)
    )  # batch shape [D]: one 1-D mixture per dimension
    return joint.log_prob(z), marginals.log_prob(z).sum(-1)


# ------------------------------------------------------------------- the aggregate posterior q(z)


@pytest.mark.parametrize(("batch", "size"), [(4, 10), (5, 5), (2, 3), (3, 1000)])
def test_stratified_weights_rows_sum_to_one_with_the_own_image_at_one_over_n(batch, size):
    weights = stratified_log_weights(batch, size).exp()
    assert weights.shape == (batch, batch) and weights.dtype == torch.float64
    torch.testing.assert_close(weights.sum(1), torch.ones(batch, dtype=torch.float64))
    torch.testing.assert_close(weights.diagonal(), torch.full((batch,), 1 / size, dtype=torch.float64))
    if batch == size:  # the whole data set: every image its exact share
        torch.testing.assert_close(weights, torch.full((batch, batch), 1 / size, dtype=torch.float64))


def test_stratified_weights_of_one_image_and_of_too_large_a_batch():
    torch.testing.assert_close(
        stratified_log_weights(1, 8).exp(), torch.tensor([[1 / 8]], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="a batch of 5 cannot come from 4 images"):
        stratified_log_weights(5, 4)


def random_posteriors(n: int, d: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, d, generator=g, dtype=torch.float64)
    logvar = 0.6 * torch.randn(n, d, generator=g, dtype=torch.float64)
    z = mu + (0.5 * logvar).exp() * torch.randn(n, d, generator=g, dtype=torch.float64)
    return z, mu, logvar


def test_aggregate_densities_of_the_whole_data_set_are_exact():
    z, mu, logvar = random_posteriors(5)
    log_qz, log_marginals = aggregate_log_densities(z, mu, logvar, dataset_size=5)
    exact_qz, exact_marginals = exact_aggregate(z, mu, logvar)
    torch.testing.assert_close(log_qz, exact_qz)
    torch.testing.assert_close(log_marginals, exact_marginals)
    assert not torch.allclose(log_qz, log_marginals)  # z is correlated across dimensions: TC != 0 here


def test_aggregate_density_of_a_minibatch_is_unbiased_for_q_not_log_q():
    """The mean of exp(log q(z_i)) over every batch of B that holds image i (B - 1 others of the N - 1, all
    equally likely) is the exact q(z_i): the stratified estimate is unbiased for q(z_i)."""
    size, batch = 6, 3
    z, mu, logvar = random_posteriors(size, seed=1)
    exact_qz, _ = exact_aggregate(z, mu, logvar)
    for i in range(size):
        others = [n for n in range(size) if n != i]
        estimates = []
        for position, chosen in enumerate(itertools.combinations(others, batch - 1)):
            rows = list(chosen)
            rows.insert(position % batch, i)  # i anywhere in the batch
            log_qz, _ = aggregate_log_densities(z[rows], mu[rows], logvar[rows], size)
            estimates.append(log_qz[rows.index(i)])
        estimates = torch.stack(estimates)
        torch.testing.assert_close(estimates.exp().mean(), exact_qz[i].exp())
        assert estimates.exp().std() > 0.01 * exact_qz[i].exp()  # single batches do differ from it
        assert estimates.mean() < exact_qz[i]  # and their log is biased low (Jensen)


def test_weighted_sampling_is_the_papers_sum_over_n_b():
    """Minibatch weighted sampling (Chen et al. 2018, sec. 4.1): log q(z_i) = logsumexp_j log q(z_i | x_j)
    - log(N B), every image of the batch alike; the marginals so per dimension."""
    z, mu, logvar = random_posteriors(4, seed=2)
    size = 50
    log_qz, log_marginals = aggregate_log_densities(z, mu, logvar, size, weighted=True)
    pairs = Normal(mu, (0.5 * logvar).exp()).log_prob(z[:, None, :])  # [i, j, D]
    torch.testing.assert_close(log_qz, torch.logsumexp(pairs.sum(-1), 1) - math.log(size * 4))
    torch.testing.assert_close(log_marginals, (torch.logsumexp(pairs, 1) - math.log(size * 4)).sum(-1))


def test_weighted_sampling_of_the_whole_data_set_is_off_by_constants():
    """With B = N each row sums to 1/N: log q(z) comes out log N low, and the total correlation of D
    dimensions (D - 1) log N high, as the docstring says."""
    z, mu, logvar = random_posteriors(5)
    log_qz, log_marginals = aggregate_log_densities(z, mu, logvar, dataset_size=5, weighted=True)
    exact_qz, exact_marginals = exact_aggregate(z, mu, logvar)
    torch.testing.assert_close(log_qz, exact_qz - math.log(5))
    torch.testing.assert_close(log_qz - log_marginals, exact_qz - exact_marginals + 2 * math.log(5))


# ------------------------------------------------------------------------------------- beta-TCVAE


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_btcvae_terms_add_up_to_log_q_minus_log_p(name):
    model, x, labels = model_and_batch(name)
    ref = Reference(model, x, labels)
    out = btcvae(model, x, labels, beta=1.0, dataset_size=100, generator=torch.Generator().manual_seed(0))
    one_draw_kl = ref.log_q - ref.log_p
    torch.testing.assert_close(out.terms["mi"] + out.terms["tc"] + out.terms["dim_kl"], one_draw_kl.mean())
    torch.testing.assert_close(out.objective, (ref.recon + one_draw_kl).mean())
    # the ELBO's terms, with the KL in closed form
    torch.testing.assert_close(out.terms["loss"], (ref.recon + ref.kl).mean())
    torch.testing.assert_close(out.terms["kl"], ref.kl.mean())


def test_btcvae_weights_the_total_correlation_by_beta():
    model, x, labels = model_and_batch()
    ref = Reference(model, x, labels)
    one = btcvae(model, x, beta=1.0, dataset_size=100, generator=torch.Generator().manual_seed(0))
    five = btcvae(model, x, beta=5.0, dataset_size=100, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(five.objective - one.objective, 4.0 * one.terms["tc"])
    assert abs(one.terms["tc"]) > 1e-3  # so the difference is not 0 = 0
    half = btcvae(
        model, x, beta=5.0, dataset_size=100, kl_weight=0.5, generator=torch.Generator().manual_seed(0)
    )
    kl_part = one.terms["mi"] + 5.0 * one.terms["tc"] + one.terms["dim_kl"]
    torch.testing.assert_close(half.objective, ref.recon.mean() + 0.5 * kl_part)


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_btcvae_terms_are_exact_when_the_batch_is_the_data_set(name):
    model, x, labels = model_and_batch(name)
    ref = Reference(model, x, labels)
    out = btcvae(model, x, labels, beta=3.0, dataset_size=len(x), generator=torch.Generator().manual_seed(0))
    log_qz, log_marginals = exact_aggregate(ref.z, ref.mu, ref.logvar)
    torch.testing.assert_close(out.terms["tc"], (log_qz - log_marginals).mean())
    torch.testing.assert_close(out.terms["mi"], (ref.log_q - log_qz).mean())
    torch.testing.assert_close(out.terms["dim_kl"], (log_marginals - ref.log_p).mean())


def test_btcvae_weighted_sampling_changes_the_gradient_only_where_the_batch_is_not_the_data_set():
    """At B = N the weighted estimate is the exact one less constants: the same gradient. At B < N the
    two estimators differ: the option does something."""

    def gradient(model, x, size, estimator):
        model.zero_grad()
        out = btcvae(model, x, beta=4.0, dataset_size=size, tc_estimator=estimator,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
        out.objective.backward()
        return out, model.posterior.weight.grad.clone()

    model, x, _ = model_and_batch()
    stratified, stratified_grad = gradient(model, x, len(x), "stratified")
    weighted, weighted_grad = gradient(model, x, len(x), "weighted")
    torch.testing.assert_close(weighted_grad, stratified_grad)
    torch.testing.assert_close(weighted.terms["tc"], stratified.terms["tc"] + (LATENT - 1) * math.log(len(x)))
    sum_of_terms = [out.terms["mi"] + out.terms["tc"] + out.terms["dim_kl"] for out in (weighted, stratified)]
    torch.testing.assert_close(*sum_of_terms)  # the offsets cancel in the KL
    _, stratified_grad = gradient(model, x, 1000, "stratified")
    _, weighted_grad = gradient(model, x, 1000, "weighted")
    assert not torch.allclose(weighted_grad, stratified_grad, atol=1e-3)


@pytest.mark.parametrize("estimator", ["stratified", "weighted"])
@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_btcvae_exact_kl_form_is_the_closed_form_kl_plus_beta_minus_one_tc(name, estimator):
    """disentanglement_lib's form: recon + w (KL + (beta - 1) TC), the KL in closed form. On the same draw
    it differs from the split form by w (one-draw KL - closed-form KL) alone, which is 0 in expectation."""
    model, x, labels = model_and_batch(name)
    ref = Reference(model, x, labels)
    options = dict(beta=5.0, dataset_size=len(x), tc_estimator=estimator, kl_weight=0.5)
    outs = {
        form: btcvae(model, x, labels, kl_form=form, generator=torch.Generator().manual_seed(0), **options)
        for form in ("split", "exact")
    }
    log_qz, log_marginals = exact_aggregate(ref.z, ref.mu, ref.logvar)
    offset = (LATENT - 1) * math.log(len(x)) if estimator == "weighted" else 0.0  # see the weighted test
    tc = (log_qz - log_marginals).mean() + offset
    torch.testing.assert_close(outs["exact"].terms["tc"], tc)
    torch.testing.assert_close(outs["exact"].objective, ref.recon.mean() + 0.5 * (ref.kl.mean() + 4.0 * tc))
    one_draw_minus_closed_form = (ref.log_q - ref.log_p - ref.kl).mean()
    assert abs(one_draw_minus_closed_form) > 1e-3  # so the two forms differ on this draw
    torch.testing.assert_close(
        outs["split"].objective - outs["exact"].objective, 0.5 * one_draw_minus_closed_form
    )
    assert outs["split"].terms.keys() == outs["exact"].terms.keys()  # the same terms reported


@pytest.mark.parametrize(
    "parts", [{"posterior": "iaf", "flow_steps": 1}, {"trained_prior": "vamp", "pseudo_inputs": 2}]
)
def test_btcvae_refuses_a_flow_or_a_vamp_prior(parts):
    model, x, labels = model_and_batch(**parts)
    with pytest.raises(VaekitError, match="beta-TCVAE needs a Gaussian posterior"):
        btcvae(model, x, labels, dataset_size=100)


# -------------------------------------------------------------------------------------- FactorVAE


def test_permute_dims_shuffles_each_column_on_its_own():
    batch, dim = 20, 4
    z = torch.arange(batch, dtype=torch.float32)[:, None] + 100.0 * torch.arange(dim)
    shuffled = permute_dims(z, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled.sort(0).values, z)  # each column keeps its values
    permutations = (shuffled - 100.0 * torch.arange(dim)).long().T.tolist()
    assert len({tuple(p) for p in permutations}) == dim  # one permutation per column
    assert all(p != list(range(batch)) for p in permutations)
    assert torch.equal(shuffled, permute_dims(z, torch.Generator().manual_seed(0)))  # seeded


def test_permute_dims_draws_every_permutation_equally_often():
    columns = 6000
    z = torch.arange(3, dtype=torch.float32)[:, None].expand(3, columns)
    shuffled = permute_dims(z, torch.Generator().manual_seed(1)).long().T.tolist()
    counts = {p: 0 for p in itertools.permutations(range(3))}
    for p in shuffled:
        counts[tuple(p)] += 1
    for count in counts.values():  # 1000 expected each, standard deviation 29
        assert abs(count - columns / 6) < 150


def discriminator_loss(discriminator, labelled_1, labelled_0):
    """-log D(labelled_1) - log(1 - D(labelled_0)), batch means, D the sigmoid of the logit: FactorVAE's
    discriminator (z against its shuffle) and WAE-GAN's adversary (prior draws against the codes)."""
    return -F.logsigmoid(discriminator(labelled_1)).mean() - F.logsigmoid(-discriminator(labelled_0)).mean()


def cannot_tell(discriminator) -> None:
    """A logit of 0 for every input: D = 1/2."""
    with torch.no_grad():
        discriminator.net[-1].weight.zero_()
        discriminator.net[-1].bias.zero_()


def test_factorvae_gives_each_part_exactly_its_own_gradient():
    model, x, labels = model_and_batch(tc_discriminator=[16, 16])
    gamma = 7.0
    out = factorvae(model, x, gamma=gamma, generator=torch.Generator().manual_seed(0))
    model.zero_grad()
    out.objective.backward()

    ref = Reference(model, x, labels)
    frozen = copy.deepcopy(model.discriminator).requires_grad_(False)
    tc = frozen(ref.z)
    vae_loss = (ref.recon + ref.kl).mean() + gamma * tc.mean()
    vae_names = [n for n, _ in model.named_parameters() if not n.startswith("discriminator.")]
    vae_params = [p for n, p in model.named_parameters() if not n.startswith("discriminator.")]
    expected = torch.autograd.grad(vae_loss, vae_params, retain_graph=True)
    for name, param, grad in zip(vae_names, vae_params, expected, strict=True):
        torch.testing.assert_close(param.grad, grad, msg=name)

    z = ref.z.detach()
    shuffled = permute_dims(z, ref.generator)  # the generator goes on from the draw, as the objective's
    loss_d = discriminator_loss(model.discriminator, z, shuffled)
    d_params = list(model.discriminator.parameters())
    for param, grad in zip(d_params, torch.autograd.grad(loss_d, d_params), strict=True):
        torch.testing.assert_close(param.grad, grad)

    torch.testing.assert_close(out.terms["tc"], tc.mean())
    torch.testing.assert_close(out.terms["discriminator"], loss_d.detach())
    torch.testing.assert_close(out.objective, vae_loss + loss_d)
    # the checks above can fail: the tc term does reach the discriminator if not frozen, and the
    # discriminator's loss does reach the encoder if z is not detached
    assert torch.autograd.grad(model.discriminator(ref.z).mean(), d_params[0])[0].abs().sum() > 0
    leak = discriminator_loss(model.discriminator, ref.z, ref.z.flip(0))
    assert torch.autograd.grad(leak, vae_params[0], allow_unused=True)[0].abs().sum() > 0


def test_factorvae_discriminator_loss_is_log_4_when_it_cannot_tell():
    model, x, _ = model_and_batch(tc_discriminator=[16, 16])
    cannot_tell(model.discriminator)
    out = factorvae(model, x, gamma=3.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.terms["discriminator"], torch.tensor(math.log(4.0)))
    assert out.terms["tc"] == 0


def test_factorvae_discriminator_is_its_own_parameter_group_and_is_required():
    model, x, _ = model_and_batch(tc_discriminator=[16, 16])
    rest, disc = model.parameter_groups(1e-3)
    assert rest["lr"] == 1e-3 and disc["lr"] == 1e-4 and tuple(disc["betas"]) == (0.5, 0.9)
    assert {id(p) for p in disc["params"]} == {id(p) for p in model.discriminator.parameters()}
    assert {id(p) for p in rest["params"]} | {id(p) for p in disc["params"]} == {
        id(p) for p in model.parameters()
    }
    assert not {id(p) for p in rest["params"]} & {id(p) for p in disc["params"]}
    plain, x, _ = model_and_batch()
    with pytest.raises(VaekitError, match="tc_discriminator"):
        factorvae(plain, x)


# ---------------------------------------------------------------------------------------- DIP-VAE


def numpy_dip_penalty(cov: np.ndarray, lambda_od: float, lambda_d: float) -> float:
    total = 0.0
    for i in range(len(cov)):
        for j in range(len(cov)):
            total += lambda_d * (cov[i, i] - 1.0) ** 2 if i == j else lambda_od * cov[i, j] ** 2
    return total


def test_covariance_matches_numpy():
    x = torch.randn(7, 4, dtype=torch.float64)
    np.testing.assert_allclose(covariance(x).numpy(), np.cov(x.numpy(), rowvar=False, bias=True), rtol=1e-12)


def test_dip_penalty_matches_a_direct_computation():
    cov = torch.randn(4, 4, dtype=torch.float64)
    cov = cov @ cov.T / 4
    expected = numpy_dip_penalty(cov.numpy(), 3.0, 11.0)
    assert dip_penalty(cov, 3.0, 11.0).item() == pytest.approx(expected, rel=1e-12)
    assert dip_penalty(torch.eye(3), 3.0, 11.0).item() == 0.0


@pytest.mark.parametrize("kind", ["i", "ii"])
def test_dip_objective_is_the_elbo_plus_the_penalty(kind):
    model, x, labels = model_and_batch()
    lambda_od = 2.5
    objective = dip_i if kind == "i" else dip_ii
    out = objective(model, x, lambda_od=lambda_od, kl_weight=0.5, generator=torch.Generator().manual_seed(0))
    base = elbo(model, x, kl_weight=0.5, generator=torch.Generator().manual_seed(0))
    mu, logvar = (t.detach().double().numpy() for t in model.encode(x))
    cov = np.cov(mu, rowvar=False, bias=True)
    if kind == "ii":
        cov = cov + np.diag(np.exp(logvar).mean(0))
    lambda_d = 10 * lambda_od if kind == "i" else lambda_od
    penalty = numpy_dip_penalty(cov, lambda_od, lambda_d)
    assert out.terms["dip"].item() == pytest.approx(penalty, rel=1e-5)
    assert out.objective.item() == pytest.approx(base.objective.item() + penalty, rel=1e-5)
    torch.testing.assert_close(out.terms["loss"], base.terms["loss"])


def test_dip_refuses_a_flow():
    model, x, _ = model_and_batch(posterior="iaf", flow_steps=1)
    for objective in (dip_i, dip_ii):
        with pytest.raises(VaekitError, match="DIP-VAE needs the Gaussian posterior"):
            objective(model, x)


# ------------------------------------------------------------------------------------------- MMD


def numpy_imq_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 with sum_s C_s / (C_s + |a - b|^2), C_s = 2 D s, by explicit loops."""
    n, m, d = len(x), len(y), x.shape[1]

    def k(a, b):
        distance = float(((a - b) ** 2).sum())
        return sum(2 * d * s / (2 * d * s + distance) for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0))

    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_imq_mmd_matches_a_direct_double_loop():
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(4, 3, generator=g, dtype=torch.float64),
    )
    y = y + 0.5
    assert imq_mmd(x, y).item() == pytest.approx(numpy_imq_mmd(x.numpy(), y.numpy()), rel=1e-10)


def test_imq_mmd_is_near_zero_for_one_distribution_and_positive_for_two():
    same, shifted = [], []
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        x, y = (
            torch.randn(64, 3, generator=g, dtype=torch.float64),
            torch.randn(64, 3, generator=g, dtype=torch.float64),
        )
        same.append(imq_mmd(x, y).item())
        shifted.append(imq_mmd(x, y + 1.0).item())
    same, shifted = np.array(same), np.array(shifted)
    assert same.min() < 0 < same.max()  # unbiased: its draws fall either side of 0
    assert abs(same.mean()) < 3 * same.std() / math.sqrt(len(same))
    assert shifted.min() > same.max() + 5 * same.std()


def prior_draws_of_a_vamp_model(model, n: int, generator: torch.Generator) -> torch.Tensor:
    """What VampPrior.sample draws after the posterior's noise: a pseudo-input, then its posterior."""
    mu, logvar = model.encode(model.trained_prior.pseudo_inputs())
    pick = torch.randint(len(mu), (n,), generator=generator)
    eps = torch.randn(n, mu.shape[1], generator=generator)
    return mu[pick] + (0.5 * logvar[pick]).exp() * eps


def prior_draws_of(name: str, model, labels, n: int, generator: torch.Generator) -> torch.Tensor:
    """One draw from the model's prior per image of the batch (n images; per label for the cvae)."""
    if name == "vamp":
        return prior_draws_of_a_vamp_model(model, n, generator)
    prior_z = torch.randn(n, LATENT, generator=generator)
    return prior_z + model.trained_prior.means[labels] if name == "cvae" else prior_z


@pytest.mark.parametrize("prior_draws", [1, 3])
@pytest.mark.parametrize("name", ["mlp", "cvae", "vamp"])
def test_mmd_objective_is_the_elbo_plus_the_weighted_mmd_of_posterior_and_prior_draws(name, prior_draws):
    parts = {"trained_prior": "vamp", "pseudo_inputs": 3} if name == "vamp" else {}
    model, x, labels = model_and_batch("mlp" if name == "vamp" else name, **parts)
    seeded = torch.Generator().manual_seed(0)
    out = mmd(model, x, labels, mmd_weight=30.0, prior_draws=prior_draws, kl_weight=0.5, generator=seeded)
    base = elbo(model, x, labels, kl_weight=0.5, generator=torch.Generator().manual_seed(0))
    ref = Reference(model, x, labels)  # z first, then the prior's draws, from one generator
    # prior_draws batches' worth of draws, one after the other: each image's prior K times
    draws = [prior_draws_of(name, model, labels, len(x), ref.generator) for _ in range(prior_draws)]
    prior_z = torch.cat(draws)
    assert len(prior_z) == prior_draws * len(x)
    distance = numpy_imq_mmd(ref.z.detach().double().numpy(), prior_z.detach().double().numpy())
    assert out.terms["mmd"].item() == pytest.approx(distance, rel=1e-4, abs=1e-6)  # float32 distances
    torch.testing.assert_close(out.objective, base.objective + 30.0 * out.terms["mmd"])


# ------------------------------------------------------------------------------------- WAE-GAN


def test_wae_gan_gives_each_part_exactly_its_own_gradient():
    model, x, labels = model_and_batch(prior_adversary=[16, 16])
    out = wae_gan(model, x, gan_weight=3.0, kl_weight=0.5, generator=torch.Generator().manual_seed(0))
    model.zero_grad()
    out.objective.backward()

    ref = Reference(model, x, labels)  # z first, then one prior draw per image, from one generator
    frozen = copy.deepcopy(model.adversary).requires_grad_(False)
    penalty = -F.logsigmoid(frozen(ref.z)).mean()
    vae_loss = (ref.recon + 0.5 * ref.kl).mean() + 3.0 * penalty
    vae = [(n, p) for n, p in model.named_parameters() if not n.startswith("adversary.")]
    expected = torch.autograd.grad(vae_loss, [p for _, p in vae], retain_graph=True)
    for (name, param), grad in zip(vae, expected, strict=True):
        torch.testing.assert_close(param.grad, grad, msg=name)

    prior_z = torch.randn(len(x), LATENT, generator=ref.generator)
    loss_d = discriminator_loss(model.adversary, prior_z, ref.z.detach())
    d_params = list(model.adversary.parameters())
    for param, grad in zip(d_params, torch.autograd.grad(loss_d, d_params), strict=True):
        torch.testing.assert_close(param.grad, grad)

    torch.testing.assert_close(out.terms["penalty"], penalty)
    torch.testing.assert_close(out.terms["adversary"], loss_d.detach())
    torch.testing.assert_close(out.objective, vae_loss + loss_d)
    # the checks above can fail: the penalty does reach the adversary if not frozen, and the
    # adversary's loss does reach the encoder if z is not detached
    assert torch.autograd.grad(model.adversary(ref.z).mean(), d_params[0])[0].abs().sum() > 0
    leak = discriminator_loss(model.adversary, prior_z, ref.z)
    assert torch.autograd.grad(leak, vae[0][1], allow_unused=True)[0].abs().sum() > 0


def test_wae_gan_losses_are_log_2_and_log_4_when_the_adversary_cannot_tell():
    model, x, _ = model_and_batch(prior_adversary=[16, 16])
    cannot_tell(model.adversary)
    out = wae_gan(model, x, gan_weight=2.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.terms["penalty"], torch.tensor(math.log(2.0)))
    torch.testing.assert_close(out.terms["adversary"], torch.tensor(math.log(4.0)))
    base = elbo(model, x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.objective, base.objective + (2.0 * math.log(2.0) + math.log(4.0)))


def trained_adversary(shift: float, steps: int = 200):
    """An adversary trained to tell N(0, I) from codes drawn from N(shift, I), and its draws' generator."""
    model, _, _ = model_and_batch(prior_adversary=[32, 32])
    adversary, draws = model.adversary, torch.Generator().manual_seed(2)
    optimizer = torch.optim.Adam(adversary.parameters(), lr=5e-3)
    for _ in range(steps):
        prior_z, codes = torch.randn(64, LATENT, generator=draws), torch.randn(64, LATENT, generator=draws)
        optimizer.zero_grad()
        discriminator_loss(adversary, prior_z, codes + shift).backward()
        optimizer.step()
    return adversary, draws


def test_a_trained_adversary_pushes_shifted_codes_back_to_the_prior():
    """The adversary learns to tell codes around 3 from N(0, I), and not N(0, I) from itself; the
    penalty's gradient then moves the shifted codes towards the prior: what makes q(z) fill p(z)."""
    same, draws = trained_adversary(shift=0.0)
    with torch.no_grad():
        prior_z, codes = torch.randn(512, LATENT, generator=draws), torch.randn(512, LATENT, generator=draws)
        assert abs(discriminator_loss(same, prior_z, codes) - math.log(4.0)) < 0.1  # it cannot tell
    adversary, draws = trained_adversary(shift=3.0)
    prior_z, codes = torch.randn(512, LATENT, generator=draws), torch.randn(512, LATENT, generator=draws)
    with torch.no_grad():
        assert discriminator_loss(adversary, prior_z, codes + 3) < 0.1
    shifted = (codes + 3).requires_grad_(True)
    (grad,) = torch.autograd.grad(-F.logsigmoid(adversary(shifted)).mean(), shifted)
    assert (grad > 0).float().mean() > 0.9  # descending the penalty lowers every coordinate, towards 0


def test_wae_gan_adversary_is_its_own_parameter_group_and_is_required():
    model, x, _ = model_and_batch(prior_adversary=[16, 16])
    rest, adversary = model.parameter_groups(1e-3)
    assert rest["lr"] == 1e-3 and adversary["lr"] == 5e-4 and tuple(adversary["betas"]) == (0.5, 0.999)
    assert {id(p) for p in adversary["params"]} == {id(p) for p in model.adversary.parameters()}
    plain, x, _ = model_and_batch()
    with pytest.raises(VaekitError, match="prior_adversary"):
        wae_gan(plain, x)


# ------------------------------------------------------------------------------- a batch of one


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_every_objective_takes_a_batch_of_one_image(objective):
    model, x, _ = model_and_batch(batch=1, tc_discriminator=[16, 16], prior_adversary=[16, 16])
    options = {"btcvae": {"dataset_size": 10}, "iwae": {"k": 3}}.get(objective, {})
    out = model.loss(x, objective=objective, generator=torch.Generator().manual_seed(0), **options)
    assert out.objective.ndim == 0 and torch.isfinite(out.objective)
    assert all(torch.isfinite(v) for v in out.terms.values())
    if objective in ("btcvae", "dip-i", "dip-ii", "mmd"):  # no pairs to estimate with: the ELBO
        base = elbo(model, x, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out.objective, base.objective)
    if objective == "factorvae":  # nothing for the discriminator to learn from one image
        base = elbo(model, x, generator=torch.Generator().manual_seed(0))
        assert "discriminator" not in out.terms
        torch.testing.assert_close(out.objective, base.objective + 10.0 * out.terms["tc"])
