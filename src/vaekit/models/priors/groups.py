"""A fitted prior over a hierarchy's groups: Gaussian mixtures over the standardised noise of its
informative units, fitted after training (``vaekit.training.group_prior``).

A hierarchy's prior draws group l as z_l = mu_l(z_<l) + sigma_l(z_<l) * eps_l with eps_l ~ N(0, I)
(models/hvae.py). Trained with KL terms, its aggregate posterior leaves the N(0, I) of eps unevenly
filled, as a one-latent model's does (``mixture``): the hvae's top group, where the one-latent fitted
prior would sit, carries about a nat, and the identity of a digit lives in the groups below. This prior
replaces N(0, I) for the eps of every group that carries information by a density fitted to the training
images' noise, read along the path of posterior means: eps_l = (E[z_l | x, z_<l] - mu_l) / sigma_l with
the groups above at their posterior means. It is the hierarchical form of Ghosh et al. 2020's ex-post
density estimation (arXiv:1903.12436, sec. 4).

Only the units whose eps varies over the images (variance above ``ACTIVE_VARIANCE``: Burda et al.'s
active units, arXiv:1509.00519, appendix) get the mixture, full-covariance and one per class where there
are labels; every other unit keeps N(0, 1). Group l's temperature t_l scales its units' spread around
where this prior centres them (the mixture component's mean, or 0): eps = m_k + diag(t) L_k e.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vaekit.models.maths import log_standard_normal
from vaekit.models.priors.mixture import MixturePrior
from vaekit.utils.errors import VaekitError

KIND = "group_noise"
ACTIVE_VARIANCE = 0.01  # a unit whose eps varies less over the training images carries no information


class GroupNoisePrior(nn.Module):
    """p(eps) over the first ``len(group_sizes)`` groups of a hierarchy (flattened and concatenated from
    the top): a ``MixturePrior`` over the units ``units`` (a buffer of indices), N(0, 1) over the rest.

    ``temperatures`` (one per group of the model, from the top) are the ones ``sample`` uses by default,
    and ``label_temperatures`` those for a requested class, chosen after fitting
    (``training.group_prior``); they live in ``config``."""

    def __init__(
        self,
        group_sizes: Sequence[int],
        units: int,
        components: int,
        num_classes: int = 0,
        temperatures: Sequence[float] | None = None,
        label_temperatures: Sequence[float] | None = None,
        kind: str = KIND,
    ) -> None:
        super().__init__()
        if kind != KIND:
            raise ValueError(f"unknown prior kind {kind!r} for a hierarchy's groups; expected {KIND!r}")
        sizes = [int(s) for s in group_sizes]
        if not sizes or min(sizes) < 1 or not 1 <= units <= sum(sizes):
            raise ValueError(f"bad prior sizes: groups {sizes}, units {units}")
        self.group_sizes, self.num_classes, self.components = sizes, num_classes, components
        self.mixture = MixturePrior(units, components, num_classes)
        self.register_buffer("units", torch.arange(units))
        self.config = {"kind": KIND, "group_sizes": sizes, "units": units, "components": components}
        self.config["num_classes"] = num_classes
        self.set_temperatures(temperatures, label_temperatures)

    @property
    def has_classes(self) -> bool:
        return self.num_classes > 0

    @property
    def covered_groups(self) -> int:
        return len(self.group_sizes)

    def set_temperatures(
        self, temperatures: Sequence[float] | None, label_temperatures: Sequence[float] | None = None
    ) -> None:
        """Keep the temperatures ``sample`` uses by default (one per group of the model), and those for
        a requested class; None: 1 (for a class: the others)."""
        self.temperatures = None if temperatures is None else [float(t) for t in temperatures]
        by_class = label_temperatures
        self.label_temperatures = None if by_class is None else [float(t) for t in by_class]
        self.config.update(temperatures=self.temperatures, label_temperatures=self.label_temperatures)

    def chosen(self, by_class: bool = False) -> list[float] | None:
        """The kept temperatures for samples without (``by_class``: with) a requested class, or None."""
        return (self.label_temperatures or self.temperatures) if by_class else self.temperatures

    def unit_groups(self) -> torch.Tensor:
        """The group of each eps unit [sum(group_sizes)], long."""
        groups = [torch.full((size,), g) for g, size in enumerate(self.group_sizes)]
        return torch.cat(groups).to(self.units.device)

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperatures: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """n draws of eps [n, sum(group_sizes)] (of class ``labels`` [n], else classes by p(y)), each
        group's units' spread scaled by its temperature (``temperatures``: one per covered group or
        more; default 1)."""
        scale = torch.ones(self.covered_groups, device=self.units.device)
        if temperatures is not None:
            scale = torch.tensor([float(t) for t in temperatures[: self.covered_groups]], device=scale.device)
        per_unit = scale[self.unit_groups()]
        eps = torch.randn(n, len(per_unit), generator=generator, device=per_unit.device) * per_unit
        eps[:, self.units] = self.mixture.sample(n, labels, generator, per_unit[self.units]).float()
        return eps

    def log_prob(self, eps: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """log p(eps) [B] of eps [B, sum(group_sizes)] (given ``labels`` [B], or marginal over classes),
        nats: the mixture's over the informative units plus N(0, 1)'s over the rest."""
        rest = torch.ones(eps.shape[1], dtype=torch.bool, device=eps.device)
        rest[self.units] = False
        standard = log_standard_normal(eps[:, rest])
        return self.mixture.log_prob(eps[:, self.units], labels).to(eps.dtype) + standard

    def describe(self) -> str:
        shape = f"{self.num_classes} classes x " if self.has_classes else ""
        shape += str(self.components)
        total = sum(self.group_sizes)
        return (
            f"a Gaussian mixture ({shape} full-covariance components) over the {len(self.units)} "
            f"informative units of {total:,} in the top {self.covered_groups} groups' noise"
        )


def temperature_line(temperatures: float | Sequence[float]) -> str:
    """A temperature, or one per group, as the command line takes them: 0.8, or 1,0.9,..."""
    if isinstance(temperatures, (int, float)):
        return f"{temperatures:g}"
    return ",".join(f"{t:g}" for t in temperatures)


def check_group_sizes(sizes: Sequence[int], model_sizes: Sequence[int]) -> None:
    """A VaekitError where a prior over groups of ``sizes`` does not fit a model whose are ``model_sizes``."""
    if list(sizes) != list(model_sizes[: len(sizes)]):
        theirs = list(model_sizes)
        raise VaekitError(f"the prior covers groups of sizes {list(sizes)}; this model's are {theirs}")
