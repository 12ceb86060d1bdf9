"""One test set for every registered model on a tiny config, then what is particular to each family."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from tests.conftest import Z_MISS, quiet_trainer, tiny_config
from vaekit import load, save_model
from vaekit.models import MLPVAE, MODELS, ConvVAE, build_model
from vaekit.utils.errors import VaekitError

# Every registered model needs an entry here: its smallest sensible config on 8x8 images.
TINY = {
    "mlp": {"hidden": [16]},
    "conv": {"channels": [8, 16]},
    "cvae": {"hidden": [16], "num_classes": 3},
    "vqvae": {"channels": [4, 8], "codebook_size": 8},
    "hvae": {"latent_dim": None, "scales": 2, "groups": 1, "latent_channels": 2, "width": 8, "stem": 1},
}
# the one-latent Gaussian models, which take the parts (the hvae's own tests: test_hvae.py)
GAUSSIAN = sorted(name for name, cls in MODELS.items() if cls.latent_kind == "vector")


def tiny(name: str, **overrides):
    torch.manual_seed(0)
    return build_model({"name": name, "image_shape": [1, 8, 8], "latent_dim": 3, **TINY[name], **overrides})


@pytest.fixture
def images():
    torch.manual_seed(1)
    return (torch.rand(12, 1, 8, 8) > 0.6).float()


@pytest.fixture
def labels():
    return torch.arange(12) % 3


def test_every_registered_model_has_a_tiny_config():
    assert set(MODELS) == set(TINY)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shapes(name, images, labels):
    model = tiny(name)
    latent = model.encode(images, labels)
    assert model.decode(latent[0] if isinstance(latent, tuple) else latent, labels).shape == images.shape
    recon = model.reconstruct(images, labels)
    assert recon.shape == images.shape and recon.min() >= 0 and recon.max() <= 1
    if model.can_sample:
        samples = model.sample(4)
        assert samples.shape == (4, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    else:
        with pytest.raises(VaekitError):
            model.sample(4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_loss_is_finite_and_differentiable(name, images, labels):
    model = tiny(name)
    objective, terms = model.loss(images, labels)
    assert torch.isfinite(objective) and list(terms)[:3] == ["loss", "recon", "kl"]
    assert all(torch.isfinite(v) and v.dim() == 0 and not v.requires_grad for v in terms.values())
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])
    objective.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(MODELS))
def test_loss_falls_over_a_few_steps(name, images, labels):
    model = tiny(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.eval()
    before = model.loss(images, labels, generator=torch.Generator().manual_seed(0)).terms["loss"]
    model.train()
    for _ in range(100):
        optimizer.zero_grad()
        model.loss(images, labels).objective.backward()
        optimizer.step()
    model.eval()
    after = model.loss(images, labels, generator=torch.Generator().manual_seed(0)).terms["loss"]
    assert after < before - 5


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_round_trip_gives_identical_outputs(name, images, labels, tmp_path):
    model = tiny(name)
    model.loss(images, labels)  # a training-mode pass, so that any running statistics are not at init
    model.eval()
    save_model(model, tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert torch.equal(loaded.reconstruct(images, labels), model.reconstruct(images, labels))
    if model.can_sample:
        g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
        assert torch.equal(loaded.sample(5, generator=g()), model.sample(5, generator=g()))
    a = loaded.loss(images, labels, generator=torch.Generator().manual_seed(0)).terms
    b = model.loss(images, labels, generator=torch.Generator().manual_seed(0)).terms
    assert a == b


@pytest.mark.parametrize("name", sorted(MODELS))
def test_resume_is_exact(name, tmp_path):
    """Two epochs straight equal one epoch, a resume, and a second epoch: same weights and metrics."""
    settings = {
        "hidden": None,
        "latent_dim": 3,
        **{k: v for k, v in TINY[name].items() if k != "num_classes"},
    }
    # a cosine schedule runs over --epochs, so extending a run changes it (tests/training/test_updates.py
    # resumes one within its epochs)
    settings["lr_schedule"] = "constant"
    config = lambda epochs: tiny_config(model=name, epochs=epochs, **settings)  # noqa: E731
    quiet_trainer(config(2), tmp_path / "straight").run()
    quiet_trainer(config(1), tmp_path / "resumed").run()
    quiet_trainer(config(2), tmp_path / "resumed", resume=True).run()
    straight, resumed = (load(tmp_path / run).state_dict() for run in ("straight", "resumed"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    metrics = [(tmp_path / run / "metrics.jsonl").read_text().splitlines() for run in ("straight", "resumed")]
    strip = lambda line: {k: v for k, v in __import__("json").loads(line).items() if k != "seconds"}  # noqa: E731
    assert [strip(line) for line in metrics[0]] == [strip(line) for line in metrics[1]]


# ----------------------------------------------------------------------------- Gaussian-latent models
@pytest.mark.parametrize("name", GAUSSIAN)
def test_kl_weight_changes_the_objective_not_the_reported_loss(name, images, labels):
    model = tiny(name)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = model.loss(images, labels, generator=g())
    beta = model.loss(images, labels, kl_weight=4.0, generator=g())
    torch.testing.assert_close(plain.terms["loss"], beta.terms["loss"])
    torch.testing.assert_close(beta.objective, plain.terms["recon"] + 4.0 * plain.terms["kl"])


@pytest.mark.parametrize("name", GAUSSIAN)
def test_free_bits_floor_each_dimension_of_the_objective(name, images, labels):
    model = tiny(name)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    mu, logvar = model.encode(images, labels)
    kl_dims = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(0)
    out = model.loss(images, labels, free_bits=0.5, generator=g())
    expected = out.terms["recon"] + kl_dims.clamp(min=0.5).sum()
    torch.testing.assert_close(out.objective, expected)
    torch.testing.assert_close(out.terms["loss"], model.loss(images, labels, generator=g()).terms["loss"])


@pytest.mark.parametrize("name", GAUSSIAN)
def test_iwae_objective_against_torch_distributions(name, images, labels):
    """The k=4 IWAE bound recomputed with torch.distributions from the same draws of z."""
    model, k = tiny(name), 4
    out = model.loss(images, labels, iwae_k=k, generator=torch.Generator().manual_seed(0))
    mu, logvar = model.encode(images, labels)
    eps = torch.randn(k, *mu.shape, generator=torch.Generator().manual_seed(0))
    z = mu + (0.5 * logvar).exp() * eps
    log_w = torch.stack(
        [
            Bernoulli(logits=model.decode_logits(z[i], labels)).log_prob(images).flatten(1).sum(1)
            + Normal(0.0, 1.0).log_prob(z[i]).sum(1)
            - Normal(mu, (0.5 * logvar).exp()).log_prob(z[i]).sum(1)
            for i in range(k)
        ]
    )
    bound = (log_w.exp().mean(0)).log()
    torch.testing.assert_close(out.objective, -bound.mean(), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(out.terms["iwae"], -bound.mean(), rtol=1e-4, atol=1e-3)
    # Jensen, image by image on these draws: -log mean_i w_i <= -mean_i log w_i, equal only if the w_i are
    bound_per_image, elbo_per_image = -(log_w.logsumexp(0) - math.log(k)), -log_w.mean(0)
    assert torch.all(bound_per_image <= elbo_per_image + 1e-6)
    assert torch.any(bound_per_image < elbo_per_image - 1e-3)  # the draws differ: strictly below somewhere


@pytest.mark.parametrize("name", GAUSSIAN)
def test_gaussian_likelihood_against_torch_distributions(name, images, labels):
    for decoder_std in (None, 0.3):
        model = tiny(name, likelihood="gaussian", decoder_std=decoder_std)
        x = torch.rand_like(images)
        out = model.loss(x, labels, generator=torch.Generator().manual_seed(0))
        mu, logvar = model.encode(x, labels)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
        std = torch.tensor(0.3) if decoder_std else model.log_std.exp()
        mean = model.decode(z, labels)
        expected = -Normal(mean, std).log_prob(x).flatten(1).sum(1).mean()
        torch.testing.assert_close(out.terms["recon"], expected)
        assert ("log_std" in dict(model.named_parameters())) == (decoder_std is None)


def test_learned_decoder_std_moves_towards_the_residual_scale(images):
    model = tiny("mlp", likelihood="gaussian")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    x = images * 0.8 + 0.1
    for _ in range(150):
        optimizer.zero_grad()
        model.loss(x).objective.backward()
        optimizer.step()
    residual = (model.reconstruct(x) - x).pow(2).mean().sqrt()
    assert model.log_std.exp().item() < 0.6 and model.log_std.exp() > 0.3 * residual


def test_mlp_loss_against_a_hand_computation():
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


# ----------------------------------------------------------------------------------------- conv
def test_conv_default_layers_on_mnist():
    model = ConvVAE(latent_dim=16)
    convs = [
        (type(m).__name__, m.in_channels, m.out_channels) for m in model.modules() if hasattr(m, "stride")
    ]
    assert convs == [
        (
            "Conv2d",
            1,
            32,
        ),
        ("Conv2d", 32, 64),
        ("ConvTranspose2d", 64, 32),
        ("ConvTranspose2d", 32, 1),
    ]
    assert model.posterior.in_features == 64 * 7 * 7 and model.posterior.out_features == 32
    x = torch.rand(2, 1, 28, 28)
    assert model.encoder(x).shape == (2, 64 * 7 * 7)
    assert model.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 32, 32), (3, 32, 32), (1, 16, 24)])
def test_conv_works_on_other_sizes(shape):
    model = build_model({"name": "conv", "image_shape": list(shape), "latent_dim": 4, "channels": [4, 8]})
    x = torch.rand(3, *shape)
    assert model.reconstruct(x).shape == x.shape and torch.isfinite(model.loss(x).objective)


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 64, 64)])
def test_conv_four_layers_deep_on_colour(shape):
    """The README's --channels 32,64,128,256 depth (narrower here) on 32x32 and 64x64 RGB."""
    model = build_model(
        {"name": "conv", "image_shape": list(shape), "latent_dim": 4, "channels": [4, 8, 8, 16]}
    )
    assert model.feature_shape == (16, shape[1] // 16, shape[2] // 16) and model.padding == (0, 0, 0, 0)
    x = torch.rand(2, *shape)
    assert model.reconstruct(x).shape == x.shape and torch.isfinite(model.loss(x).objective)


def test_conv_hidden_layers_build_the_disentanglement_papers_network(tmp_path):
    """channels 32,32,64,64 and hidden 256 at 64x64 (Locatello et al. 2019): four convolutions to 64x4x4,
    a 256-unit layer, the heads; the decoder z -> 256 -> 64x4x4 -> four transposed convolutions."""
    config = {"name": "conv", "image_shape": [1, 64, 64], "latent_dim": 10, "channels": [32, 32, 64, 64]}
    model = build_model({**config, "hidden": [256]})
    linears = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [(1024, 256), (256, 20), (10, 256), (256, 1024)]
    relus = sum(isinstance(m, torch.nn.ReLU) for m in model.modules())
    assert relus == sum(isinstance(m, torch.nn.ReLU) for m in build_model(config).modules()) + 2
    x = torch.rand(2, 1, 64, 64)
    assert model.reconstruct(x).shape == x.shape and torch.isfinite(model.loss(x).objective)
    save_model(model, tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert loaded.config["hidden"] == [256] and torch.equal(loaded.encode(x)[0], model.encode(x)[0])


def test_conv_without_hidden_layers_keeps_its_weights_names():
    """The conv before ``hidden`` existed: runs saved then load into the same modules."""
    model = build_model({"name": "conv", "image_shape": [1, 8, 8], "latent_dim": 3, "channels": [4, 8]})
    assert list(model.state_dict()) == [
        "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
        "posterior.weight", "posterior.bias",
        "decoder.0.weight", "decoder.0.bias", "decoder.3.weight", "decoder.3.bias",
        "decoder.5.weight", "decoder.5.bias",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["mlp", "conv", "cvae"])
@pytest.mark.parametrize("hidden", [[0], [8, -1], [8.0], [True]])
def test_models_with_hidden_layers_refuse_sizes_that_are_not_integers_of_one_or_more(name, hidden):
    """Built directly (not through the CLI's checks): nn.Linear would take 0 units without a word."""
    channels = {"channels": [4]} if name == "conv" else {}
    with pytest.raises(VaekitError, match="hidden must be sizes >= 1"):
        build_model({"name": name, "image_shape": [1, 8, 8], "hidden": hidden, **channels})


@pytest.mark.parametrize("name", ["conv", "vqvae"])
@pytest.mark.parametrize(("shape", "sides"), [((1, 30, 30), (1, 1, 1, 1)), ((3, 28, 21), (1, 2, 0, 0))])
def test_conv_models_pad_sizes_that_do_not_divide_and_crop_back(name, shape, sides):
    config = {"name": name, "image_shape": list(shape), "channels": [4, 8], "latent_dim": 4}
    model = build_model(config)
    assert model.padding == sides  # (left, right, top, bottom) up to multiples of 4
    x = torch.rand(2, *shape)
    assert model.reconstruct(x).shape == x.shape and torch.isfinite(model.loss(x).objective)
    # the padding is zeros beyond the image: the encoder sees the image, not a stretched copy
    padded = torch.nn.functional.pad(x, sides)
    assert torch.equal(padded[..., sides[2] : sides[2] + shape[1], sides[0] : sides[0] + shape[2]], x)


# ----------------------------------------------------------------------------------------- cvae
def test_cvae_label_reaches_encoder_and_decoder(images, labels):
    model = tiny("cvae")
    z = torch.randn(4, 3)
    by_label = [model.decode(z, torch.full((4,), c)) for c in range(3)]
    assert not torch.allclose(by_label[0], by_label[1]) and not torch.allclose(by_label[1], by_label[2])
    mu_a, _ = model.encode(images, labels)
    mu_b, _ = model.encode(images, (labels + 1) % 3)
    assert not torch.allclose(mu_a, mu_b)


def test_cvae_sample_labels():
    model = tiny("cvae")
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    z = torch.randn(6, 3, generator=g())
    torch.testing.assert_close(model.sample(6, label=2, generator=g()), model.decode(z, torch.full((6,), 2)))
    torch.testing.assert_close(
        model.sample(6, generator=g()), model.decode(z, torch.tensor([0, 0, 1, 1, 2, 2]))
    )
    with pytest.raises(VaekitError, match="label must be in 0..2"):
        model.sample(2, label=3)
    with pytest.raises(VaekitError, match="needs the class labels"):
        model.encode(torch.rand(2, 1, 8, 8))


@pytest.mark.parametrize("name", sorted(n for n, cls in MODELS.items() if not cls.conditional))
def test_unconditional_models_refuse_a_label(name):
    with pytest.raises(VaekitError, match="not conditional"):
        tiny(name).sample(2, label=1)


def test_unknown_model_and_bad_config():
    with pytest.raises(VaekitError, match="unknown model"):
        build_model({"name": "nope"})
    with pytest.raises(VaekitError, match="invalid config"):
        build_model({"name": "mlp", "image_shape": [1, 8, 8], "latent_dim": 2, "colour": True})
    with pytest.raises(VaekitError, match="decoder_std applies to the gaussian likelihood"):
        build_model({"name": "mlp", "image_shape": [1, 8, 8], "latent_dim": 2, "decoder_std": 0.1})
    with pytest.raises(VaekitError, match="likelihood must be one of"):
        build_model({"name": "mlp", "image_shape": [1, 8, 8], "latent_dim": 2, "likelihood": "poisson"})


def test_log_weights_average_to_the_elbo_and_bound_rises_with_k(images):
    """E[log w] is the ELBO (Monte Carlo over many draws) and the IWAE bound rises with k."""
    model = tiny("mlp").eval()
    x = images[:2]
    log_w, _ = model.log_weights(x, None, 4000, torch.Generator().manual_seed(0))
    # the loss's own -ELBO (a closed-form KL, one draw for the reconstruction), over 400 independent
    # draws: both means estimate the ELBO, and differ by less than Z_MISS standard errors of the difference
    elbos = torch.stack(
        [-model.loss(x, generator=torch.Generator().manual_seed(s)).terms["loss"] for s in range(400)]
    )
    error = math.sqrt(log_w.mean(1).var().item() / log_w.shape[0] + elbos.var().item() / len(elbos))
    assert abs(log_w.mean().item() - elbos.mean().item()) < Z_MISS * error
    bounds = [torch.logsumexp(log_w[:k], 0).mean() - math.log(k) for k in (1, 10, 100, 1000)]
    assert bounds == sorted(bounds)


# ------------------------------------------------------------------------------------ fitted priors
def fitted(name: str, images, labels, per_class: bool = True):
    """A tiny model with a mixture prior fitted to its latents of ``images`` (3 classes)."""
    from vaekit.training.priors import fit_mixture_prior

    model = tiny(name).eval()
    fit_mixture_prior(model, images, labels, 3, components=2, per_class=per_class)
    return model


@pytest.mark.parametrize("name", GAUSSIAN)
def test_a_fitted_prior_is_saved_loaded_and_sampled(name, images, labels, tmp_path):
    model = fitted(name, images, labels)
    assert model.config["prior"] == {
        "kind": "gaussian_mixture",
        "latent_dim": 3,
        "components": 2,
        "num_classes": 3,
    }
    save_model(model, tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert torch.equal(loaded.prior.scale_tril, model.fitted_prior.scale_tril)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(loaded.sample(6, generator=g()), model.sample(6, generator=g()))
    assert torch.equal(loaded.sample(6, label=1, generator=g()), model.sample(6, label=1, generator=g()))
    # the default draws from the fitted prior: the same as asking for it, not N(0, I)
    assert torch.equal(model.sample(6, generator=g()), model.sample(6, generator=g(), prior="fitted"))
    assert not torch.equal(model.sample(6, generator=g()), model.sample(6, generator=g(), prior="trained"))
    # "standard", release 0.1's name for the prior trained with, is still read
    assert torch.equal(
        model.sample(6, generator=g(), prior="trained"), model.sample(6, generator=g(), prior="standard")
    )


@pytest.mark.parametrize("name", GAUSSIAN)
def test_samples_of_a_label_decode_latents_of_that_class_mixture(name, images, labels):
    model = fitted(name, images, labels)
    classes = torch.full((5,), 2)
    z = model.fitted_prior.sample(5, classes, torch.Generator().manual_seed(1))
    expected = model.decode(z, classes if model.conditional else None)
    torch.testing.assert_close(model.sample(5, label=2, generator=torch.Generator().manual_seed(1)), expected)
    # temperature scales the draws about the component means
    cold = model.fitted_prior.sample(5, classes, torch.Generator().manual_seed(1), temperature=0.5)
    torch.testing.assert_close(
        model.sample(5, label=2, generator=torch.Generator().manual_seed(1), temperature=0.5),
        model.decode(cold, classes if model.conditional else None),
    )


@pytest.mark.parametrize("name", GAUSSIAN)
def test_importance_weights_use_the_chosen_prior(name, images, labels):
    model = fitted(name, images, labels)
    mu, logvar = model.encode(images, labels)
    for prior in ("standard", "fitted"):
        log_w, recon = model.log_weights(images, labels, 4, torch.Generator().manual_seed(0), prior=prior)
        g = torch.Generator().manual_seed(0)  # the same draws as log_weights took
        eps = torch.randn(4, *mu.shape, generator=g)
        z = mu + (0.5 * logvar).exp() * eps
        log_q = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
        flat, repeated = z.reshape(-1, 3), labels.repeat(4)
        if prior == "standard":
            mean = model.trained_prior.mean(labels)
            log_p = Normal(0.0, 1.0).log_prob(z - (0 if mean is None else mean)).sum(-1)
        else:
            log_p = model.fitted_prior.log_prob(flat, repeated if model.conditional else None).view(4, -1)
        torch.testing.assert_close(log_w, -recon + log_p - log_q, rtol=1e-5, atol=1e-4)


def test_labels_and_priors_that_do_not_apply_are_refused(images, labels):
    plain = tiny("mlp")
    with pytest.raises(VaekitError, match="no fitted prior"):
        plain.sample(2, label=1)
    with pytest.raises(VaekitError, match="no fitted prior"):
        plain.sample(2, prior="fitted")
    with pytest.raises(VaekitError, match="unknown prior 'best'"):
        plain.sample(2, prior="best")
    with pytest.raises(VaekitError, match="temperature must be a positive number"):
        plain.sample(2, temperature=0.0)
    model = fitted("mlp", images, labels)
    with pytest.raises(VaekitError, match="samples from the prior it trained with"):
        model.sample(2, label=1, prior="trained")
    with pytest.raises(VaekitError, match="label must be in 0..2"):
        model.sample(2, label=3)
    pooled = fitted("mlp", images, labels, per_class=False)
    assert pooled.config["prior"]["num_classes"] == 0 and pooled.sample(2).shape == (2, 1, 8, 8)
    with pytest.raises(VaekitError, match="its prior has no classes"):
        pooled.sample(2, label=1)
    from vaekit.models.priors.mixture import MixturePrior

    with pytest.raises(VaekitError, match="the prior is over 4-D latents; this mlp model's are 3-D"):
        plain.set_prior(MixturePrior(4, 2))


def test_the_cvae_trains_against_its_class_means(images, labels):
    """p(z | y) = N(m_y, I): the KL per dimension and log p(z | y) against torch.distributions."""
    model = tiny("cvae")
    with torch.no_grad():
        model.trained_prior.means.copy_(torch.randn(3, 3))
    mu, logvar = model.encode(images, labels)
    q = Normal(mu, (0.5 * logvar).exp())
    p = Normal(model.trained_prior.means[labels], 1.0)
    torch.testing.assert_close(model.kl_per_dim(mu, logvar, labels), torch.distributions.kl_divergence(q, p))
    z = torch.randn(12, 3)
    torch.testing.assert_close(model.log_prior(z, labels), p.log_prob(z).sum(-1))
    # the trained prior's samples of class 1 are N(m_1, I); the loss's KL is the shifted one
    model.decode = lambda z, labels=None: z  # look at the latents themselves
    z = model.sample(20_000, label=1, prior="trained", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), model.trained_prior.means[1].detach(), atol=0.03, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(3), atol=0.03, rtol=0)
    _, terms = model.loss(images, labels, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(terms["kl"], torch.distributions.kl_divergence(q, p).sum(-1).mean())
    assert model.trained_prior.means.requires_grad  # learned with the model
    without = tiny("cvae", class_prior=False)
    assert not any(without.trained_prior.parameters()) and without.trained_prior.mean(labels) is None
