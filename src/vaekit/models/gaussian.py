"""The Gaussian-latent VAE: a network, a posterior, a prior and an objective, composed.

- the **network** is the subclass (mlp.py, conv.py, cvae.py): ``encode`` gives the Gaussian posterior's
  mean and log-variance, ``decode_logits`` the pixel logits;
- the **posterior** module (``self.variational_family``, ``--posterior``: posteriors/) maps the
  encoder's output to q(z|x), a ``DiagonalGaussian`` or a flow on it (``posterior_of``);
- the **trained prior** module (``self.trained_prior``, ``--prior``: priors/) maps labels or nothing to
  p(z) (``prior_of``): N(0, I), a conditional model's N(m_y, I), a VampPrior, a learned mixture; the
  **fitted prior** (``self.prior``, a ``priors.MixturePrior`` fitted after training) is what ``sample``
  draws from when there is one;
- the **objective** is one of ``objectives.OBJECTIVES``, picked per call of ``loss`` (FactorVAE's needs
  the discriminator that ``tc_discriminator`` adds to the model).

The prior and posterior are built from their registered specs (``models.parts``) and the model config
entries each one's ``for_model`` names, so a new one is a file in priors/ or posteriors/ and nothing
here; the KL between them is ``distributions.kl_divergence``'s to decide. ``loss`` is the one call the
training loop makes; everything else serves evaluation and sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from vaekit.models.base import VAE, LossOutput, io_spec
from vaekit.models.distributions import DiagonalGaussian, StandardNormal, exact_kl_per_dim, has_exact_kl
from vaekit.models.objectives import OBJECTIVES, log_weights
from vaekit.models.objectives.factorvae import Discriminator
from vaekit.models.parts import PartSpec, part, parts
from vaekit.models.priors.mixture import MixturePrior
from vaekit.utils.errors import VaekitError

Posterior = tuple[torch.Tensor, torch.Tensor]  # what encoders return: mean and log-variance, each [B, D]
DEFAULT_PARTS = {"prior": "standard", "posterior": "gaussian"}


class GaussianVAE(VAE):
    """A VAE whose encoder gives a diagonal Gaussian N(mu, diag(exp(logvar))), with the parts above.

    Subclasses build their layers after ``super().__init__`` and define ``encode`` (-> mu, logvar, each
    [B, latent_dim]) and ``decode_logits``; they pass the part options (``**parts``) on unchanged.
    """

    takes_objectives = True
    splits_noise = True
    # weights renamed since an earlier release (see VAE.renamed_weights; a key ending in "." renames
    # every weight under it): the flow moved into the posterior module
    renamed_weights: ClassVar[dict[str, str]] = {"flow.": "variational_family.flow."}

    def __init__(
        self,
        *,
        trained_prior: str = "standard",
        posterior: str = "gaussian",
        tc_discriminator: Sequence[int] | None = None,
        **config: Any,
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
        if tc_discriminator is not None:
            chosen["tc_discriminator"] = [int(h) for h in tc_discriminator]
        super().__init__(**config, **chosen)
        # in this order: a checkpoint's optimizer state follows the parameters' (the prior's first)
        self.trained_prior: nn.Module = specs["prior"].build(self, entries["prior"])
        self.variational_family: nn.Module = specs["posterior"].build(self, entries["posterior"])
        self.discriminator = (
            None if tc_discriminator is None else Discriminator(self.latent_dim, tc_discriminator)
        )

    @staticmethod
    def part_entries() -> set[str]:
        """Every model config entry a registered prior or posterior reads (``pseudo_inputs``, ...)."""
        specs = [spec for kind in DEFAULT_PARTS for spec in parts(kind).values()]
        return {name for spec in specs for name in spec.model_entries()}

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        """Images [B, C, H, W] in [0, 1] -> posterior mean and log-variance, each [B, latent_dim] (with a
        flow: of the flow's base Gaussian)."""
        raise NotImplementedError

    def posterior_of(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        """q(z|x) of images x: a distribution (``models.distributions``), in float32 also under bf16
        autocast (sums over latents need it)."""
        return self.variational_family(*self.encode(x, labels))

    def prior_of(self, labels: torch.Tensor | None = None) -> Any:
        """p(z) the model trains with, a distribution; p(z | y) per image of ``labels`` for a conditional
        model (an unconditional model's prior ignores the labels its batches may carry)."""
        return self.trained_prior(self.prior_labels(labels))

    def latents(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The point of latent space that stands for each image, [B, D]: the posterior mean (with a flow,
        the flow applied to its base mean). What reconstructions, latent plots and fitted priors use."""
        return self.posterior_of(x, labels).mode()

    # ------------------------------------------------------------------- what the model can do
    @property
    def has_likelihood(self) -> bool:
        return True

    @property
    def fits_prior(self) -> bool:
        return True

    def representation(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.latents(x, labels).float()

    def encoded_columns(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(x, labels)
        mean = self.latents(x, labels) if self.variational_family.has_flow else mu
        return {"mean": mean.float(), "logvar": logvar.float()}

    def export_encoding(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[Any, ...]:
        """The posterior's mean and log-variance; with a flow also the flow applied to the base mean
        (``latents``), the point the decoder reads, since the flow is part of the encoder."""
        encoded = self.encode(images, labels)
        if not self.variational_family.has_flow:
            return tuple(encoded)
        return (*encoded, self.latents(images, labels))

    def export_io(self) -> dict[str, Any]:
        d = self.latent_dim
        flow = self.variational_family.has_flow
        of = "of z_0, the base Gaussian of the flow posterior" if flow else "of z"
        encoded = [
            io_spec("mean", ["batch", d], "float32", f"posterior mean {of}"),
            io_spec("logvar", ["batch", d], "float32", f"posterior log-variance {of}"),
        ]
        if flow:  # the decoder reads z after the flow: the graph gives it at z_0 = mean
            meaning = "the flow applied to the mean: what to decode"
            encoded.append(io_spec("z", ["batch", d], "float32", meaning))
        trained = f"the trained prior is {self.trained_prior.describe()}"
        if not issubclass(self.trained_prior.distribution, StandardNormal):
            trained += ", not in these graphs (vaekit sample draws from it)"
        latent = io_spec("z", ["batch", d], "float32", f"a latent; {trained}")
        return {"encoder_outputs": encoded, "latent": latent, "decoder_extra": []}

    def export_decoder_inputs(
        self, encoding: tuple[Any, ...], labels: torch.Tensor | None, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """The latent the decoder reads (with a flow: after it, the encoding's last output) and labels."""
        z = encoding[-1] if self.variational_family.has_flow else encoding[0]
        return {"z": z} if labels is None else {"z": z, "labels": labels}

    # -------------------------------------------------------------------------------- the prior p(z)
    @property
    def closed_form_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) has a closed form per dimension for this posterior and prior (a
        rule in ``distributions``' registry: a Gaussian posterior, N(0, I) or N(m_y, I))."""
        return has_exact_kl(self.variational_family.distribution, self.trained_prior.distribution)

    def prior_labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The labels the prior conditions on: the class labels for a conditional model, else None
        (an unconditional model's prior ignores the labels its batches may carry)."""
        return labels if self.conditional else None

    def loss(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        objective: str = "elbo",
        iwae_k: int = 1,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
        **options: Any,
    ) -> LossOutput:
        """The ``objective`` (one of ``objectives.OBJECTIVES``) and its terms per image, with its
        ``options`` (elbo: ``kl_weight``, ``free_bits``; btcvae: ``beta``, ``dataset_size``; ...).
        ``iwae_k`` > 1 is the IWAE bound with that many samples (``objective="iwae", k=iwae_k``).

        ``generator`` draws z (the global RNG if None); ``noise_rows`` (start, total): this batch is rows
        start.. of a batch of total images whose noise is drawn whole (see ``reparameterize``).
        """
        if iwae_k > 1:
            objective, options = "iwae", {**options, "k": iwae_k}
        if objective not in OBJECTIVES:
            raise VaekitError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
        return OBJECTIVES[objective](self, x, labels, generator=generator, noise_rows=noise_rows, **options)

    def kl_per_dim(self, mu: torch.Tensor, logvar: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """KL(q(z_j|x) || p(z_j)) per dimension against the trained prior, [B, D] nats: of the Gaussian
        (mu, logvar), the encoder's (with a flow, the flow's base); in closed form, or against the prior's
        marginal per dimension where it has no closed form (a mixture's, by quadrature)."""
        q, p = DiagonalGaussian(mu.float(), logvar.float()), self.prior_of(labels)
        if has_exact_kl(type(q), type(p)):
            return exact_kl_per_dim(q, p)
        return p.marginal_kl_per_dim(q)

    def log_prior(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, prior: str = "trained"
    ) -> torch.Tensor:
        """log p(z) under the trained prior ("trained": N(0, I), N(m_y, I) for a model that learns
        class means, the VampPrior, ...) or the fitted prior ("fitted"; for a conditional model whose
        fitted prior has classes, log p(z | y)). z [..., D] (k draws: [k, B, D]), labels [B] -> [...],
        nats."""
        if not self.uses_fitted_prior(prior):
            return self.prior_of(labels).log_prob(z)
        by_class = self.conditional and self.prior.has_classes
        flat = z.reshape(-1, z.shape[-1])
        if by_class and labels is not None:
            labels = labels.repeat(len(flat) // len(labels))  # z [k, B, D] are k draws for each of B labels
        return self.prior.log_prob(flat, labels if by_class else None).view(z.shape[:-1]).to(z.dtype)

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
        """Importance weights log w_i and recon_i = -log p(x | z_i), both [k, B]: see
        ``objectives.iwae.log_weights``. ``posterior``: an already computed (mu, logvar)."""
        q = None if posterior is None else self.variational_family(*posterior)
        return log_weights(self, x, labels, k, generator, posterior=q, prior=prior, noise_rows=noise_rows)

    def importance_context(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        """What ``log_weights`` takes as ``posterior``, computed once for all of an image's k draws: the
        encoder's (mean, logvar) here; a hierarchy's features (hvae.py)."""
        return tuple(t.float() for t in self.encode(x, labels))

    def sample_source(self, prior: str | None = None) -> str:
        if self.uses_fitted_prior(prior):
            return "the fitted prior"
        return f"the prior it trained with, {self.trained_prior.describe()}"

    @property
    def starts_from_data(self) -> bool:
        return hasattr(self.trained_prior, "start_from_data")

    def start_from_data(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> None:
        """The trained prior's start from training images, where it has one (a VampPrior's
        pseudo-inputs)."""
        if self.starts_from_data:
            self.trained_prior.start_from_data(images, labels, generator)

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: the model's at ``lr``; a FactorVAE discriminator's with its
        own learning rate and betas (Kim & Mnih 2018, sec. 4: 1e-4, (0.5, 0.9))."""
        if self.discriminator is None:
            return super().parameter_groups(lr)
        own = {id(p) for p in self.discriminator.parameters()}
        rest = [p for p in self.parameters() if id(p) not in own]
        return [
            {"params": rest, "lr": lr},
            {"params": list(self.discriminator.parameters()), **Discriminator.ADAM},
        ]

    # ------------------------------------------------------------------------------ fitted priors
    @classmethod
    def prior_from_config(cls, config: dict[str, Any]) -> nn.Module:
        return MixturePrior(**config)

    def check_prior(self, prior: nn.Module) -> None:
        if not isinstance(prior, MixturePrior):
            raise VaekitError(
                f"a {self.name} model takes a Gaussian mixture prior, not {type(prior).__name__}"
            )
        if prior.latent_dim != self.latent_dim:
            raise VaekitError(
                f"the prior is over {prior.latent_dim}-D latents; "
                f"this {self.name} model's are {self.latent_dim}-D"
            )
        if self.conditional and prior.has_classes and prior.num_classes != self.num_classes:
            raise VaekitError(f"the prior has {prior.num_classes} classes; this model has {self.num_classes}")

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
            z = self.prior.sample(n, classes if self.prior.has_classes else None, generator, temperature)
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
