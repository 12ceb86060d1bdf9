"""The mixture-of-Gaussians prior trained with the model (models/priors/mog.py), added as one file (issue
34): its density and draws against torch.distributions, its KL per dimension against integration, a run
through the generated flags that learns the mixture and resumes exactly, and the one-line refusals."""

import json

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

import vaekit
from tests.conftest import error_of, quiet_trainer, tiny_config
from vaekit.cli import main
from vaekit.data import load_dataset, unit_float
from vaekit.models import build_model
from vaekit.models.distributions import DiagonalGaussian, DiagonalMixture, kl_divergence
from vaekit.models.priors.mog import MixtureOfGaussiansPrior
from vaekit.training import resume
from vaekit.utils.errors import VaekitError


def random_prior(classes: int = 0, k: int = 3, d: int = 2, seed: int = 0) -> MixtureOfGaussiansPrior:
    torch.manual_seed(seed)
    prior = MixtureOfGaussiansPrior(d, k, classes)
    with torch.no_grad():
        prior.means.mul_(2.0)
        prior.logvars.normal_(0.0, 0.5)
        prior.weight_logits.normal_(0.0, 1.0)  # unequal weights: a uniform mixture would hide their use
    return prior


def reference(prior: MixtureOfGaussiansPrior, group: int = 0) -> MixtureSameFamily:
    weights = Categorical(logits=prior.weight_logits[group].detach())
    normals = Normal(prior.means[group].detach(), (0.5 * prior.logvars[group].detach()).exp())
    return MixtureSameFamily(weights, Independent(normals, 1))


def test_log_prob_is_the_weighted_mixture_of_torch_distributions():
    prior = random_prior()
    z = 2 * torch.randn(4, 6, 2)  # k draws of B images
    assert isinstance(prior(), DiagonalMixture)
    torch.testing.assert_close(prior().log_prob(z), reference(prior).log_prob(z))
    by_class = random_prior(classes=3)
    labels = torch.tensor([2, 0, 1, 1, 0, 2])
    expected = torch.stack([reference(by_class, y).log_prob(z[:, b]) for b, y in enumerate(labels)], 1)
    torch.testing.assert_close(by_class(labels).log_prob(z), expected)
    with pytest.raises(VaekitError, match="needs the class labels"):
        by_class().log_prob(z)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_draws_have_the_weighted_mixture_moments(temperature):
    prior = random_prior(seed=1)
    z = prior().sample(200_000, torch.Generator().manual_seed(0), temperature)
    pi = prior.weight_logits.detach().softmax(-1)[0][:, None]
    means, variances = prior.means.detach()[0], prior.logvars.detach()[0].exp() * temperature**2
    mean = (pi * means).sum(0)
    variance = (pi * (variances + means.pow(2))).sum(0) - mean.pow(2)
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), variance, atol=0, rtol=0.03)


def test_kl_per_dim_is_against_the_weighted_marginals():
    prior = random_prior(seed=2)
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(5, 2, generator=g), 0.3 * torch.randn(5, 2, generator=g)
    result = prior().marginal_kl_per_dim(DiagonalGaussian(mu, logvar)).double()
    # the same KL by the trapezoid rule over mu +- 12 std, each dimension's marginal weighted by pi
    std = (0.5 * logvar).double().exp()
    z = mu.double()[..., None] + std[..., None] * torch.linspace(-12, 12, 20_001, dtype=torch.float64)
    log_q = Normal(mu.double()[..., None], std[..., None]).log_prob(z)
    m, v = prior.means.detach()[0].double().T, prior.logvars.detach()[0].double().T  # [D, K]
    log_pi = prior.weight_logits.detach()[0].double().log_softmax(-1)
    per_component = Normal(m[..., None], (0.5 * v[..., None]).exp()).log_prob(z[:, :, None])  # [B, D, K, n]
    log_p = torch.logsumexp(per_component + log_pi[:, None], 2)
    expected = torch.trapezoid(log_q.exp() * (log_q - log_p), z, dim=-1)
    assert expected.min() > 0.05
    torch.testing.assert_close(result, expected, atol=5e-3, rtol=0)


