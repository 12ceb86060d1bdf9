"""The pieces of a hierarchical VAE (models/hvae.py): a group's Gaussians, NVAE's soft clamp and KL
balancing, the checks of a hierarchy's shape against the image, and its layers: the residual block,
one top-down group, the stem and head."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models.base import io_spec
from vaekit.models.conv import padding
from vaekit.models.maths import reparameterize
from vaekit.utils.errors import VaekitError


class Group(NamedTuple):
    """One latent group: its prior's ``mean`` and ``logvar`` [B, c, h, w], its ``posterior`` (a Group of
    mean and logvar, or None where there is no image) and the ``z`` drawn."""

    mean: torch.Tensor
    logvar: torch.Tensor
    posterior: Any = None
    z: torch.Tensor | None = None


def soft_clamp(x: torch.Tensor, limit: float) -> torch.Tensor:
    """limit * tanh(x / limit): x itself near 0, never beyond +-limit, and a gradient everywhere (NVAE,
    Vahdat & Kautz 2020, sec. 3.2: bounding log-variances keeps exp() and 1/var finite)."""
    return limit * torch.tanh(x / limit)


def check_hierarchy(
    image_shape: Sequence[int],
    scales: int,
    groups: int,
    latent_channels: int,
    width: int,
    encoder_blocks: int,
    logvar_limit: float,
    stem: int = 1,
) -> tuple[tuple[int, int, int, int], list[tuple[int, int]]]:
    """The image's padding and the (height, width) of each scale, largest first; a ValueError for a
    hierarchy that does not fit the image (more scales than its sides can halve) or a count below 1.

    Scale 0 is the stem's output, the padded image halved ``stem`` times; each further scale halves
    again. The image is padded so that its sides divide by 2^(stem + scales - 1) (conv.padding), and
    refused where the smallest scale would be less than one pixel of the image itself.
    """
    for name, value in (
        ("scales", scales), ("groups", groups), ("latent_channels", latent_channels), ("width", width),
        ("encoder_blocks", encoder_blocks), ("stem", stem),
    ):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if width < 8:
        raise ValueError(f"width must be >= 8 (its blocks narrow to width / 4), got {width}")
    if not (isinstance(logvar_limit, (int, float)) and math.isfinite(logvar_limit) and logvar_limit > 0):
        raise ValueError(f"logvar_limit must be a positive number, got {logvar_limit!r}")
    _, height, width_px = image_shape
    halvings = stem + scales - 1
    if 2**halvings > min(height, width_px):
        most = int(math.log2(min(height, width_px))) - stem + 1
        raise ValueError(
            f"{scales} scales after a stem of {stem} halvings halve a {height}x{width_px} image below one "
            f"pixel: at most {most} scales here"
        )
    sides = padding(image_shape, [1] * halvings)
    padded = (height + sides[2] + sides[3], width_px + sides[0] + sides[1])
    sizes = [(padded[0] // 2 ** (stem + s), padded[1] // 2 ** (stem + s)) for s in range(scales)]
    return sides, sizes


def downsampling_convs(widths: Sequence[int], transposed: bool = False) -> list[nn.Module]:
    """Conv2d(4, 2, 1) from each width to the next, SiLU between them; ``transposed``: the mirror image,
    ConvTranspose2d from the last width back to the first, a SiLU before each (the head's input is the
    decoder state, pre-activated as the blocks' are)."""
    pairs = list(zip(widths[:-1], widths[1:], strict=True))
    layers: list[nn.Module] = []
    if not transposed:
        for i, (c_in, c_out) in enumerate(pairs):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1)] + ([nn.SiLU()] if i < len(pairs) - 1 else [])
        return layers
    for c_out, c_in in reversed(pairs):
        layers += [nn.SiLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)]
    return layers


