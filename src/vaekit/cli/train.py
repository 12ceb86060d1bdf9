"""``vaekit train``: its options (None where not given, so that --resume and --config can tell) and
the command, which resolves the settings and hands them to the Trainer."""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.cli.arguments import (
    ModelOption,
    decoder_std,
    duration,
    finite_float,
    fraction,
    image_size,
    int_at_least,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    sizes,
)
from vaekit.data import BINARIZE, DATASETS
from vaekit.models import MODELS, model_names
from vaekit.models.base import LIKELIHOODS, PRECISIONS
from vaekit.models.parts import all_options, option_parts, parts
from vaekit.training.defaults import LR_SCHEDULES
from vaekit.training.optim import OPTIMIZERS
from vaekit.training.part_settings import DEFAULT_PARTS
from vaekit.utils.devices import DEVICES
from vaekit.utils.errors import VaekitError
from vaekit.utils.targets import check_folder_for, check_run_writable

PART_OPTION = "part_option:"  # the argparse dest of a part option's flag: part_option:gamma


def add_train_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train a VAE. Defaults: MNIST, MLP 784-400-20, 10 epochs, Adam 1e-3, batch 128.",
    )
    # Defaults are None so that --resume can tell what was given; TrainConfig holds the real defaults.
    _add_data_arguments(p)
    _add_model_arguments(p)
    _add_part_arguments(p)
    _add_training_arguments(p)
    _add_optimizer_arguments(p)
    _add_run_arguments(p)
    p.set_defaults(func=run_train)


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        metavar="NAME",
        help=f"{', '.join(sorted(DATASETS))}, or folder:PATH for a folder of images (default mnist)",
    )
    p.add_argument("--data-dir", help="data folder (default $VAEKIT_DATA, else the user cache folder)")
    p.add_argument(
        "--image-size",
        type=image_size,
        metavar="S|HxW",
        help="folder: resize (centre crop to the aspect, antialiased); shapes: draw at S x S (default 64)",
    )
    colour = p.add_mutually_exclusive_group()
    colour.add_argument(
        "--grey", dest="colour", action="store_const", const="grey", help="folder: convert to grey"
    )
    colour.add_argument(
        "--rgb", dest="colour", action="store_const", const="rgb", help="folder: convert to RGB"
    )


def _model_choices() -> list[str]:
    """Every model name, plugins' included; a plugin that cannot be listed is reported when used."""
    try:
        return model_names()
    except VaekitError:
        return sorted(MODELS)


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=_model_choices(), help="model family (default mlp), or a plugin's name")
    p.add_argument(
        "--model-option",
        dest="model_options",
        action=ModelOption,
        metavar="NAME=VALUE",
        help="an option of the model's own (a plugin's), repeatable: --model-option blocks=2",
    )
    p.add_argument(
        "--latent-dim", type=positive_int, help="latent dimensions (default 20; vqvae: code size 16)"
    )
    p.add_argument(
        "--hidden",
        type=sizes("400 or 512,256"),
        help="mlp/cvae hidden layer sizes (default 400); conv: fully-connected layers between its "
        "convolutions and the latent (default none; the disentanglement papers' 256)",
    )
    p.add_argument("--channels", type=sizes("32,64"), help="conv/vqvae channels per layer (default 32,64)")
    p.add_argument("--likelihood", choices=LIKELIHOODS, help="pixel model: bernoulli (default) or gaussian")
    p.add_argument(
        "--decoder-std",
        type=decoder_std,
        help="std of the gaussian likelihood: a number (fixed), calibrated (default: each batch's best, "
        "sigma-VAE) or learned (a parameter)",
    )
    p.add_argument("--codebook-size", type=positive_int, help="vqvae: number of codes (default 128)")
    hvae = p.add_argument_group("hvae (a hierarchy of latent groups)")
    hvae.add_argument("--scales", type=positive_int, help="spatial scales, each half the last (default 2)")
    hvae.add_argument("--groups", type=positive_int, help="latent groups per scale (default 2)")
    hvae.add_argument("--latent-channels", type=positive_int, help="channels of each latent group (8)")
    hvae.add_argument("--width", type=positive_int, help="channels of the residual blocks (default 64)")
    hvae.add_argument("--encoder-blocks", type=positive_int, help="encoder residual blocks per scale (1)")
    hvae.add_argument("--stem", type=positive_int, help="halvings of the image before the first scale (2)")
    hvae.add_argument(
        "--logvar-limit", type=positive_float, help="soft clamp of the log-variances to +-this (7)"
    )
    balance = hvae.add_mutually_exclusive_group()
    balance.add_argument(
        "--kl-balance", dest="kl_balance", action="store_true", default=None,
        help="balance the groups' KL during the warm-up, as NVAE (hvae default)",
    )  # fmt: skip
    balance.add_argument("--no-kl-balance", dest="kl_balance", action="store_false", help="do not balance")


