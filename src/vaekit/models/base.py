"""The interface between every vaekit model and the rest: the VAE base class and LossOutput, what
``model.loss`` returns to the training loop. The Gaussian-latent VAE builds on it in gaussian.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from vaekit.models.labels import check_labels
from vaekit.models.maths import bernoulli_nll, calibrated_log_std, gaussian_nll
from vaekit.utils.errors import VaekitError

LIKELIHOODS = ("bernoulli", "gaussian")
# Weights of every model renamed since release 0.1: the fitted prior was ``model.prior``.
RENAMED_EVERYWHERE = {"prior.": "fitted_prior."}
# What samples are drawn from (``sample --from``): the prior fitted after training, or the one trained
# with; "standard" is release 0.1's name for the second, still read.
SAMPLE_SOURCES = ("fitted", "trained")
OLD_SOURCE_NAMES = {"standard": "trained"}
PRECISIONS = ("fp32", "bf16")  # of training steps; bf16 is autocast mixed precision
MIN_LOG_STD = math.log(1e-3)  # floor of a learned decoder std: keeps the density of flat pixels finite
CALIBRATED = "calibrated"  # decoder_std: sigma-VAE's calibrated scale (``VAE._calibrate``)


# What a model's latent is. The tools (pictures, fitted priors, evaluation, the explorer, export) ask a
# model for its latent space and its capabilities below, never for its class:
#   "vector"     one Gaussian latent of latent_dim units: encode gives its mean and log-variance
#   "hierarchy"  groups of Gaussian latents; the one-latent tools see its top group, a vector
#   "codes"      a grid of discrete codes, indices into a codebook
LATENT_KINDS = ("vector", "hierarchy", "codes")


@dataclass(frozen=True)
class LatentSpace:
    """A model's latent as the tools see it: its ``kind`` (LATENT_KINDS), ``size`` (the units of the
    vector the one-latent tools work on; a code grid's positions), a code grid's ``grid`` and
    ``codebook_size``, and a hierarchy's ``groups`` (each group's shape (c, h, w), from the top)."""

    kind: str
    size: int
    grid: tuple[int, int] | None = None
    codebook_size: int | None = None
    groups: tuple[tuple[int, ...], ...] = ()

    @property
    def gaussian(self) -> bool:
        """Whether ``encode`` gives a Gaussian's mean and log-variance, [B, size]: what latent pictures,
        traversals, a fitted prior, the explorer's pad and latent statistics need."""
        return self.kind != "codes"

    def describe(self) -> str:
        """How big it is, in words: "20", "7x7 codes of 128"."""
        if self.kind == "codes":
            return f"{self.grid[0]}x{self.grid[1]} codes of {self.codebook_size}"
        return str(self.size)


def io_spec(name: str, shape: list[Any], dtype: str, meaning: str) -> dict[str, Any]:
    """One input or output of an exported graph, as export.json describes it."""
    return {"name": name, "shape": shape, "dtype": dtype, "meaning": meaning}


