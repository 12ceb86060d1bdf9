"""VQ-VAE: shapes, the EMA codebook, straight-through gradients, loss terms, restarts, save and load."""

import copy
import math

import pytest
import torch
from torch import nn

from vaekit import load, save_model
from vaekit.models import VQVAE, build_model
from vaekit.models.priors.codes import CodePrior
from vaekit.models.vqvae import DEAD_FRACTION, LAPLACE_EPS
from vaekit.utils.errors import VaekitError

TINY = {"image_shape": [1, 8, 8], "latent_dim": 4, "codebook_size": 16, "channels": [8, 16]}
TERMS = ["loss", "recon", "kl", "commitment", "perplexity", "dead_codes"]


def tiny(**overrides) -> VQVAE:
    torch.manual_seed(0)
    return build_model({"name": "vqvae", **TINY, **overrides})


@pytest.fixture
def images():
    torch.manual_seed(1)
    return (torch.rand(12, 1, 8, 8) > 0.6).float()


class Fixed(nn.Module):
    """Stands in for the encoder: returns the same z_e [B, D, h, w] whatever the input."""

    def __init__(self, z_e: torch.Tensor) -> None:
        super().__init__()
        self.z_e = z_e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.z_e


def buffers(model: VQVAE) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


@pytest.mark.parametrize(
    "shape, channels, grid",
    [([1, 8, 8], [8, 16], (2, 2)), ([1, 28, 28], [32, 64], (7, 7)), ([3, 32, 32], [8, 16], (8, 8))],
)
def test_shapes(shape, channels, grid):
    model = tiny(image_shape=shape, channels=channels)
    x = torch.rand(3, *shape)
    codes = model.encode(x)
    assert model.grid == grid
    assert codes.shape == (3, *grid) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < 16
    out = model.decode(codes)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert model.decode_logits(codes).shape == x.shape
    assert model.reconstruct(x).shape == x.shape


def test_ema_state_changes_in_training_mode_only(images):
    model = tiny()
    before = buffers(model)
    model.eval()
    rng = torch.get_rng_state()
    model.loss(images)
    assert all(torch.equal(v, before[k]) for k, v in model.named_buffers())
    assert torch.equal(torch.get_rng_state(), rng)  # and eval draws nothing from the global RNG
    model.train()
    model.loss(images)
    changed = buffers(model)
    assert all(not torch.equal(changed[k], before[k]) for k in ("codebook", "ema_count", "ema_sum"))
    assert set(model.state_dict()) >= {"codebook", "ema_count", "ema_sum"}
    assert "codebook" not in dict(model.named_parameters())  # learnt by EMA, not by the optimizer


def test_straight_through_gradients_reach_the_encoder(images):
    model = tiny().train()
    model.loss(images)  # seeds the codebook from the data
    model.zero_grad()
    model.loss(images).objective.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_straight_through_passes_the_decoder_gradient_unchanged(images):
    """With no commitment loss, dL/dz_e equals dL/d(decoder input) exactly."""
    model = tiny(commitment=0.0).eval()
    z_e = model.encoder(images).detach().requires_grad_()
    model.encoder = Fixed(z_e)
    model.loss(images).objective.backward()
    z_q = model.embed(model.quantize(z_e)).requires_grad_()
    model.recon_nll(model.decoder(z_q), images).mean().backward()
    assert z_e.grad.abs().sum() > 0
    torch.testing.assert_close(z_e.grad, z_q.grad)


def test_codebook_moves_towards_its_assigned_encoder_outputs():
    """Decay 1/2, codes at (0,0) and (10,10) with usage 1 each; (2,0) and (0,2) are assigned to code 0."""
    model = tiny(latent_dim=2, codebook_size=2, ema_decay=0.5)
    model.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    model.ema_count.fill_(1.0)
    model.ema_sum.copy_(model.codebook)
    vectors = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    codes = model.quantize(vectors.T.reshape(1, 2, 1, 2)).flatten()  # z_e [1, D, 1, 2]
    assert codes.tolist() == [0, 0]
    model.update_codebook(vectors, codes)
    # N_0 = 1/2 * 1 + 1/2 * 2 = 1.5, m_0 = 1/2 * (0,0) + 1/2 * (2,2) = (1,1): e_0 = (1,1) / 1.5;
    # N_1 = 1/2, m_1 = (5,5): e_1 stays (10,10), both up to the Laplace smoothing of N
    torch.testing.assert_close(model.ema_count, torch.tensor([1.5, 0.5]))
    torch.testing.assert_close(model.ema_sum, torch.tensor([[1.0, 1.0], [5.0, 5.0]]))
    eps = LAPLACE_EPS
    smoothed = torch.tensor([(1.5 + eps) / (2 + 2 * eps) * 2, (0.5 + eps) / (2 + 2 * eps) * 2])
    torch.testing.assert_close(model.codebook, torch.tensor([[1.0, 1.0], [5.0, 5.0]]) / smoothed[:, None])
    torch.testing.assert_close(
        model.codebook, torch.tensor([[2 / 3, 2 / 3], [10.0, 10.0]]), atol=1e-3, rtol=0
    )