def _add_part_arguments(p: argparse.ArgumentParser) -> None:
    """--prior, --posterior and --objective, and a flag for every option of every registered part (their
    values gathered into ``part_options``): generated from the parts' specs (``models.parts``)."""
    group = p.add_argument_group("parts: the prior trained with, the posterior, the objective")
    for kind, default in DEFAULT_PARTS.items():
        known = parts(kind)
        listed = "; ".join(f"{name}: {spec.summary}" for name, spec in known.items())
        group.add_argument(f"--{kind}", choices=list(known), help=f"{listed} (default {default})")
    for name, (kind, hint, spec_field) in all_options().items():
        owners = " or ".join(spec.name for spec in option_parts(kind, name))
        default = spec_field.default_factory() if callable(spec_field.default_factory) else spec_field.default
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"{PART_OPTION}{name}",
            metavar=name.upper(),
            type=part_option_type(hint, spec_field),
            choices=spec_field.metadata.get("choices"),
            help=f"--{kind} {owners}: {spec_field.metadata['help']} (default {shown})",
        )


def part_option_type(hint: Any, spec_field: Any) -> Callable[[str], Any]:
    """The command line's parser of a part option: an integer, a number, or sizes ("1000,1000"), with
    its lower bound."""
    minimum, above = spec_field.metadata.get("minimum"), spec_field.metadata.get("above")
    if hint is int or typing.get_args(hint)[:1] == (int,) and typing.get_origin(hint) is not list:
        return int_at_least(int(minimum) if minimum is not None else -(2**62))
    if typing.get_origin(hint) is list:
        return sizes("1000,1000")
    if hint is float:
        if above is not None and above == 0:
            return positive_float
        return non_negative_float if minimum == 0 else finite_float
    return str


def _add_training_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--epochs",
        type=positive_int,
        help="total epochs (default 10; with --max-time, as many as the time allows); with --resume, a "
        "larger value extends",
    )
    p.add_argument("--batch-size", type=positive_int, help="images per step (default 128)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default 1e-3; hvae 1.2e-2)")
    p.add_argument("--beta", type=non_negative_float, help="weight of the KL term, beta-VAE (default 1)")
    p.add_argument(
        "--kl-warmup", type=non_negative_int, help="epochs over which the KL weight rises to beta (0; hvae 5)"
    )
    p.add_argument("--free-bits", type=non_negative_float, help="minimum KL in nats per latent dimension")
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same numbers (default 0)")
    p.add_argument("--val-fraction", type=fraction, help="share of training images held out (default 0.1)")
    p.add_argument(
        "--augment", action="store_true", default=None, help="random rotations and shifts of training batches"
    )
    p.add_argument(
        "--early-stopping",
        type=positive_int,
        metavar="PATIENCE",
        help="stop when the val loss has not improved for PATIENCE epochs; the run keeps the best model",
    )
    p.add_argument(
        "--binarize",
        choices=BINARIZE,
        help="none (default: grey levels), static (one fixed Bernoulli draw), dynamic (a new draw each time)",
    )
    p.add_argument(
        "--precision", choices=PRECISIONS, help="fp32 (default) or bf16 mixed precision in training steps"
    )
    p.add_argument("--device", choices=DEVICES, help="auto (default), cpu, cuda or mps")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile the training step with torch.compile (CUDA graphs on a GPU); default: the device's "
        "measured choice, eager on CPUs (docs/gpu.md)",
    )
    p.add_argument("--save-every", type=positive_int, help="keep checkpoints/epoch_NNN.pt every N epochs")
    p.add_argument(
        "--max-time",
        type=duration,
        metavar="TIME",
        help="train this long (90s, 15m, 1h30m), stopping at a step boundary, saved and evaluated: without "
        "--epochs the run's length (schedules follow it; --resume goes on within it, a larger value "
        "extends), with --epochs whichever comes first (--resume trains that long again)",
    )


