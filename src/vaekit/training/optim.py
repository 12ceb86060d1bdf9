"""Adam as torch.optim.Adam(fused=True) computes it, bit for bit, without torch.optim's start-up cost.

Why not torch.optim.Adam itself: constructing any torch.optim optimizer, and every ``step()``, imports
torch._dynamo, which takes about as long as importing torch (1.65 s of a 7.6 s one-epoch ``vaekit
train`` on a 2-core AMD EPYC). This class calls ``torch.optim.adam.adam``, the functional form that
torch.optim.Adam runs, and keeps the state dict in torch.optim.Adam's layout, so a checkpoint moves
between the two either way (tests/training/test_optim.py checks both).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim.adam import adam as adam_update
from torch.optim.adamax import adamax as adamax_update

OPTIMIZERS = ("adam", "adamax")


class Adam:
    moments = ("exp_avg", "exp_avg_sq")  # the state per parameter, besides its step count
    """Adam (Kingma & Ba 2014): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).

    ``params``: tensors (one group), or groups as torch's optimizers take them, dicts with ``params`` and
    any of ``lr``, ``betas``, ``eps`` (a FactorVAE discriminator trains at its own rate). The fused
    kernel (one op per group; torch >= 2.4 on CPU) where available, else foreach. A group's ``lr`` may
    be changed between steps, as with torch's optimizers.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("Adam got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps}
        self.param_groups: list[dict[str, Any]] = [
            {**defaults, **group, "betas": tuple(group.get("betas", betas)), "params": list(group["params"])}
            for group in groups
        ]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self.fused = True  # until the kernel refuses (CPU before torch 2.4)
        self.decides_on_device: bool | None = None  # keep a skip on the device (None: off the CPU)

    def decides_on(self, device: torch.device) -> bool:
        """Whether a skip stays on ``device``, undecided by the host: on an accelerator (or as set)."""
        return device.type != "cpu" if self.decides_on_device is None else self.decides_on_device

    @property
    def params(self) -> list[torch.Tensor]:
        """Every group's parameters, in order."""
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def _state_of(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        if p not in self.state:  # created at a parameter's first step, as torch.optim.Adam does
            self.state[p] = {
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                **{m: torch.zeros_like(p, memory_format=torch.preserve_format) for m in self.moments},
            }
        return self.state[p]

    @torch.no_grad()
    def step(self, skip: torch.Tensor | None = None) -> None:
        """One update of every group; ``skip`` (a bool tensor on the parameters' device): where it is True
        nothing changes, parameters and state alike.

        On an accelerator the decision stays on the device, nothing read back: the fused Adam kernel takes
        the flag (as torch.amp's GradScaler hands it found_inf), other updates are masked
        (``masked_update``). A CPU computes eagerly, so its flag is there to read at no cost: a skipped
        update is then not made at all, which spares the masks' kernels.
        """
        if skip is not None and not self.decides_on(skip.device):
            if skip.item():
                return
            skip = None
        found_inf = None if skip is None else skip.to(torch.float32)
        for group in self.param_groups:
            self._step_group(group, found_inf)

    def _step_group(self, group: dict[str, Any], found_inf: torch.Tensor | None) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        states = [self._state_of(p) for p in params]
        arguments = (
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
        )
        options = dict(
            amsgrad=False,
            beta1=group["betas"][0],
            beta2=group["betas"][1],
            lr=group["lr"],
            weight_decay=0.0,
            eps=group["eps"],
            maximize=False,
        )
        if self.fused:
            try:  # the fused kernel takes the skip itself, as torch.amp's GradScaler hands it found_inf
                adam_update(*arguments, fused=True, grad_scale=None, found_inf=found_inf, **options)
                return
            except RuntimeError:  # checked before anything is updated
                self.fused = False
        capturable = params[0].is_cuda  # the bias correction from the step counts there, none read back
        update = lambda: adam_update(*arguments, foreach=True, capturable=capturable, **options)  # noqa: E731
        masked_update(update, params, states, found_inf)

    # ------------------------------------------------------------------- torch.optim.Adam's layout
    def state_dict(self) -> dict[str, Any]:
        index = {p: i for i, p in enumerate(self.params)}
        return {
            "state": {index[p]: dict(s) for p, s in self.state.items()},
            "param_groups": [
                {
                    "lr": group["lr"],
                    "betas": group["betas"],
                    "eps": group["eps"],
                    "weight_decay": 0,
                    "amsgrad": False,
                    "maximize": False,
                    "foreach": None,
                    "capturable": False,
                    "differentiable": False,
                    "fused": True if type(self) is Adam else None,
                    "decoupled_weight_decay": False,
                    "params": [index[p] for p in group["params"]],
                }
                for group in self.param_groups
            ],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
            len(saved["params"]) != len(group["params"])
            for saved, group in zip(groups, self.param_groups, strict=True)
        ):
            raise ValueError("the optimizer state is for another set of parameters")
        position = {}
        for saved, group in zip(groups, self.param_groups, strict=True):
            if saved.get("amsgrad") or saved.get("weight_decay") or saved.get("maximize"):
                raise ValueError("the optimizer state uses Adam options vaekit does not train with")
            group.update(lr=saved["lr"], betas=tuple(saved["betas"]), eps=saved["eps"])
            position.update(zip(saved["params"], group["params"], strict=True))
        self.state = {}
        for index, s in state_dict["state"].items():
            p = position[int(index)]
            if any(m not in s for m in self.moments):
                raise ValueError(f"the optimizer state is not {type(self).__name__}'s")
            if s["exp_avg"].shape != p.shape:
                raise ValueError("the optimizer state is for another set of parameters")
            # in the parameter's own layout (channels-last weights: see Trainer)
            self.state[p] = {
                "step": torch.as_tensor(s["step"], dtype=torch.float32).to(p.device),
                **{m: torch.empty_like(p).copy_(s[m]) for m in self.moments},
            }


class Adamax(Adam):
    """Adamax (Kingma & Ba 2014, sec. 7.1), Adam with the infinity norm: m = b1 m + (1 - b1) g,
    u = max(b2 u, |g| + eps), p -= lr / (1 - b1^t) * m / u; torch.optim.Adamax's numbers and state
    layout (``torch.optim.adamax.adamax``, foreach). NVAE trains with it (Vahdat & Kautz 2020, appx. A)."""

    moments = ("exp_avg", "exp_inf")

    def _step_group(self, group: dict[str, Any], found_inf: torch.Tensor | None) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        states = [self._state_of(p) for p in params]

        def update() -> None:
            adamax_update(
                params,
                [p.grad for p in params],
                [s["exp_avg"] for s in states],
                [s["exp_inf"] for s in states],
                [s["step"] for s in states],
                foreach=True,
                # on a GPU its bias correction from the step counts there: else it reads each count back
                capturable=params[0].is_cuda,
                eps=group["eps"],
                beta1=group["betas"][0],
                beta2=group["betas"][1],
                lr=group["lr"],
                weight_decay=0.0,
            )

        masked_update(update, params, states, found_inf)


def masked_update(
    update: Callable[[], None],
    params: list[torch.Tensor],
    states: list[dict[str, torch.Tensor]],
    found_inf: torch.Tensor | None,
) -> None:
    """``update()`` of ``params`` and their ``states``, undone where ``found_inf`` (a float 0 or 1 on the
    device) is 1, for an optimizer whose kernel does not take it (Adamax, foreach Adam): every tensor the
    update writes is kept beforehand and put back by ``torch.where``, so that the host never waits for
    the decision (GradScaler's masked update)."""
    if found_inf is None:
        update()
        return
    written = params + [t for state in states for t in state.values()]
    kept = torch._foreach_mul(written, 1.0)  # copies in one pass (a non-finite value is kept as it was)
    update()
    skip = found_inf.bool()
    for tensor, before in zip(written, kept, strict=True):
        torch.where(skip, before, tensor, out=tensor)


def make_optimizer(name: str, groups: list[dict[str, Any]], lr: float) -> Adam:
    """The optimizer ``name`` (one of OPTIMIZERS) over the model's parameter groups."""
    return {"adam": Adam, "adamax": Adamax}[name](groups, lr=lr)


def scheduled_lr(lr: float, schedule: str, done: float, total: float) -> float:
    """The learning rate at ``done`` of the run's ``total`` (epochs, seconds of --max-time, or its share
    of 1 as the loop gives it): ``lr`` throughout ("constant"), or a cosine from lr to 0 over the run
    (Loshchilov & Hutter 2017, without restarts; NVAE and VDVAE's schedule):
    lr * (1 + cos(pi * done / total)) / 2."""
    if schedule == "constant":
        return lr
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(done / total, 1.0)))
