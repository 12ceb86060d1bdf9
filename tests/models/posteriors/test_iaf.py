"""The inverse autoregressive flow posterior: log-determinants against autograd Jacobians, its density
against torch.distributions and an importance-sampling identity, and a flow model's importance-weighted
log p(x) against the exact log p(x) of a 2-D latent integrated on a grid."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import Bernoulli, Independent, Normal

import vaekit
from tests.conftest import Z_MISS
from vaekit.models import build_model
from vaekit.models.objectives import elbo, iwae
from vaekit.models.posteriors import DiagonalGaussian, FlowPosterior, InverseAutoregressiveFlow
from vaekit.models.posteriors.iaf import IAFStep


def randomise_outputs(module: torch.nn.Module, seed: int, scale: float = 0.5) -> None:
    """Random weights for every step's output layer (it starts at zero, where the flow is a scaling)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for step in module.modules():
            if isinstance(step, IAFStep):
                for p in (step.layer_out.weight, step.layer_out.bias):
                    p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def make_step(dim: int, order: torch.Tensor, seed: int = 0) -> IAFStep:
    torch.manual_seed(seed)
    step = IAFStep(dim, 16, order).double()
    randomise_outputs(step, seed + 100)
    return step


def make_flow(dim: int, steps: int = 3, seed: int = 0) -> InverseAutoregressiveFlow:
    torch.manual_seed(seed)
    flow = InverseAutoregressiveFlow(dim, steps, 16).double()
    randomise_outputs(flow, seed + 100)
    return flow


