"""One test set for every registered model, on a tiny config."""

import pytest
import torch

from vaekit import load, save_model
from vaekit.errors import VaekitError
from vaekit.models import MLPVAE, MODELS, build_model

TINY = {"image_shape": [1, 8, 8], "latent_dim": 3, "hidden": [16]}


def tiny(name: str):
    torch.manual_seed(0)
    return build_model({"name": name, **TINY})


@pytest.fixture
def images():
    torch.manual_seed(1)
    return (torch.rand(12, 1, 8, 8) > 0.6).float()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shapes(name, images):
    model = tiny(name)
    mu, logvar = model.encode(images)
    assert mu.shape == logvar.shape == (12, 3)
    assert model.decode(mu).shape == images.shape
    out = model.decode(torch.randn(5, 3))
    assert out.min() >= 0 and out.max() <= 1
    assert model.sample(4).shape == (4, 1, 8, 8)
    assert model.reconstruct(images).shape == images.shape


@pytest.mark.parametrize("name", sorted(MODELS))
def test_loss_is_finite_and_differentiable(name, images):
    model = tiny(name)
    objective, terms = model.loss(images)
    assert torch.isfinite(objective) and set(terms) >= {"loss", "recon", "kl"}
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])
    objective.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", sorted(MODELS))
def test_kl_weight_changes_the_objective_not_the_reported_loss(name, images):
    model = tiny(name)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = model.loss(images, generator=g())
    beta = model.loss(images, kl_weight=4.0, generator=g())
    torch.testing.assert_close(plain.terms["loss"], beta.terms["loss"])
    torch.testing.assert_close(beta.objective, plain.terms["recon"] + 4.0 * plain.terms["kl"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_loss_falls_over_a_few_steps(name, images):
    model = tiny(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    before = model.loss(images, generator=g).terms["loss"]
    for _ in range(30):
        optimizer.zero_grad()
        model.loss(images).objective.backward()
        optimizer.step()
    after = model.loss(images, generator=g.manual_seed(0)).terms["loss"]
    assert after < before - 5


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_round_trip(name, images, tmp_path):
    model = tiny(name).eval()
    save_model(model, tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert type(loaded) is type(model) and loaded.config == model.config
    z = torch.randn(3, 3)
    assert torch.equal(loaded.decode(z), model.decode(z))
    assert torch.equal(loaded.encode(images)[0], model.encode(images)[0])


def test_loss_against_a_hand_computation():
    """The MLP VAE's loss, recomputed with plain tensor maths from its weights."""
    model = MLPVAE(image_shape=(1, 2, 2), latent_dim=1, hidden=(3,))
    x = torch.tensor([[[[0.0, 1.0], [0.5, 1.0]]]])
    _, terms = model.loss(x, generator=torch.Generator().manual_seed(0))
    w = dict(model.named_parameters())
    h = torch.relu(x.flatten(1) @ w["encoder.1.weight"].T + w["encoder.1.bias"])
    mu, logvar = (h @ w["posterior.weight"].T + w["posterior.bias"]).chunk(2, dim=1)
    z = mu + (0.5 * logvar).exp() * torch.randn(1, 1, generator=torch.Generator().manual_seed(0))
    p = torch.sigmoid(
        torch.relu(z @ w["decoder.0.weight"].T + w["decoder.0.bias"]) @ w["decoder.2.weight"].T
        + w["decoder.2.bias"]
    )
    xf = x.flatten(1)
    recon = -(xf * p.log() + (1 - xf) * (1 - p).log()).sum()
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum()
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["kl"], kl)


def test_hidden_layers_shape_the_network():
    model = MLPVAE(image_shape=(1, 28, 28), latent_dim=2, hidden=(512, 256))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 512),
        (512, 256),
        (256, 4),
        (2, 256),
        (256, 512),
        (512, 784),
    ]


def test_unknown_model_and_bad_config():
    with pytest.raises(VaekitError, match="unknown model"):
        build_model({"name": "nope"})
    with pytest.raises(VaekitError, match="invalid config"):
        build_model({"name": "mlp", "image_shape": [1, 8, 8], "latent_dim": 2, "colour": True})
