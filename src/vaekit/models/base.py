"""The interface every vaekit model shares, and the Gaussian-latent VAE that most models build on."""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from vaekit.models.maths import (
    bernoulli_nll,
    free_bits_kl,
    gaussian_kl_per_dim,
    gaussian_nll,
    iwae_bound,
    log_normal,
    log_standard_normal,
    reparameterize,
)
from vaekit.utils.errors import VaekitError

LIKELIHOODS = ("bernoulli", "gaussian")
PRIORS = ("fitted", "standard")  # what samples are drawn from: the fitted prior, or the one trained with
PRECISIONS = ("fp32", "bf16")  # of training steps; bf16 is autocast mixed precision
OBJECTIVES = ("elbo", "iwae")  # what a GaussianVAE can train on: the ELBO, or the IWAE bound (iwae_k > 1)
Posterior = tuple[torch.Tensor, torch.Tensor]  # mean and log-variance, each [B, latent_dim]
MIN_LOG_STD = math.log(1e-3)  # floor of a learned decoder std: keeps the density of flat pixels finite


class LossOutput(NamedTuple):
    """``objective``: the scalar to minimise (batch mean). ``terms``: detached batch means, per image,
    starting with ``loss`` (the negative ELBO, whatever the objective), ``recon`` and ``kl``; models add
    their own (``iwae``, ``perplexity``, ...)."""

    objective: torch.Tensor
    terms: dict[str, torch.Tensor]