class Block(nn.Module):
    """VDVAE's bottleneck residual block: SiLU, 1x1 to ``mid`` (default c_in / 4), two 3x3, 1x1 back
    (x + f(x)), each conv after a SiLU (NVAE's activation; 1.2x GELU's decoding speed on a CPU)."""

    def __init__(
        self, c_in: int, c_out: int, residual: bool = True, depth: int = 1, mid: int | None = None
    ) -> None:
        super().__init__()
        mid = mid or max(c_in // 4, 4)
        self.residual = residual
        self.convs = nn.ModuleList(
            [nn.Conv2d(c_in, mid, 1), nn.Conv2d(mid, mid, 3, padding=1),
             nn.Conv2d(mid, mid, 3, padding=1), nn.Conv2d(mid, c_out, 1)]
        )  # fmt: skip
        if residual:  # VDVAE: residual branches scaled by 1/sqrt(depth), so the sum stays O(1)
            with torch.no_grad():
                self.convs[-1].weight.mul_(1 / math.sqrt(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for conv in self.convs:
            out = conv(F.silu(out))
        return x + out if self.residual else out


class TopDownGroup(nn.Module):
    """One latent group of the decoder: prior and posterior from the state h, z folded back into h."""

    def __init__(self, width: int, latent_channels: int, depth: int, top: bool) -> None:
        super().__init__()
        self.latent_channels, self.top = latent_channels, top
        self.prior = Block(width, 2 * latent_channels + width, residual=False)
        # as narrow as the prior's: the posterior runs for every importance sample too
        self.posterior = Block(2 * width, 2 * latent_channels, residual=False, mid=max(width // 4, 4))
        self.project = nn.Conv2d(latent_channels, width, 1)
        self.block = Block(width, width, depth=depth)
        with torch.no_grad():
            self.project.weight.mul_(1 / math.sqrt(depth))
            self.prior.convs[-1].weight[2 * latent_channels :].mul_(1 / math.sqrt(depth))  # as a residual

    def prior_of(self, h: torch.Tensor, limit: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """p(z_l | z_<l): mean and log-variance [B, c, h, w] (N(0, I) for the top group), and the state's
        update. The distribution is float32 also under bf16 autocast, as the one-latent models' posteriors
        are: its densities and KL are sums over hundreds of units."""
        out = self.prior(h)
        c = self.latent_channels
        mean, logvar, update = out[:, :c].float(), out[:, c : 2 * c].float(), out[:, 2 * c :]
        if self.top:
            mean, logvar = torch.zeros_like(mean), torch.zeros_like(logvar)
        return mean, soft_clamp(logvar, limit), update

    def posterior_of(
        self, h: torch.Tensor, features: torch.Tensor, prior: Group, limit: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z_l | x, z_<l), relative to the prior: (p_mu + d_mu, p_logvar + d_logvar)."""
        d_mean, d_logvar = self.posterior(torch.cat([h, features], dim=1)).chunk(2, dim=1)
        return prior.mean + d_mean, soft_clamp(prior.logvar + d_logvar, limit)

    def absorb(self, h: torch.Tensor, update: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.block(h + update + self.project(z))


class HierarchyDecodeGraph(nn.Module):
    """What a hierarchy's decoder.onnx computes (``HierarchicalVAE.export_decoder``): pixel means from
    the top group's z and the standard normal noise of every group below it (z_l = prior mean + std *
    noise)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, latents: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.decode_groups(latents, 1.0, noise=noise))


def prior_draw(
    prior: Group, temperature: float, generator: torch.Generator | None, eps: torch.Tensor | None = None
) -> torch.Tensor:
    """z = mean + temperature * std * eps from a group's prior [B, c, h, w], eps drawn unless given; at
    temperature 0 (and no eps) the mean itself, drawing nothing (``decode`` leaves the RNG alone)."""
    if eps is None:
        if temperature == 0:
            return prior.mean
        eps = torch.randn(prior.mean.shape, generator=generator, device=prior.mean.device)
    return prior.mean + temperature * torch.exp(0.5 * prior.logvar) * eps


def sample_group(
    posterior: Group, generator: torch.Generator | None, noise_rows: tuple[int, int] | None, k: int = 1
) -> torch.Tensor:
    """z ~ N(mean, exp(logvar)) [k * B, c, h, w] (k draws of each of B images, draw-major):
    ``maths.reparameterize`` on the group flattened to [k, B, D], so that ``noise_rows`` draws a whole
    batch's noise as for a one-latent model."""
    mean, logvar = (t.flatten(1).unflatten(0, (k, -1)) for t in (posterior.mean, posterior.logvar))
    return reparameterize(mean, logvar, generator, noise_rows).view(posterior.mean.shape)


def group_temperatures(temperature: float | Sequence[float], groups: int) -> list[float]:
    """One temperature per group from a number or a list with one per group (from the top); each finite
    and >= 0 (0: that group at its prior's mean)."""
    values = [temperature] * groups if isinstance(temperature, (int, float)) else list(temperature)
    if len(values) != groups:
        raise VaekitError(
            f"give one temperature, or one per group: this model has {groups} groups, got {len(values)}"
        )
    if not all(isinstance(t, (int, float)) and math.isfinite(t) and t >= 0 for t in values):
        raise VaekitError(f"temperatures must be numbers >= 0, got {temperature!r}")
    return [float(t) for t in values]


class HierarchyExport:
    """What ``vaekit export`` asks of a hierarchy (a mixin of ``HierarchicalVAE``): the graphs of the
    one-latent models, the latent being the top group's, and the decoder taking every lower group's
    noise."""

    group_shapes: list[tuple[int, int, int]]

    def export_io(self) -> dict[str, Any]:
        """As the one-latent models', the latent being the top group's; the decoder also takes the
        standard normal noise of every group below (``HierarchyDecodeGraph``)."""
        io = super().export_io()
        io["latent"]["meaning"] = "the top group's z, flattened; its prior is N(0, I)"
        io["decoder_extra"] = [
            io_spec(f"noise{level}", ["batch", *shape], "float32",
                    f"group {level}'s standard normal noise: z = its prior's mean + std * noise (zeros: the "
                    "prior means; noise * t: temperature t)")
            for level, shape in enumerate(self.group_shapes[1:], start=2)
        ]  # fmt: skip
        return io

    def export_decoder(self) -> nn.Module:
        return HierarchyDecodeGraph(self)

    def export_decoder_inputs(
        self, encoding: tuple[Any, ...], labels: torch.Tensor | None, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """The top group's z and, for each group below, standard normal noise (``noise2``..)."""
        inputs = super().export_decoder_inputs(encoding, labels, generator)
        for level, shape in enumerate(self.group_shapes[1:], start=2):
            inputs[f"noise{level}"] = torch.randn(len(encoding[0]), *shape, generator=generator)
        return inputs
