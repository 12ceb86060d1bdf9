"""Data-parallel training under torchrun: one process per device, each holding the whole dataset.

    torchrun --standalone --nproc-per-node N -m vaekit train ...

Every epoch all ranks build the same seeded permutation and each takes its share of every global batch
(``--batch-size`` is the global batch, so a run's numbers do not depend on the number of processes).
Each rank's loss is its share's mean scaled by ``share * world / batch`` so that DistributedDataParallel's
gradient average is exactly the gradient of the global batch's mean, even for an uneven last batch.
Every rank draws the reparameterisation noise of the whole batch from the same global RNG and keeps
its rows, so a run's numbers match a single process's to float rounding (not with --augment or
--binarize dynamic, whose draws are per rank). Metrics are all-reduced sums. Only rank 0 writes the run
folder. gloo on the CPU, NCCL on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from vaekit.utils.errors import VaekitError

TIMEOUT = timedelta(minutes=10)  # a collective that waits longer than this fails rather than hangs


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def torchrun_ranks() -> Ranks:
    """The ranks torchrun gives this process through its environment (none: a single process)."""
    try:
        return Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    except KeyError:
        return Ranks()
    except ValueError as exc:
        raise VaekitError(f"torchrun's RANK, WORLD_SIZE or LOCAL_RANK is not a number ({exc})") from None


def restart_count() -> int:
    """How many times torchrun has restarted this job's workers (--max-restarts)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def setup(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join torchrun's process group (once) on the backend that suits ``device``; returns the ranks and
    this rank's device (its own GPU on CUDA)."""
    ranks = torchrun_ranks()
    if not ranks.enabled:
        return ranks, device
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise VaekitError(f"distributed training runs on CPUs (gloo) or CUDA GPUs (NCCL), not {device.type}")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend, store=_store(ranks), rank=ranks.rank, world_size=ranks.world_size, timeout=TIMEOUT
        )
    return ranks, device


def _store(ranks: Ranks) -> dist.Store:
    """torchrun's key-value store, under a prefix of its own for each restart of the workers: with the
    default keys, workers restarted by --max-restarts read the dead workers' addresses and never meet."""
    try:
        host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    except (KeyError, ValueError):
        raise VaekitError(
            "run distributed training with torchrun (MASTER_ADDR and MASTER_PORT are not set)"
        ) from None
    hosted_by_agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        host, port, ranks.world_size, is_master=not hosted_by_agent and ranks.main, timeout=TIMEOUT
    )
    return dist.PrefixStore(f"vaekit/restart_{restart_count()}", store)


def share(index: torch.Tensor, ranks: Ranks) -> tuple[torch.Tensor, int, float]:
    """This rank's part of a global batch ``index`` (near-equal contiguous parts, rank 0 first), where
    it starts in the batch, and the fraction of the batch it stands for. A batch smaller than the job
    (a short last one) is taken whole by every rank, each standing for 1/world of it, so that no rank
    has an empty batch."""
    if not ranks.enabled:
        return index, 0, 1.0
    if len(index) < ranks.world_size:
        return index, 0, 1.0 / ranks.world_size
    sizes = [len(part) for part in index.tensor_split(ranks.world_size)]
    start = sum(sizes[: ranks.rank])
    return index[start : start + sizes[ranks.rank]], start, sizes[ranks.rank] / len(index)


def all_reduce_sum(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The sum of ``tensor`` over all ranks (a new tensor; the input is left alone)."""
    if not ranks.enabled:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total)
    return total


def agreed_signal(received: int | None, ranks: Ranks, device: torch.device) -> int:
    """The stop signal every rank acts on after this step (0: none): one process's own, or under torchrun
    the largest any rank has received, so that all stop at the same step (a rank that stopped alone would
    leave the others waiting in the next step's gradient all-reduce). One scalar all-reduce a step, and
    only under torchrun."""
    if not ranks.enabled:
        return received or 0
    flag = torch.tensor([received or 0], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def broadcast(value: Any, ranks: Ranks) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object: a checkpoint, an error flag)."""
    if not ranks.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ranks: Ranks) -> None:
    if ranks.enabled:
        dist.barrier()


class _Loss(nn.Module):
    """The model's loss as a module's forward, so that DistributedDataParallel can wrap it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None, options: dict[str, Any]) -> Any:
        return self.model.loss(x, labels, **options)


def loss_function(model: nn.Module, ranks: Ranks, device: torch.device) -> Any:
    """``loss(x, labels, options)`` -> LossOutput: the model's own loss, through DistributedDataParallel
    (gradients averaged over ranks in backward; buffers, such as a VQ-VAE's codebook, from rank 0) when
    the job has several ranks."""
    if not ranks.enabled:
        return lambda x, labels, options: model.loss(x, labels, **options)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(_Loss(model), device_ids=device_ids)


def finish(ranks: Ranks) -> None:
    """Leave the process group (at the end of a job; idempotent), every rank together: a rank that
    tears gloo down and exits while another still writes its checkpoint was seen to abort (SIGABRT,
    "terminate called without an active exception") under load, and torchrun then kills the rest."""
    if ranks.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
