"""The fitted prior over a hierarchy's group noise (models/priors/groups.py): its density against
torch.distributions, its draws and temperatures, the change of variables the hvae's importance weights
make with it, and its round trip through saving."""

import json
import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal, Normal

from vaekit.models import build_model
from vaekit.models.priors.groups import GroupNoisePrior
from vaekit.models.saving import load, save_model
from vaekit.utils.errors import VaekitError


def filled_prior(sizes=(3, 5), units=(0, 2, 4), components=2, classes=0, seed=0):
    """A prior with random (valid) mixture parameters over ``units`` of groups of ``sizes``."""
    g = torch.Generator().manual_seed(seed)
    prior = GroupNoisePrior(list(sizes), len(units), components, classes)
    mixture = prior.mixture
    mixture.means.copy_(torch.randn(mixture.means.shape, generator=g))
    tril = torch.randn(mixture.scale_tril.shape, generator=g).tril(-1) * 0.3
    diagonal = torch.rand(mixture.scale_tril.shape[:-1], generator=g) + 0.5
    mixture.scale_tril.copy_(tril + torch.diag_embed(diagonal))
    mixture.log_weights.copy_(torch.randn(mixture.log_weights.shape, generator=g).log_softmax(-1))
    prior.units.copy_(torch.tensor(units))
    return prior


def test_log_prob_is_the_mixture_over_the_units_and_standard_normal_elsewhere():
    prior = filled_prior()
    eps = torch.randn(7, 8, generator=torch.Generator().manual_seed(1))
    m = prior.mixture
    mixture = MixtureSameFamily(
        Categorical(logits=m.log_weights[0]), MultivariateNormal(m.means[0], scale_tril=m.scale_tril[0])
    )
    rest = [i for i in range(8) if i not in (0, 2, 4)]
    expected = mixture.log_prob(eps[:, [0, 2, 4]]) + Normal(0.0, 1.0).log_prob(eps[:, rest]).sum(1)
    torch.testing.assert_close(prior.log_prob(eps), expected, rtol=1e-5, atol=1e-5)


def test_draws_follow_the_mixture_and_each_groups_temperature():
    prior = filled_prior(components=1)
    n = 40_000
    eps = prior.sample(n, generator=torch.Generator().manual_seed(0), temperatures=[0.5, 2.0])
    # units 1 (group 0) and 3, 5.. (group 1) are N(0, t^2); the mixture's units spread by diag(t) L
    se = 5 / math.sqrt(2 * n)  # standard errors of a standard deviation, 5 of them
    assert eps[:, 1].std().item() == pytest.approx(0.5, rel=se)
    assert eps[:, 5].std().item() == pytest.approx(2.0, rel=se)
    L = prior.mixture.scale_tril[0, 0]
    scale = torch.diag(torch.tensor([0.5, 0.5, 2.0]))  # units 0, 2 are group 0's; unit 4 group 1's
    expected = (scale @ L) @ (scale @ L).T
    torch.testing.assert_close(eps[:, [0, 2, 4]].T.cov(), expected, rtol=0.05, atol=0.05)
    torch.testing.assert_close(eps[:, [0, 2, 4]].mean(0), prior.mixture.means[0, 0], atol=0.05, rtol=0)


def test_draws_of_a_class_come_from_that_class_mixture():
    prior = filled_prior(components=1, classes=2)
    prior.mixture.means[1].add_(10.0)
    eps = prior.sample(500, torch.ones(500, dtype=torch.long), torch.Generator().manual_seed(0))
    assert eps[:, [0, 2, 4]].mean().item() > 8
    with pytest.raises(VaekitError, match="label"):
        prior.sample(3, torch.full((3,), 2), torch.Generator())


def hvae():
    torch.manual_seed(0)
    config = {"name": "hvae", "image_shape": [1, 12, 12], "scales": 2, "groups": 1, "latent_channels": 2,
              "width": 8, "stem": 1}  # fmt: skip
    return build_model(config).eval()


def test_an_hvae_scores_noise_through_its_group_prior_by_change_of_variables():
    """A group prior that is N(0, I) on the noise is the trained prior: the same importance weights."""
    model = hvae()
    sizes = [math.prod(s) for s in model.group_shapes]
    prior = GroupNoisePrior(sizes, 3, 1)  # one component, mean 0, identity: N(0, I) on every unit
    prior.units.copy_(torch.tensor([0, 9, sizes[0] + 4]))
    model.set_prior(prior)
    x = (torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    trained, _ = model.log_weights(x, None, 3, torch.Generator().manual_seed(2), prior="trained")
    fitted, _ = model.log_weights(x, None, 3, torch.Generator().manual_seed(2), prior="fitted")
    torch.testing.assert_close(fitted, trained, rtol=1e-5, atol=1e-4)
    # and one that moves the mixture's mean changes every weight
    prior.mixture.means.add_(1.0)
    moved, _ = model.log_weights(x, None, 3, torch.Generator().manual_seed(2), prior="fitted")
    assert (moved != fitted).all()


def test_an_hvae_samples_from_its_group_prior_at_its_chosen_temperatures_and_keeps_them(tmp_path):
    model = hvae()
    sizes = [math.prod(s) for s in model.group_shapes]
    prior = GroupNoisePrior(sizes[:1], 2, 1, 2, temperatures=[0.7, 0.9], label_temperatures=[0.5, 0.5])
    model.set_prior(prior)
    assert model.sample_temperature() == [0.7, 0.9]
    assert model.sample_temperature(by_class=True) == [0.5, 0.5]
    assert model.sample_temperature("trained") == 1.0
    a = model.sample(5, generator=torch.Generator().manual_seed(0))
    b = model.sample(5, generator=torch.Generator().manual_seed(0), temperature=[0.7, 0.9])
    torch.testing.assert_close(a, b)
    labelled = model.sample(5, label=1, generator=torch.Generator().manual_seed(0))
    explicit = model.sample(5, label=1, generator=torch.Generator().manual_seed(0), temperature=[0.5, 0.5])
    torch.testing.assert_close(labelled, explicit)
    save_model(model, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"model": model.config}))
    loaded = load(tmp_path)
    assert loaded.fitted_prior.config == prior.config and loaded.sample_temperature() == [0.7, 0.9]
    torch.testing.assert_close(loaded.fitted_prior.units, prior.units)


def test_a_group_prior_of_other_groups_is_refused():
    model = hvae()
    with pytest.raises(VaekitError, match="groups of sizes"):
        model.set_prior(GroupNoisePrior([5, 5], 2, 1))