class VAE(nn.Module):
    """What every model offers: encode, decode, loss, sample, reconstruct, and a config that rebuilds it.

    Subclasses build their layers in ``__init__`` after calling ``super().__init__`` with the keyword
    arguments that rebuild them (they become ``self.config``, saved beside the weights). Pixels are
    modelled by ``likelihood``: independent Bernoullis, or Gaussians with a fixed ``decoder_std`` or, if
    it is None, one learned standard deviation shared by all pixels. Either way the decoder network
    outputs logits whose sigmoid is the pixel mean, so ``decode`` returns images in [0, 1].
    """

    name: ClassVar[str]
    conditional: ClassVar[bool] = False  # True: encoder and decoder see the class label

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = {"name": self.name, **config}
        self.image_shape = tuple(config["image_shape"])
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be [channels, height, width], got {config['image_shape']}")
        self.latent_dim = int(config["latent_dim"])
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        self.num_classes = int(config.get("num_classes", 0))
        self.likelihood = config.get("likelihood", "bernoulli")
        decoder_std = config.get("decoder_std")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}")
        if self.likelihood == "bernoulli" and decoder_std is not None:
            raise ValueError("decoder_std applies to the gaussian likelihood only")
        if decoder_std is not None and not (math.isfinite(decoder_std) and decoder_std > 0):
            raise ValueError(f"decoder_std must be a positive number, got {decoder_std}")
        if self.likelihood == "gaussian" and decoder_std is None:
            self.log_std = nn.Parameter(torch.zeros(()))
        elif self.likelihood == "gaussian":
            self.register_buffer("log_std", torch.tensor(math.log(decoder_std)), persistent=False)
        self.prior: nn.Module | None = None  # a prior fitted after training (see set_prior)

    # ------------------------------------------------------------------------- the model interface
    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        """Images [B, C, H, W] in [0, 1] -> the latent representation (model-specific)."""
        raise NotImplementedError

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents -> pixel logits [B, C, H, W] (sigmoid gives the pixel means)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents -> pixel means [B, C, H, W] in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z, labels))

    def loss(self, x: torch.Tensor, labels: torch.Tensor | None = None, **options: Any) -> LossOutput:
        raise NotImplementedError

    def sample(
        self,
        n: int,
        label: int | None = None,
        generator: torch.Generator | None = None,
        prior: str | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n new images (pixel means) drawn from the model: from ``prior`` ("fitted" or "standard"; by
        default the fitted prior if the model has one), of class ``label`` if given. ``temperature``
        below 1 draws nearer the prior's modes (scaled standard deviations; a vqvae: scaled logits)."""
        raise NotImplementedError

    @staticmethod
    def check_temperature(temperature: float) -> None:
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise VaekitError(f"temperature must be a positive number, got {temperature!r}")

    # ------------------------------------------------------------------------------ fitted priors
    @classmethod
    def prior_from_config(cls, config: dict[str, Any]) -> nn.Module:
        """An empty prior of the shape ``config`` describes (its buffers are filled by loading)."""
        raise VaekitError(f"model {cls.name} takes no prior")

    def check_prior(self, prior: nn.Module) -> None:
        """Raise VaekitError if ``prior`` is not over this model's latent space."""
        raise NotImplementedError

    def set_prior(self, prior: nn.Module) -> None:
        """Attach a prior (a CodePrior to a vqvae, a MixturePrior to a Gaussian-latent model); its config
        joins the model's, so ``save_model`` and ``vaekit.load`` keep it."""
        self.check_prior(prior)
        self.prior = prior.to(self.device)
        self.config["prior"] = dict(prior.config)

    def uses_fitted_prior(self, prior: str | None) -> bool:
        """Whether to sample from the fitted prior, for a ``prior`` choice of None (the fitted one if
        there is one), "fitted" or "standard"."""
        if prior is None:
            return self.prior is not None
        if prior not in PRIORS:
            raise VaekitError(f"unknown prior {prior!r}; choose from {', '.join(PRIORS)}")
        if prior == "fitted" and self.prior is None:
            raise VaekitError(
                f"this {self.name} model has no fitted prior: fit one with `vaekit train-prior RUN`"
            )
        return prior == "fitted"

    def samples_by_class(self, prior: str | None = None) -> bool:
        """Whether samples can be asked for by class: a conditional model, or a fitted prior with classes."""
        if self.conditional:
            return True
        return self.uses_fitted_prior(prior) and bool(getattr(self.prior, "has_classes", False))

    def sample_classes(self, n: int, label: int | None, prior: str | None = None) -> torch.Tensor | None:
        """The class of each of ``n`` samples: ``label`` repeated; without one, a conditional model's
        classes in equal consecutive blocks (a grid of rows x classes has a row per class) and None for
        an unconditional model (its fitted prior then draws classes by their training frequencies)."""
        if not self.conditional and label is not None and not self.samples_by_class(prior):
            why = "its prior has no classes" if self.uses_fitted_prior(prior) else (
                "it is not conditional and samples from N(0, I)" if prior == "standard" else
                "it is not conditional and has no fitted prior (`vaekit train-prior RUN` fits one)"
            )  # fmt: skip
            raise VaekitError(f"a label does not apply to this {self.name} model: {why}")
        if not self.conditional and label is None:
            return None
        classes = self.num_classes if self.conditional else self.prior.num_classes
        if label is not None:
            if not 0 <= label < classes:
                raise VaekitError(f"label must be in 0..{classes - 1}, got {label}")
            return torch.full((n,), label, dtype=torch.long, device=self.device)
        return torch.arange(n, device=self.device) * classes // n

    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel means decoded from each image's most likely latent."""
        raise NotImplementedError

    @property
    def can_sample(self) -> bool:
        return True

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --------------------------------------------------------------------------- shared helpers
    def recon_nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | decoder output) per image under the model's pixel likelihood. [B, ...] -> [B].

        Computed in float32 even under bf16 autocast: a sum over hundreds of pixels needs the precision.
        """
        logits = logits.float()
        if self.likelihood == "bernoulli":
            return bernoulli_nll(logits, x)
        return gaussian_nll(torch.sigmoid(logits), self.log_std.clamp(min=MIN_LOG_STD), x)

    def one_hot(self, labels: torch.Tensor | None) -> torch.Tensor:
        """One-hot float [B, num_classes] of a conditional model's labels (an error if they are missing)."""
        if labels is None:
            raise VaekitError(f"model {self.name} is conditional: it needs the class labels")
        # not while exporting to ONNX: a graph cannot raise (export.json asks callers to check labels)
        exporting = torch.compiler.is_exporting()
        if not exporting and labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise VaekitError(f"labels must be in 0..{self.num_classes - 1}")
        return nn.functional.one_hot(labels.long(), self.num_classes).float()

    def sample_labels(self, n: int, label: int | None) -> torch.Tensor | None:
        """Labels for ``n`` samples: None for an unconditional model, ``label`` repeated, or (no label)
        the classes in equal consecutive blocks, so that a grid of rows x classes has a row per class."""
        if not self.conditional:
            if label is not None:
                raise VaekitError(f"model {self.name} is not conditional: a label does not apply to it")
            return None
        if label is not None:
            if not 0 <= label < self.num_classes:
                raise VaekitError(f"label must be in 0..{self.num_classes - 1}, got {label}")
            return torch.full((n,), label, dtype=torch.long, device=self.device)
        return torch.arange(n, device=self.device) * self.num_classes // n