def test_loss_terms(images):
    model = tiny()
    for mode in (True, False):
        objective, terms = model.train(mode).loss(images)
        assert list(terms) == TERMS
        assert torch.isfinite(objective) and all(torch.isfinite(v) and v.dim() == 0 for v in terms.values())
        torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])
        torch.testing.assert_close(terms["kl"], torch.tensor(4 * math.log(16)))  # uniform prior: h w log K
        torch.testing.assert_close(objective, terms["recon"] + 0.25 * terms["commitment"])


def test_perplexity_and_commitment_of_a_known_assignment():
    """Four positions with codes 0, 0, 1, 2: usage (1/2, 1/4, 1/4), perplexity 2^1.5."""
    model = tiny(latent_dim=2, codebook_size=4).eval()
    model.codebook.copy_(torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [9.0, 9.0]]))
    z_e = torch.tensor([[0.1, 0.0], [0.0, 0.2], [5.0, 0.0], [0.0, 5.0]]).T.reshape(1, 2, 2, 2)
    model.encoder = Fixed(z_e)
    assert model.encode(torch.zeros(1, 1, 8, 8)).flatten().tolist() == [0, 0, 1, 2]
    terms = model.loss(torch.zeros(1, 1, 8, 8)).terms
    torch.testing.assert_close(terms["perplexity"], torch.tensor(2**1.5))
    torch.testing.assert_close(terms["commitment"], torch.tensor(0.1**2 + 0.2**2))


def test_dead_codes_restart_on_encoder_outputs_in_training_only(images):
    model = tiny()
    z_e = model.encoder(images).detach()
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    model.encoder = Fixed(z_e)

    def on_encoder_outputs(codes: torch.Tensor) -> int:
        return sum(bool((vectors == code).all(1).any()) for code in codes)

    # a fresh codebook is all dead: the first training batch seeds the unused codes from the data
    assert model.eval().loss(images).terms["dead_codes"] == 16
    terms = model.train().loss(images).terms
    assert terms["dead_codes"] >= 1 and on_encoder_outputs(model.codebook) >= terms["dead_codes"]
    # codes 0..13 well used; 14 and 15 dead and far away, so that no encoder output picks them
    model.ema_count[:14] = 10.0
    model.ema_sum[:14] = 10.0 * model.codebook[:14]
    model.codebook[14:] = 1e3
    model.ema_sum[14:] = 1e-3 * model.codebook[14:]
    model.ema_count[14:] = 1e-6
    assert model.eval().loss(images).terms["dead_codes"] == 2
    assert (model.codebook[14:] == 1e3).all()  # no restart in eval mode
    ema_only = copy.deepcopy(model)
    ema_only.update_codebook(vectors, model.encode(images).flatten())
    terms = model.train().loss(images).terms
    assert terms["dead_codes"] == 2
    assert on_encoder_outputs(model.codebook[14:]) == 2
    assert not model.dead_mask().any()
    torch.testing.assert_close(model.ema_count[14:], 2 * DEAD_FRACTION * ema_only.ema_count.mean().expand(2))
    # the live codes took the moving-average step and nothing else
    assert torch.equal(model.codebook[:14], ema_only.codebook[:14])


def test_sample_needs_a_prior_and_no_label(images):
    model = tiny()
    assert not model.can_sample
    with pytest.raises(VaekitError, match="train-prior"):
        model.sample(4)
    with pytest.raises(VaekitError, match="not conditional"):
        model.sample(4, label=3)
    model.set_prior(CodePrior(16, [2, 2], width=16, depth=1, heads=2))
    assert model.can_sample and model.config["prior"]["grid"] == [2, 2]
    assert model.sample(5, generator=torch.Generator().manual_seed(0)).shape == (5, 1, 8, 8)
    with pytest.raises(VaekitError, match="grids"):
        model.set_prior(CodePrior(8, [2, 2]))


def test_kl_under_an_attached_prior_is_its_code_nll(images):
    model = tiny().eval()
    prior = CodePrior(16, [2, 2], width=16, depth=1, heads=2)
    model.set_prior(prior)
    terms = model.loss(images).terms
    torch.testing.assert_close(terms["kl"], -prior.log_prob(model.encode(images)).mean())
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])


@pytest.mark.parametrize("with_prior", [False, True])
def test_save_load_round_trip(with_prior, images, tmp_path):
    model = tiny().train()
    for _ in range(3):  # move the EMA state away from its initial values
        model.loss(images)
    if with_prior:
        model.set_prior(CodePrior(16, [2, 2], width=16, depth=1, heads=2))
    model.eval()
    save_model(model, tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert type(loaded) is VQVAE and loaded.config == model.config and loaded.can_sample == with_prior
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert torch.equal(loaded.reconstruct(images), model.reconstruct(images))
    torch.testing.assert_close(loaded.loss(images).terms, model.loss(images).terms, rtol=0, atol=0)
    if with_prior:
        draw = lambda m: m.sample(6, generator=torch.Generator().manual_seed(3))  # noqa: E731
        assert torch.equal(draw(loaded), draw(model))
