"""The Gaussian-latent VAE: a network, a posterior, a prior and an objective, composed.

- the **network** is the subclass (mlp.py, conv.py, cvae.py): ``encode`` gives the Gaussian posterior's
  mean and log-variance, ``decode_logits`` the pixel logits;
- the **posterior** q(z|x) (``posterior_of``) is a ``posteriors.DiagonalGaussian`` of the encoder's output
  or, with ``posterior="iaf"``, an inverse autoregressive flow on top of it (``posteriors.FlowPosterior``);
- the **trained prior** p(z) (``self.trained_prior``) is a ``priors.StandardNormalPrior``, a conditional
  model's ``priors.ClassMeanPrior``, or with ``trained_prior="vamp"`` a ``priors.VampPrior``; the
  **fitted prior** (``self.prior``, a ``priors.MixturePrior`` fitted after training) is what ``sample``
  draws from when there is one;
- the **objective** is one of ``objectives.OBJECTIVES``, picked per call of ``loss`` (FactorVAE's needs
  the discriminator that ``tc_discriminator`` adds to the model).

``loss`` is the one call the training loop makes; everything else serves evaluation and sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vaekit.models.base import VAE, LossOutput, io_spec
from vaekit.models.objectives import OBJECTIVES, log_weights
from vaekit.models.objectives.factorvae import Discriminator
from vaekit.models.posteriors import POSTERIORS, DiagonalGaussian, FlowPosterior, InverseAutoregressiveFlow
from vaekit.models.priors import TRAINED_PRIORS, VampPrior
from vaekit.models.priors.mixture import MixturePrior
from vaekit.models.priors.standard import StandardNormalPrior
from vaekit.utils.errors import VaekitError

Posterior = tuple[torch.Tensor, torch.Tensor]  # what encoders return: mean and log-variance, each [B, D]
DEFAULT_FLOW_HIDDEN = 256  # units per hidden layer of each IAF step's MADE


class GaussianVAE(VAE):
    """A VAE whose encoder gives a diagonal Gaussian N(mu, diag(exp(logvar))), with the parts above.

    Subclasses build their layers after ``super().__init__`` and define ``encode`` (-> mu, logvar, each
    [B, latent_dim]) and ``decode_logits``; they pass the part options (``**parts``) on unchanged. A
    subclass with another trained prior replaces ``self.trained_prior`` (the cvae's class means).
    """

    takes_objectives = True
    splits_noise = True

    def __init__(
        self,
        *,
        trained_prior: str = "standard",
        pseudo_inputs: int | None = None,
        posterior: str = "gaussian",
        flow_steps: int | None = None,
        flow_hidden: int | None = None,
        tc_discriminator: Sequence[int] | None = None,
        **config: Any,
    ) -> None:
        parts = part_config(
            trained_prior, pseudo_inputs, posterior, flow_steps, flow_hidden, tc_discriminator
        )
        super().__init__(**config, **parts)
        self.trained_prior: nn.Module = StandardNormalPrior(self.latent_dim)
        if trained_prior == "vamp":
            classes = self.num_classes if self.conditional else 0
            self.trained_prior = VampPrior(self.latent_dim, self.image_shape, pseudo_inputs, classes)
        self.flow = None
        if posterior == "iaf":
            self.flow = InverseAutoregressiveFlow(
                self.latent_dim, flow_steps, flow_hidden or DEFAULT_FLOW_HIDDEN
            )
        self.discriminator = (
            None if tc_discriminator is None else Discriminator(self.latent_dim, tc_discriminator)
        )

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        """Images [B, C, H, W] in [0, 1] -> posterior mean and log-variance, each [B, latent_dim] (with a
        flow: of the flow's base Gaussian)."""
        raise NotImplementedError

    def posterior_of(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> DiagonalGaussian | FlowPosterior:
        """q(z|x) of images x, in float32 also under bf16 autocast (sums over latents need it)."""
        mu, logvar = self.encode(x, labels)
        base = DiagonalGaussian(mu.float(), logvar.float())
        return base if self.flow is None else FlowPosterior(base, self.flow)

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
        mean = mu if self.flow is None else self.latents(x, labels)
        return {"mean": mean.float(), "logvar": logvar.float()}

    def export_encoding(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[Any, ...]:
        """The posterior's mean and log-variance; with a flow also the flow applied to the base mean
        (``latents``), the point the decoder reads, since the flow is part of the encoder."""
        encoded = self.encode(images, labels)
        return tuple(encoded) if self.flow is None else (*encoded, self.latents(images, labels))

    def export_io(self) -> dict[str, Any]:
        d = self.latent_dim
        of = "of z" if self.flow is None else "of z_0, the base Gaussian of the flow posterior"
        encoded = [
            io_spec("mean", ["batch", d], "float32", f"posterior mean {of}"),
            io_spec("logvar", ["batch", d], "float32", f"posterior log-variance {of}"),
        ]
        if self.flow is not None:  # the decoder reads z after the flow: the graph gives it at z_0 = mean
            meaning = "the flow applied to the mean: what to decode"
            encoded.append(io_spec("z", ["batch", d], "float32", meaning))
        if self.trained_prior.closed_form:
            prior = "N(m_y, I)" if self.trained_prior.has_classes else "N(0, I)"
            trained = f"the trained prior is {prior}"
        else:
            trained = (
                "the trained prior is a VampPrior, a mixture of the encoder's posteriors of its "
                "pseudo-inputs, not in these graphs: run the encoder on them (vaekit sample draws from it)"
            )
        latent = io_spec("z", ["batch", d], "float32", f"a latent; {trained}")
        return {"encoder_outputs": encoded, "latent": latent, "decoder_extra": []}

    def export_decoder_inputs(
        self, encoding: tuple[Any, ...], labels: torch.Tensor | None, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """The latent the decoder reads (with a flow: after it, the encoding's last output) and labels."""
        z = encoding[0] if self.flow is None else encoding[-1]
        return {"z": z} if labels is None else {"z": z, "labels": labels}

    # -------------------------------------------------------------------------------- the prior p(z)
    @property
    def closed_form_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) is exact per dimension (Gaussian posterior, Gaussian prior)."""
        return self.flow is None and self.trained_prior.closed_form

    def prior_components(self) -> DiagonalGaussian | None:
        """A VampPrior's mixture: the posteriors of its pseudo-inputs (None for the other priors)."""
        if not isinstance(self.trained_prior, VampPrior):
            return None
        prior = self.trained_prior
        mu, logvar = self.encode(prior.pseudo_inputs(), prior.labels if self.conditional else None)
        return DiagonalGaussian(mu.float(), logvar.float())

    def kl(
        self,
        posterior: DiagonalGaussian | FlowPosterior,
        z: torch.Tensor,
        log_q: torch.Tensor,
        labels: torch.Tensor | None = None,
        components: DiagonalGaussian | None = None,
    ) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per image [B]: exact where it has a closed form, else the one-draw estimate
        log q(z|x) - log p(z) at the draw z (with log q(z|x) = ``log_q``)."""
        if self.closed_form_kl:
            return self.trained_prior.kl_per_dim(posterior, self.prior_labels(labels)).sum(dim=-1)
        return log_q - self.trained_log_prob(z, labels, components)

    def trained_log_prob(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, components: DiagonalGaussian | None = None
    ) -> torch.Tensor:
        """log p(z) under the trained prior, z [..., B, D] -> [..., B]; ``components``: a VampPrior's,
        if already computed."""
        if components is None:
            components = self.prior_components()
        return self.trained_prior.log_prob(z, self.prior_labels(labels), components=components)

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
        """KL(q(z_j|x) || p(z_j)) per dimension against the trained prior. [B, D] -> [B, D], nats. With a
        VampPrior, against its marginal per dimension; with a flow, of the flow's base Gaussian."""
        return self.trained_prior.kl_per_dim(
            DiagonalGaussian(mu.float(), logvar.float()),
            self.prior_labels(labels),
            components=self.prior_components(),
        )

    def log_prior(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, prior: str = "standard"
    ) -> torch.Tensor:
        """log p(z) under the trained prior ("standard": N(0, I), N(m_y, I) for a model that learns
        class means, or the VampPrior) or the fitted prior ("fitted"; for a conditional model whose fitted
        prior has classes, log p(z | y)). z [..., D] (k draws: [k, B, D]), labels [B] -> [...], nats."""
        if not self.uses_fitted_prior(prior):
            return self.trained_log_prob(z, labels)
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
        prior: str = "standard",
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Importance weights log w_i and recon_i = -log p(x | z_i), both [k, B]: see
        ``objectives.iwae.log_weights``. ``posterior``: an already computed (mu, logvar)."""
        q = None
        if posterior is not None:
            q = DiagonalGaussian(*(t.float() for t in posterior))
            q = q if self.flow is None else FlowPosterior(q, self.flow)
        return log_weights(self, x, labels, k, generator, posterior=q, prior=prior, noise_rows=noise_rows)

    def importance_context(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        """What ``log_weights`` takes as ``posterior``, computed once for all of an image's k draws: the
        encoder's (mean, logvar) here; a hierarchy's features (hvae.py)."""
        return tuple(t.float() for t in self.encode(x, labels))

    @property
    def starts_from_data(self) -> bool:
        return isinstance(self.trained_prior, VampPrior)

    def start_from_data(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> None:
        """A VampPrior's pseudo-inputs start as random training images (of each class, for a conditional
        model): the mixture starts where the data are, not at one grey blur."""
        if not isinstance(self.trained_prior, VampPrior):
            return
        prior, chosen = self.trained_prior, []
        for group in range(max(prior.num_classes, 1)):
            rows = (labels == group).nonzero().squeeze(1) if prior.has_classes else torch.arange(len(images))
            if len(rows) < prior.per_group:
                where = f"of class {group} " if prior.has_classes else ""
                raise VaekitError(
                    f"--pseudo-inputs {prior.per_group} is more than the {len(rows)} training images "
                    f"{where}that they start from"
                )
            pick = torch.randperm(len(rows), generator=generator)[: prior.per_group]
            chosen.append(images[rows[pick].to(images.device)])
        prior.init_pixels(torch.cat(chosen))

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
        not "standard") or z ~ the trained prior (N(0, I); a cvae: N(m_y, I)), with standard deviations
        scaled by ``temperature``. ``label``: the class to draw, for a conditional model or a fitted
        prior with classes (p(z | y)); without one a conditional model draws every class in turn."""
        self.check_temperature(temperature)
        fitted = self.uses_fitted_prior(prior)
        classes = self.sample_classes(n, label, prior)
        own_classes = classes if self.conditional else None
        if fitted:
            z = self.prior.sample(n, classes if self.prior.has_classes else None, generator, temperature)
        else:
            components = self.prior_components()
            z = self.trained_prior.sample(
                n, own_classes, generator, temperature, device=self.device, components=components
            )
        return self.decode(z, own_classes)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel means decoded from the point that stands for each image (``latents``)."""
        return self.decode(self.latents(x, labels), labels)


def part_config(
    trained_prior: str,
    pseudo_inputs: int | None,
    posterior: str,
    flow_steps: int | None,
    flow_hidden: int | None,
    tc_discriminator: Sequence[int] | None,
) -> dict[str, Any]:
    """The model config entries of the parts that are not the defaults (a plain model's config is as
    it always was); a ValueError for a bad or missing option."""
    if trained_prior not in TRAINED_PRIORS:
        raise ValueError(f"trained_prior must be one of {', '.join(TRAINED_PRIORS)}, got {trained_prior!r}")
    if posterior not in POSTERIORS:
        raise ValueError(f"posterior must be one of {', '.join(POSTERIORS)}, got {posterior!r}")
    if (trained_prior == "vamp") != (pseudo_inputs is not None):
        raise ValueError("pseudo_inputs goes with trained_prior vamp, and only with it")
    if (posterior == "iaf") != (flow_steps is not None) or (flow_hidden is not None and posterior != "iaf"):
        raise ValueError("flow_steps (and flow_hidden) go with posterior iaf, and only with it")
    parts: dict[str, Any] = {}
    if trained_prior != "standard":
        parts.update(trained_prior=trained_prior, pseudo_inputs=int(pseudo_inputs))
    if posterior != "gaussian":
        parts.update(posterior=posterior, flow_steps=int(flow_steps))
        if flow_hidden is not None:
            parts["flow_hidden"] = int(flow_hidden)
    if tc_discriminator is not None:
        parts["tc_discriminator"] = [int(h) for h in tc_discriminator]
    return parts
