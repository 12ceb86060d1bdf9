"""The one-latent Gaussian VAE: a network, a posterior, a prior and an objective, composed.

- the **network** is the subclass (mlp.py, conv.py, cvae.py): ``encode`` gives the Gaussian posterior's
  mean and log-variance, ``decode_logits`` the pixel logits;
- the **posterior** module (``self.variational_family``, ``--posterior``: posteriors/) maps the
  encoder's output to q(z|x), a ``DiagonalGaussian`` or a flow on it (``posterior_of``);
- the **trained prior** module (``self.trained_prior``, ``--prior``: priors/) maps labels or nothing to
  p(z) (``prior_of``): N(0, I), a conditional model's N(m_y, I), a VampPrior, a learned mixture; the
  **fitted prior** (``self.fitted_prior``, a ``priors.MixturePrior`` fitted after training) is what ``sample``
  draws from when there is one;
- the **objective** is any registered one (``loss``, gaussian_latent.py), computed from ``draw`` and
  ``log_weights`` here; one that adds a module to the model (FactorVAE's discriminator) builds it from
  its config entry (``parts.AddedModule``).

The prior and posterior are built from their registered specs (``models.parts``) and the model config
entries each one's ``for_model`` names, so a new one is a file in priors/ or posteriors/ and nothing
here; the KL between them is ``distributions.kl_divergence``'s to decide. Its sibling, the hierarchy
(hvae.py), shares the rest (gaussian_latent.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from vaekit.models.distributions import exact_kl_per_dim, kl_divergence
from vaekit.models.gaussian_latent import GaussianLatentVAE
from vaekit.models.objectives import log_weights
from vaekit.models.objectives.elbo import Draw
from vaekit.models.parts import PartSpec, part, parts
from vaekit.utils.errors import VaekitError

Posterior = tuple[torch.Tensor, torch.Tensor]  # what encoders return: mean and log-variance, each [B, D]
DEFAULT_PARTS = {"prior": "standard", "posterior": "gaussian"}


class GaussianVAE(GaussianLatentVAE):
    """A VAE with one latent whose encoder gives a diagonal Gaussian N(mu, diag(exp(logvar))), with the
    parts above.

    Subclasses build their layers after ``super().__init__`` and define ``encode`` (-> mu, logvar, each
    [B, latent_dim]) and ``decode_logits``; they pass the part options (``**parts``) on unchanged.
    """

    # weights renamed since an earlier release (see VAE.renamed_weights; a key ending in "." renames
    # every weight under it): the flow moved into the posterior module
    renamed_weights: ClassVar[dict[str, str]] = {"flow.": "variational_family.flow."}

    def __init__(
        self, *, trained_prior: str = "standard", posterior: str = "gaussian", **config: Any
    ) -> None:
        specs = {"prior": model_part("prior", trained_prior), "posterior": model_part("posterior", posterior)}
        entries = {kind: spec.take_entries(config) for kind, spec in specs.items()}
        for spec in other_parts(specs):
            for name in spec.model_entries():
                if name in config:
                    raise ValueError(f"{name} goes with the {spec.kind} {spec.name}, and only with it")
        chosen: dict[str, Any] = {}
        if trained_prior != DEFAULT_PARTS["prior"]:
            chosen.update(trained_prior=trained_prior, **entries["prior"])
        if posterior != DEFAULT_PARTS["posterior"]:
            chosen.update(posterior=posterior, **entries["posterior"])
        super().__init__(**config, **chosen)
        # in this order: a checkpoint's optimizer state follows the parameters' (the prior's first)
        self.trained_prior: nn.Module = specs["prior"].build(self, entries["prior"])
        self.variational_family: nn.Module = specs["posterior"].build(self, entries["posterior"])
        self.build_added_modules()

    @staticmethod
    def part_entries() -> set[str]:
        """Every model config entry a registered prior or posterior reads (``pseudo_inputs``); the entries
        of the modules parts add are every Gaussian-latent model's (``accepted_options``)."""
        specs = [spec for kind in DEFAULT_PARTS for spec in parts(kind).values()]
        return {name for spec in specs for name in spec.model_entries()}

    def posterior_of(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        return self.variational_family(*self.encode(x, labels))

    def prior_of(self, labels: torch.Tensor | None = None) -> Any:
        """p(z) the model trains with, a distribution; p(z | y) per image of ``labels`` for a conditional
        model (an unconditional model's prior ignores the labels its batches may carry)."""
        return self.trained_prior(self.prior_labels(labels))

    def prior_labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The labels the prior conditions on: the class labels for a conditional model, else None."""
        return labels if self.conditional else None

    @property
    def has_flow(self) -> bool:
        return self.variational_family.has_flow

    def prior_description(self) -> str:
        return self.trained_prior.describe()

    @property
    def prior_type(self) -> type:
        return self.trained_prior.distribution

    @property
    def posterior_type(self) -> type:
        return self.variational_family.distribution

    # ------------------------------------------------------------------ what the objectives use
    def draw(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        generator: torch.Generator | None,
        noise_rows: tuple[int, int] | None,
    ) -> Draw:
        """q(z|x), a reparameterised z ~ q(z|x), p(z), -log p(x|z) and the KL term, per image."""
        posterior = self.posterior_of(x, labels)
        z, log_q = posterior.rsample_with_log_prob(None, generator, noise_rows)
        prior = self.prior_of(labels)  # a VampPrior encodes its pseudo-inputs here, once
        recon = self.recon_nll(self.decode_logits(z, labels), x)
        kl = kl_divergence(posterior, prior, z, log_q)
        return Draw(posterior, prior, z, log_q, recon, kl)

    def log_weights(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        k: int,
        generator: torch.Generator | None = None,
        posterior: Posterior | None = None,
        prior: str = "trained",
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See ``objectives.iwae.log_weights``; ``posterior``: an already computed (mu, logvar)."""
        q = None if posterior is None else self.variational_family(*posterior)
        return log_weights(self, x, labels, k, generator, posterior=q, prior=prior, noise_rows=noise_rows)

    def exact_kl(self, context: Any, labels: torch.Tensor | None) -> torch.Tensor | None:
        if not self.closed_form_kl:
            return None
        return exact_kl_per_dim(self.variational_family(*context), self.prior_of(labels)).sum(dim=1)

    @property
    def starts_from_data(self) -> bool:
        return hasattr(self.trained_prior, "start_from_data")

    def start_from_data(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> None:
        """The trained prior's start from training images, where it has one (a VampPrior's
        pseudo-inputs)."""
        if self.starts_from_data:
            self.trained_prior.start_from_data(images, labels, generator)

    # ---------------------------------------------------------------------- sampling, reconstruction
    @torch.no_grad()
    def sample(
        self,
        n: int,
        label: int | None = None,
        generator: torch.Generator | None = None,
        prior: str | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n images (pixel means) decoded from z ~ the fitted prior (if the model has one and ``prior`` is
        not "trained") or z ~ the prior it trained with (N(0, I), a cvae's N(m_y, I), ...), with
        standard deviations scaled by ``temperature``. ``label``: the class to draw, for a conditional
        model or a fitted prior with classes (p(z | y)); without one a conditional model draws every
        class in turn."""
        self.check_temperature(temperature)
        fitted = self.uses_fitted_prior(prior)
        classes = self.sample_classes(n, label, prior)
        own_classes = classes if self.conditional else None
        if fitted:
            z = self.fitted_prior.sample(
                n, classes if self.fitted_prior.has_classes else None, generator, temperature
            )
        else:
            z = self.prior_of(own_classes).sample(n, generator, temperature)
        return self.decode(z, own_classes)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel means decoded from the point that stands for each image (``latents``)."""
        return self.decode(self.latents(x, labels), labels)


def model_part(kind: str, name: Any) -> PartSpec:
    """The registered ``kind`` part ``name``; a ValueError (a bad model config) if there is none."""
    try:
        return part(kind, name)
    except VaekitError as exc:
        raise ValueError(f"{'trained_prior' if kind == 'prior' else kind}: {exc}") from None


def other_parts(chosen: dict[str, PartSpec]) -> list[PartSpec]:
    """The registered priors and posteriors other than the ``chosen`` ones."""
    return [spec for kind in DEFAULT_PARTS for spec in parts(kind).values() if spec is not chosen[kind]]
