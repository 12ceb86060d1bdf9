"""--compile: the training step's loss (forward and backward) through torch.compile.

The loss of every full batch runs as one compiled graph, on a GPU replayed as a CUDA graph (inductor's
``triton.cudagraphs``, what ``mode="reduce-overhead"`` sets), so that a step is a few launches rather
than hundreds of small kernels each waiting on Python. Shapes stay static: the last, shorter batch of
an epoch runs eagerly instead of compiling a second graph, and the warm-up's KL weight, which changes
every step, reaches the graph as a tensor on the device (``kl_weight``), not as a number it would
specialise on. Random draws fall back to eager's (inductor's ``fallback_random``), so a compiled run
draws the very noise of an eager one: the two differ only by the rounding of fused arithmetic, and a
compiled run resumes exactly. Every number of the step's options that changes from step to step (the
KL weight, what an objective's ``per_step`` hook computes: a capacity's target) reaches the graph so.

The optimizer step, the gradient guard and the sums stay eager: they are a handful of fused or foreach
kernels, decided on the device (updates.py).

Compiling costs seconds to a minute before the first step (measured in docs/gpu.md), so each device has
the default its measurements chose (``DEFAULT_BY_DEVICE``); ``--compile`` / ``--no-compile`` override it.
The compiler is tried on the first batch before the run folder is touched (``CompiledLoss.warm_up``):
a model it cannot take is a one-line error where ``--compile`` was asked for, and an eager run with a
note where compiling was only the device's default.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import torch

from vaekit.models import LossOutput
from vaekit.models.parts import part
from vaekit.training import distributed
from vaekit.training.step import batch_loss
from vaekit.utils.errors import VaekitError, first_line

# Measured (docs/gpu.md, benchmarks/compile_speed.py): on a CPU the compiled hvae step is faster, but
# compiling takes longer than the default runs of the small models last, and the mlp and conv gain
# little; on CUDA the default stays eager until benchmarks/gpu.py has measured it on a GPU.
DEFAULT_BY_DEVICE = {"cpu": False, "cuda": False, "mps": False}
WARM_UP_CALLS = {"cuda": 3}  # CUDA graph trees warm up, then record on a later call: try them all
Loss = Callable[[torch.Tensor, torch.Tensor, dict[str, Any]], LossOutput]


def compiles(setting: bool | None, device: torch.device) -> bool:
    """Whether the run compiles: ``setting`` (--compile / --no-compile), else the device's default."""
    return DEFAULT_BY_DEVICE.get(device.type, False) if setting is None else setting


def compiler_missing(device: torch.device) -> str | None:
    """Why torch.compile cannot work on ``device`` here (None: it can): inductor builds C++ kernels on
    a CPU with a C++ compiler, and Triton kernels on a GPU."""
    if device.type == "cpu":
        from torch._inductor import config

        compiler = config.cpp.cxx[0] if isinstance(config.cpp.cxx, (tuple, list)) else config.cpp.cxx
        if not any(shutil.which(name) for name in (compiler, "g++", "clang++", "c++") if name):
            return "no C++ compiler (g++ or clang++) is installed, which torch.compile needs on a CPU"
        return None
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton, which torch.compile needs on a GPU, is not installed"
    return f"vaekit compiles on CPUs and CUDA GPUs, not on {device.type}"


