"""The hierarchical VAE (models/hvae.py, models/hierarchy.py): its maths against torch.distributions,
its importance weights against an independent computation, its shape checks and its sampling."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vaekit.models import build_model
from vaekit.models.hierarchy import soft_clamp
from vaekit.models.maths import gaussian_kl_between
from vaekit.models.objectives.elbo import balanced_kl
from vaekit.utils.errors import VaekitError


def hvae(**overrides):
    torch.manual_seed(0)
    config = {"name": "hvae", "image_shape": [1, 12, 12], "scales": 2, "groups": 2, "latent_channels": 2,
              "width": 8, "stem": 1, **overrides}  # fmt: skip
    return build_model(config)


@pytest.fixture
def images():
    return (torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(1)) > 0.6).float()


def test_gaussian_kl_between_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mq, lq, mp, lp = (torch.randn(5, 7, generator=g) for _ in range(4))
    expected = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp()))
    torch.testing.assert_close(gaussian_kl_between(mq, lq, mp, lp), expected, rtol=1e-5, atol=1e-6)


def test_soft_clamp_is_near_identity_and_bounded():
    x = torch.tensor([-1e6, -3.0, -0.01, 0.0, 0.01, 3.0, 1e6])
    y = soft_clamp(x, 5.0)
    assert y.abs().max() <= 5.0 and y[0] == -5.0 and y[-1] == 5.0
    torch.testing.assert_close(y[2:5], x[2:5], atol=1e-6, rtol=1e-4)


def test_kl_balance_weighs_groups_by_their_kl_per_unit_and_averages_one():
    kls = torch.tensor([[4.0, 1.0, 10.0], [2.0, 1.0, 6.0]], requires_grad=True)  # [B, groups]
    sizes = [1, 1, 4]
    total = balanced_kl(kls, sizes)
    total.backward()
    weights = kls.grad[0] * len(kls)  # d(mean_B sum_l gamma_l KL_l)/d KL_bl = gamma_l / B
    assert weights.mean().item() == pytest.approx(1.0)
    # per unit: 3.01 / 1, 1.01 / 1, 8.01 / 4: the first group is pushed hardest, the second least
    assert weights[0] > weights[2] > weights[1]
    assert total.item() == pytest.approx((kls.detach() * weights).sum(1).mean().item())


def test_loss_terms_add_up_and_the_kl_is_every_groups(images):
    model = hvae()
    out = model.loss(images, generator=torch.Generator().manual_seed(0))
    terms = out.terms
    groups = [terms[f"kl{i}"] for i in range(1, 5)]
    assert len(model.group_shapes) == 4 and f"kl{5}" not in terms
    torch.testing.assert_close(terms["kl"], sum(groups))
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])
    torch.testing.assert_close(out.objective.detach(), terms["loss"])  # kl_weight 1, no balance
    half = model.loss(images, kl_weight=0.5, generator=torch.Generator().manual_seed(0)).objective
    torch.testing.assert_close(half.detach(), terms["recon"] + 0.5 * terms["kl"])
    assert all(g >= 0 for g in groups)


def test_importance_weights_match_an_independent_computation(images):
    """log w = log p(x|z) + sum_l log p(z_l|z_<l) - log q(z_l|x,z_<l), from the groups' own record."""
    model = hvae().eval()
    k = 3
    log_w, recon = model.log_weights(images, None, k, torch.Generator().manual_seed(5))
    # the same draws, replayed: the decoder's pass with a recording choice
    features = [f.repeat(k, 1, 1, 1) for f in model.bottom_up(images)]
    g = torch.Generator().manual_seed(5)

    def draw(i, prior, posterior):
        eps = torch.randn(posterior.mean.shape, generator=g)
        return posterior.mean + (0.5 * posterior.logvar).exp() * eps

    logits, groups = model.top_down(k * len(images), features, draw)
    expected = Bernoulli(logits=logits).log_prob(images.repeat(k, 1, 1, 1)).flatten(1).sum(1)
    for group in groups:
        q = Normal(group.posterior.mean, (0.5 * group.posterior.logvar).exp())
        p = Normal(group.mean, (0.5 * group.logvar).exp())
        expected = expected + (p.log_prob(group.z) - q.log_prob(group.z)).flatten(1).sum(1)
    torch.testing.assert_close(log_w, expected.view(k, len(images)).detach(), rtol=1e-4, atol=1e-3)
    assert recon.shape == (k, len(images))
    # the top group's prior is N(0, I)
    assert torch.equal(groups[0].mean, torch.zeros_like(groups[0].mean))


