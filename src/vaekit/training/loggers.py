"""What a run records each epoch: the checkpoint, then the model, config.json, metrics.jsonl, the sample
and reconstruction grids, the loss curve, TensorBoard and MLflow (``write_epoch``), and the line printed
to the console."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from vaekit.data import unit_float
from vaekit.models import VAE
from vaekit.models.saving import save_model
from vaekit.training.run_folder import TERMS, RunDir
from vaekit.training.tracking import MlflowLogger
from vaekit.utils import plots
from vaekit.utils.atomic import write_json, write_text
from vaekit.utils.errors import VaekitError

N_GRID_COLUMNS = 8  # sample grid: 8 x 8 images (8 per class for a conditional model) from fixed latents
N_RECON = 8  # reconstruction grid: 8 fixed validation images over their reconstructions
SUMMARY_SECONDS = 10.0  # the loss curve and the samples' animation are redrawn at most this often


def write_epoch(trainer: Any, record: dict[str, Any], improved: bool) -> None:
    """Rank 0, at the end of an epoch of a ``loop.Trainer`` (typed Any: loop.py imports this module): the
    checkpoint (the trained weights, and their average), then the saved model, config, metrics, pictures,
    TensorBoard (with the weights evaluated) and MLflow. A write that fails (a full disk, a folder made
    read-only) stops the run with what was kept and how to continue."""
    run, epoch = trainer.run_dir, record["epoch"]
    # The checkpoint goes first: the other files are always rebuilt from it on resume, and MLflow is
    # given only checkpointed epochs, so that a resume logs none twice (training.tracking).
    try:
        trainer._save_checkpoint(run.last_checkpoint)
    except OSError as exc:
        raise write_failed(exc, run, None) from None
    try:
        _write_epoch_files(trainer, record, improved)
    except OSError as exc:
        raise write_failed(exc, run, epoch) from None
    if trainer.mlflow is not None:
        trainer.mlflow.epoch(record)


def _write_epoch_files(trainer: Any, record: dict[str, Any], improved: bool) -> None:
    run, epoch, config = trainer.run_dir, record["epoch"], trainer.config
    if config.save_every and epoch % config.save_every == 0:
        trainer._save_checkpoint(run.checkpoints / f"epoch_{epoch:03d}.pt")
    with trainer.averaged():
        if improved or not config.early_stopping:  # with early stopping the folder holds the best
            save_model(trainer.model, run.model)
        write_json(run.config, trainer.run_config())
        write_metrics(run, trainer.state.history)
        save_grids(trainer.model, run, epoch, config.seed, trainer.grid_images, trainer.grid_labels)
        if time.monotonic() - trainer._summaries_at[1] >= SUMMARY_SECONDS:
            trainer._save_summaries()
        if trainer.tensorboard is not None:
            x_val, y_val = trainer.data.x_val, trainer.data.y_val
            trainer.tensorboard.epoch(record, epoch * trainer.n_batches, trainer.model, x_val, y_val)


def write_failed(exc: OSError, run: RunDir, epoch: int | None) -> VaekitError:
    """The one-line stop when the run folder cannot take an epoch's files: why, what is kept (the
    checkpoint of ``epoch``, or with None the one before the write that failed), what next."""
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    if epoch is not None:
        kept = f"the checkpoint of epoch {epoch} is kept"
    elif run.last_checkpoint.is_file():
        kept = "the checkpoint before it is kept whole"
    else:  # the new run folder is removed (loop.Trainer): there is nothing to resume
        return VaekitError(
            f"could not write into {run.path} ({why}); nothing had been saved yet: free space or make the "
            "folder writable, then train again"
        )
    return VaekitError(
        f"could not write into {run.path} ({why}); {kept}: free space or make the folder writable, then "
        f"continue with: vaekit train --resume --out {run.path}"
    )


def write_metrics(run: RunDir, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl: one JSON object per completed epoch (rewritten whole, atomically)."""
    write_text(run.metrics, "".join(json.dumps(h) + "\n" for h in history))