class CompiledLoss:
    """``loss(x, labels, options)`` as the loop calls it: compiled for batches of ``batch_size`` images,
    the eager ``loss`` for any other (the epoch's last)."""

    def __init__(
        self, loss: Loss, batch_size: int, device: torch.device, varying: frozenset[str] = frozenset()
    ) -> None:
        self.eager, self.batch_size, self.device = loss, batch_size, device
        self.varying = {"kl_weight", *varying}  # the options whose number changes from step to step
        options: dict[str, Any] = {"fallback_random": True}
        if device.type == "cuda":
            options["triton.cudagraphs"] = True
        self.compiled = torch.compile(loss, dynamic=False, options=options)
        self.numbers: dict[str, torch.Tensor] = {}  # the step's numbers (the KL weight, ...) on the device

    def __call__(self, x: torch.Tensor, labels: torch.Tensor, options: dict[str, Any]) -> LossOutput:
        if len(x) != self.batch_size:
            return self.eager(x, labels, options)
        options = dict(options)
        for name, value in options.items():  # a changing number would recompile: a tensor instead
            if name in self.varying and isinstance(value, (int, float)):
                held = self.numbers.setdefault(name, torch.zeros((), device=self.device))
                options[name] = held.fill_(value)  # a kernel's argument: nothing waits
        if self.device.type == "cuda":  # a new step: the graphs' outputs of the last one are done with
            torch.compiler.cudagraph_mark_step_begin()
        return self.compiled(x, labels, options)

    def warm_up(self, model: torch.nn.Module, step: Callable[[Loss], torch.Tensor]) -> None:
        """Compile now, on one step's loss (``step(loss)`` gives its objective), forward and backward, so
        that a failure comes before training; the model's weights and buffers, its gradients and the
        random number generators are put back as they were: the run's numbers are those of a run that did
        not warm up."""
        state = {name: value.clone() for name, value in model.state_dict().items()}
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None
        try:
            for _ in range(WARM_UP_CALLS.get(self.device.type, 1)):
                step(self).backward()
        finally:
            model.zero_grad(set_to_none=True)
            model.load_state_dict(state)
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)


def compiled_loss(
    loss: Loss,
    model: torch.nn.Module,
    step: Callable[[Loss], torch.Tensor],
    batch_size: int,
    device: torch.device,
    asked: bool,
    log: Callable[[str], None],
    varying: frozenset[str] = frozenset(),
) -> Loss:
    """``loss`` compiled and warmed up on one step (``CompiledLoss.warm_up``; ``varying``: the options
    that change with the step); if that fails, a one-line error where ``asked`` (--compile), else
    ``loss`` itself with a note. Nothing of the run is touched either way."""
    missing = compiler_missing(device)
    try:
        if missing is not None:
            raise RuntimeError(missing)
        compiled = CompiledLoss(loss, batch_size, device, varying)
        compiled.warm_up(model, step)
        return compiled
    except Exception as exc:  # dynamo, inductor and the C++ or Triton compilers raise their own
        why = missing or f"{type(exc).__name__}: {first_line(exc)}"[:300]
        if asked:
            raise VaekitError(f"--compile: torch.compile cannot compile this model's loss ({why}); "
                              "train without --compile") from None  # fmt: skip
        log(f"note: training eagerly, as torch.compile cannot compile this model's loss ({why})")
        return loss


def compile_step(trainer: Any, log: Callable[[str], None]) -> Loss:
    """The loss a ``loop.Trainer``'s steps call (typed Any: loop.py imports this module): its own, or with
    --compile (or where compiling is the device's default) that loss compiled and tried on the first
    full batch now, before the run folder is touched (``compiled_loss``)."""
    config = trainer.config
    if not compiles(config.compile, trainer.device):
        return trainer.loss_of
    if trainer.n_train < config.batch_size:
        log(f"note: training eagerly: the {trainer.n_train} training images make no full batch to compile")
        return trainer.loss_of
    full = torch.arange(config.batch_size)
    return compiled_loss(
        trainer.loss_of,
        trainer.model,
        lambda loss: batch_loss(trainer, full, loss)[0],
        len(distributed.share(full, trainer.ranks)[0]),  # this rank's share of a full batch
        trainer.device,
        asked=config.compile is True,
        log=log,
        varying=varying_options(config),
    )


def varying_options(config: Any) -> frozenset[str]:
    """The options of the run's objective that its ``per_step`` hook computes anew each step."""
    spec = part("objective", config.objective)
    if spec.per_step is None:
        return frozenset()
    context = {"kl_weight": 1.0, "beta": config.beta, "free_bits": config.free_bits}
    return frozenset(spec.per_step(config.part_options, {**context, "dataset_size": 1, "step": 0}))