def _add_optimizer_arguments(p: argparse.ArgumentParser) -> None:
    """The optimizer, its schedule, the gradient guard and the weights' average (the hvae has its own
    defaults: models/hvae.py)."""
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="adam (default) or adamax (hvae default)")
    p.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, help="constant (default) or cosine to 0 over --epochs (hvae)"
    )
    p.add_argument(
        "--grad-clip",
        type=non_negative_float,
        metavar="NORM",
        help="clip the gradient norm (0: no; hvae 200)",
    )
    p.add_argument(
        "--skip-threshold",
        type=non_negative_float,
        metavar="NORM",
        help="skip an update whose gradient norm is above NORM or not finite (0: never; hvae 1000)",
    )
    p.add_argument(
        "--max-skipped",
        type=fraction,
        metavar="SHARE",
        help="stop when more than this share of an epoch's updates are skipped (default 0.05)",
    )
    p.add_argument(
        "--ema",
        type=fraction,
        metavar="DECAY",
        help="evaluate and sample with a moving average of the weights, decay DECAY (default 0: none)",
    )


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The prior fitted at the end, logging, where the settings come from and where the run goes."""
    p.add_argument(
        "--no-fit-prior",
        dest="fit_prior",
        action="store_false",
        default=None,
        help="do not end by fitting the Gaussian mixture prior that vaekit sample draws from",
    )
    p.add_argument(
        "--prior-components", type=positive_int, help="mixture components of the fitted prior, per class (8)"
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="write TensorBoard event files to the run's tb/ folder (pip install 'vaekit[tb]')",
    )
    p.add_argument(
        "--mlflow",
        action="store_true",
        default=None,
        help="log the settings, each epoch's metrics and the pictures to MLflow: $MLFLOW_TRACKING_URI, "
        "else ./mlruns (pip install 'vaekit[mlflow]')",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="settings from a TOML file's [train] table, or a run's config.json (repeats that run); "
        "flags override it",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved settings as TOML and exit")
    p.add_argument("--out", help="run folder (default runs/<dataset>-<model>-<time>)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    group.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _name_the_file_at_fault(path: str, settings: dict, flags: dict) -> None:
    """A bad value from a config file (epochs = 0) is refused naming the file, as a malformed file is:
    the settings are checked now, and an error that the command line's flags alone do not make is the
    file's (or the file's with the flags)."""
    from vaekit.training import TrainConfig

    try:
        TrainConfig(**settings).validate()
    except VaekitError as exc:
        try:
            TrainConfig(**flags).validate()
        except VaekitError:
            raise exc from None
        raise VaekitError(f"{path}: {exc}") from None


def _given_settings(args: argparse.Namespace, config_class: type) -> dict[str, Any]:
    """The settings given on the command line (a part's option flags into ``part_options``) over those of
    ``--config``, whose bad values are refused naming the file."""
    given = {k: v for k, v in vars(args).items() if k in config_class.__dataclass_fields__ and v is not None}
    flags = vars(args).items()
    options = {k[len(PART_OPTION) :]: v for k, v in flags if k.startswith(PART_OPTION) and v is not None}
    if options:  # --gamma, --k, ...: the options of the parts
        given["part_options"] = options
    if args.config is None:
        return given
    from vaekit.training.config_files import read_config_file

    # flags win over the file; a null in the file (config.json's "the model's default") is no setting
    in_file = {k: v for k, v in read_config_file(args.config).items() if v is not None}
    for table in ("model_options", "part_options"):  # a flag overrides one option of the file's
        if table in in_file and table in given:
            given[table] = {**in_file[table], **given[table]}
    flags, given = given, {**in_file, **given}
    if not args.resume:
        _name_the_file_at_fault(args.config, given, flags)
    return given


def run_train(args: argparse.Namespace) -> int:
    from vaekit.training import (
        RunDir,
        TrainConfig,
        Trainer,
        TrainingInterrupted,
        default_run_dir,
        distributed,
        resumed_config,
    )
    from vaekit.training.finish import end_to_redo

    given = _given_settings(args, TrainConfig)
    progress = False if args.no_progress else None
    if distributed.torchrun_ranks().enabled:
        if args.out is None:  # each process would name its own folder by the clock
            raise VaekitError("under torchrun, give the run folder with --out")
        if distributed.restart_count() > 0 and RunDir(args.out).last_checkpoint.is_file():
            # torchrun restarted the workers after a failure (--max-restarts): go on from the checkpoint
            args.resume, args.overwrite = True, False
            if distributed.torchrun_ranks().main:
                print(f"restart {distributed.restart_count()}: resuming {args.out} from its last checkpoint")
    if args.resume:
        if args.out is None:
            raise VaekitError("--resume needs --out RUN, the run folder to continue")
        config = resumed_config(args.out, **given)
        out = Path(args.out)
    else:
        config = TrainConfig(**given)
        out = Path(args.out) if args.out else default_run_dir(config)
    if args.print_config:
        from vaekit.training.config_files import config_toml

        config.validate()
        print(config_toml(config), end="")
        return 0
    if args.resume:  # the output policy (utils.targets): checked before any work
        check_run_writable(out, "its checkpoints")
    elif args.out is not None:  # runs/, the default's folder, is vaekit's own to make
        check_folder_for(out, "--out")
    trainer = Trainer(config, out, resume=args.resume, overwrite=args.overwrite, progress=progress)
    if trainer.finished and (redo := end_to_redo(trainer.run_dir, trainer.state.epoch)):
        print(f"{out} has already trained {trainer.state.epoch} epochs; {redo}")
    elif trainer.finished:
        if trainer.stopped_early:
            print(f"{out} stopped early after {trainer.state.epoch} epochs; raise --early-stopping to go on")
        else:  # a run as long as its --max-time is extended by a longer one
            limit = "--epochs" if trainer.config.epochs is not None else "--max-time"
            done = f"{out} has already trained {trainer.state.epoch} epochs"
            print(f"{done}; pass a larger {limit} to extend it")
        return 0
    try:
        trainer.run()
    except TrainingInterrupted as exc:
        print(f"vaekit train: {exc}", file=sys.stderr)
        return exc.exit_status  # 130 for Ctrl-C; 143 for SIGTERM: preempted, to be requeued
    return 0
