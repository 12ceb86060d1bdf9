"""The VampPrior (Tomczak & Welling 2018, arXiv:1705.07120): p(z) = 1/K sum_k q(z | u_k), the mixture of
the variational posteriors of K pseudo-inputs u_k, images learned with the model.

The pseudo-inputs live here; their posteriors come from the model's encoder, which the prior is given
when it is built (``for_model``): calling the prior encodes the pseudo-inputs and returns the mixture
(``distributions.DiagonalMixture``), once per step. A conditional model (the cvae) gets K pseudo-inputs
per class, each encoded with its class, and p(z | y) is the mixture of class y's: a learned per-class
prior.

Pseudo-inputs are kept in [0, 1] by a hard clamp, as the paper's hardtanh does, and start near the
paper's N(0.05, 0.01) (``init_pixels``); ``vaekit train`` starts them from K random training images
(``start_from_data``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from vaekit.models.distributions import DiagonalMixture
from vaekit.models.parts import option, register_prior
from vaekit.utils.errors import VaekitError

Encoder = Callable[[torch.Tensor, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]


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
    """K pseudo-inputs (per class for a conditional model) whose posteriors make the prior's mixture.

    ``encode``: images [N, C, H, W] and labels [N] (or None) -> the posterior's (mean, logvar), each
    [N, D]; the model's own ``encode``, a bound method, so that a copy of the model encodes with its own
    weights.
    """

    distribution: ClassVar[type] = DiagonalMixture

    def __init__(
        self,
        latent_dim: int,
        image_shape: tuple[int, ...],
        pseudo_inputs: int,
        num_classes: int = 0,
        encode: Encoder | None = None,
    ):
        super().__init__()
        if pseudo_inputs < 1:
            raise ValueError(f"a VampPrior needs at least 1 pseudo-input, got {pseudo_inputs}")
        self.latent_dim, self.per_group, self.num_classes = latent_dim, pseudo_inputs, num_classes
        self.has_classes = num_classes > 0
        self.encode = encode
        groups = max(num_classes, 1)
        self.pixels = nn.Parameter(torch.empty(groups * pseudo_inputs, *image_shape).normal_(0.05, 0.01))
        # the class of each pseudo-input, in blocks of K (a buffer so that it moves with the model)
        self.register_buffer(
            "labels", torch.arange(groups).repeat_interleave(pseudo_inputs), persistent=False
        )

    @classmethod
    def for_model(cls, model: Any, *, pseudo_inputs: int) -> VampPrior:
        classes = model.num_classes if model.conditional else 0
        return cls(model.latent_dim, model.image_shape, int(pseudo_inputs), classes, model.encode)

    def pseudo_inputs(self) -> torch.Tensor:
        """The pseudo-inputs as images in [0, 1], [G K, C, H, W]."""
        return self.pixels.clamp(0.0, 1.0)

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The posteriors of the pseudo-inputs: means and log-variances [G, K, D] (float32)."""
        if self.encode is None:
            raise VaekitError("this VampPrior was built without an encoder (VampPrior.for_model gives one)")
        mu, logvar = self.encode(self.pseudo_inputs(), self.labels if self.has_classes else None)
        shape = (max(self.num_classes, 1), self.per_group, self.latent_dim)
        return mu.float().view(shape), logvar.float().view(shape)

    def forward(self, labels: torch.Tensor | None = None) -> DiagonalMixture:
        """p(z), the mixture (of each image's class, with ``labels``)."""
        means, logvars = self.components()
        return DiagonalMixture(means, logvars, None, labels if self.has_classes else None)

    def describe(self) -> str:
        per = " per class" if self.has_classes else ""
        return f"a VampPrior of {self.per_group} pseudo-inputs{per}"

    def init_pixels(self, images: torch.Tensor) -> None:
        """Start the pseudo-inputs at ``images`` [G K, C, H, W] in [0, 1] (a conditional model's in class
        blocks of K), a little inside the clamp so that every pixel gets gradients."""
        with torch.no_grad():
            self.pixels.copy_(images.to(self.pixels).clamp(0.01, 0.99))

    def start_from_data(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> None:
        """The pseudo-inputs start as random training images (of each class, for a conditional model):
        the mixture starts where the data are, not at one grey blur."""
        chosen = []
        for group in range(max(self.num_classes, 1)):
            rows = (labels == group).nonzero().squeeze(1) if self.has_classes else torch.arange(len(images))
            if len(rows) < self.per_group:
                where = f"of class {group} " if self.has_classes else ""
                raise VaekitError(
                    f"--pseudo-inputs {self.per_group} is more than the {len(rows)} training images "
                    f"{where}that they start from"
                )
            pick = torch.randperm(len(rows), generator=generator)[: self.per_group]
            chosen.append(images[rows[pick].to(images.device)])
        self.init_pixels(torch.cat(chosen))

    @property
    def config(self) -> dict[str, int]:
        return {"pseudo_inputs": self.per_group, "num_classes": self.num_classes}