def save_grids(
    model: VAE,
    run: RunDir,
    epoch: int,
    seed: int,
    grid_images: torch.Tensor,
    grid_labels: torch.Tensor | None,
) -> None:
    """The epoch's sample grid and reconstruction grid (a few milliseconds: every epoch)."""
    model.eval()
    with torch.no_grad():
        if model.can_sample:
            # The same seed every epoch: the same latents, so the grids show the model changing.
            generator = torch.Generator(device=model.device).manual_seed(seed + 1)
            n = N_GRID_COLUMNS * (model.num_classes if model.conditional else N_GRID_COLUMNS)
            samples = model.sample(n, generator=generator)
            plots.save_grid(samples, run.sample_grid(epoch), ncol=N_GRID_COLUMNS)
        recons = model.reconstruct(grid_images, grid_labels)
        plots.save_reconstructions(grid_images, recons, run.reconstruction_grid(epoch))


def save_summaries(run: RunDir, epoch: int, history: list[dict[str, Any]]) -> None:
    """The loss curve and the animation of every sample grid so far: a matplotlib figure and a GIF of
    all epochs cost far more than an epoch's grids, so the loop draws them every SUMMARY_SECONDS and
    whenever training stops (the last epoch is always drawn)."""
    frames = [run.sample_grid(e) for e in range(1, epoch + 1) if run.sample_grid(e).is_file()]
    if frames:
        plots.save_animation(frames, run.samples_gif)
    plots.save_loss_curve(history, run.loss_curve)


def epoch_record(
    epoch: int,
    train: dict[str, float],
    val: dict[str, float] | None,
    kl_weight: float | None,
    seconds: float,
    skipped: int = 0,
) -> dict[str, Any]:
    """One line of metrics.jsonl: the epoch, each train_ and val_ term, the KL weight, the seconds and
    (where the gradient guard dropped any) the updates skipped."""
    record: dict[str, Any] = {"epoch": epoch}
    record.update({f"train_{k}": v for k, v in train.items()})
    # validation measures the -ELBO's terms; an objective's own (tc, mmd, ...) are training's alone
    record.update({f"val_{k}": (val.get(k) if val else None) for k in train})
    record.update(kl_weight=kl_weight, seconds=round(seconds, 3))
    if skipped:
        record["skipped_updates"] = skipped
    return record


def start_line(model: Any, dataset: str, counts: dict[str, int], device: Any, out: Any) -> str:
    """The console line that opens a run: the model and its size, the data, the device, the folder."""
    n_params = sum(p.numel() for p in model.parameters())
    return (
        f"training {model.name} ({n_params:,} parameters) on {dataset}: "
        f"{counts['n_train']:,} train / {counts['n_val']:,} val images, {device}, into {out}"
    )


def epoch_line(
    record: dict[str, Any], epochs: int | None, train: dict[str, float], val: dict[str, float] | None
) -> str:
    """The console line of one epoch (of ``epochs``; None: a run as long as its --max-time): the loss
    and its terms, train and validation, and its seconds."""
    of = "" if epochs is None else f"/{epochs}"
    line = (
        f"epoch {record['epoch']:3d}{of}  train {train['loss']:.2f} "
        f"(recon {train['recon']:.2f} + kl {train['kl']:.2f})"
    )
    if val:
        line += f"  val {val['loss']:.2f}"
    line += "".join(f"  {k} {v:.2f}" for k, v in (val or train).items() if k not in TERMS)
    if record["kl_weight"] is not None and record["kl_weight"] != 1.0:
        line += f"  kl weight {record['kl_weight']:.3g}"
    if record.get("skipped_updates"):
        line += f"  skipped {record['skipped_updates']} updates"
    return line + f"  {record['seconds']:.2f}s"