def test_the_elbo_is_the_mean_importance_weight(images):
    """E_q[log w] = ELBO: the loss's -ELBO (closed-form KL) and the weights' mean (sampled log q - log p)
    estimate the same number; the gap is within 5 standard errors (fails with p < 6e-7)."""
    model = hvae().eval()
    pair = images[:2].repeat(25, 1, 1, 1)  # 25 draws of each of two images per call
    with torch.no_grad():
        log_w, _ = model.log_weights(images[:2], None, 1000, torch.Generator().manual_seed(0))
        elbo = -torch.stack(
            [model.loss(pair, generator=torch.Generator().manual_seed(s)).terms["loss"] for s in range(40)]
        )
    per_draw = log_w.mean(1)
    standard_error = math.sqrt(per_draw.var().item() / len(per_draw) + elbo.var().item() / len(elbo))
    assert abs(per_draw.mean().item() - elbo.mean().item()) < 5 * standard_error


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scales": 4}, "4 scales after a stem of 1 halvings halve a 12x12 image below one pixel: at most 3"),
        ({"groups": 0}, "groups must be an integer >= 1"),
        ({"latent_channels": -1}, "latent_channels must be an integer >= 1"),
        ({"width": 4}, "width must be >= 8"),
        ({"latent_dim": 20}, "latent_dim is the top group's size"),
        ({"logvar_limit": 0}, "logvar_limit must be a positive number"),
    ],
)
def test_a_hierarchy_that_does_not_fit_is_refused(overrides, message):
    with pytest.raises(VaekitError, match=message):
        hvae(**overrides)


@pytest.mark.parametrize(
    ("shape", "sizes"), [((1, 28, 28), [(14, 14), (7, 7)]), ((3, 30, 20), [(16, 10), (8, 5)])]
)
def test_any_image_size_is_padded_to_the_scales_and_cropped_back(shape, sizes):
    model = hvae(image_shape=list(shape))
    assert model.sizes == sizes
    x = torch.rand(2, *shape)
    assert model.reconstruct(x).shape == (2, *shape)
    assert model.sample(3).shape == (3, *shape)


def test_temperature_per_group_and_zero_temperature_below_the_top(images):
    model = hvae().eval()
    z = torch.randn(2, model.latent_dim)
    # decode: every lower group at its prior mean, whatever the generator
    state = torch.get_rng_state()
    a = model.decode(z)
    b = model.decode(z)
    torch.testing.assert_close(a, b)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn at temperature 0
    cold = model.sample(4, generator=torch.Generator().manual_seed(0), temperature=[1.0, 0.0, 0.0, 0.0])
    warm = model.sample(4, generator=torch.Generator().manual_seed(0), temperature=1.0)
    assert not torch.allclose(cold, warm)
    with pytest.raises(VaekitError, match="one per group: this model has 4 groups, got 2"):
        model.sample(2, temperature=[1.0, 0.5])


def test_resample_group_redraws_one_group_of_each_image(images):
    """resample_group redraws one group and keeps the others at their posterior means."""
    model = hvae().eval()
    g = torch.Generator().manual_seed(0)
    for level in range(len(model.group_shapes)):
        redrawn = model.resample_group(images, level, g)
        assert redrawn.shape == images.shape
    same = model.resample_group(images, 1, torch.Generator().manual_seed(0), temperature=0.0)
    # at temperature 0 the redrawn group sits at its prior mean: not the reconstruction, but finite
    assert torch.isfinite(same).all()


@pytest.mark.parametrize("kl_weight", [0.3, 1.0])
def test_a_kl_weight_on_the_device_gives_the_numbers_of_a_python_number(images, kl_weight):
    """A compiled step takes the warm-up's KL weight as a tensor (its value changes every step); the KL
    balancing during the warm-up is then selected on the device. Objective and gradients are the same bit
    for bit as with the number, during the warm-up (balanced) and after it (plain)."""
    grads = []
    for weight in (kl_weight, torch.tensor(kl_weight)):
        model = hvae()
        objective = model.loss(
            images, kl_weight=weight, kl_balance=True, generator=torch.Generator().manual_seed(0)
        ).objective
        objective.backward()
        grads.append((objective.detach(), [p.grad.clone() for p in model.parameters()]))
    (number, number_grads), (tensor, tensor_grads) = grads
    assert torch.equal(number, tensor)
    assert all(torch.equal(a, b) for a, b in zip(number_grads, tensor_grads, strict=True))
    plain = hvae().loss(images, kl_weight=kl_weight, generator=torch.Generator().manual_seed(0)).objective
    assert torch.equal(plain, number) == (kl_weight >= 1)  # balanced during the warm-up only
