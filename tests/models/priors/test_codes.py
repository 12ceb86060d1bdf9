"""CodePrior: a normalised, causal autoregressive distribution over code grids that learns."""

import itertools
import math

import torch

from vaekit.models.priors.codes import CodePrior


def small(num_codes: int = 3, grid=(1, 2)) -> CodePrior:
    torch.manual_seed(0)
    return CodePrior(num_codes, list(grid), width=16, depth=2, heads=2)


def test_log_prob_is_a_normalised_distribution():
    prior = small()
    grids = torch.tensor(list(itertools.product(range(3), repeat=2))).view(9, 1, 2)
    log_p = prior.log_prob(grids)
    assert log_p.shape == (9,) and (log_p < 0).all()
    torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0))


def test_conditionals_are_causal():
    """Changing code j changes no conditional p(c_i | c_<i) with i <= j."""
    prior = small(num_codes=5, grid=(2, 3))
    codes = torch.randint(0, 5, (4, 6))
    logits = prior.logits(codes[:, :-1])
    for j in range(6):
        changed = codes.clone()
        changed[:, j] = (changed[:, j] + 1) % 5
        other = prior.logits(changed[:, :-1])
        torch.testing.assert_close(other[:, : j + 1], logits[:, : j + 1], rtol=0, atol=1e-6)
        if j < 5:  # and it is seen by the later ones
            assert not torch.allclose(other[:, j + 1 :], logits[:, j + 1 :])


def test_sampling_is_deterministic_for_a_seeded_generator():
    prior = small(num_codes=7, grid=(2, 2))
    draw = lambda seed: prior.sample(20, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    codes = draw(0)
    assert codes.shape == (20, 2, 2) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < 7
    assert torch.equal(codes, draw(0)) and not torch.equal(codes, draw(1))


def test_a_trained_prior_prefers_its_training_grids():
    """Four fixed 2x2 grids of 8 codes: uniform gives 4 log 8 = 8.3 nats each, the best prior log 4 = 1.4."""
    prior = small(num_codes=8, grid=(2, 2))
    data = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [7, 7, 7, 7], [5, 0, 5, 0]]).view(4, 2, 2)
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        (-prior.log_prob(data)).mean().backward()
        optimizer.step()
    nll = -prior.log_prob(data)
    assert nll.max() < math.log(4) + 0.5 < 4 * math.log(8) - 6
    samples = prior.sample(200, generator=torch.Generator().manual_seed(0))
    from_data = (samples.view(200, 1, 4) == data.view(1, 4, 4)).all(2).any(1)
    assert from_data.float().mean() > 0.9
