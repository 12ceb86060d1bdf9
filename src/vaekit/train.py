"""Training: one plain, model-agnostic loop over whole-tensor datasets, with exact resume.

The loop calls ``model.loss(batch)`` and nothing else model-specific. Each epoch ends with a
checkpoint (model, optimizer, RNG states, metrics), so a run killed at any moment resumes from its
last epoch exactly as if it had never stopped; Ctrl-C also saves the position inside the epoch.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import platform
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import vaekit
from vaekit import plots
from vaekit.atomic import atomic_write, write_json, write_text
from vaekit.data import (
    BINARIZE,
    Dataset,
    binarize,
    check_dataset_name,
    default_data_dir,
    load_dataset,
    split_rows,
    unit_float,
)
from vaekit.data.augment import random_affine
from vaekit.data.folder import COLOURS, parse_image_size
from vaekit.devices import DEVICES, resolve_device
from vaekit.errors import VaekitError
from vaekit.evaluate import elbo_terms, eval_options, eval_record, write_eval
from vaekit.models import MODELS, VAE, GaussianVAE, build_model
from vaekit.models.base import LIKELIHOODS, OBJECTIVES, PRECISIONS
from vaekit.saving import read_checkpoint, read_run_config, read_safetensors, save_model

N_GRID_COLUMNS = 8  # sample grid: 8 x 8 images (8 per class for a conditional model) from fixed latents
N_RECON = 8  # reconstruction grid: 8 fixed validation images over their reconstructions
TERMS = ("loss", "recon", "kl")  # every model's first three loss terms; models may add more
DEFAULT_IWAE_K = 5
PRIOR_FIT_IMAGES = 60_000  # the fitted prior sees at most this many training images
# Settings that shape the model; None leaves the model's own default (see the model classes).
MODEL_SETTINGS = ("latent_dim", "hidden", "channels", "likelihood", "decoder_std", "codebook_size")


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are the classic MNIST VAE."""

    dataset: str = "mnist"
    data_dir: str | None = None
    image_size: list[int] | None = None  # [height, width]: folder datasets are resized, shapes drawn so
    colour: str | None = None  # "grey" or "rgb": folder datasets are converted (None: as the images are)
    model: str = "mlp"
    latent_dim: int | None = None
    hidden: list[int] | None = None
    channels: list[int] | None = None
    likelihood: str | None = None
    decoder_std: float | None = None
    codebook_size: int | None = None
    beta: float = 1.0
    kl_warmup: int = 0
    free_bits: float = 0.0
    objective: str = "elbo"
    k: int | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    val_fraction: float = 0.1
    augment: bool = False
    binarize: str = "none"
    precision: str = "fp32"
    early_stopping: int = 0
    device: str = "auto"
    save_every: int = 0
    fit_prior: bool = True  # Gaussian-latent models: fit a mixture prior to the training latents at the end
    prior_components: int | None = None  # per class (None: vaekit.train_prior.DEFAULT_COMPONENTS)

    def validate(self) -> None:
        """Refuse bad values and options that do not apply to the model; fills in the IWAE k, makes a
        folder dataset's path absolute and the image size [height, width]."""
        self.dataset = check_dataset_name(self.dataset)
        if self.image_size is not None:
            self.image_size = parse_image_size(self.image_size)
        if self.colour is not None and self.colour not in COLOURS:
            raise VaekitError(f"unknown colour {self.colour!r}; choose from {', '.join(COLOURS)}")
        if self.model not in MODELS:
            raise VaekitError(f"unknown model {self.model!r}; choose from {', '.join(sorted(MODELS))}")
        model_class = MODELS[self.model]
        accepted = inspect.signature(model_class.__init__).parameters
        for name in MODEL_SETTINGS:
            if getattr(self, name) is not None and name not in accepted:
                raise VaekitError(f"--{_flag(name)} does not apply to model {self.model}")
        for name in ("epochs", "batch_size", "latent_dim", "codebook_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise VaekitError(f"{name.replace('_', ' ')} must be an integer >= 1, got {value!r}")
        for name in ("hidden", "channels"):
            sizes = getattr(self, name)
            if sizes is not None and (not sizes or any(not isinstance(h, int) or h < 1 for h in sizes)):
                raise VaekitError(f"{name} sizes must be integers >= 1, got {sizes!r}")
        if self.likelihood is not None and self.likelihood not in LIKELIHOODS:
            raise VaekitError(f"unknown likelihood {self.likelihood!r}; choose from {', '.join(LIKELIHOODS)}")
        if self.decoder_std is not None:
            if self.likelihood != "gaussian":
                raise VaekitError("--decoder-std applies to --likelihood gaussian only")
            if not (math.isfinite(self.decoder_std) and self.decoder_std > 0):
                raise VaekitError(f"decoder std must be a positive number, got {self.decoder_std!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise VaekitError(f"learning rate must be a positive finite number, got {self.lr!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise VaekitError(f"beta must be a finite number >= 0, got {self.beta!r}")
        if not isinstance(self.kl_warmup, int) or self.kl_warmup < 0:
            raise VaekitError(f"KL warm-up must be a whole number of epochs >= 0, got {self.kl_warmup!r}")
        if not (math.isfinite(self.free_bits) and self.free_bits >= 0):
            raise VaekitError(f"free bits must be a finite number of nats >= 0, got {self.free_bits!r}")
        if self.objective not in OBJECTIVES:
            raise VaekitError(f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")
        self._validate_objective(model_class)
        if not 0.0 <= self.val_fraction < 1.0:
            raise VaekitError(f"val fraction must be in [0, 1), got {self.val_fraction!r}")
        if not isinstance(self.early_stopping, int) or self.early_stopping < 0:
            raise VaekitError(f"early stopping patience must be an integer >= 0, got {self.early_stopping!r}")
        if self.early_stopping and self.val_fraction == 0:
            raise VaekitError("--early-stopping watches the validation loss: it needs --val-fraction > 0")
        if self.prior_components is not None and (
            isinstance(self.prior_components, bool)
            or not isinstance(self.prior_components, int)
            or self.prior_components < 1
        ):
            raise VaekitError(f"prior components must be an integer >= 1, got {self.prior_components!r}")
        if self.prior_components is not None and not self.fit_prior:
            raise VaekitError("--prior-components applies only when training ends by fitting the prior")
        if self.save_every < 0:
            raise VaekitError(f"save every must be >= 0 epochs, got {self.save_every!r}")
        if self.binarize not in BINARIZE:
            raise VaekitError(f"unknown binarization {self.binarize!r}; choose from {', '.join(BINARIZE)}")
        if self.precision not in PRECISIONS:
            raise VaekitError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.device not in DEVICES:
            raise VaekitError(f"unknown device {self.device!r}; choose from {', '.join(DEVICES)}")

    def _validate_objective(self, model_class: type) -> None:
        elbo_options = [
            flag
            for flag, given in (
                ("--beta", self.beta != 1.0),
                ("--kl-warmup", self.kl_warmup > 0),
                ("--free-bits", self.free_bits > 0),
            )
            if given
        ]
        if not issubclass(model_class, GaussianVAE):
            gaussian_models = ", ".join(n for n, c in sorted(MODELS.items()) if issubclass(c, GaussianVAE))
            for flag, given in (
                *((f, True) for f in elbo_options),
                ("--objective iwae", self.objective == "iwae"),
                ("--k", self.k is not None),
                # nearest-code search and codebook averages need float32; bf16 would pick other codes
                ("--precision bf16", self.precision == "bf16"),
            ):
                if given:
                    raise VaekitError(
                        f"{flag} applies to the Gaussian-latent models ({gaussian_models}), not {self.model}"
                    )
        if self.objective == "iwae":
            if elbo_options:
                raise VaekitError(f"{elbo_options[0]} applies to the elbo objective, not iwae")
            self.k = DEFAULT_IWAE_K if self.k is None else self.k
            if not isinstance(self.k, int) or self.k < 1:
                raise VaekitError(f"--k must be an integer >= 1, got {self.k!r}")
        elif self.k is not None:
            raise VaekitError("--k (importance samples) applies to --objective iwae only")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _flag(name: str) -> str:
    return name.replace("_", "-")


def model_config(config: TrainConfig, image_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """The config of a new model for ``config`` on images of ``image_shape`` (settings left None are
    left to the model's defaults)."""
    accepted = inspect.signature(MODELS[config.model].__init__).parameters
    values: dict[str, Any] = {"name": config.model, "image_shape": list(image_shape)}
    if "num_classes" in accepted:
        values["num_classes"] = num_classes
    values.update({k: getattr(config, k) for k in MODEL_SETTINGS if getattr(config, k) is not None})
    return values


class TrainingInterrupted(Exception):
    """Ctrl-C stopped training; a checkpoint at the exact position was saved."""


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

    def sample_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch_{epoch:03d}.png"

    def reconstruction_grid(self, epoch: int) -> Path:
        return self.reconstructions / f"epoch_{epoch:03d}.png"

    def is_empty(self) -> bool:
        return not self.path.exists() or not any(self.path.iterdir())


@dataclass
class _State:
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


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.dataset}-{config.model}-{stamp}"


def _rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["cpu"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _adam(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (one op for all parameters: about 20% of an MLP epoch on CPU).

    Fused Adam on the CPU needs torch >= 2.4; older versions refuse it at construction.
    """
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(model.parameters(), lr=lr)


class _CtrlC:
    """Turns the first Ctrl-C into a flag checked between steps (a second one interrupts at once)."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Holds a run's model, data and optimizer; ``run()`` trains to ``config.epochs``."""

    def __init__(
        self,
        config: TrainConfig,
        out: str | os.PathLike,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        config.validate()
        self.run_dir = RunDir(out)
        self.log = log
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.overwrite = overwrite
        checkpoint = self._check_folder(resume, overwrite)
        # Everything that can fail on bad input happens here, before the run folder is touched.
        self.device = resolve_device(config.device)
        self.config = config
        data_dir = Path(config.data_dir) if config.data_dir else default_data_dir()
        dataset = load_dataset(
            config.dataset, data_dir, config.image_size, config.colour, progress=self.progress, log=log
        )
        for note in dataset.notes:
            log(f"note: {note}")
        self.data_dir = str(data_dir.resolve())
        if getattr(MODELS[config.model], "conditional", False) and dataset.num_classes < 2:
            raise VaekitError(
                f"the {config.model} is conditioned on class labels; {dataset.name} has "
                f"{dataset.num_classes or 'no'} classes (a folder dataset gets them from class subfolders)"
            )
        if checkpoint is None:
            torch.manual_seed(config.seed)
            config_of_model = model_config(config, dataset.image_shape, dataset.num_classes)
        else:
            config_of_model = json.loads(checkpoint["config"])["model"]
        self.model: VAE = build_model(config_of_model).to(self.device)
        # A fitted prior (vaekit train-prior, or the end of training) belongs to latents that further
        # training changes: a resumed run starts without it, and refits it at the end if it can.
        had_prior = checkpoint is not None and bool(read_run_config(Path(out))["model"].get("prior"))
        self.drops_prior = had_prior and not self.refits_prior
        self.optimizer = _adam(self.model, config.lr)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self._place_data(dataset)
        self.dataset_name = dataset.name
        self.classes = dataset.classes
        self.num_classes = dataset.num_classes
        self.eval_options = eval_options(asdict(config))
        # Fixed images for the per-epoch reconstructions, so that progress is visible across epochs.
        if len(self.x_val):
            self.grid_images, self.grid_labels = unit_float(self.x_val[:N_RECON]), self.y_val[:N_RECON]
        else:
            self.grid_images, self.grid_labels = self.train_batch(torch.arange(min(N_RECON, self.n_train)))
        self.state = _State()
        self._created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if checkpoint is not None:
            self._restore(checkpoint)

    def _place_data(self, dataset: Dataset) -> None:
        """Keep the images uint8 (a quarter of float32's memory) and gather each batch by row.

        ``images`` is the training storage: on the device if it fits there (a memory-mapped folder cache
        on the CPU stays mapped, so a dataset larger than memory trains); ``train_rows`` and ``val_rows``
        index it. Validation and test images are gathered once; evaluation converts them batch by batch.
        """
        cfg, dev = self.config, self.device
        train_rows, val_rows = split_rows(len(dataset.train), cfg.val_fraction, cfg.seed)
        images, labels = dataset.train.images, dataset.train.labels
        self.counts = {"n_train": len(train_rows), "n_val": len(val_rows), "n_test": len(dataset.test)}
        self.x_val, self.y_val = images[val_rows].to(dev), labels[val_rows].to(dev)
        self.x_test, self.y_test = dataset.test.images.to(dev), dataset.test.labels.to(dev)
        if cfg.binarize != "none":  # evaluation always sees one fixed binarization
            self.x_val = binarize(unit_float(self.x_val), "val")
            self.x_test = binarize(unit_float(self.x_test), "test")
        if cfg.binarize == "static":  # one fixed draw of the training split, stored as 0 / 255
            x = binarize(unit_float(images[train_rows].to(dev)), "train")
            images, labels = x.mul_(255).to(torch.uint8), labels[train_rows]
            train_rows = torch.arange(len(train_rows))
        # On the CPU .to is a no-op that keeps a mapped cache mapped; a GPU takes the set if it fits.
        if dev.type != "cuda" or images.nbytes < 0.5 * torch.cuda.mem_get_info(dev)[0]:
            images = images.to(dev)
        self.images, self.labels = images, labels.to(images.device)
        self.train_rows, self.val_rows = train_rows.to(images.device), val_rows.to(images.device)

    @property
    def n_train(self) -> int:
        return len(self.train_rows)

    def train_batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images (float in [0, 1], on the device) and labels at positions ``index`` of the split."""
        rows = self.train_rows.index_select(0, index.to(self.train_rows.device))
        x = self.images.index_select(0, rows).to(self.device, non_blocking=True)
        return unit_float(x), self.labels.index_select(0, rows).to(self.device, non_blocking=True)

    def _check_folder(self, resume: bool, overwrite: bool) -> dict[str, Any] | None:
        run = self.run_dir
        if resume and overwrite:
            raise VaekitError("--resume and --overwrite exclude each other")
        if resume:
            read_run_config(run.path)  # clear errors for a missing or foreign folder
            if not run.last_checkpoint.is_file():
                raise VaekitError(f"{run.path} has no checkpoint to resume from ({run.last_checkpoint})")
            return read_checkpoint(run.last_checkpoint)
        if run.path.exists() and not run.path.is_dir():
            raise VaekitError(f"--out {run.path} is a file, not a folder")
        if not run.is_empty() and not overwrite:
            what = "another run" if run.config.exists() else "other files"
            raise VaekitError(
                f"{run.path} already holds {what}; pass --resume to continue it or --overwrite to replace it"
            )
        return None

    # ----------------------------------------------------------------------------------- checkpoints
    def run_config(self) -> dict[str, Any]:
        return {
            "vaekit_version": vaekit.__version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "created": self._created,
            "device": str(self.device),
            "epochs_completed": self.state.epoch,
            "data": {
                "dataset": self.dataset_name,
                "data_dir": self.data_dir,
                **self.counts,
                "image_shape": list(self.model.image_shape),
                "classes": self.classes,
            },
            "model": self.model.config,
            "train": asdict(self.config),
        }

    def _checkpoint(self) -> dict[str, Any]:
        s = self.state
        return {
            "format": 1,
            "config": json.dumps(self.run_config()),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": s.epoch,
            "step": s.step,
            "perm": s.perm.cpu() if s.perm is not None else None,
            "sums": s.sums.cpu() if s.sums is not None else None,
            "terms": json.dumps(s.terms),
            "seconds": s.seconds,
            "history": json.dumps(s.history),
            "best": json.dumps({"loss": s.best_loss, "epoch": s.best_epoch}),
            "rng": _rng_state(self.shuffle),
        }

    def _save_checkpoint(self, path: Path) -> None:
        checkpoint = self._checkpoint()
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def _restore(self, ckpt: dict[str, Any]) -> None:
        stored = json.loads(ckpt["config"])
        self._created = stored.get("created")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for group in self.optimizer.param_groups:  # the stored lr would otherwise win over config.lr
            group["lr"] = self.config.lr
        self.state = _State(
            epoch=ckpt["epoch"],
            step=ckpt["step"],
            perm=ckpt["perm"].to(self.device) if ckpt["perm"] is not None else None,
            sums=ckpt["sums"].to(self.device) if ckpt["sums"] is not None else None,
            seconds=ckpt["seconds"],
            history=json.loads(ckpt["history"]),
            terms=json.loads(ckpt.get("terms", json.dumps(TERMS))),
        )
        best = json.loads(ckpt.get("best", "{}"))
        self.state.best_loss, self.state.best_epoch = best.get("loss"), best.get("epoch")
        _set_rng_state(ckpt["rng"], self.shuffle)

    # ------------------------------------------------------------------------------------- training
    def run(self) -> dict[str, Any]:
        """Train until ``config.epochs`` are done; returns the test evaluation written to eval.json."""
        backup = self._start_folder()
        if self.drops_prior:
            self.log(
                "note: the run's prior over codes is dropped, as training changes the codes; fit a new one "
                "with vaekit train-prior"
            )
        n_params = sum(p.numel() for p in self.model.parameters())
        counts = self.counts
        self.log(
            f"training {self.model.name} ({n_params:,} parameters) on {self.dataset_name}: "
            f"{counts['n_train']:,} train / {counts['n_val']:,} val images, {self.device}, "
            f"into {self.run_dir.path}"
        )
        try:
            with _CtrlC() as ctrl_c:
                while not self.finished:
                    self._train_epoch(ctrl_c)
                    self._end_epoch()
                    if backup is not None:  # the new run has its first good checkpoint
                        shutil.rmtree(backup, ignore_errors=True)
                        backup = None
        finally:
            if backup is not None:  # failed before replacing it: put the old run back
                shutil.rmtree(self.run_dir.path, ignore_errors=True)
                os.replace(backup, self.run_dir.path)
        s = self.state
        if self.stopped_early:
            self.log(
                f"early stopping: the validation loss has not improved for {s.epoch - s.best_epoch} epochs; "
                f"the run keeps the model of epoch {s.best_epoch} (val {s.best_loss:.2f})"
            )
        if self.config.early_stopping:  # evaluate the model the folder holds: the best, not the last
            state, _ = read_safetensors(self.run_dir.model)
            self.model.load_state_dict(state)
        result = self.evaluate_test()
        if self.refits_prior:
            self.fit_prior()
        self.log(f"run saved in {self.run_dir.path}")
        return result

    @property
    def refits_prior(self) -> bool:
        return self.config.fit_prior and isinstance(self.model, GaussianVAE)

    def fit_prior(self) -> None:
        """Fit the mixture prior to the training latents and save the run with it (see train_prior)."""
        from vaekit.train_prior import (
            check_mixture_settings,
            describe_mixture,
            fit_mixture_prior,
            save_run_with_prior,
        )

        assert isinstance(self.model, GaussianVAE)
        # Up to PRIOR_FIT_IMAGES training images (a seeded choice beyond that): the mixture needs no more,
        # and a memory-mapped dataset is gathered into memory no larger than that.
        rows = self.train_rows
        if len(rows) > PRIOR_FIT_IMAGES:
            chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(self.config.seed))
            rows = rows[chosen[:PRIOR_FIT_IMAGES].to(rows.device)]
        x, labels = self.images.index_select(0, rows).to(self.device), self.labels[rows].to(self.device)
        if self.config.binarize == "dynamic":
            x = binarize(unit_float(x), "train")
        classes = self.num_classes
        try:
            components, per_class = check_mixture_settings(self.config.prior_components, None, classes)
            # a tiny dataset: no more components than the rarest class (or the whole set) has images
            smallest = int(torch.bincount(labels, minlength=classes).min()) if per_class else len(labels)
            if 0 < smallest < components:
                where = "per class, but a class has" if per_class else "but there are"
                self.log(f"note: {components} prior components {where} {smallest} images")
                components = smallest
            info = fit_mixture_prior(self.model, x, labels, classes, components, per_class, self.config.seed)
        except VaekitError as exc:
            self.log(f"note: no prior fitted ({exc}); samples come from N(0, I)")
            return
        save_run_with_prior(self.run_dir.path, self.model, self.run_config(), self.config.seed)
        self.log(describe_mixture(info) + "; vaekit sample draws from it")

    @property
    def stopped_early(self) -> bool:
        s, patience = self.state, self.config.early_stopping
        return bool(patience) and s.best_epoch is not None and s.epoch - s.best_epoch >= patience

    @property
    def finished(self) -> bool:
        """All epochs are done, or early stopping has ended the run (and no epoch is half done)."""
        return self.state.step == 0 and (self.state.epoch >= self.config.epochs or self.stopped_early)

    def _start_folder(self) -> Path | None:
        """Create the run folder; with --overwrite, move the old one aside until the first epoch is done."""
        run, backup = self.run_dir, None
        if self.overwrite and not run.is_empty():
            backup = run.path.with_name(f".{run.path.name}.replaced-{os.getpid()}")
            os.replace(run.path, backup)
        for folder in (run.path, run.samples, run.reconstructions, run.checkpoints):
            folder.mkdir(parents=True, exist_ok=True)
        write_json(run.config, self.run_config())
        return backup

    def _train_epoch(self, ctrl_c: _CtrlC) -> None:
        s, cfg, model = self.state, self.config, self.model
        n = self.n_train
        n_batches = math.ceil(n / cfg.batch_size)
        if s.step == 0:
            s.perm = torch.randperm(n, generator=self.shuffle).to(self.device)
            s.sums = None
            s.seconds = 0.0
        model.train()
        start = time.perf_counter()
        bar = tqdm(
            total=n_batches,
            initial=s.step,
            desc=f"epoch {s.epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        with bar:
            while s.step < n_batches:
                index = s.perm[s.step * cfg.batch_size : (s.step + 1) * cfg.batch_size]
                x, y = self.train_batch(index)
                if cfg.augment:
                    x = random_affine(x)
                if cfg.binarize == "dynamic":  # a fresh binary draw of every image, every time it is seen
                    x = torch.bernoulli(x)
                with self._autocast():
                    objective, terms = model.loss(x, y, **self._loss_options())
                self.optimizer.zero_grad(set_to_none=True)
                objective.backward()
                self.optimizer.step()
                # per-image sums of every term, kept on the device: no synchronisation in the hot loop
                if s.sums is None:
                    s.sums = torch.zeros(len(terms), dtype=torch.float64, device=self.device)
                s.sums.add_(torch.stack(list(terms.values())), alpha=len(index))
                s.terms = list(terms)
                s.step += 1
                bar.update(1)
                if s.step % 20 == 0 or s.step == n_batches or ctrl_c.pressed:
                    running = s.sums[0].item() / self._images_seen()
                    self._check_finite(running)
                    bar.set_postfix(loss=f"{running:.2f}")
                if ctrl_c.pressed:
                    s.seconds += time.perf_counter() - start
                    self._save_checkpoint(self.run_dir.last_checkpoint)
                    raise TrainingInterrupted(
                        f"interrupted in epoch {s.epoch + 1} at step {s.step}/{n_batches}; checkpoint "
                        f"saved, continue with: vaekit train --resume --out {self.run_dir.path}"
                    )
        s.seconds += time.perf_counter() - start

    def _autocast(self) -> torch.autocast:
        """bf16 mixed precision for the training step's convolutions and matmuls, if asked for.

        Weights, optimizer state and the loss terms stay float32 (the models compute their likelihoods
        and KL in float32), and evaluation always runs in float32.
        """
        enabled = self.config.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def kl_weight(self) -> float:
        """beta, reached linearly over the first ``kl_warmup`` epochs (step by step) from 0."""
        cfg, s = self.config, self.state
        if not cfg.kl_warmup:
            return cfg.beta
        n_batches = math.ceil(self.n_train / cfg.batch_size)
        return cfg.beta * min(1.0, (s.epoch + s.step / n_batches) / cfg.kl_warmup)

    def _loss_options(self) -> dict[str, Any]:
        if not isinstance(self.model, GaussianVAE):
            return {}
        cfg = self.config
        iwae_k = cfg.k if cfg.objective == "iwae" else 1
        return {"kl_weight": self.kl_weight(), "free_bits": cfg.free_bits, "iwae_k": iwae_k}

    def _images_seen(self) -> int:
        """Images trained on so far in this epoch (only the last batch may be short)."""
        return min(self.state.step * self.config.batch_size, self.n_train)

    def _check_finite(self, value: float) -> None:
        if not math.isfinite(value):
            raise VaekitError(
                f"the training loss became {value} in epoch {self.state.epoch + 1}; stopped. The last good "
                f"checkpoint (after epoch {self.state.epoch}) is kept in {self.run_dir.last_checkpoint}; "
                "try a lower --lr"
            )

    def _end_epoch(self) -> None:
        s, run = self.state, self.run_dir
        start = time.perf_counter()
        train = dict(zip(s.terms, (s.sums / self._images_seen()).tolist(), strict=True))
        self._check_finite(train["loss"])
        kl_weight = self.kl_weight() if isinstance(self.model, GaussianVAE) else None
        val = None
        if len(self.x_val):
            val = elbo_terms(self.model, self.x_val, self.y_val, seed=self.config.seed, **self.eval_options)
        seconds = s.seconds + time.perf_counter() - start
        epoch = s.epoch + 1
        record: dict[str, Any] = {"epoch": epoch}
        record.update({f"train_{k}": v for k, v in train.items()})
        record.update({f"val_{k}": (val[k] if val else None) for k in train})
        record.update(kl_weight=kl_weight, seconds=round(seconds, 3))
        s.history.append(record)
        improved = val is None or s.best_loss is None or val["loss"] < s.best_loss
        if improved:
            s.best_loss, s.best_epoch = (val["loss"] if val else None), epoch
        s.epoch, s.step, s.perm, s.sums, s.seconds = epoch, 0, None, None, 0.0
        # The checkpoint goes first: the other files are always rebuilt from it on resume.
        self._save_checkpoint(run.last_checkpoint)
        if self.config.save_every and epoch % self.config.save_every == 0:
            self._save_checkpoint(run.checkpoints / f"epoch_{epoch:03d}.pt")
        if improved or not self.config.early_stopping:  # with early stopping the folder holds the best
            save_model(self.model, run.model)
        write_json(run.config, self.run_config())
        write_text(run.metrics, "".join(json.dumps(h) + "\n" for h in s.history))
        self._save_pictures(epoch)
        self.log(self._epoch_line(record, train, val))

    def _epoch_line(
        self, record: dict[str, Any], train: dict[str, float], val: dict[str, float] | None
    ) -> str:
        line = (
            f"epoch {record['epoch']:3d}/{self.config.epochs}  train {train['loss']:.2f} "
            f"(recon {train['recon']:.2f} + kl {train['kl']:.2f})"
        )
        if val:
            line += f"  val {val['loss']:.2f}"
        line += "".join(f"  {k} {v:.2f}" for k, v in (val or train).items() if k not in TERMS)
        if record["kl_weight"] is not None and record["kl_weight"] != 1.0:
            line += f"  kl weight {record['kl_weight']:.3g}"
        return line + f"  {record['seconds']:.2f}s"

    def _save_pictures(self, epoch: int) -> None:
        run, model = self.run_dir, self.model
        model.eval()
        with torch.no_grad():
            if model.can_sample:
                # The same seed every epoch: the same latents, so the grids show the model changing.
                generator = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)
                n = N_GRID_COLUMNS * (model.num_classes if model.conditional else N_GRID_COLUMNS)
                samples = model.sample(n, generator=generator)
                plots.save_grid(samples, run.sample_grid(epoch), ncol=N_GRID_COLUMNS)
                frames = [run.sample_grid(e) for e in range(1, epoch + 1) if run.sample_grid(e).is_file()]
                plots.save_animation(frames, run.samples_gif)
            recons = model.reconstruct(self.grid_images, self.grid_labels)
            plots.save_reconstructions(self.grid_images, recons, run.reconstruction_grid(epoch))
        plots.save_loss_curve(self.state.history, run.loss_curve)

    def evaluate_test(self) -> dict[str, Any]:
        terms = elbo_terms(self.model, self.x_test, self.y_test, seed=self.config.seed, **self.eval_options)
        result = eval_record(terms, "test", len(self.x_test), self.state.epoch)
        if self.config.early_stopping:
            result["best_epoch"] = self.state.best_epoch
        write_eval(self.run_dir.eval, result)
        self.log(
            f"test loss {result['test_loss']:.2f} (recon {result['test_recon']:.2f} + "
            f"kl {result['test_kl']:.2f}) over {len(self.x_test)} images"
        )
        return result


def train(config: TrainConfig, out: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """Train a new run into ``out`` (default runs/<dataset>-<model>-<time>); returns the run folder."""
    out = Path(out) if out is not None else default_run_dir(config)
    Trainer(config, out, **kwargs).run()
    return out


# Settings a run is built on; a resume that asks for another value is refused, not applied.
# (epochs, lr, device, data_dir, save_every and early_stopping may change.)
FIXED_ON_RESUME = (
    "dataset",
    "image_size",
    "colour",
    "model",
    *MODEL_SETTINGS,
    "beta",
    "kl_warmup",
    "free_bits",
    "objective",
    "k",
    "batch_size",
    "seed",
    "val_fraction",
    "augment",
    "binarize",
)


def resumed_config(out: str | os.PathLike, **changes: Any) -> TrainConfig:
    """The stored config of the run in ``out`` with ``changes`` (epochs, lr, device, data_dir, save_every).

    A change to a setting in FIXED_ON_RESUME is an error, as is an unknown setting.
    """
    stored = read_run_config(Path(out))
    config = TrainConfig.from_dict(stored["train"])
    for key, value in changes.items():
        if key not in TrainConfig.__dataclass_fields__:
            raise VaekitError(f"unknown training setting {key!r}")
        current = getattr(config, key)
        if key == "dataset":  # folder paths compare as absolute paths
            value = check_dataset_name(value)
        if key == "image_size" and value is not None:
            value = parse_image_size(value)
        if current is None and key in MODEL_SETTINGS:  # the run took the model's default
            current = stored["model"].get(key)
        if key in FIXED_ON_RESUME and value != current:
            raise VaekitError(
                f"--{_flag(key)} {value} differs from the run's {current}; it cannot change on --resume"
            )
        if key not in MODEL_SETTINGS:
            setattr(config, key, value)
    return config


def resume(
    out: str | os.PathLike, progress: bool | None = None, log: Callable[[str], None] = print, **changes: Any
) -> Path:
    """Continue the run in ``out`` from its last checkpoint; ``epochs=N`` extends it to N in total."""
    Trainer(resumed_config(out, **changes), out, resume=True, progress=progress, log=log).run()
    return Path(out)
