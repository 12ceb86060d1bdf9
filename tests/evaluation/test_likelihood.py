"""The importance-sampled -log p(x) over a hierarchy of latents, where the answer is known: a linear-
Gaussian model with two latent layers, z2 ~ N(0, I), z1 | z2 ~ N(A z2 + a, s1^2 I), x | z1 ~ N(B z1 + b,
s0^2 I), whose marginal is x ~ N(B a + b, B A A^T B^T + s1^2 B B^T + s0^2 I)."""

import math

import torch
from torch.distributions import MultivariateNormal, Normal

from vaekit.evaluation.likelihood import iwae_nll


class TwoLayerLinearGaussian(torch.nn.Module):
    """The model above with a Gaussian posterior per layer that is close to, not at, the exact one:
    q(z2 | x) and q(z1 | x, z2), each the exact conditional's mean with its covariance times ``widen``
    (at widen = 1 every weight is exactly p(x))."""

    def __init__(self, pixels: int = 5, d1: int = 3, d2: int = 2, widen: float = 1.5) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.A, self.a = torch.randn(d1, d2, generator=g), 0.3 * torch.randn(d1, generator=g)
        self.B, self.b = torch.randn(pixels, d1, generator=g), 0.3 * torch.randn(pixels, generator=g)
        self.s1, self.s0, self.widen = 0.7, 0.5, widen
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def marginal(self) -> MultivariateNormal:
        pixels = len(self.b)
        cov = self.B @ (self.A @ self.A.T + self.s1**2 * torch.eye(len(self.a))) @ self.B.T
        return MultivariateNormal(self.B @ self.a + self.b, cov + self.s0**2 * torch.eye(pixels))

    def _posterior_z2(self, x: torch.Tensor) -> Normal:
        # the joint of (z2, x) is Gaussian: z2 | x by the usual conditioning formula
        marginal = self.marginal()
        cross = self.A.T @ self.B.T  # Cov(z2, x)
        gain = cross @ torch.linalg.inv(marginal.covariance_matrix)
        mean = (x - marginal.mean) @ gain.T
        cov = torch.eye(len(self.A.T)) - gain @ cross.T
        return MultivariateNormal(mean, self.widen * (cov + cov.T) / 2)

    def _posterior_z1(self, x: torch.Tensor, z2: torch.Tensor) -> Normal:
        prior_mean = z2 @ self.A.T + self.a
        precision = torch.eye(len(self.a)) / self.s1**2 + self.B.T @ self.B / self.s0**2
        cov = torch.linalg.inv(precision)
        mean = (prior_mean / self.s1**2 + (x - self.b) @ self.B / self.s0**2) @ cov
        return MultivariateNormal(mean, self.widen * (cov + cov.T) / 2)

    def importance_context(self, x, labels=None):
        return x.flatten(1)

    def log_weights(self, x, labels, k, generator=None, posterior=None, prior="standard", noise_rows=None):
        x = x.flatten(1)
        q2 = self._posterior_z2(x)
        eps2 = torch.randn((k, *q2.mean.shape), generator=generator)
        z2 = q2.mean + (q2.scale_tril @ eps2.unsqueeze(-1)).squeeze(-1)
        q1 = self._posterior_z1(x, z2)
        eps1 = torch.randn(z2.shape[:-1] + (len(self.a),), generator=generator)
        z1 = q1.mean + (q1.scale_tril @ eps1.unsqueeze(-1)).squeeze(-1)
        log_p = (
            Normal(0.0, 1.0).log_prob(z2).sum(-1)
            + Normal(z2 @ self.A.T + self.a, self.s1).log_prob(z1).sum(-1)
            + Normal(z1 @ self.B.T + self.b, self.s0).log_prob(x).sum(-1)
        )
        log_q = q2.log_prob(z2) + q1.log_prob(z1)
        return log_p - log_q, torch.zeros_like(log_p)


def test_the_estimate_converges_to_the_exact_likelihood_of_a_two_layer_linear_gaussian_model():
    model = TwoLayerLinearGaussian()
    x = model.marginal().sample((64,)).view(64, 1, 1, 5)
    exact = -model.marginal().log_prob(x.flatten(1)).double()
    # the weights' relative variance Var(w) / E[w]^2, measured: with posteriors 1.5x too wide, ~0.34
    log_w, _ = model.log_weights(x, None, 4000, torch.Generator().manual_seed(9))
    w = (log_w - log_w.max(0).values).exp()
    relative_variance = (w.var(0) / w.mean(0) ** 2).max().item()
    assert 0.1 < relative_variance < 1.0
    # so at k = 5000 the estimate's standard error is sqrt(relvar / k) (delta method) and its bias
    # relvar / 2k: every image within 6 standard errors (each fails with p < 2e-9, all 64 with < 1.3e-7)
    # and their mean within 6 standard errors of a mean of 64
    k = 5000
    error = iwae_nll(model, x, k=k, max_decodes=4096) - exact
    standard_error = math.sqrt(relative_variance / k)
    assert error.abs().max() < 6 * standard_error, (error.abs().max(), standard_error)
    assert abs(error.mean()) < 6 * standard_error / math.sqrt(len(x)) + relative_variance / (2 * k)
    # one draw (k = 1) is the ELBO: far noisier, and on average not below the exact value
    one = iwae_nll(model, x, k=1) - exact
    assert one.abs().max() > 10 * error.abs().max()


def test_networks_in_bf16_move_the_likelihood_by_hundredths_of_a_nat(trained_run):
    """Evaluation's networks in bf16 (autocast), every density and sum in float32, the same draws:
    -log p(x) and the -ELBO within 0.05 nats of float32 (benchmarks/eval_precision.py measures it on
    trained MNIST models: under 0.004)."""
    from vaekit import load
    from vaekit.evaluation.likelihood import elbo_terms, evaluation_precision

    model = load(trained_run)
    x = (torch.rand(64, *model.image_shape, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    fp32, bf16 = (iwae_nll(model, x, k=50, seed=0, precision=p) for p in ("fp32", "bf16"))
    assert abs((bf16 - fp32).mean().item()) < 0.05 and not torch.equal(bf16, fp32)  # bf16 did run
    elbo = [elbo_terms(model, x, seed=0, precision=p)["loss"] for p in ("fp32", "bf16")]
    assert abs(elbo[1] - elbo[0]) < 0.05
    assert evaluation_precision("auto", torch.device("cpu")) == "fp32"
    assert evaluation_precision("auto", torch.device("cuda")) == "bf16"


def test_a_hierarchys_distributions_stay_float32_under_bf16():
    from vaekit.models import build_model

    torch.manual_seed(0)
    model = build_model({"name": "hvae", "image_shape": [1, 8, 8], "scales": 2, "groups": 1,
                         "latent_channels": 2, "width": 8, "stem": 1})  # fmt: skip
    x = (torch.rand(4, 1, 8, 8) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        groups = model.group_means(x)
        terms = model.loss(x, generator=torch.Generator().manual_seed(0)).terms
    assert all(g.mean.dtype == g.logvar.dtype == g.posterior.mean.dtype == torch.float32 for g in groups)
    assert all(value.dtype == torch.float32 for value in terms.values())


def test_a_cpu_keeps_its_cache_sized_batches_and_measures_nothing():
    from vaekit.utils.devices import device_batch

    def work(n: int) -> None:
        raise AssertionError("a CPU's batch is not measured")

    assert device_batch(torch.device("cpu"), 1000, work, 10**6) == 1000