class TensorBoardLogger:
    """``--tensorboard``: event files in the run's tb/ folder for TensorBoard (rank 0 only).

    Scalars per step (every loss term of every step, the KL weight, the learning rate, images per
    second), per epoch (the train and validation terms, seconds), the epoch's sample and reconstruction
    grids, histograms of the validation images' posterior means and log-variances, and at the end an
    embedding of test latents with labels and thumbnails for the projector. A resumed run purges what a
    killed one logged after its checkpoint, so the curves carry no step twice.
    """

    def __init__(self, run: RunDir, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package
            raise VaekitError("--tensorboard needs TensorBoard: pip install 'vaekit[tb]'") from None
        self.run = run
        self._open = lambda: SummaryWriter(log_dir=str(run.tensorboard), purge_step=purge_step)
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        """The SummaryWriter, made at its first use: it makes tb/ and its event file at once, and the
        run folder is not this process's until training starts (``folder_lock.held``)."""
        if self._writer is None:
            self._writer = self._open()
        return self._writer

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    @classmethod
    def for_run(cls, run: RunDir, checkpoint: dict[str, Any] | None, n_batches: int) -> TensorBoardLogger:
        """The logger of a new run, or of a resumed one: that drops the steps logged after its checkpoint."""
        purge = None if checkpoint is None else checkpoint["epoch"] * n_batches + checkpoint["step"]
        return cls(run, purge_step=purge)

    def start_steps(self, images_seen: int) -> None:
        """A new stretch of steps begins (an epoch, or a resumed one) with ``images_seen`` in the epoch."""
        self.pending: list[torch.Tensor] = []
        self.since = (images_seen, time.perf_counter())

    def add_step(self, values: torch.Tensor, skipped: torch.Tensor) -> None:
        """One step's loss terms and whether its update was skipped (then they are not written), kept on
        the device until ``write_steps``."""
        self.pending.append(torch.cat([values.detach().float(), skipped.float().view(1)]))

    def write_steps(self, last_step: int, terms: list[str], images_seen: int, scalars: dict[str, float]):
        """The pending steps' terms (ending at global step ``last_step``) in one transfer, and at the last
        ``scalars`` with the images per second since the last write."""
        if not self.pending:
            return
        now = time.perf_counter()
        rate = (images_seen - self.since[0]) / max(now - self.since[1], 1e-9)
        scalars = {**scalars, "images_per_second": rate}
        first_step = last_step - len(self.pending) + 1
        for offset, (*row, skipped) in enumerate(torch.stack(self.pending).tolist()):
            if skipped:
                continue
            for name, value in zip(terms, row, strict=True):
                self.writer.add_scalar(f"step/{name}", value, first_step + offset)
        for name, value in scalars.items():
            self.writer.add_scalar(f"step/{name}", value, last_step)
        self.start_steps(images_seen)

    def epoch(
        self, record: dict[str, Any], global_step: int, model: VAE, x_val: torch.Tensor, y_val: torch.Tensor
    ) -> None:
        """The epoch's scalars and grids, and histograms of the first 1,000 validation images' posterior
        means and log-variances (Gaussian latents)."""
        epoch = record["epoch"]
        for key, value in record.items():
            if key != "epoch" and value is not None:
                self.writer.add_scalar(f"epoch/{key}", value, epoch)
        grids = (
            ("samples", self.run.sample_grid(epoch)),
            ("reconstructions", self.run.reconstruction_grid(epoch)),
        )
        for name, path in grids:
            if path.is_file():
                with Image.open(path) as picture:
                    array = np.asarray(picture.convert("RGB"))
                self.writer.add_image(name, array, epoch, dataformats="HWC")
        if model.latent_space.gaussian and len(x_val):
            with torch.no_grad():
                labels = y_val[:1000] if model.conditional else None
                means, logvars = model.encode(unit_float(x_val[:1000]), labels)
            self.writer.add_histogram("posterior/mean", means, global_step)
            self.writer.add_histogram("posterior/logvar", logvars, global_step)
        self.writer.flush()

    def embedding(
        self, model: VAE, x: torch.Tensor, y: torch.Tensor, classes: list[str], step: int, n: int = 1000
    ) -> None:
        """The first ``n`` test images' latent means (a VQ-VAE: its quantized codes, flattened) with their
        class names and thumbnails, for TensorBoard's projector."""
        x, y = x[:n], y[:n]
        with torch.no_grad():
            images = unit_float(x)
            means = model.representation(images, y if model.conditional else None).flatten(1)
        names = [classes[i] if 0 <= i < len(classes) else "-" for i in y.tolist()]
        self.writer.add_embedding(
            means.cpu(), metadata=names, label_img=images.float().cpu(), global_step=step, tag="test_latents"
        )
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_loggers(
    trainer: Any, checkpoint: dict[str, Any] | None
) -> tuple[TensorBoardLogger | None, MlflowLogger | None]:
    """The loggers a ``loop.Trainer`` asks for, on rank 0 (None where not asked for): ``--tensorboard``'s
    and ``--mlflow``'s, opened before the run folder is touched, so that a missing package or an MLflow
    store out of reach is an error first. ``checkpoint``: a resumed run's, else None."""
    if not trainer.ranks.main:
        return None, None
    config, run = trainer.config, trainer.run_dir
    tensorboard = None
    if config.tensorboard:
        tensorboard = TensorBoardLogger.for_run(run, checkpoint, trainer.n_batches)
    return tensorboard, (MlflowLogger.open(run, checkpoint) if config.mlflow else None)
