"""The VampPrior (Tomczak & Welling 2018, arXiv:1705.07120): p(z) = 1/K sum_k q(z | u_k), the mixture of
the variational posteriors of K pseudo-inputs u_k, images learned with the model.

The pseudo-inputs live here; their posteriors come from the model's encoder, so every call that needs
the mixture takes its ``components`` (``GaussianVAE.prior_components`` encodes the pseudo-inputs once
per step). A conditional model (the cvae) gets K pseudo-inputs per class, each encoded with its class,
and p(z | y) is the mixture of class y's: a learned per-class prior.

Pseudo-inputs are kept in [0, 1] by a hard clamp, as the paper's hardtanh does, and start near the
paper's N(0.05, 0.01) (``init_pixels``); ``vaekit train`` starts them from K random training images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vaekit.models.maths import diagonal_mixture_log_prob, kl_per_dim_to_mixture
from vaekit.models.parts import option, register_prior
from vaekit.models.posteriors import DiagonalGaussian
from vaekit.utils.errors import VaekitError


@dataclass
class VampOptions:
    pseudo_inputs: int = option(100, "pseudo-inputs, per class for a cvae", minimum=1)


@register_prior(
    "vamp",
    "the VampPrior: a mixture of the posteriors of learned pseudo-inputs (Tomczak & Welling 2018)",
    VampOptions,
    requires=("one latent",),
    model_config=lambda options: {"trained_prior": "vamp", "pseudo_inputs": options["pseudo_inputs"]},
)
class VampPrior(nn.Module):
    """K pseudo-inputs (per class for a conditional model) whose posteriors make the prior's mixture."""

    closed_form = False  # no closed-form KL: objectives estimate it as log q(z|x) - log p(z)

    def __init__(
        self, latent_dim: int, image_shape: tuple[int, ...], pseudo_inputs: int, num_classes: int = 0
    ):
        super().__init__()
        if pseudo_inputs < 1:
            raise ValueError(f"a VampPrior needs at least 1 pseudo-input, got {pseudo_inputs}")
        self.latent_dim, self.per_group, self.num_classes = latent_dim, pseudo_inputs, num_classes
        self.has_classes = num_classes > 0
        groups = max(num_classes, 1)
        self.pixels = nn.Parameter(torch.empty(groups * pseudo_inputs, *image_shape).normal_(0.05, 0.01))
        # the class of each pseudo-input, in blocks of K (a buffer so that it moves with the model)
        self.register_buffer(
            "labels", torch.arange(groups).repeat_interleave(pseudo_inputs), persistent=False
        )

    def pseudo_inputs(self) -> torch.Tensor:
        """The pseudo-inputs as images in [0, 1], [G K, C, H, W]."""
        return self.pixels.clamp(0.0, 1.0)

    def init_pixels(self, images: torch.Tensor) -> None:
        """Start the pseudo-inputs at ``images`` [G K, C, H, W] in [0, 1] (a conditional model's in class
        blocks of K), a little inside the clamp so that every pixel gets gradients."""
        with torch.no_grad():
            self.pixels.copy_(images.to(self.pixels).clamp(0.01, 0.99))

    def _grouped(self, components: DiagonalGaussian | None) -> tuple[torch.Tensor, torch.Tensor]:
        if components is None:
            raise VaekitError("the VampPrior's mixture needs its components (GaussianVAE.prior_components)")
        groups = max(self.num_classes, 1)
        shape = (groups, self.per_group, self.latent_dim)
        return components.mean.float().view(shape), components.logvar.float().view(shape)

    def _pick(self, per_group: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """[..., G] -> [...]: the group of each image's class, or the only group."""
        if not self.has_classes:
            return per_group.squeeze(-1)
        if labels is None:
            raise VaekitError("a prior with a mixture per class needs the class labels")
        labels = labels.long().expand(per_group.shape[:-1])
        return per_group.gather(-1, labels.unsqueeze(-1)).squeeze(-1)

    def log_prob(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, components: DiagonalGaussian | None = None
    ) -> torch.Tensor:
        """log p(z) (a conditional model: log p(z | y)), nats: z [..., B, D], labels [B] -> [..., B]."""
        means, logvars = self._grouped(components)
        return self._pick(diagonal_mixture_log_prob(z.float(), means, logvars), labels)

    def kl_per_dim(
        self,
        posterior: DiagonalGaussian,
        labels: torch.Tensor | None = None,
        components: DiagonalGaussian | None = None,
    ) -> torch.Tensor:
        """KL(q(z_j|x) || p(z_j)) per dimension against the mixture's marginals, [B, D] nats, by quadrature
        (``maths.kl_per_dim_to_mixture``); what active units and KL-per-dimension figures read."""
        means, logvars = self._grouped(components)
        if self.has_classes and labels is None:
            raise VaekitError("a prior with a mixture per class needs the class labels")
        rows = []
        for start in range(0, len(posterior.mean), 256):  # [256, D, K, 16] at a time
            mu, logvar = posterior.mean[start : start + 256], posterior.logvar[start : start + 256]
            if self.has_classes:
                group = labels[start : start + 256].long()
                rows.append(kl_per_dim_to_mixture(mu, logvar, means[group], logvars[group]))
            else:
                rows.append(kl_per_dim_to_mixture(mu, logvar, means[0], logvars[0]))
        return torch.cat(rows)

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        device: torch.device | None = None,
        components: DiagonalGaussian | None = None,
    ) -> torch.Tensor:
        """n draws [n, D]: a pseudo-input uniformly (of class ``labels[i]``), then its posterior, with
        standard deviations scaled by ``temperature``."""
        means, logvars = self._grouped(components)
        device = means.device
        if self.has_classes and labels is None:
            raise VaekitError("a prior with a mixture per class needs the class labels")
        group = (
            labels.long().to(device) if self.has_classes else torch.zeros(n, dtype=torch.long, device=device)
        )
        pick = torch.randint(self.per_group, (n,), generator=generator, device=device)
        eps = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return means[group, pick] + temperature * torch.exp(0.5 * logvars[group, pick]) * eps

    @property
    def config(self) -> dict[str, int]:
        return {"pseudo_inputs": self.per_group, "num_classes": self.num_classes}