def jacobian_log_det(fn, z: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """log |det dz'/dz| of z -> fn(z, context)[0], one sample at a time: z [..., D] -> [...]."""
    flat_z = z.reshape(-1, z.shape[-1])
    flat_c = context.expand(*z.shape[:-1], context.shape[-1]).reshape(len(flat_z), -1)
    dets = [
        torch.linalg.slogdet(jacobian(lambda v, c=c: fn(v, c)[0], v))[1]
        for v, c in zip(flat_z, flat_c, strict=True)
    ]
    return torch.stack(dets).view(z.shape[:-1])


def orders(dim: int) -> list[torch.Tensor]:
    return [torch.arange(dim), torch.arange(dim - 1, -1, -1)]


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("reverse", [False, True])
def test_step_log_det_is_the_log_abs_det_of_its_jacobian(dim, reverse):
    step = make_step(dim, orders(dim)[reverse], seed=dim)
    g = torch.Generator().manual_seed(dim)
    z = torch.randn(4, dim, generator=g, dtype=torch.float64)
    context = torch.randn(4, 2 * dim, generator=g, dtype=torch.float64)
    _, log_det = step(z, context)
    assert log_det.shape == (4,)
    torch.testing.assert_close(log_det, jacobian_log_det(step, z, context))


@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("reverse", [False, True])
def test_step_jacobian_is_triangular_in_the_step_order(dim, reverse):
    order = orders(dim)[reverse]
    step = make_step(dim, order, seed=10 + dim)
    position = torch.empty(dim, dtype=torch.long)
    position[order] = torch.arange(dim)  # where each dimension comes in the step's order
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        z = torch.randn(dim, generator=g, dtype=torch.float64)
        context = torch.randn(2 * dim, generator=g, dtype=torch.float64)
        jac = jacobian(lambda v, c=context: step(v, c)[0], z)  # jac[j, i] = dz'_j / dz_i
        later = position[None, :] > position[:, None]  # input i comes after output j
        earlier = position[None, :] < position[:, None]
        assert torch.all(jac[later] == 0)  # exactly: the masks cut these paths
        assert torch.all(jac[earlier] != 0)  # every earlier input does reach (random output weights)
        assert torch.all(jac.diagonal() > 0) and torch.all(jac.diagonal() < 1)  # sigma in (0, 1)


def test_a_one_dimensional_step_depends_on_z_only_through_the_scaling():
    step = make_step(1, torch.arange(1), seed=4)
    context = torch.randn(3, 2, dtype=torch.float64)
    z = torch.randn(3, 1, dtype=torch.float64)
    out, log_det = step(z, context)
    shifted, shifted_log_det = step(z + 1.0, context)
    torch.testing.assert_close(shifted - out, log_det.exp()[:, None])  # z' = sigma z + (1 - sigma) m
    torch.testing.assert_close(shifted_log_det, log_det)


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_flow_log_det_is_the_log_abs_det_of_its_jacobian(dim):
    flow = make_flow(dim, steps=3, seed=dim)
    g = torch.Generator().manual_seed(dim)
    z = torch.randn(2, 3, dim, generator=g, dtype=torch.float64)  # k draws of B images: one context each
    context = torch.randn(3, 2 * dim, generator=g, dtype=torch.float64)
    out, log_det = flow(z, context)
    assert out.shape == z.shape and log_det.shape == (2, 3)
    torch.testing.assert_close(log_det, jacobian_log_det(flow, z, context))
    if dim > 1:  # two steps in opposite orders: the composed Jacobian is full
        jac = jacobian(lambda v: flow(v, context[0])[0], z[0, 0])
        assert torch.all(jac != 0)


def flow_posterior(dim: int = 3, batch: int = 4, seed: int = 0) -> FlowPosterior:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(batch, dim, generator=g, dtype=torch.float64)
    return FlowPosterior(DiagonalGaussian(mean, logvar), make_flow(dim, steps=2, seed=seed))


@pytest.mark.parametrize("k", [None, 3])
def test_flow_posterior_log_q_is_the_base_density_minus_the_log_det(k):
    q = flow_posterior()
    z, log_q = q.rsample_with_log_prob(k, torch.Generator().manual_seed(5))
    shape = (4,) if k is None else (k, 4)
    assert z.shape == (*shape, 3) and log_q.shape == shape
    eps = torch.randn(*shape, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    std = (0.5 * q.base.logvar).exp()
    z0 = q.base.mean + std * eps
    context = torch.cat([q.base.mean, q.base.logvar], dim=-1)
    torch.testing.assert_close(z, q.flow(z0, context)[0])
    expected = Normal(q.base.mean, std).log_prob(z0).sum(-1) - jacobian_log_det(q.flow, z0, context)
    torch.testing.assert_close(log_q, expected)


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_flow_posterior_log_prob_anywhere_inverts_the_flow(dim):
    """log q(z) at points the flow did not draw: z = flow(z_0) for any z_0, and log q(z) is the base
    density of z_0 less the log-determinant; the inverse gives z_0 back."""
    q = flow_posterior(dim=dim, seed=dim)
    z0 = 3.0 * torch.randn(2, 4, dim, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    z, log_det = q.flow(z0, q.context)
    back, _ = q.flow.inverse(z, q.context)
    torch.testing.assert_close(back, z0)
    expected = Normal(q.base.mean, (0.5 * q.base.logvar).exp()).log_prob(z0).sum(-1) - log_det
    torch.testing.assert_close(q.log_prob(z), expected)
    drawn, log_q = q.rsample_with_log_prob(3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(q.log_prob(drawn), log_q)  # the same value as at its own draws


def test_flow_posterior_mode_is_the_flow_of_the_base_mean():
    q = flow_posterior(seed=1)
    z = q.base.mean
    for step in q.flow.steps:  # by hand: each step in turn, with the base's (mean, logvar) as context
        z = step(z, torch.cat([q.base.mean, q.base.logvar], dim=1))[0]
    torch.testing.assert_close(q.mode(), z)
    assert not torch.allclose(q.mode(), q.base.mean)


def test_importance_sampling_identity_holds_for_a_2d_flow_posterior():
    """E_q[p_ref(z) / q(z)] = 1 for any normalised p_ref: only a correct log q makes it so."""
    q = flow_posterior(dim=2, batch=1, seed=2)
    pilot, _ = q.rsample_with_log_prob(20_000, torch.Generator().manual_seed(0))
    # narrower than q where q has its mass, so that the weights have a small variance
    p_ref = Normal(pilot.mean(0)[0], 0.6 * pilot.std(0)[0])
    with torch.no_grad():
        z, log_q = q.rsample_with_log_prob(100_000, torch.Generator().manual_seed(1))
    w = (p_ref.log_prob(z[:, 0]).sum(-1) - log_q[:, 0]).exp()
    standard_error = w.std() / math.sqrt(len(w))
    assert standard_error < 0.005  # enough draws for the identity to tell a wrong log q by 0.025 or more
    assert abs(w.mean().item() - 1.0) < Z_MISS * standard_error
    # the flow is far from the identity there: a wrong log-determinant would break the identity
    _, log_det = q.flow(pilot[:1000], q.context)
    assert log_det.abs().min() > 0.3


# --------------------------------------------------------------------------------- a flow model


def flow_model(**options):
    torch.manual_seed(0)
    config = {"name": "mlp", "image_shape": [1, 4, 4], "latent_dim": 2, "hidden": [8]}
    model = build_model({**config, "posterior": "iaf", "flow_steps": 2, **options})
    randomise_outputs(model.variational_family, 7, scale=0.3)
    x = torch.bernoulli(torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1)))
    return model, x


def reference_log_weights(model, x, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x|z) + log p(z) - log q(z|x) and -log p(x|z) for k draws with the noise of ``seed``."""
    mu, logvar = model.encode(x)
    std = (0.5 * logvar).exp()
    z0 = mu + std * torch.randn(k, *mu.shape, generator=torch.Generator().manual_seed(seed))
    context = torch.cat([mu, logvar], dim=-1)
    flow = model.variational_family.flow
    z = flow(z0, context)[0]
    log_q = Normal(mu, std).log_prob(z0).sum(-1) - jacobian_log_det(flow, z0, context)
    pixels = Independent(Bernoulli(logits=model.decode_logits(z.reshape(-1, 2))), 3)
    recon = -pixels.log_prob(x.repeat(k, 1, 1, 1)).view(k, -1)
    return -recon + Normal(0.0, 1.0).log_prob(z).sum(-1) - log_q, recon


def test_flow_model_log_weights_elbo_and_iwae_agree_with_the_reference():
    model, x = flow_model()
    assert not model.closed_form_kl
    k = 4
    expected, recon = reference_log_weights(model, x, k, seed=3)
    log_w, model_recon = model.log_weights(x, None, k, torch.Generator().manual_seed(3))
    torch.testing.assert_close(log_w, expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(model_recon, recon)
    given, _ = model.log_weights(x, None, k, torch.Generator().manual_seed(3), posterior=model.encode(x))
    torch.testing.assert_close(given, log_w)  # an encoder output passed in goes through the flow too
    out = iwae(model, x, k=k, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        out.terms["loss"], -expected.mean(), atol=1e-4, rtol=1e-5
    )  # the ELBO, averaged
    bound = torch.logsumexp(expected, 0) - math.log(k)
    torch.testing.assert_close(out.objective, -bound.mean(), atol=1e-4, rtol=1e-5)
    # the ELBO objective on one draw: the first draw of the same noise
    one, _ = reference_log_weights(model, x, 1, seed=3)
    out = elbo(model, x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out.terms["loss"], -one.mean(), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out.objective, -one.mean(), atol=1e-4, rtol=1e-5)


def exact_log_px(model, x) -> torch.Tensor:
    """log p(x) = log integral p(x|z) N(z; 0, I) dz over a fine grid of the 2-D latent space."""
    step = 0.04
    axis = torch.arange(-8.0, 8.0 + step / 2, step, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        logits = model.decode_logits(grid.float()).double()
    log_px_z = Independent(Bernoulli(logits=logits.unsqueeze(1)), 3).log_prob(x.double())  # [G, B]
    log_joint = log_px_z + Normal(0.0, 1.0).log_prob(grid).sum(-1, keepdim=True)
    return torch.logsumexp(log_joint, 0) + 2 * math.log(step)


def test_flow_model_importance_sampled_log_px_is_a_bound_that_tightens_to_the_exact_value():
    model, x = flow_model(flow_hidden=32)
    with torch.no_grad():  # a base Gaussian wider than the posterior: light-tailed importance weights
        model.posterior.bias[2:] += 1.0
    exact = exact_log_px(model, x)
    with torch.no_grad():
        log_w, _ = model.log_weights(x, None, 8192, torch.Generator().manual_seed(0))
    log_w = log_w.double()
    bounds = []
    for k in (1, 4, 16, 64, 8192):  # nested groups of k draws: the mean of L_k over the groups
        groups = log_w.view(-1, k, log_w.shape[1])
        bounds.append((torch.logsumexp(groups, 1) - math.log(k)).mean(0))
    for smaller, larger in zip(bounds[:-1], bounds[1:], strict=True):
        assert torch.all(larger >= smaller - 1e-9)  # Jensen: never lower on the same draws
    assert torch.all(bounds[0] < exact - 0.05)  # the ELBO, clearly below log p(x)
    assert torch.all(bounds[3] <= exact + 0.01)  # E[L_64] <= log p(x)
    torch.testing.assert_close(bounds[-1], exact, atol=0.03, rtol=0)  # importance sampling converges


def test_a_flow_model_saved_before_the_posterior_modules_still_loads(tmp_path):
    """Weights saved when the flow sat on the model (``flow.steps...``) load into the posterior module."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    model, x = flow_model()
    vaekit.save_model(model, tmp_path / "model.safetensors")
    weights = load_file(tmp_path / "model.safetensors")
    with safe_open(tmp_path / "model.safetensors", "pt") as saved:
        metadata = saved.metadata()
    old = {key.replace("variational_family.flow.", "flow."): value for key, value in weights.items()}
    assert any(key.startswith("flow.steps.") for key in old)
    save_file(old, tmp_path / "model.safetensors", metadata=metadata)
    loaded = vaekit.load(tmp_path / "model.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(loaded.latents(x), model.latents(x))


def test_flow_model_save_and_load_keep_the_flow(tmp_path):
    model, x = flow_model()
    vaekit.save_model(model, tmp_path / "model.safetensors")
    loaded = vaekit.load(tmp_path / "model.safetensors")
    assert isinstance(loaded.variational_family.flow, InverseAutoregressiveFlow)
    assert loaded.config == model.config
    with torch.no_grad():
        expected, _ = model.log_weights(x, None, 3, torch.Generator().manual_seed(0))
        log_w, _ = loaded.log_weights(x, None, 3, torch.Generator().manual_seed(0))
        torch.testing.assert_close(log_w, expected)
        torch.testing.assert_close(loaded.latents(x), model.latents(x))
        assert not torch.allclose(
            loaded.latents(x), loaded.encode(x)[0]
        )  # the flow's mode, not the base mean
