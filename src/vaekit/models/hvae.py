"""A hierarchical VAE in the style of NVAE (Vahdat & Kautz 2020) and VDVAE (Child 2021).

- a **bottom-up encoder**: a stem of ``stem`` strided convolutions halves the (padded) image that many
  times, then residual bottleneck blocks at each of ``scales`` resolutions, average-pooled between
  them; it keeps the features at every scale;
- a **top-down decoder** from a learned constant at the smallest scale: ``groups`` latent groups per
  scale, each ``latent_channels`` x h x w. Group l's prior p(z_l | z_<l) and posterior q(z_l | x, z_<l)
  come from the same decoder state h: the prior from h, the posterior relative to it (NVAE's residual
  Normal: mean p_mu + d_mu, log-variance p_logvar + d_logvar) from h and the encoder's features at that
  scale, as VDVAE reads them. The top group's prior is N(0, I), so it is the latent the one-layer tools
  (latent plots, traversals, the explorer) work on; the fitted prior is over every informative group's
  noise (``priors.groups``);
- the decoder state, upsampled to the first scale, gives the pixel logits through transposed
  convolutions that mirror the stem, cropped back to the image.

The defaults (28x28 MNIST: latents at 8x8 and 4x4, width 64) were measured as the best on a 2-core CPU
at a 10-minute budget (docs/hvae.md): a stem of 1 (latents at 14x14) learns more per step, 2.5x slower.

-ELBO = E_q[-log p(x | z)] + sum_l E_q[KL(q(z_l | x, z_<l) || p(z_l | z_<l))], each group's KL in closed
form at the drawn upper groups. Log-variances are soft-clamped to +-``logvar_limit`` (limit * tanh(v /
limit): NVAE's soft clamp), which keeps exp(logvar) finite without stopping gradients.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models.base import LatentSpace
from vaekit.models.conv import crop, pad
from vaekit.models.gaussian_latent import GaussianLatentVAE, check_added
from vaekit.models.hierarchy import (
    Block,
    Group,
    HierarchyExport,
    TopDownGroup,
    check_hierarchy,
    downsampling_convs,
    group_temperatures,
    prior_draw,
    sample_group,
)
from vaekit.models.maths import gaussian_kl_between, log_normal
from vaekit.models.objectives.elbo import Draw
from vaekit.models.priors.groups import KIND as GROUP_NOISE
from vaekit.models.priors.groups import GroupNoisePrior, check_group_sizes


class HierarchicalVAE(HierarchyExport, GaussianLatentVAE):
    """The sibling of the one-latent model (gaussian.py): the objectives that need no single latent (the
    ELBO, the IWAE bound) from its ``draw`` and ``log_weights`` over every group; the one-latent tools
    read its top group."""

    name = "hvae"
    latent_kind = "hierarchy"
    # measured on MNIST (docs/hvae.md): Adamax at a high rate with a cosine schedule, clipping and
    # skipping, and a KL warm-up with balancing, as NVAE trains; no average of the weights (--ema),
    # which scored 0.07-0.10 nats worse than the weights it averaged in runs of minutes
    training_defaults: ClassVar[dict[str, Any]] = {
        "lr": 1.2e-2,
        "optimizer": "adamax",
        "lr_schedule": "cosine",
        "grad_clip": 200.0,
        "skip_threshold": 1000.0,
        "ema": 0.0,
        "kl_balance": True,
        "kl_warmup": 5,
    }

    def __init__(
        self,
        image_shape: Sequence[int] = (1, 28, 28),
        latent_dim: int | None = None,
        scales: int = 2,
        groups: int = 2,
        latent_channels: int = 8,
        width: int = 64,
        encoder_blocks: int = 1,
        stem: int = 2,
        logvar_limit: float = 7.0,
        likelihood: str = "bernoulli",
        decoder_std: float | None = None,
        **added: Any,
    ) -> None:
        check_added(added)  # only the config entries of the modules registered parts add
        grid = check_hierarchy(
            image_shape, scales, groups, latent_channels, width, encoder_blocks, logvar_limit, stem
        )
        self.padding, sizes = grid
        top_size = latent_channels * sizes[-1][0] * sizes[-1][1]
        if latent_dim is not None and latent_dim != top_size:
            raise ValueError(
                f"latent_dim is the top group's size, latent_channels x {sizes[-1][0]} x {sizes[-1][1]} = "
                f"{top_size} here, not {latent_dim}: set latent_channels (and scales) instead"
            )
        shape = dict(scales=scales, groups=groups, latent_channels=latent_channels, width=width)
        shape.update(encoder_blocks=encoder_blocks, stem=stem, logvar_limit=logvar_limit)
        pixels = dict(likelihood=likelihood, decoder_std=decoder_std)
        super().__init__(image_shape=list(image_shape), latent_dim=top_size, **shape, **pixels, **added)
        self.build_added_modules()
        self.sizes = sizes  # (h, w) of each scale, largest first
        self.logvar_limit = float(logvar_limit)
        channels = image_shape[0]
        depth = scales * groups
        # the stem halves the image ``stem`` times (widths rising to ``width``); the head mirrors it
        stem_widths = [channels] + [max(width // 2 ** (stem - 1 - i), 1) for i in range(stem)]
        self.stem = nn.Sequential(*downsampling_convs(stem_widths))
        self.head = nn.Sequential(*downsampling_convs(stem_widths, transposed=True))
        encoder_depth = scales * encoder_blocks
        self.encoder = nn.ModuleList(
            nn.Sequential(*(Block(width, width, depth=encoder_depth) for _ in range(encoder_blocks)))
            for _ in range(scales)
        )
        # top-down: scale by scale from the smallest; group 0 is the top group
        self.scale_of = [s for s in reversed(range(scales)) for _ in range(groups)]
        self.groups = nn.ModuleList(
            [TopDownGroup(width, latent_channels, depth, top=i == 0) for i in range(depth)]
        )
        self.start = nn.Parameter(torch.randn(1, width, *sizes[-1]))  # the top's state: learned
        self.group_shapes = [(latent_channels, *sizes[s]) for s in self.scale_of]
        sizes_of_groups = torch.tensor([float(math.prod(shape)) for shape in self.group_shapes])
        self.register_buffer("group_sizes", sizes_of_groups, persistent=False)  # KL balancing's

    # ------------------------------------------------------------------------------ the two passes
    def bottom_up(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's features at each scale, largest first."""
        h = self.stem(pad(x, self.padding))
        features = []
        for s, blocks in enumerate(self.encoder):
            if s:
                h = F.avg_pool2d(h, 2)
            h = blocks(h)
            features.append(h)
        return features

    def top_down(
        self,
        batch: int,
        features: list[torch.Tensor] | None,
        choose: Any,
    ) -> tuple[torch.Tensor, list[Group]]:
        """Run the decoder; ``choose(i, prior, posterior)`` gives group i's z from its prior (and, with
        ``features``, its posterior, else None). Returns the pixel logits and every group's record."""
        h = self.start.expand(batch, -1, -1, -1)
        groups: list[Group] = []
        for i, group in enumerate(self.groups):
            s = self.scale_of[i]
            if h.shape[-2:] != self.sizes[s]:
                h = F.interpolate(h, size=self.sizes[s], mode="nearest")
            p_mean, p_logvar, update = group.prior_of(h, self.logvar_limit)
            prior = Group(p_mean, p_logvar)
            posterior = None
            if features is not None:
                posterior = Group(*group.posterior_of(h, features[s], prior, self.logvar_limit))
            z = choose(i, prior, posterior)
            groups.append(Group(p_mean, p_logvar, posterior, z))
            h = group.absorb(h, update, z)
        if h.shape[-2:] != self.sizes[0]:
            h = F.interpolate(h, size=self.sizes[0], mode="nearest")
        return crop(self.head(h), self.padding), groups

    # --------------------------------------------------------------------------------- the loss
    def draw(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        generator: torch.Generator | None,
        noise_rows: tuple[int, int] | None,
    ) -> Draw:
        """One draw of every group from its posterior: -log p(x | z) and the KL of every group (in closed
        form at the drawn groups above it), per image; the ELBO (``objectives.elbo``) sums, weights and
        balances them (``kl1``.. from the top)."""
        features = self.bottom_up(x)

        def from_posterior(i: int, prior: Group, posterior: Group) -> torch.Tensor:
            return sample_group(posterior, generator, noise_rows)

        logits, groups = self.top_down(x.shape[0], features, from_posterior)
        recon = self.recon_nll(logits, x)
        kls = torch.stack([self.group_kl(g) for g in groups], 1)  # [B, groups]
        return Draw(None, None, None, None, recon, kls.sum(1), kls, self.group_sizes)

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
        """log w = log p(x|z) + sum_l [log p(z_l|z_<l) - log q(z_l|x,z_<l)] for k draws of every group, and
        -log p(x | z_i), each [k, B]; ``posterior``: the encoder's features (``importance_context``), if
        already computed; with ``prior`` "fitted", the fitted mixture is the top group's p(z)."""
        features = posterior if posterior is not None else self.bottom_up(x)
        batch = x.shape[0]
        repeated = [f.repeat(k, 1, 1, 1) for f in features]

        def from_posterior(i: int, prior: Group, posterior: Group) -> torch.Tensor:
            return sample_group(posterior, generator, noise_rows, k)

        logits, groups = self.top_down(k * batch, repeated, from_posterior)
        recon = self.recon_nll(logits, x.repeat(k, 1, 1, 1)).view(k, batch)
        fitted = self.uses_fitted_prior(prior)
        covered = self.fitted_prior.covered_groups if fitted and self.fits_group_noise else 0
        log_q_minus_p = torch.zeros(k * batch, device=x.device)
        for i, g in enumerate(groups):
            z = g.z.flatten(1)
            log_q = log_normal(z, g.posterior.mean.flatten(1), g.posterior.logvar.flatten(1))
            if i == 0 and fitted and not covered:  # a fitted mixture over the top group (release 0.1's)
                log_p = self.log_prior(z, None, "fitted")
            elif i < covered:  # p(z_l | z_<l) through the noise: its density, less log sigma_l per unit
                log_p = -0.5 * g.logvar.flatten(1).sum(1)
            else:
                log_p = log_normal(z, g.mean.flatten(1), g.logvar.flatten(1))
            log_q_minus_p = log_q_minus_p + (log_q - log_p)
        if covered:
            log_q_minus_p = log_q_minus_p - self.fitted_prior.log_prob(self.noise_of(groups[:covered]))
        log_q_minus_p = log_q_minus_p.view(k, batch)
        return -recon - log_q_minus_p, recon

    def importance_context(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        return self.bottom_up(x)

    def sample_source(self, prior: str | None = None) -> str:
        if self.uses_fitted_prior(prior) and self.fits_group_noise:
            below = "" if self.fitted_prior.covered_groups == len(self.groups) else "; the rest from theirs"
            return f"the fitted prior ({self.fitted_prior.describe()}{below})"
        if self.uses_fitted_prior(prior):
            return "the fitted prior (the top group; the groups below from their priors)"
        return "the prior it trained with (the top group from N(0, I), each below from its prior)"

    # ----------------------------------------------------------------- the top group, as a latent
    @property
    def latent_space(self) -> LatentSpace:
        return LatentSpace("hierarchy", self.latent_dim, groups=tuple(tuple(s) for s in self.group_shapes))

    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z_1 | x) of the top group, flattened: mean and log-variance [B, latent_dim]."""
        features = self.bottom_up(x)
        h = self.start.expand(x.shape[0], -1, -1, -1)
        top = self.groups[0]
        p_mean, p_logvar, _ = top.prior_of(h, self.logvar_limit)
        mean, logvar = top.posterior_of(h, features[-1], Group(p_mean, p_logvar), self.logvar_limit)
        return mean.flatten(1), logvar.flatten(1)

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel logits from the top group's z [B, latent_dim], the lower groups at their prior means."""
        return self.decode_groups(z, temperature=0.0)

    def decode_groups(
        self,
        z_top: torch.Tensor | None,
        temperature: float | Sequence[float] = 1.0,
        generator: torch.Generator | None = None,
        noise: Sequence[torch.Tensor] | None = None,
        batch: int | None = None,
    ) -> torch.Tensor:
        """Pixel logits from the top group's z (None: drawn from N(0, t^2 I)) and every lower group drawn
        from its prior: z_l = mean + t_l * std * eps_l, with ``noise`` the eps of each lower group (else
        drawn). ``temperature``: one for all groups, or one per group from the top."""
        temperatures = self.group_temperatures(temperature)
        n = batch if z_top is None else z_top.shape[0]  # not len(): a graph keeps the batch open

        def from_prior(i: int, prior: Group, posterior: Group | None) -> torch.Tensor:
            if i == 0 and z_top is not None:
                return z_top.view(n, *self.group_shapes[0]).to(prior.mean.dtype)
            eps = noise[i - 1].view_as(prior.mean) if noise is not None and i > 0 else None
            return prior_draw(prior, temperatures[i], generator, eps)

        logits, _ = self.top_down(n, None, from_prior)
        return logits

    def group_temperatures(self, temperature: float | Sequence[float]) -> list[float]:
        """One temperature per group (``hierarchy.group_temperatures``)."""
        return group_temperatures(temperature, len(self.groups))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        label: int | None = None,
        generator: torch.Generator | None = None,
        prior: str | None = None,
        temperature: float | Sequence[float] | None = None,
    ) -> torch.Tensor:
        """n images from the fitted prior (if any and ``prior`` is not "trained": the groups it covers
        from it, each below from its prior given the groups above) or the trained one (the top group
        from N(0, I)), standard deviations scaled by ``temperature`` (one, or one per group from the top,
        as NVAE draws its samples; None: ``sample_temperature``)."""
        if temperature is None:
            temperature = self.sample_temperature(prior, label is not None)
        temperatures = self.group_temperatures(temperature)
        classes = self.sample_classes(n, label, prior)  # refuses a label that does not apply
        if self.uses_fitted_prior(prior) and self.fits_group_noise:
            eps = self.fitted_prior.sample(n, classes, generator, temperatures)
            return torch.sigmoid(self.decode_noise(eps, temperatures, generator))
        if self.uses_fitted_prior(prior) and temperatures[0] > 0:
            by_class = classes if self.fitted_prior.has_classes else None
            z_top = self.fitted_prior.sample(n, by_class, generator, temperatures[0])
        else:
            z_top = temperatures[0] * torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        return torch.sigmoid(self.decode_groups(z_top, temperatures, generator))

    # ------------------------------------------------- the fitted prior over the groups' noise
    @property
    def fits_group_noise(self) -> bool:
        """Whether the fitted prior is over the groups' noise (``priors.groups``), not only the top group."""
        return isinstance(self.fitted_prior, GroupNoisePrior)

    def sample_temperature(self, prior: str | None = None, by_class: bool = False) -> float | list[float]:
        """The fitted prior's temperatures (``by_class``: those for a requested class), chosen by
        measurement (``training.group_prior``), where samples come from it; else 1."""
        chosen = self.fitted_prior.chosen(by_class) if self.fits_group_noise else None
        return list(chosen) if chosen and self.uses_fitted_prior(prior) else 1.0

    @staticmethod
    def noise_of(groups: Sequence[Group]) -> torch.Tensor:
        """eps_l = (z_l - mu_l) / sigma_l of each group's z against its prior, flattened and concatenated
        from the top: [B, sum of the groups' sizes]."""
        return torch.cat([((g.z - g.mean) * torch.exp(-0.5 * g.logvar)).flatten(1) for g in groups], 1)

    @torch.no_grad()
    def group_noise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the fitted prior over the groups is fitted to: each group's posterior mean as noise of its
        prior, the groups above at their posterior means (``noise_of``), and the posterior's variance in
        the same units, exp(logvar_q - logvar_p); each [B, sum of all groups' sizes]."""
        groups = self.group_means(x)
        variances = [torch.exp(g.posterior.logvar - g.logvar).flatten(1) for g in groups]
        return self.noise_of(groups).float(), torch.cat(variances, 1).float()

    def decode_noise(
        self, eps: torch.Tensor, temperatures: Sequence[float], generator: torch.Generator | None
    ) -> torch.Tensor:
        """Pixel logits from the noise ``eps`` [B, ..] of the groups it covers (z_l = mu_l + sigma_l eps_l)
        and each group below drawn from its prior at its temperature."""
        starts = [0, *itertools.accumulate(math.prod(shape) for shape in self.group_shapes)]

        def choose(i: int, prior: Group, posterior: Group | None) -> torch.Tensor:
            if starts[i + 1] > eps.shape[1]:
                return prior_draw(prior, temperatures[i], generator)
            noise = eps[:, starts[i] : starts[i + 1]].reshape(prior.mean.shape).to(prior.mean.dtype)
            return prior.mean + torch.exp(0.5 * prior.logvar) * noise

        logits, _ = self.top_down(len(eps), None, choose)
        return logits

    @classmethod
    def prior_from_config(cls, config: dict[str, Any]) -> torch.nn.Module:
        if config.get("kind") == GROUP_NOISE:
            return GroupNoisePrior(**config)
        return super().prior_from_config(config)  # release 0.1's mixture over the top group

    def check_prior(self, prior: torch.nn.Module) -> None:
        if not isinstance(prior, GroupNoisePrior):
            return super().check_prior(prior)
        check_group_sizes(prior.group_sizes, [math.prod(shape) for shape in self.group_shapes])

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel means decoded from every group's posterior mean."""
        logits, _ = self.top_down(x.shape[0], self.bottom_up(x), lambda i, p, q: q.mean)
        return torch.sigmoid(logits)

    @torch.no_grad()
    def group_means(self, x: torch.Tensor) -> list[Group]:
        """Every group's prior and posterior for images x, each group at its posterior mean."""
        _, groups = self.top_down(x.shape[0], self.bottom_up(x), lambda i, p, q: q.mean)
        return groups

    @torch.no_grad()
    def resample_group(
        self, x: torch.Tensor, group: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """Images x with group ``group`` (0 = top) drawn anew from its prior; the groups above it at
        their posterior means, those below at their posterior means given the new draw: what that group
        changes in each image. [B, C, H, W] pixel means."""

        def choose(i: int, prior: Group, posterior: Group) -> torch.Tensor:
            return posterior.mean if i != group else prior_draw(prior, temperature, generator)

        logits, _ = self.top_down(x.shape[0], self.bottom_up(x), choose)
        return torch.sigmoid(logits)

    @staticmethod
    def group_kl(group: Group) -> torch.Tensor:
        """KL(q(z_l | x, z_<l) || p(z_l | z_<l)) of one group per image [B], in closed form."""
        posterior = group.posterior
        return (
            gaussian_kl_between(posterior.mean, posterior.logvar, group.mean, group.logvar).flatten(1).sum(1)
        )
