"""What the Gaussian-latent models share: the one-latent model (gaussian.py) and the hierarchy (hvae.py)
are siblings built on it.

- **The latent the tools see**: one Gaussian latent, or a hierarchy's top group, flattened. ``encode``
  gives its posterior's mean and log-variance [B, latent_dim]; ``posterior_of`` and ``prior_of`` its
  distributions (``models.distributions``), N(0, I) unless a model says otherwise. Latent plots,
  traversals, the fitted prior, the explorer, ``vaekit encode`` and the export read it through the
  methods here, whatever the model is.
- **One way to train and to score**: a model gives ``draw`` (one z per image: -log p(x|z) and the KL,
  per group for a hierarchy) and ``log_weights`` (k importance weights per image), and every registered
  objective whose requirements the model's latent meets is built from those two: one ELBO
  (``objectives.elbo``) and one IWAE (``objectives.iwae``) serve both siblings.
- **The fitted prior**: a ``priors.MixturePrior`` over that latent, fitted after training, which
  ``sample`` draws from by default and ``log_prior(.., "fitted")`` scores.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vaekit.models.base import VAE, LossOutput, io_spec
from vaekit.models.distributions import DiagonalGaussian, StandardNormal, exact_kl_per_dim, has_exact_kl
from vaekit.models.parts import KINDS, REQUIREMENTS, AddedModule, part, parts
from vaekit.models.priors.mixture import MixturePrior
from vaekit.utils.errors import VaekitError


class GaussianLatentVAE(VAE):
    """A VAE whose latent (or top group) is a diagonal Gaussian N(mean, diag(exp(logvar))).

    Subclasses define ``encode`` (-> mean, logvar, each [B, latent_dim]), ``decode_logits``, ``draw``
    and ``log_weights``."""

    takes_objectives = True
    splits_noise = True

    def __init__(self, **config: Any) -> None:
        # the modules that registered parts add (``parts.AddedModule``: FactorVAE's discriminator), by
        # their config entries; built by ``build_added_modules`` once the subclass's parts are in place
        self.added_entries = {a.entry: (a, config.pop(a.entry)) for a in added_modules() if a.entry in config}
        kept = {entry: list(v) if isinstance(v, tuple) else v for entry, (_, v) in self.added_entries.items()}
        super().__init__(**config, **kept)

    def build_added_modules(self) -> None:
        """Build each added module as the attribute its part names (its weights saved under that name)."""
        for adds, value in self.added_entries.values():
            setattr(self, adds.attribute, adds.build(self, value))

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: the model's at ``lr``; each added module with optimizer
        settings of its own (FactorVAE's discriminator: Kim & Mnih 2018, sec. 4: 1e-4, (0.5, 0.9)) in
        its own group, after."""
        own = [adds for adds, _ in self.added_entries.values() if adds.optimizer is not None]
        if not own:
            return super().parameter_groups(lr)
        modules = [getattr(self, adds.attribute) for adds in own]
        apart = {id(p) for module in modules for p in module.parameters()}
        rest = [p for p in self.parameters() if id(p) not in apart]
        groups = [
            {"params": list(m.parameters()), **adds.optimizer} for adds, m in zip(own, modules, strict=True)
        ]
        return [{"params": rest, "lr": lr}, *groups]

    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [B, C, H, W] in [0, 1] -> the latent's posterior mean and log-variance, each
        [B, latent_dim] (with a flow: of the flow's base Gaussian)."""
        raise NotImplementedError

    def posterior_of(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        """q(z|x) of images x: a distribution (``models.distributions``), float32 also under bf16
        autocast (sums over latents need it)."""
        mean, logvar = self.encode(x, labels)
        return DiagonalGaussian(mean.float(), logvar.float())

    def prior_of(self, labels: torch.Tensor | None = None) -> Any:
        """p(z) the model trains with, a distribution: N(0, I) here."""
        return StandardNormal(self.latent_dim, self.device)

    def latents(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The point of latent space that stands for each image, [B, D]: the posterior mean (with a flow,
        the flow applied to its base mean). What reconstructions, latent plots and fitted priors use."""
        return self.posterior_of(x, labels).mode()

    @property
    def has_flow(self) -> bool:
        """Whether the posterior is a flow on the encoder's Gaussian (then ``latents`` is not its mean)."""
        return False

    def prior_description(self) -> str:
        """The prior it trains with, in words (export.json and ``sample`` say it)."""
        return "N(0, I)"

    @property
    def prior_type(self) -> type:
        """The type of distribution ``prior_of`` returns (``models.distributions``)."""
        return StandardNormal

    @property
    def posterior_type(self) -> type:
        """The type of distribution ``posterior_of`` returns."""
        return DiagonalGaussian

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
        mean = self.latents(x, labels) if self.has_flow else mu
        return {"mean": mean.float(), "logvar": logvar.float()}

    def export_encoding(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[Any, ...]:
        """The posterior's mean and log-variance; with a flow also the flow applied to the base mean
        (``latents``), the point the decoder reads, since the flow is part of the encoder."""
        encoded = self.encode(images, labels)
        return tuple(encoded) if not self.has_flow else (*encoded, self.latents(images, labels))

    def export_io(self) -> dict[str, Any]:
        d, flow = self.latent_dim, self.has_flow
        of = "of z_0, the base Gaussian of the flow posterior" if flow else "of z"
        encoded = [
            io_spec("mean", ["batch", d], "float32", f"posterior mean {of}"),
            io_spec("logvar", ["batch", d], "float32", f"posterior log-variance {of}"),
        ]
        if flow:  # the decoder reads z after the flow: the graph gives it at z_0 = mean
            encoded.append(
                io_spec("z", ["batch", d], "float32", "the flow applied to the mean: what to decode")
            )
        trained = f"the trained prior is {self.prior_description()}"
        if not issubclass(self.prior_type, StandardNormal):
            trained += ", not in these graphs (vaekit sample draws from it)"
        latent = io_spec("z", ["batch", d], "float32", f"a latent; {trained}")
        return {"encoder_outputs": encoded, "latent": latent, "decoder_extra": []}

    def export_decoder_inputs(
        self, encoding: tuple[Any, ...], labels: torch.Tensor | None, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """The latent the decoder reads (with a flow: after it, the encoding's last output) and labels."""
        z = encoding[-1] if self.has_flow else encoding[0]
        return {"z": z} if labels is None else {"z": z, "labels": labels}

    # ------------------------------------------------------------------------------ the objectives
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
        """The registered ``objective`` (``models.objectives``) and its terms per image, with its
        ``options`` (elbo: ``kl_weight``, ``free_bits``, ``kl_balance``; btcvae: ``beta``,
        ``dataset_size``; ...). ``iwae_k`` > 1 is the IWAE bound with that many samples.

        ``generator`` draws z (the global RNG if None); ``noise_rows`` (start, total): this batch is rows
        start.. of a batch of total images whose noise is drawn whole (see ``reparameterize``).
        """
        if iwae_k > 1:
            objective, options = "iwae", {**options, "k": iwae_k}
        spec = part("objective", objective)
        if "one latent" in spec.requires and self.latent_space.kind != "vector":
            raise VaekitError(
                f"the objective {objective} needs {REQUIREMENTS['one latent']}, not {self.name}"
            )
        return spec.function(self, x, labels, generator=generator, noise_rows=noise_rows, **options)

    def draw(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        generator: torch.Generator | None,
        noise_rows: tuple[int, int] | None,
    ) -> Any:
        """One reparameterised z per image and what the ELBO makes of it (``objectives.elbo.Draw``)."""
        raise NotImplementedError

    def log_weights(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        k: int,
        generator: torch.Generator | None = None,
        posterior: Any = None,
        prior: str = "trained",
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Importance weights log w_i = log p(x, z_i) - log q(z_i | x) and recon_i = -log p(x | z_i) for k
        draws z_i ~ q(z|x), both [k, B]. ``posterior``: the ``importance_context`` of x if already
        computed; ``prior``: "trained" or "fitted" (the fitted prior over the latent the tools see)."""
        raise NotImplementedError

    def importance_context(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        """What ``log_weights`` takes as ``posterior``, computed once for all of an image's k draws: the
        encoder's (mean, logvar) here; a hierarchy's features (hvae.py)."""
        return tuple(t.float() for t in self.encode(x, labels))

    def exact_kl(self, context: Any, labels: torch.Tensor | None) -> torch.Tensor | None:
        """KL(q(z|x) || p(z)) per image [B] in closed form from an ``importance_context``, or None where
        there is none (the IWAE objective then averages its draws' log q - log p)."""
        return None

    # -------------------------------------------------------------------------------- the prior p(z)
    @property
    def closed_form_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) has a closed form per dimension for this posterior and prior (a
        rule in ``distributions``' registry: a Gaussian posterior, N(0, I) or N(m_y, I))."""
        return has_exact_kl(self.posterior_type, self.prior_type)

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
        """log p(z) under the trained prior ("trained") or the fitted prior ("fitted"; for a conditional
        model whose fitted prior has classes, log p(z | y)). z [..., D] (k draws: [k, B, D]), labels [B]
        -> [...], nats."""
        if not self.uses_fitted_prior(prior):
            return self.prior_of(labels).log_prob(z)
        by_class = self.conditional and self.fitted_prior.has_classes
        flat = z.reshape(-1, z.shape[-1])
        if by_class and labels is not None:
            labels = labels.repeat(len(flat) // len(labels))  # z [k, B, D] are k draws for each of B labels
        return self.fitted_prior.log_prob(flat, labels if by_class else None).view(z.shape[:-1]).to(z.dtype)

    def sample_source(self, prior: str | None = None) -> str:
        if self.uses_fitted_prior(prior):
            return "the fitted prior"
        return f"the prior it trained with, {self.prior_description()}"

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


def added_modules() -> list[AddedModule]:
    """The modules registered parts add to a model (``parts.AddedModule``)."""
    return [spec.adds for kind in KINDS for spec in parts(kind).values() if spec.adds is not None]


def check_added(entries: dict[str, Any]) -> None:
    """A TypeError for config ``entries`` that are no added module's (what a constructor refuses)."""
    unknown = set(entries) - {adds.entry for adds in added_modules()}
    if unknown:
        raise TypeError(f"unexpected {', '.join(sorted(unknown))}")
