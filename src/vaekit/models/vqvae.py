"""VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, arXiv:1711.00937): a grid of discrete codes.

The encoder maps an image to a grid of h x w vectors z_e (latent_dim each); each is replaced by its
nearest vector e_k in a codebook of K, and the decoder sees only that grid of codes. Default (28x28):
encoder Conv2d(1,32,4,2,1) ReLU Conv2d(32,64,4,2,1) ReLU Conv2d(64,16,1) -> z_e [B, 16, 7, 7]; decoder
Conv2d(16,64,3,1,1) ReLU ConvTranspose2d(64,32,4,2,1) ReLU ConvTranspose2d(32,1,4,2,1) -> logits.

- Gradients pass the quantisation by the straight-through estimator (sec. 3.1): the decoder's input is
  z_e + sg(e - z_e), which is e going forward and hands the decoder's gradient to z_e going back.
- The codebook learns by exponential moving averages, not by gradient (appendix A.1): with decay g,
  n_k encoder outputs assigned to code k in the batch and s_k their sum, N_k <- g N_k + (1-g) n_k,
  m_k <- g m_k + (1-g) s_k and e_k = m_k / N~_k, N~_k being N_k Laplace-smoothed. Each e_k tracks the
  mean of the encoder outputs it wins: an online k-means.
- The commitment loss beta * ||z_e - sg(e)||^2 (eq. 3) keeps the encoder outputs near their codes.
- Dead codes are restarted (not in the paper; Dhariwal et al. 2020, Jukebox, do the same): a code whose
  usage N_k falls to DEAD_FRACTION of the mean usage is moved onto a randomly chosen encoder output of
  the batch. Usage is compared with the mean, so the rule is the same for any batch, grid or codebook
  size and as the moving averages warm up from zero. A fresh codebook has zero usage, so after the
  first training batch every code is either the mean of the encoder outputs it won or a restarted one.
  On MNIST (defaults, 2 epochs on 10,800 images) the restarts raise the codes used on the validation
  images from 10 to 111 of 128 and lower their reconstruction NLL from 91 to 77 nats.

The posterior is one-hot, q(c|x) = [c = c*(x)], so the ELBO is log p(x|c*) - KL(q || p) with
KL = -log p(c*) (q has no entropy): ``loss`` = recon + kl bounds -log p(x) like the Gaussian models'.
The paper fits the prior p(c) after the autoencoder (sec. 3.2), here a CodePrior (``vaekit
train-prior``); until one is attached it is uniform, p(c) = K^-(h w), so KL = h w log K.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models.base import VAE, LatentSpace, LossOutput, io_spec
from vaekit.models.conv import crop, downsampling, feature_grid, pad, padding, upsampling
from vaekit.models.priors.codes import CodePrior
from vaekit.utils.errors import VaekitError

LAPLACE_EPS = 1e-5  # additive smoothing of the usage counts: no division by zero for an unused code
DEAD_FRACTION = 0.1  # a code used at most a tenth as much as the average code is dead


class VQVAE(VAE):
    name = "vqvae"
    latent_kind = "codes"
    trains_in_bf16 = False  # the nearest-code search and the codebook's averages need float32

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int = 16,
        codebook_size: int = 128,
        channels: Sequence[int] = (32, 64),
        commitment: float = 0.25,
        ema_decay: float = 0.99,
        likelihood: str = "bernoulli",
        decoder_std: float | None = None,
    ) -> None:
        super().__init__(
            image_shape=list(image_shape),
            latent_dim=latent_dim,
            codebook_size=codebook_size,
            channels=list(channels),
            commitment=commitment,
            ema_decay=ema_decay,
            likelihood=likelihood,
            decoder_std=decoder_std,
        )
        if codebook_size < 2:
            raise ValueError(f"codebook_size must be >= 2, got {codebook_size}")
        if not (math.isfinite(commitment) and commitment >= 0):
            raise ValueError(f"commitment must be a finite number >= 0, got {commitment}")
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.codebook_size = codebook_size
        self.commitment = commitment
        self.ema_decay = ema_decay
        self.padding = padding(image_shape, channels)  # sides that do not divide: padded, then cropped
        self.grid = feature_grid(image_shape, channels)  # the code grid (h, w)
        self.encoder = nn.Sequential(
            *downsampling(image_shape[0], channels), nn.Conv2d(channels[-1], latent_dim, 1)
        )

        # The codebook and its moving averages are buffers: saved with the weights, unseen by the optimizer.
        self.register_buffer("codebook", torch.randn(codebook_size, latent_dim))  # e_k, [K, D]
        self.register_buffer("ema_count", torch.zeros(codebook_size))  # N_k, [K]
        self.register_buffer("ema_sum", torch.zeros(codebook_size, latent_dim))  # m_k, [K, D]

        self.decoder = nn.Sequential(
            nn.Conv2d(latent_dim, channels[-1], 3, 1, 1), nn.ReLU(), *upsampling(channels, image_shape[0])
        )

    # ----------------------------------------------------------------------------- codes and prior
    def quantize(self, z_e: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook vector at each position. z_e [B, D, h, w] -> codes [B, h, w] (long).

        ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, one matrix product for all positions and codes.
        """
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.latent_dim)
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + self.codebook.pow(2).sum(1)
        )
        return distances.argmin(dim=1).view(z_e.shape[0], *z_e.shape[2:])  # shape[0]: a batch ONNX keeps open

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of a code grid. codes [B, h, w] -> [B, D, h, w]."""
        return F.embedding(codes, self.codebook).permute(0, 3, 1, 2)

    def code_nll(self, codes: torch.Tensor) -> torch.Tensor:
        """-log p(c) in nats per image under the attached prior, else the uniform one. [B, h, w] -> [B]."""
        if self.fitted_prior is None:
            h, w = self.grid
            return torch.full((len(codes),), h * w * math.log(self.codebook_size), device=codes.device)
        with torch.no_grad():  # the prior is fitted separately (train_prior), never by the VQ-VAE's loss
            return -self.fitted_prior.log_prob(codes)

    @classmethod
    def prior_from_config(cls, config: dict[str, Any]) -> nn.Module:
        return CodePrior(**config)

    def check_prior(self, prior: nn.Module) -> None:
        """The prior must be a CodePrior over this model's code grid."""
        if not isinstance(prior, CodePrior):
            raise VaekitError(f"a vqvae takes a prior over its codes, not {type(prior).__name__}")
        if prior.num_codes != self.codebook_size or prior.grid != self.grid:
            raise VaekitError(
                f"the prior is over {prior.grid} grids of {prior.num_codes} codes; this model has "
                f"{self.grid} grids of {self.codebook_size}"
            )

    @property
    def can_sample(self) -> bool:
        return self.fitted_prior is not None

    @property
    def latent_space(self) -> LatentSpace:
        grid = tuple(self.grid)
        return LatentSpace("codes", math.prod(grid), grid=grid, codebook_size=self.codebook_size)

    def sample_source(self, prior: str | None = None) -> str:
        return "the vqvae's prior over codes"

    def representation(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Each image's codebook vectors, [B, D, h, w]."""
        return self.embed(self.encode(x, labels)).float()

    def encoded_columns(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"codes": self.encode(x, labels).long()}

    def export_encoding(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[Any, ...]:
        return (self.encode(images, labels),)

    def export_io(self) -> dict[str, Any]:
        grid = list(self.grid)
        nearest = f"the nearest of {self.codebook_size} codebook vectors at each position"
        return {
            "encoder_outputs": [io_spec("codes", ["batch", *grid], "int64", nearest)],
            "latent": io_spec("codes", ["batch", *grid], "int64", f"codes in 0..{self.codebook_size - 1}"),
            "decoder_extra": [],
        }

    # --------------------------------------------------------------------------- codebook learning
    @torch.no_grad()
    def update_codebook(self, vectors: torch.Tensor, codes: torch.Tensor) -> None:
        """One moving-average step (appendix A.1) from encoder outputs [N, D] and their codes [N].

        N_k <- g N_k + (1-g) n_k, m_k <- g m_k + (1-g) s_k, e_k = m_k / N~_k with the Laplace-smoothed
        N~_k = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j. Both averages start at zero, so their
        ratio needs no bias correction.
        """
        assigned = F.one_hot(codes, self.codebook_size).type_as(vectors)  # [N, K]; a matmul, deterministic
        g = self.ema_decay
        self.ema_count.mul_(g).add_(assigned.sum(0), alpha=1 - g)
        self.ema_sum.mul_(g).add_(assigned.T @ vectors, alpha=1 - g)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + LAPLACE_EPS) / (total + self.codebook_size * LAPLACE_EPS) * total
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))

    def dead_mask(self) -> torch.Tensor:
        """Bool [K]: codes whose usage N_k is at most DEAD_FRACTION of the mean (all, before training)."""
        return self.ema_count <= DEAD_FRACTION * self.ema_count.mean()

    @torch.no_grad()
    def restart_codes(self, dead: torch.Tensor, vectors: torch.Tensor) -> None:
        """Move the ``dead`` codes [K] onto encoder outputs drawn uniformly from ``vectors`` [N, D].

        A restarted code gets twice the dead line as its usage: a small count, so it moves quickly to
        the mean of whatever it wins, and (1 - g)^-1 ln 2 steps (69 at g = 0.99) to win something
        before it is dead again. Candidates are drawn for every code, dead or not, from the global RNG:
        the draws per step do not depend on the state (nor need a host synchronisation), and a resumed
        run, which restores the RNG, replays them exactly.
        """
        fresh = vectors[torch.randint(len(vectors), (self.codebook_size,), device=vectors.device)]
        usage = 2 * DEAD_FRACTION * self.ema_count.mean()
        column = dead.unsqueeze(1)
        self.codebook.copy_(torch.where(column, fresh, self.codebook))
        self.ema_sum.copy_(torch.where(column, fresh * usage, self.ema_sum))
        self.ema_count.copy_(torch.where(dead, usage, self.ema_count))

    # ------------------------------------------------------------------------- the model interface
    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images [B, C, H, W] -> codes [B, h, w] (long), the nearest code at each grid position."""
        return self.quantize(self.encoder(pad(x, self.padding)))

    def decode_logits(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Codes [B, h, w] -> pixel logits [B, C, H, W]."""
        return crop(self.decoder(self.embed(codes)), self.padding)

    def loss(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        """recon = -log p(x | c*), kl = -log p(c*), loss = recon + kl (the negative ELBO, see above).

        The objective is recon + commitment * ||z_e - sg(e)||^2 (mean over the batch); -log p(c*) is
        constant for the autoencoder, so it is not in the objective. In training mode the codebook
        takes one moving-average step and dead codes restart. Extra terms: ``commitment`` (per image,
        unweighted), ``perplexity`` of the batch's code usage (exp of its entropy; K at most) and
        ``dead_codes`` (found dead at this step). ``generator`` is unused: nothing here is random
        except the restarts, which draw from the global RNG.
        """
        z_e = self.encoder(pad(x, self.padding))
        codes = self.quantize(z_e.detach())
        z_q = self.embed(codes)  # a lookup in a buffer: already sg(e)
        commitment = (z_e - z_q).pow(2).flatten(1).sum(1)
        logits = crop(self.decoder(z_e + (z_q - z_e).detach()), self.padding)  # straight-through
        recon = self.recon_nll(logits, x)
        kl = self.code_nll(codes)

        flat_codes = codes.flatten()
        if self.training:
            vectors = z_e.detach().permute(0, 2, 3, 1).reshape(-1, self.latent_dim)
            self.update_codebook(vectors, flat_codes)
            dead = self.dead_mask()
            self.restart_codes(dead, vectors)
        else:
            dead = self.dead_mask()
        # counts by scatter_add rather than bincount, which has no meta kernel (training.memory's estimate)
        counts = torch.zeros(self.codebook_size, device=flat_codes.device)
        usage = counts.scatter_add_(0, flat_codes, torch.ones_like(counts[flat_codes])) / len(flat_codes)
        perplexity = torch.exp(-torch.special.xlogy(usage, usage).sum())

        objective = recon.mean() + self.commitment * commitment.mean()
        terms = {
            "loss": (recon + kl).mean(),
            "recon": recon.mean(),
            "kl": kl.mean(),
            "commitment": commitment.mean(),
            "perplexity": perplexity,
            "dead_codes": dead.sum().float(),
        }
        return LossOutput(objective, {k: v.detach() for k, v in terms.items()})

    @torch.no_grad()
    def sample(
        self,
        n: int,
        label: int | None = None,
        generator: torch.Generator | None = None,
        prior: str | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n images (pixel means) decoded from code grids drawn from the attached prior (its logits
        divided by ``temperature``)."""
        self.check_temperature(temperature)
        if prior in ("standard", "trained"):
            raise VaekitError("a vqvae samples from its prior over codes only; it trains with no prior")
        labels = self.sample_labels(n, label)
        if self.fitted_prior is None:
            raise VaekitError(
                "this vqvae model has no prior over its codes yet, so it cannot sample: "
                "train one with `vaekit train-prior RUN`"
            )
        return self.decode(self.fitted_prior.sample(n, generator, temperature), labels)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel means decoded from each image's codes."""
        return self.decode(self.encode(x, labels), labels)
