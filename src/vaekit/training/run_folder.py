"""The run folder and its checkpoints: the folder's layout, the checks before anything is written, and
the checkpoint that holds everything a resumed run needs (model, optimizer, position, RNG states)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

import vaekit
from vaekit.models.parts import origins
from vaekit.training import distributed
from vaekit.training.part_settings import chosen_parts
from vaekit.training.settings import TrainConfig
from vaekit.training.updates import Updates
from vaekit.utils.atomic import write_json
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import first_intact_checkpoint, read_checkpoint, read_run_config, write_checkpoint
from vaekit.utils.integrity import DamagedRecord, write_recorded

TERMS = ("loss", "recon", "kl")  # every model's first three loss terms; models may add more


class RunDir:
    """The layout of a run folder."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.model = self.path / "model.safetensors"
        self.metrics = self.path / "metrics.jsonl"
        self.loss_curve = self.path / "loss_curve.png"
        self.eval = self.path / "eval.json"
        self.samples = self.path / "samples"
        self.samples_gif = self.path / "samples.gif"
        self.reconstructions = self.path / "reconstructions"
        self.checkpoints = self.path / "checkpoints"
        self.last_checkpoint = self.checkpoints / "last.pt"
        self.tensorboard = self.path / "tb"
        self.mlflow = self.path / "mlflow.json"  # with --mlflow: the MLflow run a resume continues

    def sample_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch_{epoch:03d}.png"

    def reconstruction_grid(self, epoch: int) -> Path:
        return self.reconstructions / f"epoch_{epoch:03d}.png"

    def is_empty(self) -> bool:
        return not self.path.exists() or not any(self.path.iterdir())

    def saved_nothing(self) -> bool:
        """Whether the folder holds only what starting a run makes (config.json and the empty folders):
        a run stopped before its first checkpoint, which a new start may take over."""
        made = {self.config, self.samples, self.reconstructions, self.checkpoints}
        entries = list(self.path.iterdir()) if self.path.is_dir() else []
        return self.config.is_file() and all(
            entry in made and (entry.is_file() or not any(entry.iterdir())) for entry in entries
        )


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.dataset}-{config.model}-{stamp}"


def check_folder(
    run: RunDir, resume: bool, overwrite: bool, log: Callable[[str], None] = print
) -> dict[str, Any] | None:
    """Refuse a folder that --resume cannot continue or that holds something without --overwrite;
    returns the checkpoint to resume from, or None (``log`` hears of a damaged last.pt passed over)."""
    if resume and overwrite:
        raise VaekitError("--resume and --overwrite exclude each other")
    if resume:
        read_run_config(run.path)  # clear errors for a missing or foreign folder
        if run.saved_nothing():
            raise VaekitError(
                f"{run.path} has no checkpoint to resume from: it stopped before its first epoch ended; "
                "start it again without --resume"
            )
        if not run.last_checkpoint.is_file() and not any(run.checkpoints.glob("epoch_*.pt")):
            raise VaekitError(f"{run.path} has no checkpoint to resume from ({run.last_checkpoint})")
        return last_intact_checkpoint(run, log)  # a missing last.pt, as a damaged one, falls back
    if run.path.exists() and not run.path.is_dir():
        raise VaekitError(f"--out {run.path} is a file, not a folder")
    if not run.is_empty() and not overwrite and not run.saved_nothing():
        what = "another run" if run.config.exists() else "other files"
        raise VaekitError(
            f"{run.path} already holds {what}; pass --resume to continue it or --overwrite to replace it"
        )
    return None


def last_intact_checkpoint(run: RunDir, log: Callable[[str], None]) -> dict[str, Any]:
    """checkpoints/last.pt, or if it is damaged (its digest not the one recorded, or unreadable) or gone,
    the newest of the run's other checkpoints (--save-every's epoch_NNN.pt) that is intact, with a note."""
    try:
        return read_checkpoint(run.last_checkpoint)
    except DamagedRecord:  # the record, not the checkpoint: no other would fare better
        raise
    except VaekitError as damaged:
        others = sorted(run.checkpoints.glob("epoch_*.pt"), reverse=True)
        found = first_intact_checkpoint(others)
        if found is not None:
            log(f"note: {damaged}; resuming from {found[0].name}, the newest intact checkpoint")
            return found[1]
        kept = f"none of its {len(others)} other checkpoints is intact" if others else "it has no other"
        raise VaekitError(f"{damaged}; {kept} (--save-every N keeps more)") from None


def start_folder(run: RunDir, run_config: dict[str, Any]) -> None:
    """Fill the run folder (held, and emptied by --overwrite: ``folder_lock.held``) with its subfolders
    and config.json. A resumed run's config.json keeps the model section of the model.safetensors
    beside it (a fitted prior the resume drops) until the first epoch saves the two together: stopped
    before that, the folder still loads."""
    if run.config.is_file() and run.model.is_file():
        with contextlib.suppress(VaekitError):  # a damaged config.json is rewritten whole
            run_config = {**run_config, "model": read_run_config(run.path)["model"]}
    for folder in (run.path, run.samples, run.reconstructions, run.checkpoints):
        folder.mkdir(parents=True, exist_ok=True)
    write_json(run.config, run_config)


