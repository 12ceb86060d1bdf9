"""Training: one plain, model-agnostic loop over whole-tensor datasets, with exact resume.

The loop calls ``model.loss(batch)`` and nothing else model-specific. Each epoch ends with a
checkpoint (model, optimizer, RNG states, metrics), so a run killed at any moment resumes from its
last epoch exactly as if it had never stopped; Ctrl-C also saves the position inside the epoch.
Read ``Trainer.run``, ``_train_epoch`` (with ``step``) and ``_end_epoch`` top to bottom: that is
all of training.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm  # a widget in Jupyter, the console bar elsewhere

from vaekit.data import Dataset
from vaekit.evaluation.likelihood import elbo_terms
from vaekit.evaluation.runs import eval_options
from vaekit.models import VAE
from vaekit.models.labels import check_labels
from vaekit.training import distributed
from vaekit.training.budget import TimeBudget, forecast_line, limits_line, run_progress, save_at_time_limit
from vaekit.training.budget import stopped_by as stopped_by_what
from vaekit.training.compiled import CompiledLoss, compile_step
from vaekit.training.data import load_training_dataset, place_data
from vaekit.training.finish import finish_run
from vaekit.training.folder_lock import discard, folder_state, held, settle
from vaekit.training.interrupt import StopSignals, stop_interrupted
from vaekit.training.loggers import (
    N_RECON,
    epoch_line,
    epoch_record,
    open_loggers,
    save_summaries,
    start_line,
    write_epoch,
)
from vaekit.training.memory import check_training_memory
from vaekit.training.model_settings import build_run_model, model_config
from vaekit.training.run_folder import (
    RunDir,
    TrainingState,
    check_resume_target,
    describe_run,
    make_checkpoint,
    open_folder,
    restore_checkpoint,
    save_checkpoint,
    start_folder,
)
from vaekit.training.settings import TrainConfig
from vaekit.training.step import SLOW_BF16_NOTE, batch_loss, check_finite, place_model, slow_bf16
from vaekit.training.step import kl_weight as warmup_kl_weight
from vaekit.training.tracking import tracked
from vaekit.training.updates import Updates
from vaekit.utils.devices import resolve_device

# Steps between reads of the device's running figures (the progress bar's loss, the skipped updates): an
# accelerator runs ahead of the host in between. A CPU computes eagerly, so reading each step costs it
# nothing, and there the guard stops a run at the very update past --max-skipped.
REFRESH_STEPS = 20


class Trainer:
    """Holds a run's model, data and optimizer; ``run()`` trains to ``config.epochs`` or its --max-time."""

    def __init__(
        self,
        config: TrainConfig,
        out: str | os.PathLike,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool | None = None,
        log: Callable[[str], None] = print,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """``on_epoch``: called on rank 0 with each finished epoch's metrics record (vaekit sweep prunes
        trials from it); an exception it raises stops the run with the epoch saved."""
        config.validate()
        self.on_epoch = on_epoch
        self.run_dir = RunDir(out)
        # under torchrun: join the job; only rank 0 speaks and writes
        self.ranks, self.device = distributed.setup(resolve_device(config.device))
        if not self.ranks.main:
            log, progress = (lambda line: None), False
        self.log = log
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.overwrite = overwrite
        # Everything that can fail on bad input happens here, before the run folder is touched.
        self._seen = folder_state(self.run_dir)  # the folder before it is read: run() refuses it changed
        checkpoint, had_prior = open_folder(self.run_dir, resume, overwrite, self.ranks, log)
        self.config = config
        dataset, data_dir = load_training_dataset(config, self.ranks, self.progress, log)
        if slow_bf16(config, self.device):
            log(SLOW_BF16_NOTE)
        self.data_dir = str(data_dir.resolve())
        self.model: VAE = self._new_model(dataset, checkpoint)
        # A fitted prior (vaekit train-prior, or the end of training) belongs to latents that further
        # training changes: a resumed run starts without it, and refits it at the end if it can.
        self.drops_prior = had_prior and not self.refits_prior
        self.updates = Updates(self.model, config, self.ranks.enabled)  # optimizer, guard, average
        self.reads_every_step = self.device.type == "cpu"
        self.loss_of = distributed.loss_function(self.model, self.ranks, self.device)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.data = place_data(dataset, config.val_fraction, config.seed, config.binarize, self.device)
        if self.model.conditional:  # once, so that no step reads them back from the device
            check_labels(self.data.labels, self.model.num_classes)
        if checkpoint is None and self.model.starts_from_data:
            self.data.start_from_data(self.model, config.seed)  # a VampPrior's pseudo-inputs
        self.dataset, self.dataset_name = dataset, dataset.name
        self.classes = dataset.classes
        self.num_classes = dataset.num_classes
        self.eval_options = eval_options(asdict(config))
        # Fixed images for the per-epoch reconstructions, so that progress is visible across epochs.
        self.grid_images, self.grid_labels = self.data.grid_batch(N_RECON)
        self.state = TrainingState()
        self.out_of_time = False  # --max-time ran out (checked at step boundaries)
        self._created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._summaries_at = (-1, -float("inf"))  # (epoch, time) the loss curve and animation were drawn
        self.loss_of = compile_step(self, log)  # with --compile, or where it is the device's default
        # opened now: a missing package or an unusable MLflow store is an error before the folder is touched
        self.tensorboard, self.mlflow = open_loggers(self, checkpoint)
        if checkpoint is not None:
            self._restore(checkpoint)
        self.budget = TimeBudget.of(config, self.state.trained_seconds, self.ranks, log)

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        """Resume from ``checkpoint``: weights, optimizer, RNGs, position; the epoch's running loss sums
        on rank 0 alone, which saved every rank's so far (``gather_epoch_sums``)."""
        self._created = json.loads(checkpoint["config"]).get("created")
        s = self.state = restore_checkpoint(checkpoint, self.model, self.updates, self.shuffle, self.device)
        if not self.ranks.main and s.sums is not None:
            s.sums.zero_()
        check_resume_target(s, self.config.epochs, self.n_batches, self.run_dir)

    def _new_model(self, dataset: Dataset, checkpoint: dict[str, Any] | None) -> VAE:
        """The model on the device: seeded from the settings for a new run, shaped as the checkpoint's
        for a resumed one (whose weights the checkpoint restores later)."""
        if checkpoint is None:
            torch.manual_seed(self.config.seed)
            config_of_model = model_config(self.config, dataset.image_shape, dataset.num_classes)
        else:
            config_of_model = json.loads(checkpoint["config"])["model"]
        # before the model is built: too large is a one-line message, not the OOM killer
        check_training_memory(self.config, config_of_model, dataset, self.device, self.ranks.world_size)
        options = self.config.model_options if checkpoint is None else None
        return place_model(build_run_model(config_of_model, options), self.device)

    @property
    def n_train(self) -> int:
        return self.data.n_train

    def train_batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images (float in [0, 1], on the device) and labels at positions ``index`` of the split."""
        return self.data.batch(index)

    # ----------------------------------------------------------------------------------- checkpoints
    def run_config(self) -> dict[str, Any]:
        """config.json: versions, the data, the model's config and every training setting."""
        data = {"dataset": self.dataset_name, "data_dir": self.data_dir, **self.data.counts}
        data.update(image_shape=list(self.model.image_shape), classes=self.classes)
        s, stopped_by = self.state, stopped_by_what(self)
        return describe_run(
            self._created, self.device, s.epoch, data, self.model, self.config, s.trained_seconds, stopped_by
        )

    def gather_epoch_sums(self) -> None:
        """Before a checkpoint inside an epoch (every rank calls it): the epoch's loss sums so far over all
        ranks, on rank 0, which saves them; a resume by any number of processes adds to them (rank 0 from
        the total, the others from zero), so the epoch's means are whole."""
        if self.ranks.enabled and self.state.sums is not None:
            self.state.sums = distributed.all_reduce_sum(self.state.sums, self.ranks)

    def _save_checkpoint(self, path: Path) -> None:
        self.state.trained_seconds = self.budget.spent
        save_checkpoint(
            path, make_checkpoint(self.run_config(), self.model, self.updates, self.state, self.shuffle)
        )

    # ------------------------------------------------------------------------------------- training
    def run(self) -> dict[str, Any]:
        """Train until ``config.epochs`` are done; returns the test evaluation written to eval.json."""
        # made: the folders removed if the run fails before it keeps anything; backup: the run that
        # --overwrite replaces, put back until this one has a checkpoint (MLflow: FINISHED, FAILED...)
        with tracked(self.mlflow), held(self.run_dir, self._seen, self.ranks.main, self.overwrite) as held_:
            return self._run(*held_)

    def _run(self, made: list[Path], backup: Path | None) -> dict[str, Any]:
        try:
            if self.ranks.main:
                start_folder(self.run_dir, self.run_config())
        except BaseException:
            settle(self.run_dir, made, backup, failed=True)
            raise
        if self.mlflow is not None:  # in the folder now made: mlflow.json
            self.mlflow.start(self.run_config(), self.state.history)
        if self.drops_prior:
            self.log(
                "note: the run's prior over codes is dropped, as training changes the codes; fit a new one "
                "with vaekit train-prior"
            )
        if not self.finished:  # a finished run started again only finishes (``finish.end_to_redo``)
            device = f"{self.device} (compiled)" if isinstance(self.loss_of, CompiledLoss) else self.device
            self.log(start_line(self.model, self.dataset_name, self.data.counts, device, self.run_dir.path))
            if limits := limits_line(self.config, self.budget):
                self.log(limits)
        self.budget.start(self.epochs_done)
        try:
            with StopSignals() as stop:
                while not self.finished and not self.out_of_time:
                    self._train_epoch(stop)
                    if not self.out_of_time:
                        self._end_epoch()
                    if self.out_of_time:
                        save_at_time_limit(self)
                    discard(backup)  # the new run has its first good checkpoint
                    backup = None
        finally:
            failed = sys.exc_info()[0] is not None
            if self.ranks.main and self._summaries_at[0] != self.state.epoch:  # the last epoch is drawn
                self._save_summaries(after_error=failed)
            if self.ranks.main:  # a run stopped with no checkpoint leaves nothing, or the run it replaced
                settle(self.run_dir, made, backup, failed)
            if self.tensorboard is not None:  # what an interrupted run logged stays readable
                self.tensorboard.flush()
        distributed.finish(self.ranks)  # what follows is rank 0's alone
        if not self.ranks.main:
            return {}
        if self.updates.average is not None:  # training is over: evaluate and fit with the average
            self.updates.average.copy_into_model()
        return finish_run(self)

    @property
    def refits_prior(self) -> bool:
        return self.config.fit_prior and self.model.fits_prior

    @property
    def stopped_early(self) -> bool:
        s, patience = self.state, self.config.early_stopping
        return bool(patience) and s.best_epoch is not None and s.epoch - s.best_epoch >= patience

    @property
    def finished(self) -> bool:
        """All epochs done or stopped early (no epoch half done), or a run without epochs out of time."""
        return stopped_by_what(self) in ("epochs", "early_stopping") or self.budget.run_is_over

    def _train_epoch(self, stop: StopSignals) -> None:
        s, cfg = self.state, self.config
        n, n_batches = self.n_train, self.n_batches
        if s.step == 0:
            s.perm = torch.randperm(n, generator=self.shuffle).to(self.device)
            s.sums, s.seconds, s.skipped, s.skipped_images = None, 0.0, 0, 0
        self.model.train()
        start = time.perf_counter()
        if self.tensorboard is not None:
            self.tensorboard.start_steps(self._images_seen())
        bar = tqdm(
            total=n_batches,
            initial=s.step,
            desc=f"epoch {s.epoch + 1}" + (f"/{cfg.epochs}" if cfg.epochs is not None else ""),
            leave=False,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        with bar:
            while s.step < n_batches and not self.out_of_time:
                self.step(s.perm[s.step * cfg.batch_size : (s.step + 1) * cfg.batch_size])
                s.step += 1
                bar.update(1)
                refresh = s.step % REFRESH_STEPS == 0 or s.step == n_batches
                read = refresh or self.reads_every_step
                # what the ranks of a torchrun job agree on (the time budget, a stop signal) costs a
                # collective: on an accelerator, only at a read
                agree = read or not self.ranks.enabled
                self.out_of_time = agree and s.step < n_batches and self.budget.is_up()
                signalled = distributed.agreed_signal(stop.received, self.ranks, self.device) if agree else 0
                if read or signalled or self.out_of_time:  # the updates skipped on the device
                    self.updates.read_skipped(s, n_batches, self.run_dir.last_checkpoint)
                if refresh or signalled:
                    self._show_running_loss(bar)
                if signalled:
                    s.seconds += time.perf_counter() - start
                    stop_interrupted(self, signalled)
        s.seconds += time.perf_counter() - start

    def step(self, index: torch.Tensor) -> None:
        """One optimizer step on the training images at positions ``index`` of the training split (under
        torchrun, this rank's share of them); adds the batch's per-image sums of the loss terms to the
        epoch's, on the device. Public: benchmarks and notebooks time and drive single steps with it
        (``trainer.step(torch.arange(128))``)."""
        s = self.state
        objective, terms, fraction = batch_loss(self, index, self.loss_of)
        # every rank skips alike; a skipped update's images are out of the epoch's means
        skipped = self.updates.apply(objective, run_progress(self), len(index))
        # per-image sums of every term, kept on the device: no synchronisation in the hot loop
        if s.sums is None:
            s.sums = torch.zeros(len(terms), dtype=torch.float64, device=self.device)
        values = torch.stack(list(terms.values()))
        s.sums.add_(torch.where(skipped, 0.0, values), alpha=fraction * len(index))
        s.terms = list(terms)
        if self.tensorboard is not None:
            self.tensorboard.add_step(values, skipped)

    def _show_running_loss(self, bar: tqdm) -> None:
        """The epoch's mean loss so far (all ranks') on the bar and in TensorBoard; an error if not finite."""
        s = self.state
        running = distributed.all_reduce_sum(s.sums, self.ranks)[0].item() / self._images_seen()
        check_finite(running, s.epoch, self.run_dir.last_checkpoint)
        bar.set_postfix(loss=f"{running:.2f}")
        if self.tensorboard is not None:
            last_step = s.epoch * self.n_batches + s.step - 1
            self.tensorboard.write_steps(last_step, s.terms, self._images_seen(), self._scalars())

    def _save_summaries(self, after_error: bool = False) -> None:
        if self.state.epoch:  # after an error, one of their own (a full disk) must not hide it
            with contextlib.suppress(*((OSError,) if after_error else ())):
                save_summaries(self.run_dir, self.state.epoch, self.state.history)
        self._summaries_at = (self.state.epoch, time.monotonic())

    @property
    def n_batches(self) -> int:
        return math.ceil(self.n_train / self.config.batch_size)

    def _scalars(self) -> dict[str, float]:
        """The learning rate and KL weight, for TensorBoard."""
        scalars = {"lr": self.updates.optimizer.param_groups[0]["lr"]}
        if self.model.takes_objectives:
            scalars["kl_weight"] = self.kl_weight()
        return scalars

    def kl_weight(self) -> float:
        """The KL weight of the step in progress: beta after the warm-up (``step.kl_weight``)."""
        return warmup_kl_weight(self.config, self.epochs_done)

    @property
    def epochs_done(self) -> float:
        """Epochs trained, the one in progress counted by its share of steps."""
        return self.state.epoch + self.state.step / self.n_batches

    def _images_seen(self) -> int:
        """Images trained on so far in this epoch (only the last batch may be short), less those of
        skipped updates, whose losses are not counted."""
        seen = min(self.state.step * self.config.batch_size, self.n_train)
        return seen - int(self.state.skipped_images)

    def _end_epoch(self) -> None:
        s = self.state
        start = time.perf_counter()
        sums = distributed.all_reduce_sum(s.sums, self.ranks)  # every rank's share of the epoch
        train = dict(zip(s.terms, (sums / self._images_seen()).tolist(), strict=True))
        check_finite(train["loss"], s.epoch, self.run_dir.last_checkpoint)
        kl_weight = self.kl_weight() if self.model.takes_objectives else None
        val = None
        if len(self.data.x_val):
            with self.averaged():
                val = elbo_terms(
                    self.model, self.data.x_val, self.data.y_val, seed=self.config.seed, **self.eval_options
                )
        seconds = s.seconds + time.perf_counter() - start
        epoch = s.epoch + 1
        record = epoch_record(epoch, train, val, kl_weight, seconds, s.skipped)
        s.history.append(record)
        improved = val is None or s.best_loss is None or val["loss"] < s.best_loss
        if improved:
            s.best_loss, s.best_epoch = (val["loss"] if val else None), epoch
        s.epoch, s.step, s.perm, s.sums, s.seconds = epoch, 0, None, None, 0.0
        s.skipped = s.skipped_images = 0
        if not self.finished:  # decided before the checkpoint, which then holds the seconds that decided
            self.out_of_time = self.budget.is_up()
        if not self.ranks.main:  # rank 0 writes the folder; the others go on to the next epoch
            return
        write_epoch(self, record, improved)
        self.log(epoch_line(record, self.config.epochs, train, val))
        if not (self.finished or self.out_of_time) and (forecast := forecast_line(self)):
            self.log(forecast)
        if self.on_epoch is not None:
            self.on_epoch(record)

    def averaged(self) -> Any:
        """A context in which the model holds the weights it is evaluated and saved with: the moving
        average where the run keeps one (``--ema``), else its trained weights."""
        average = self.updates.average
        return average.applied() if average is not None else contextlib.nullcontext()