class DecodeGraph(nn.Module):
    """What a model's decoder.onnx computes (``VAE.export_decoder``): ``model.decode``, pixel means in
    [0, 1], from the latent and, for a conditional model, the labels."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.decode(latents, labels)


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
    modelled by ``likelihood``: independent Bernoullis, or Gaussians of one standard deviation shared by
    all pixels: fixed (a number), ``"calibrated"`` (each training batch's best, sigma-VAE) or learned
    (None). Either way the decoder network
    outputs logits whose sigmoid is the pixel mean, so ``decode`` returns images in [0, 1].
    """

    name: ClassVar[str]
    conditional: ClassVar[bool] = False  # True: encoder and decoder see the class label
    # Weights renamed since an earlier release, old name -> new: run folders and checkpoints written
    # before the rename still load (``upgrade_state_dict``).
    renamed_weights: ClassVar[dict[str, str]] = {}
    # Training settings this model trains best with where a run leaves them unset (see
    # training.settings.TRAINING_DEFAULTS: the hvae's optimizer, schedule, clipping, averaging).
    training_defaults: ClassVar[dict[str, Any]] = {}
    # The kind of its latent (LATENT_KINDS); the one-latent parts and objectives apply to "vector" alone.
    latent_kind: ClassVar[str] = "vector"
    # Capabilities the settings and the loop ask of a model class: whether ``loss`` takes an objective
    # and its options (the KL weight, ...), the noise rows of a batch split over torchrun's ranks
    # (``noise_rows``), and bf16 autocast in its training steps.
    takes_objectives: ClassVar[bool] = False
    splits_noise: ClassVar[bool] = False
    trains_in_bf16: ClassVar[bool] = True
    # A plugin's origin ({"module", "package", "version"}), set by registry.register_model; saved in the
    # config, so that loading a run whose plugin is missing names what to install.
    plugin: ClassVar[dict[str, str] | None] = None

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = {"name": self.name, **config}
        if self.plugin is not None:
            self.config["plugin"] = dict(self.plugin)
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
        self.calibrated = decoder_std == CALIBRATED
        if not (decoder_std is None or self.calibrated or _positive(decoder_std)):
            raise ValueError(f"decoder_std must be a positive number or {CALIBRATED!r}, got {decoder_std!r}")
        if self.likelihood == "gaussian" and decoder_std is None:
            self.log_std = nn.Parameter(torch.zeros(()))
        elif self.calibrated:  # sigma-VAE's: each training batch's best std; its running mean evaluates
            self.register_buffer("log_std", torch.zeros(()))
            self.register_buffer("calibration_steps", torch.zeros((), dtype=torch.long))
        elif self.likelihood == "gaussian":
            self.register_buffer("log_std", torch.tensor(math.log(decoder_std)), persistent=False)
        self.fitted_prior: nn.Module | None = None  # a prior fitted after training (see set_prior)
        self._register_load_state_dict_pre_hook(self._rename_old_weights)

    prior = property(lambda self: self.fitted_prior, doc="``fitted_prior``'s release 0.1 name")

    def upgrade_state_dict(self, state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
        """``state`` with the weights of ``renamed_weights`` (and every model's ``RENAMED_EVERYWHERE``)
        under their current names (in place); an old name ending in "." renames every weight under it."""
        for old, new in {**RENAMED_EVERYWHERE, **self.renamed_weights}.items():
            if old.endswith("."):
                under = [key for key in state if key.startswith(prefix + old)]
                for key in under:
                    renamed = prefix + new + key[len(prefix + old) :]
                    if renamed not in state:
                        state[renamed] = state.pop(key)
            elif prefix + old in state and prefix + new not in state:
                state[prefix + new] = state.pop(prefix + old)
        return state

    def _rename_old_weights(self, state: dict[str, torch.Tensor], prefix: str, *args: Any) -> None:
        self.upgrade_state_dict(state, prefix)

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
        """n new images (pixel means) drawn from the model: from ``prior`` ("fitted" or "trained"; by
        default the fitted prior if the model has one), of class ``label`` if given. ``temperature``
        below 1 draws nearer the prior's modes (scaled standard deviations; a vqvae: scaled logits)."""
        raise NotImplementedError

    def sample_temperature(self, prior: str | None = None, by_class: bool = False) -> float | list[float]:
        """What ``sample`` draws at unless told (1; a hierarchy's fitted prior keeps chosen ones)."""
        return 1.0

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
        self.fitted_prior = prior.to(self.device)
        self.config["prior"] = dict(prior.config)

    def uses_fitted_prior(self, prior: str | None) -> bool:
        """Whether to sample from the fitted prior, for a ``prior`` choice of None (the fitted one if
        there is one), "fitted" or "trained" (the prior trained with; "standard", its old name)."""
        if prior is None:
            return self.fitted_prior is not None
        prior = OLD_SOURCE_NAMES.get(prior, prior)
        if prior not in SAMPLE_SOURCES:
            choices = ", ".join(SAMPLE_SOURCES)
            raise VaekitError(f"unknown prior {prior!r} to sample from; choose from {choices}")
        if prior == "fitted" and self.fitted_prior is None:
            raise VaekitError(
                f"this {self.name} model has no fitted prior: fit one with `vaekit train-prior RUN`"
            )
        return prior == "fitted"

    def sample_source(self, prior: str | None = None) -> str:
        """What ``sample(prior=prior)`` draws from, in words (the command says it)."""
        return "the fitted prior" if self.uses_fitted_prior(prior) else "the prior it trained with"

    def samples_by_class(self, prior: str | None = None) -> bool:
        """Whether samples can be asked for by class: a conditional model, or a fitted prior with classes."""
        if self.conditional:
            return True
        return self.uses_fitted_prior(prior) and bool(getattr(self.fitted_prior, "has_classes", False))

    def sample_classes(self, n: int, label: int | None, prior: str | None = None) -> torch.Tensor | None:
        """The class of each of ``n`` samples: ``label`` repeated; without one, a conditional model's
        classes in equal consecutive blocks (a grid of rows x classes has a row per class) and None for
        an unconditional model (its fitted prior then draws classes by their training frequencies)."""
        if not self.conditional and label is not None and not self.samples_by_class(prior):
            why = "its prior has no classes" if self.uses_fitted_prior(prior) else (
                "it is not conditional and samples from the prior it trained with"
                if OLD_SOURCE_NAMES.get(prior, prior) == "trained" else
                "it is not conditional and has no fitted prior (`vaekit train-prior RUN` fits one)"
            )  # fmt: skip
            raise VaekitError(f"a label does not apply to this {self.name} model: {why}")
        if not self.conditional and label is None:
            return None
        classes = self.num_classes if self.conditional else self.fitted_prior.num_classes
        if label is not None:
            if not 0 <= label < classes:
                raise VaekitError(f"label must be in 0..{classes - 1}, got {label}")
            return torch.full((n,), label, dtype=torch.long, device=self.device)
        return torch.arange(n, device=self.device) * classes // n

    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel means decoded from each image's most likely latent."""
        raise NotImplementedError

    @property
    def starts_from_data(self) -> bool:
        """Whether a new run calls ``start_from_data``."""
        return False

    def start_from_data(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> None:
        """Called once when a new run starts, with training images (float [0, 1]) and their labels, for a
        part that starts from data (a VampPrior's pseudo-inputs); most models need nothing."""

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer's parameter groups (all parameters at ``lr``; a model with a part that trains at
        its own rate, as FactorVAE's discriminator, adds a group)."""
        return [{"params": list(self.parameters()), "lr": lr}]

    @property
    def can_sample(self) -> bool:
        return True

    # ------------------------------------------------------------------- what the model can do
    @property
    def latent_space(self) -> LatentSpace:
        """Its latent, as the tools see it (``LatentSpace``)."""
        return LatentSpace(self.latent_kind, self.latent_dim)

    @property
    def has_likelihood(self) -> bool:
        """Whether it gives importance weights (``log_weights``) for -log p(x) by importance sampling."""
        return False

    @property
    def fits_prior(self) -> bool:
        """Whether a mixture prior is fitted to its latents after training (``training.priors``)."""
        return False

    def require_gaussian_latent(self, what: str) -> None:
        """A one-line error where ``what`` needs a Gaussian latent (``LatentSpace.gaussian``)."""
        if not self.latent_space.gaussian:
            raise VaekitError(f"{what} needs a Gaussian latent; {self.name} has discrete codes")

    def representation(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The point that stands for each image, float [B, ...] (flattened by the projector's caller): a
        Gaussian latent's posterior mean (``latents``), a code grid's codebook vectors."""
        raise NotImplementedError

    # ----------------------------------------------------------------- export (vaekit export)
    def export_encoding(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[Any, ...]:
        """What encoder.onnx computes from images (and a conditional model's labels): the outputs that
        ``export_io()["encoder_outputs"]`` names, in order."""
        raise NotImplementedError

    def export_io(self) -> dict[str, Any]:
        """export.json's account of the two graphs' latent side (``io_spec`` entries):
        ``encoder_outputs``, the decoder's ``latent`` input and its ``decoder_extra`` inputs after the
        labels (a hierarchy's noise)."""
        raise NotImplementedError

    def export_decoder(self) -> nn.Module:
        """What decoder.onnx computes: a module whose forward takes ``export_decoder_inputs`` in order."""
        return DecodeGraph(self)

    def export_decoder_inputs(
        self, encoding: tuple[Any, ...], labels: torch.Tensor | None, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """decoder.onnx's inputs by name for an ``export_encoding``: the latent the decoder reads (its
        first output here), and a conditional model's labels."""
        inputs = {self.export_io()["latent"]["name"]: encoding[0]}
        return inputs if labels is None else {**inputs, "labels": labels}

    def encoded_columns(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``vaekit encode``'s columns of each image: ``mean`` and ``logvar`` of a Gaussian latent (of the
        point decoded: a flow's base Gaussian's logvar), a code grid's ``codes``."""
        raise NotImplementedError

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
        mean = torch.sigmoid(logits)
        if self.calibrated and self.training:
            return gaussian_nll(mean, self._calibrate(mean, x), x)
        return gaussian_nll(mean, self.log_std.clamp(min=MIN_LOG_STD), x)

    @torch.no_grad()
    def _calibrate(self, mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A calibrated decoder's std for this training batch (``maths.calibrated_log_std``), floored as a
        learned one is; its running mean ``log_std`` (the plain mean over the first 100 batches, then an
        average of rate 0.01) is the std evaluation uses. On the device: nothing read back."""
        log_std = calibrated_log_std(mean, x).clamp(min=MIN_LOG_STD)
        rate = (1.0 / (self.calibration_steps + 1).float()).clamp(min=0.01)
        self.log_std.lerp_(log_std, rate)
        self.calibration_steps.add_(1)
        return log_std

    def one_hot(self, labels: torch.Tensor | None) -> torch.Tensor:
        """One-hot float [B, num_classes] of a conditional model's labels (an error if they are missing)."""
        if labels is None:
            raise VaekitError(f"model {self.name} is conditional: it needs the class labels")
        check_labels(labels, self.num_classes)
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


def _positive(value: object) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0