@dataclass
class TrainingState:
    """Where training stands: completed epochs, and the position inside an interrupted epoch."""

    epoch: int = 0
    step: int = 0
    perm: torch.Tensor | None = None
    sums: torch.Tensor | None = None  # per-image sums of the loss terms named in ``terms``
    terms: list[str] = field(default_factory=list)
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_loss: float | None = None  # the lowest validation loss so far, and its epoch
    best_epoch: int | None = None
    skipped: int = 0  # updates of the epoch in progress skipped by the gradient guard (updates.py)
    skipped_images: int = 0  # the images of those updates (every rank's)
    trained_seconds: float = 0.0  # of training so far, over every invocation (what --max-time counts)


def rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["cpu"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def open_folder(
    run_dir: RunDir,
    resume: bool,
    overwrite: bool,
    ranks: distributed.Ranks,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Any] | None, bool]:
    """``check_folder`` on rank 0, whose answer every rank gets: the checkpoint to resume from (None for
    a new run) and whether the run has a fitted prior; or rank 0's error, so that all stop with it."""
    found: Any = (None, False)
    if ranks.main:
        try:
            checkpoint = check_folder(run_dir, resume, overwrite, log)
            prior = checkpoint is not None and bool(read_run_config(run_dir.path)["model"].get("prior"))
            found = (checkpoint, prior)
        except VaekitError as exc:
            found = exc
    found = distributed.broadcast(found, ranks)
    if isinstance(found, VaekitError):
        raise found
    return found


def make_checkpoint(
    run_config: dict[str, Any],
    model: torch.nn.Module,
    updates: Updates,
    state: TrainingState,
    shuffle: torch.Generator,
) -> dict[str, Any]:
    """Everything a resumed run needs, as torch.save stores it (tensors, and JSON strings for the rest)."""
    return {
        "format": 1,
        "config": json.dumps(run_config),
        "model": model.state_dict(),
        **updates.state_dict(),  # the optimizer's state, and the weights' average if the run keeps one
        "epoch": state.epoch,
        "step": state.step,
        "perm": state.perm.cpu() if state.perm is not None else None,
        "sums": state.sums.cpu() if state.sums is not None else None,
        "terms": json.dumps(state.terms),
        "seconds": state.seconds,
        "skipped": state.skipped,
        "skipped_images": state.skipped_images,
        "trained_seconds": state.trained_seconds,
        "history": json.dumps(state.history),
        "best": json.dumps({"loss": state.best_loss, "epoch": state.best_epoch}),
        "rng": rng_state(shuffle),
    }


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    write_recorded(path, lambda tmp: write_checkpoint(checkpoint, tmp))


def restore_checkpoint(
    checkpoint: dict[str, Any],
    model: torch.nn.Module,
    updates: Updates,
    shuffle: torch.Generator,
    device: torch.device,
) -> TrainingState:
    """Load ``checkpoint`` into the model, optimizer (at the run's own learning rates: see
    ``Updates.load_state_dict``) and shuffle generator, set the global RNG states, and return the
    training state it records."""
    model.load_state_dict(checkpoint["model"])
    updates.load_state_dict(checkpoint)
    on_device = {k: checkpoint[k].to(device) if checkpoint[k] is not None else None for k in ("perm", "sums")}
    best = json.loads(checkpoint.get("best", "{}"))
    history = json.loads(checkpoint["history"])
    # a checkpoint from before trained_seconds: its epochs' seconds, the nearest count it kept
    counted = sum(h.get("seconds", 0.0) for h in history) + checkpoint["seconds"]
    trained = checkpoint.get("trained_seconds", counted)
    state = TrainingState(
        epoch=checkpoint["epoch"],
        step=checkpoint["step"],
        **on_device,
        seconds=checkpoint["seconds"],
        skipped=checkpoint.get("skipped", 0),
        skipped_images=checkpoint.get("skipped_images", 0),
        history=history,
        terms=json.loads(checkpoint.get("terms", json.dumps(TERMS))),
        best_loss=best.get("loss"),
        best_epoch=best.get("epoch"),
        trained_seconds=float(trained),
    )
    set_rng_state(checkpoint["rng"], shuffle)
    return state


def check_resume_target(state: TrainingState, epochs: int | None, n_batches: int, run: RunDir) -> None:
    """Refuse --epochs N for a run stopped inside a later epoch: it cannot end at N (its weights are past
    it), and training on would go past what was asked."""
    if epochs is not None and state.step > 0 and state.epoch >= epochs:
        raise VaekitError(
            f"--epochs {epochs}: {run.path} stopped inside epoch {state.epoch + 1} (at step {state.step}/"
            f"{n_batches}); pass --epochs {state.epoch + 1} or more to finish that epoch"
        )


def describe_run(
    created: str | None,
    device: torch.device,
    epochs_completed: int,
    data: dict[str, Any],
    model: torch.nn.Module,
    config: TrainConfig,
    trained_seconds: float = 0.0,
    stopped_by: str | None = None,
) -> dict[str, Any]:
    """A run's config.json: the versions it ran with, when it was created, the device, the epochs done,
    the seconds trained, what stopped training ("epochs", "early_stopping", "max_time"; None while it
    goes on or after a signal), its ``data``, the model's config and every training setting."""
    return {
        "vaekit_version": vaekit.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "created": created,
        "device": str(device),
        "epochs_completed": epochs_completed,
        "trained_seconds": round(trained_seconds, 3),
        "stopped_by": stopped_by,
        "data": data,
        "model": model.config,
        "train": asdict(config),
        # where a part from outside the package came from: a resume without it names what to install
        **({"parts": outside} if (outside := origins(chosen_parts(config))) else {}),
    }
