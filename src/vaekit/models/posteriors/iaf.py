"""Inverse autoregressive flow on top of the diagonal Gaussian posterior (Kingma et al. 2016,
arXiv:1606.04934).

z_0 ~ N(mu, diag(exp(logvar))), then each step t maps z to sigma_t * z + (1 - sigma_t) * m_t, where
(m_t, s_t) = MADE(z, h) depend autoregressively on z (output j sees only z_<j in the step's order) and
sigma_t = sigmoid(s_t) (the paper's numerically stable form, eq. 14). The Jacobian of a step is
triangular with diagonal sigma_t, so log q(z_T | x) = log q(z_0 | x) - sum_t sum_j log sigma_tj (eq. 15).
Orders alternate between steps. The context h is the base posterior's (mu, logvar), which any encoder
gives: the flow needs nothing from the network.

A flow's draws have a density but no closed-form KL: objectives take log q(z|x) at the draws they make
(``FlowPosterior.rsample_with_log_prob``); ``log_prob`` at any other z inverts the flow, D passes a step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from vaekit.models.distributions import DiagonalGaussian
from vaekit.models.parts import option, register_posterior

FORGET_BIAS = 1.5  # sigma starts near sigmoid(1.5) = 0.82: each step starts close to keeping z (paper sec. 4)


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask [out, in] (Germain et al. 2015)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class IAFStep(nn.Module):
    """One step: a MADE with two hidden layers from z (and the context) to (m, s), in ``order``."""

    def __init__(self, latent_dim: int, hidden: int, order: torch.Tensor) -> None:
        super().__init__()
        degree_in = torch.empty(latent_dim, dtype=torch.long)
        degree_in[order] = torch.arange(1, latent_dim + 1)  # z[order[0]] comes first
        # hidden degrees in 1..D-1 (a 1-D latent: 0, so that nothing reaches them from z)
        degree_hidden = (
            torch.arange(hidden) % max(latent_dim - 1, 1) + 1 if latent_dim > 1 else torch.zeros(hidden)
        )
        self.layer_in = MaskedLinear(degree_hidden[:, None] >= degree_in[None, :])
        self.context = nn.Linear(2 * latent_dim, hidden)
        self.layer_hidden = MaskedLinear(degree_hidden[:, None] >= degree_hidden[None, :])
        out_mask = degree_in[:, None] > degree_hidden[None, :]
        self.layer_out = MaskedLinear(torch.cat([out_mask, out_mask]))  # m and s
        nn.init.zeros_(self.layer_out.weight)  # the flow starts near a scaling of z_0
        nn.init.zeros_(self.layer_out.bias)

    def shift_and_log_scale(
        self, z: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, log sigma), each [..., D]: output j depends on z only through the z before it in the order."""
        h = nn.functional.elu(self.layer_in(z) + self.context(context))
        h = nn.functional.elu(self.layer_hidden(h))
        m, s = self.layer_out(h).chunk(2, dim=-1)
        return m, nn.functional.logsigmoid(s + FORGET_BIAS)

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [..., D], context [..., 2D] -> (the new z [..., D], log |det dz'/dz| [...])."""
        m, log_sigma = self.shift_and_log_scale(z, context)
        sigma = log_sigma.exp()
        return sigma * z + (1.0 - sigma) * m, log_sigma.sum(-1)

    def inverse(self, y: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The z with ``forward(z)[0] = y``, [..., D]: z_j = (y_j - (1 - sigma_j) m_j) / sigma_j, where
        (m_j, sigma_j) depend on z before j alone, so D passes make every dimension exact (one more each,
        in the step's order; Kingma et al. 2016, sec. 4: the inverse is sequential, the forward not)."""
        z = y
        for _ in range(y.shape[-1]):
            m, log_sigma = self.shift_and_log_scale(z, context)
            sigma = log_sigma.exp()
            z = (y - (1.0 - sigma) * m) / sigma
        return z


class InverseAutoregressiveFlow(nn.Module):
    """``steps`` IAF steps of ``hidden`` units over ``latent_dim`` dimensions, orders alternating."""

    def __init__(self, latent_dim: int, steps: int, hidden: int) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"an inverse autoregressive flow needs at least 1 step, got {steps}")
        forward, backward = torch.arange(latent_dim), torch.arange(latent_dim - 1, -1, -1)
        self.steps = nn.ModuleList(
            IAFStep(latent_dim, hidden, forward if t % 2 == 0 else backward) for t in range(steps)
        )

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_0 [..., D] -> (z_T, sum of every step's log-determinant [...])."""
        context = context.expand(*z.shape[:-1], context.shape[-1])
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for step in self.steps:
            z, step_log_det = step(z, context)
            log_det = log_det + step_log_det
        return z, log_det

    def inverse(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_T [..., D] -> (z_0 with ``forward(z_0)[0] = z_T``, the forward's log-determinant [...])."""
        context = context.expand(*z.shape[:-1], context.shape[-1])
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for step in reversed(self.steps):
            z = step.inverse(z, context)
            log_det = log_det + step.shift_and_log_scale(z, context)[1].sum(-1)
        return z, log_det


class FlowPosterior(NamedTuple):
    """q(z|x) = the flow pushed through from ``base`` (the encoder's diagonal Gaussian), for a batch."""

    base: DiagonalGaussian
    flow: InverseAutoregressiveFlow

    @property
    def context(self) -> torch.Tensor:
        return torch.cat([self.base.mean, self.base.logvar], dim=-1)

    def rsample_with_log_prob(
        self,
        k: int | None = None,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws z_T ([B, D], or [k, B, D]) and log q(z_T | x) at them ([B] or [k, B])."""
        z0, log_q0 = self.base.rsample_with_log_prob(k, generator, noise_rows)
        z, log_det = self.flow(z0, self.context)
        return z, log_q0 - log_det

    def rsample(
        self,
        k: int | None = None,
        generator: torch.Generator | None = None,
        noise_rows: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        return self.rsample_with_log_prob(k, generator, noise_rows)[0]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) at any z [..., B, D] -> [..., B]: the flow inverted back to z_0 (eq. 15,
        log q(z_T) = log q_0(z_0) - sum_t log |det|); D passes of each step, so dearer than the value
        ``rsample_with_log_prob`` gives at the flow's own draws."""
        z0, log_det = self.flow.inverse(z, self.context)
        return self.base.log_prob(z0) - log_det

    def mode(self) -> torch.Tensor:
        """The flow applied to the base mean: the point that stands for each image [B, D] (not the mean
        of q, which has no closed form; the decoder reads z_T, so this is what reconstructions use)."""
        return self.flow(self.base.mean, self.context)[0]

    def moments(
        self, draws: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance per dimension, each [B, D], of ``draws`` draws (no closed form)."""
        z = self.rsample_with_log_prob(draws, generator)[0]
        return z.mean(dim=0), z.var(dim=0)


@dataclass
class IAFOptions:
    flow_steps: int = option(2, "steps of the flow", minimum=1)


DEFAULT_FLOW_HIDDEN = 256  # units per hidden layer of each IAF step's MADE


@register_posterior(
    "iaf",
    "an inverse autoregressive flow on the Gaussian (Kingma et al. 2016)",
    IAFOptions,
    requires=("one latent",),
    model_config=lambda options: {"posterior": "iaf", "flow_steps": options["flow_steps"]},
)
class IAFPosterior(nn.Module):
    """The encoder's diagonal Gaussian pushed through an inverse autoregressive flow whose context is
    that Gaussian's (mean, logvar): any encoder serves, the flow needs nothing from the network."""

    distribution: ClassVar[type] = FlowPosterior
    has_flow: ClassVar[bool] = True  # the point an image stands for is the flow's image of the mean

    def __init__(self, latent_dim: int, flow_steps: int, flow_hidden: int = DEFAULT_FLOW_HIDDEN) -> None:
        super().__init__()
        self.flow = InverseAutoregressiveFlow(latent_dim, flow_steps, flow_hidden)

    @classmethod
    def for_model(cls, model: Any, *, flow_steps: int, flow_hidden: int | None = None) -> IAFPosterior:
        return cls(model.latent_dim, int(flow_steps), int(flow_hidden or DEFAULT_FLOW_HIDDEN))

    def forward(self, mean: torch.Tensor, logvar: torch.Tensor) -> FlowPosterior:
        """q(z|x) of the encoder's output, each [B, D] (in float32)."""
        return FlowPosterior(DiagonalGaussian(mean.float(), logvar.float()), self.flow)