@pytest.mark.parametrize("name", ["mlp", "cvae"])
def test_a_model_estimates_the_kl_and_keeps_the_prior_through_save_and_load(tmp_path, name):
    config = {"name": name, "image_shape": [1, 4, 4], "latent_dim": 2, "hidden": [8]}
    if name == "cvae":
        config["num_classes"] = 3
    torch.manual_seed(0)
    model = build_model({**config, "trained_prior": "mog", "mog_components": 3})
    assert not model.closed_form_kl and model.trained_prior.has_classes == (name == "cvae")
    x = torch.bernoulli(torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1)))
    labels = torch.arange(6) % 3
    posterior = model.posterior_of(x, labels)
    z, log_q = posterior.rsample_with_log_prob(None, torch.Generator().manual_seed(0))
    prior = model.trained_prior
    if name == "cvae":
        log_p = torch.stack([reference(prior, y).log_prob(z[b]) for b, y in enumerate(labels)])
    else:
        log_p = reference(prior).log_prob(z)
    torch.testing.assert_close(kl_divergence(posterior, model.prior_of(labels), z, log_q), log_q - log_p)
    out = model.loss(x, labels, generator=torch.Generator().manual_seed(0))
    out.objective.backward()
    for parameter in (prior.means, prior.logvars, prior.weight_logits):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0  # the ELBO trains all three
    vaekit.save_model(model, tmp_path / "model.safetensors")
    loaded = vaekit.load(tmp_path / "model.safetensors")
    assert isinstance(loaded.trained_prior, MixtureOfGaussiansPrior) and loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded.prior_of(labels).log_prob(z), model.prior_of(labels).log_prob(z))


def test_a_run_takes_the_generated_flags_learns_the_mixture_and_resumes_exactly(tmp_path, capsys):
    flags = ["--prior", "mog", "--mog-components", "4"]
    base = ["train", "--dataset", "digits", "--hidden", "32", "--latent-dim", "2", "--no-progress", *flags]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*base, "--epochs", "4", "--out", str(straight)]) == 0
    stored = json.loads((straight / "config.json").read_text())
    assert stored["train"]["prior"] == "mog" and stored["train"]["part_options"] == {"mog_components": 4}
    assert stored["model"]["trained_prior"] == "mog" and stored["model"]["mog_components"] == 4
    assert main([*base, "--epochs", "2", "--out", str(resumed)]) == 0
    resume(resumed, epochs=4, progress=False, log=lambda line: None)
    lines = [(run / "metrics.jsonl").read_text().splitlines() for run in (straight, resumed)]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
    assert [strip(line) for line in lines[0]] == [strip(line) for line in lines[1]]
    # what it learned: the mixture moved to where the posteriors are, so it gives the training images'
    # posterior means a higher density than the N(0, I) it started near
    model = vaekit.load(straight)
    images = load_dataset("digits", log=lambda line: None).train.images[:500]
    with torch.no_grad():
        means = model.latents(unit_float(images))
        learned = model.prior_of().log_prob(means).mean()
    standard = Normal(0.0, 1.0).log_prob(means).sum(-1).mean()
    assert learned > standard + 0.1, (learned, standard)
    weights = model.trained_prior.weight_logits.detach().softmax(-1)
    assert not torch.allclose(weights, torch.full_like(weights, 0.25), atol=1e-3)
    capsys.readouterr()
    assert main(["train", "--dataset", "digits", "--mog-components", "3", "--out", str(tmp_path / "no")]) == 1
    assert "--mog-components applies to --prior mog, not standard" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
    sample = ["sample", str(straight), "--from", "trained", "--n", "8", "--out", str(tmp_path / "s.png")]
    assert main(sample) == 0 and (tmp_path / "s.png").is_file()  # drawn from the learned mixture


def test_what_it_cannot_do_is_refused_in_one_line(tmp_path):
    hierarchy = tiny_config(model="hvae", hidden=None, latent_dim=None, prior="mog")
    message = error_of(quiet_trainer, hierarchy, tmp_path / "a")
    assert message == "--prior mog applies to the one-latent Gaussian models (conv, cvae, mlp), not hvae"
    free_bits = tiny_config(prior="mog", free_bits=0.5)
    assert "--prior mog" in error_of(quiet_trainer, free_bits, tmp_path / "b")
    btcvae = tiny_config(prior="mog", objective="btcvae")
    assert error_of(btcvae.validate).endswith("not with --prior mog")
    assert error_of(tiny_config(prior="mog", part_options={"mog_components": 0}).validate) == (
        "--mog-components must be >= 1, got 0"
    )
    assert not any(tmp_path.iterdir())