class GaussianVAE(VAE):
    """A VAE with z ~ N(0, I) prior and diagonal Gaussian posterior q(z|x) = N(mu, diag(exp(logvar))).

    Subclasses define ``encode`` (-> mu, logvar, each [B, latent_dim]) and ``decode_logits``; the
    objectives (ELBO with KL weight and free bits, or the IWAE bound), sampling and reconstruction
    come from here.
    """

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        """Images [B, C, H, W] in [0, 1] -> posterior mean and log-variance, each [B, latent_dim]."""
        raise NotImplementedError

    def loss(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        kl_weight: float = 1.0,
        free_bits: float = 0.0,
        iwae_k: int = 1,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
    ) -> LossOutput:
        """Negative ELBO per image: -log p(x | z) for one z ~ q(z|x), plus KL(q(z|x) || p(z)).

        The objective weights the KL by ``kl_weight`` (beta-VAE, Higgins et al. 2017) and, with
        ``free_bits`` > 0, floors each latent dimension's batch-mean KL at that many nats. With
        ``iwae_k`` > 1 the objective is instead the negative IWAE bound with k samples (Burda et al.
        2015), reported as the extra term ``iwae``; the ELBO terms are then averaged over the k draws.
        ``generator`` draws z (the global RNG if None); ``noise_rows`` (start, total): this batch is
        rows start.. of a batch of total images whose noise is drawn whole (see ``reparameterize``).
        """
        mu, logvar = (t.float() for t in self.encode(x, labels))  # float32 also under autocast
        kl_dims = self.kl_per_dim(mu, logvar, labels)
        kl = kl_dims.sum(dim=1)
        if iwae_k > 1:
            log_weights, recon = self.log_weights(
                x, labels, iwae_k, generator, posterior=(mu, logvar), noise_rows=noise_rows
            )
            bound = iwae_bound(log_weights)
            objective = -bound.mean()
            recon = recon.mean(dim=0)
            extra = {"iwae": -bound.mean()}
        else:
            z = reparameterize(mu, logvar, generator, noise_rows)
            recon = self.recon_nll(self.decode_logits(z, labels), x)
            kl_term = free_bits_kl(kl_dims, free_bits) if free_bits > 0 else kl.mean()
            objective = recon.mean() + kl_weight * kl_term
            extra = {}
        terms = {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean(), **extra}
        return LossOutput(objective, {k: v.detach() for k, v in terms.items()})

    def prior_mean(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The mean m_y of the prior the model trains with, p(z | y) = N(m_y, I), for a model that learns
        one per class ([B, D]); None for p(z) = N(0, I)."""
        return None

    def kl_per_dim(self, mu: torch.Tensor, logvar: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per dimension against the trained prior: N(mu - m_y, sigma^2) against N(0, 1),
        the same divergence shifted by the prior's mean. [B, D] -> [B, D], nats."""
        mean = self.prior_mean(labels)
        return gaussian_kl_per_dim(mu if mean is None else mu - mean.float(), logvar)

    @classmethod
    def prior_from_config(cls, config: dict[str, Any]) -> nn.Module:
        from vaekit.models.priors.mixture import MixturePrior

        return MixturePrior(**config)

    def check_prior(self, prior: nn.Module) -> None:
        from vaekit.models.priors.mixture import MixturePrior

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

    def log_prior(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, prior: str = "standard"
    ) -> torch.Tensor:
        """log p(z) under the trained prior ("standard": N(0, I), or N(m_y, I) for a model that learns
        class means) or the fitted prior ("fitted"; for a conditional model whose fitted prior has
        classes, log p(z | y)). z [..., D] (k draws: [k, B, D]), labels [B] -> [...], nats."""
        if not self.uses_fitted_prior(prior):
            mean = self.prior_mean(labels)
            return log_standard_normal(z if mean is None else z - mean.float())
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
        posterior: tuple[torch.Tensor, torch.Tensor] | None = None,
        prior: str = "standard",
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Importance weights log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x) for k draws z_i ~ q(z|x).

        Returns (log_weights, recon) with recon_i = -log p(x | z_i), both [k, B]; ``iwae_bound`` of the
        first is the IWAE bound. ``posterior`` passes an already computed (mu, logvar); ``prior`` picks
        p(z): the standard normal the model was trained with, or the fitted prior (see ``log_prior``).
        """
        mu, logvar = (t.float() for t in (posterior if posterior is not None else self.encode(x, labels)))
        batch = len(x)
        z = reparameterize(
            mu.expand(k, *mu.shape), logvar.expand(k, *logvar.shape), generator, noise_rows
        )  # [k, B, D]
        repeated = None if labels is None else labels.repeat(k)
        logits = self.decode_logits(z.reshape(k * batch, -1), repeated)
        recon = self.recon_nll(logits, x.repeat(k, *([1] * (x.dim() - 1)))).view(k, batch)
        log_w = -recon + self.log_prior(z, labels, prior) - log_normal(z, mu, logvar)
        return log_w, recon

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
        not "standard") or z ~ N(0, I) (a cvae: N(m_y, I)), with standard deviations scaled by
        ``temperature``. ``label``: the class to draw, for a conditional model or a fitted prior with
        classes (p(z | y)); without one a conditional model draws every class in turn."""
        self.check_temperature(temperature)
        fitted = self.uses_fitted_prior(prior)
        classes = self.sample_classes(n, label, prior)
        if fitted:
            z = self.prior.sample(n, classes if self.prior.has_classes else None, generator, temperature)
        else:
            z = temperature * torch.randn(n, self.latent_dim, generator=generator, device=self.device)
            mean = self.prior_mean(classes if self.conditional else None)
            z = z if mean is None else z + mean
        return self.decode(z, classes if self.conditional else None)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel means decoded from the posterior mean of each image."""
        return self.decode(self.encode(x, labels)[0], labels)
