"""The ``vaekit`` command: each subcommand parses its options and calls library code."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from vaekit.data import BINARIZE, DATASETS
from vaekit.devices import DEVICES, resolve_device
from vaekit.errors import VaekitError
from vaekit.models import MODELS
from vaekit.models.base import LIKELIHOODS, OBJECTIVES, PRECISIONS, PRIORS

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _finite_float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _sizes(example: str) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        try:
            return [_positive_int(part.strip()) for part in text.split(",")]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"expected sizes like {example}: {exc}") from None

    return parse


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _image_size(text: str) -> list[int]:
    from vaekit.data.folder import parse_image_size

    try:
        return parse_image_size(text)
    except VaekitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train a VAE. Defaults: MNIST, MLP 784-400-20, 10 epochs, Adam 1e-3, batch 128.",
    )
    # Defaults are None so that --resume can tell what was given; TrainConfig holds the real defaults.
    p.add_argument(
        "--dataset",
        metavar="NAME",
        help=f"{', '.join(sorted(DATASETS))}, or folder:PATH for a folder of images (default mnist)",
    )
    p.add_argument("--data-dir", help="data folder (default $VAEKIT_DATA, else the user cache folder)")
    p.add_argument(
        "--image-size",
        type=_image_size,
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
    p.add_argument("--model", choices=sorted(MODELS), help="model family (default mlp)")
    p.add_argument(
        "--latent-dim", type=_positive_int, help="latent dimensions (default 20; vqvae: code size 16)"
    )
    p.add_argument(
        "--hidden", type=_sizes("400 or 512,256"), help="mlp/cvae hidden layer sizes (default 400)"
    )
    p.add_argument("--channels", type=_sizes("32,64"), help="conv/vqvae channels per layer (default 32,64)")
    p.add_argument("--likelihood", choices=LIKELIHOODS, help="pixel model: bernoulli (default) or gaussian")
    p.add_argument(
        "--decoder-std", type=_positive_float, help="fixed std of the gaussian likelihood (default: learned)"
    )
    p.add_argument("--codebook-size", type=_positive_int, help="vqvae: number of codes (default 128)")
    p.add_argument("--epochs", type=_positive_int, help="total epochs; with --resume, a larger value extends")
    p.add_argument("--batch-size", type=_positive_int, help="images per step (default 128)")
    p.add_argument("--lr", type=_positive_float, help="Adam learning rate (default 1e-3)")
    p.add_argument("--beta", type=_non_negative_float, help="weight of the KL term, beta-VAE (default 1)")
    p.add_argument(
        "--kl-warmup", type=_non_negative_int, help="epochs over which the KL weight rises to beta"
    )
    p.add_argument("--free-bits", type=_non_negative_float, help="minimum KL in nats per latent dimension")
    p.add_argument("--objective", choices=OBJECTIVES, help="elbo (default) or iwae (Burda et al. 2015)")
    p.add_argument("--k", type=_positive_int, help="importance samples of --objective iwae (default 5)")
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same numbers (default 0)")
    p.add_argument("--val-fraction", type=_fraction, help="share of training images held out (default 0.1)")
    p.add_argument(
        "--augment", action="store_true", default=None, help="random rotations and shifts of training batches"
    )
    p.add_argument(
        "--early-stopping",
        type=_positive_int,
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
    p.add_argument("--save-every", type=_positive_int, help="keep checkpoints/epoch_NNN.pt every N epochs")
    p.add_argument(
        "--no-fit-prior",
        dest="fit_prior",
        action="store_false",
        default=None,
        help="do not end by fitting the Gaussian mixture prior that vaekit sample draws from",
    )
    p.add_argument(
        "--prior-components", type=_positive_int, help="mixture components of the fitted prior, per class (8)"
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="write TensorBoard event files to the run's tb/ folder (pip install 'vaekit[tb]')",
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
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from vaekit.training import (
        RunDir,
        TrainConfig,
        Trainer,
        TrainingInterrupted,
        default_run_dir,
        distributed,
        resumed_config,
    )

    given = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    if args.config is not None:
        from vaekit.training.config_files import read_config_file

        # flags win over the file; a null in the file (config.json's "the model's default") is no setting
        in_file = {k: v for k, v in read_config_file(args.config).items() if v is not None}
        given = {**in_file, **given}
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
    trainer = Trainer(config, out, resume=args.resume, overwrite=args.overwrite, progress=progress)
    if trainer.finished:
        if trainer.stopped_early:
            print(f"{out} stopped early after {trainer.state.epoch} epochs; raise --early-stopping to go on")
        else:
            print(
                f"{out} has already trained {trainer.state.epoch} epochs; pass a larger --epochs to extend it"
            )
        return 0
    try:
        trainer.run()
    except TrainingInterrupted as exc:
        print(f"vaekit train: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _add_run_command(sub: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("run", help="run folder")
    p.add_argument("--device", choices=DEVICES, default="auto")
    return p


def _sample(args: argparse.Namespace) -> int:
    from vaekit import load, plots

    model = load(args.run, device=resolve_device(args.device))
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    options = {"generator": generator, "prior": args.prior, "temperature": args.temperature}
    if model.conditional and args.label is None:
        # one row per class, as many columns as --n allows (8 by default)
        per_class = math.ceil(args.n / model.num_classes) if args.n is not None else 8
        images = model.sample(per_class * model.num_classes, **options)
        plots.save_grid(images, args.out, ncol=per_class)
        what = f"{per_class} samples of each of the {model.num_classes} classes"
    else:
        n = args.n if args.n is not None else 64
        plots.save_grid(model.sample(n, label=args.label, **options), args.out)
        what = f"{n} samples" + (f" of class {args.label}" if args.label is not None else "")
    source = "the vqvae's prior over codes" if model.name == "vqvae" else (
        "the fitted prior" if model.uses_fitted_prior(args.prior) else "N(0, I)"
    )  # fmt: skip
    heat = "" if args.temperature == 1.0 else f" at temperature {args.temperature:g}"
    print(f"{what} from {source}{heat} written to {args.out}")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    from vaekit import load, plots
    from vaekit.evaluate import run_split
    from vaekit.saving import read_run_config

    device = resolve_device(args.device)
    model = load(args.run, device=device)
    images = run_split(read_run_config(Path(args.run)), args.split, args.data_dir)
    if args.n > len(images):
        raise VaekitError(f"--n {args.n} is more than the {len(images)} images of the {args.split} split")
    chosen = images.subset(torch.arange(args.n))
    originals = chosen.as_float(device)
    plots.save_reconstructions(originals, model.reconstruct(originals, chosen.labels.to(device)), args.out)
    print(f"{args.n} {args.split} images and their reconstructions written to {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from vaekit.evaluate import collapse_warning, evaluate_run, format_result
    from vaekit.saving import read_run_config

    result = evaluate_run(
        args.run,
        split=args.split,
        data_dir=args.data_dir,
        device=args.device,
        iwae_k=args.iwae_k,
        samples=args.samples,
        log=lambda note: print(note, file=sys.stderr),
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_result(result, args.split))
    warning = collapse_warning(result, read_run_config(Path(args.run))["model"]["latent_dim"])
    if warning:
        print(warning, file=sys.stderr)
    return 0


def _latent(args: argparse.Namespace) -> int:
    from vaekit.analysis import latent_scatter

    result = latent_scatter(
        args.run, out=args.out, split=args.split, n=args.n, data_dir=args.data_dir, device=args.device
    )
    print(f"{' and '.join(result['panels'])} of {result['n']:,} images written to {result['path']}")
    return 0


def _picture(args: argparse.Namespace) -> int:
    from vaekit import analysis

    common = dict(out=args.out, data_dir=args.data_dir, device=args.device)
    if args.command == "manifold":
        result = analysis.manifold(args.run, n=args.n, label=args.label, **common)
        what = f"{args.n}x{args.n} manifold over {result['basis']}"
    elif args.command == "interpolate":
        result = analysis.interpolate(
            args.run, args.start, args.end, steps=args.steps, spherical=args.slerp, **common
        )
        kind = "spherical" if args.slerp else "linear"
        what = f"{kind} interpolation from test image {args.start} to {args.end}"
    else:
        result = analysis.traverse(
            args.run, index=args.index, steps=args.steps, limit=args.limit, dims=args.dims, **common
        )
        shown = ", ".join(f"z{d + 1}" for d in result["dims"])
        what = f"traversal of {shown} (largest KL first) around test image {args.index}"
    print(f"{what} written to {result['path']}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from vaekit.compare import compare_runs

    written = compare_runs(
        args.runs,
        out=args.out,
        overwrite=args.overwrite,
        evaluate=args.evaluate,
        iwae_k=args.iwae_k,
        samples=args.samples,
        data_dir=args.data_dir,
        device=args.device,
        log=lambda note: print(note, file=sys.stderr),
    )
    print(f"comparison of {len(args.runs)} runs written to {written['markdown']} and {written['html']}")
    return 0


def _train_prior(args: argparse.Namespace) -> int:
    from vaekit.saving import read_run_config
    from vaekit.train_prior import fit_run_prior, train_prior

    options = vars(args)
    code_options = ("epochs", "batch_size", "lr", "width", "depth")
    if read_run_config(Path(args.run))["model"].get("name") == "vqvae":
        for name in ("components", "classes", "target"):
            if options[name] is not None:
                raise VaekitError(f"--{name} applies to Gaussian-latent runs (a mixture prior), not vqvae")
        given = {k: options[k] for k in code_options if options[k] is not None}
        progress = False if args.no_progress else None
        train_prior(
            args.run, seed=args.seed, device=args.device, overwrite=args.overwrite, progress=progress, **given
        )
        return 0
    for name in code_options:
        if options[name] is not None:
            raise VaekitError(
                f"--{name.replace('_', '-')} applies to a vqvae's prior over codes, not a mixture"
            )
    per_class = {None: None, "yes": True, "no": False}[args.classes]
    target = args.target or "means"
    fit_run_prior(args.run, args.components, per_class, args.seed, args.device, args.overwrite, target=target)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vaekit", description="Variational autoencoders: train, sample, evaluate.")
    from vaekit import __version__

    parser.add_argument("--version", action="version", version=f"vaekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    p = _add_run_command(sub, "sample", "draw new images from a trained model into a PNG grid")
    p.add_argument("--n", type=_positive_int, help="number of images (default 64; cvae: 8 per class)")
    p.add_argument(
        "--label",
        type=_non_negative_int,
        help="class to draw (a cvae, or a model whose fitted prior has classes)",
    )
    p.add_argument(
        "--prior", choices=PRIORS, help="fitted (default, if the run has one) or standard: z ~ N(0, I)"
    )
    p.add_argument(
        "--temperature",
        type=_positive_float,
        default=1.0,
        help="scale of the prior's standard deviations (default 1; below 1: nearer its modes)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (default 0)")
    p.add_argument("--out", default="samples.png", help="PNG file (default samples.png)")
    p.set_defaults(func=_sample)
    p = _add_run_command(sub, "reconstruct", "originals over their reconstructions, as a PNG grid")
    p.add_argument("--n", type=_positive_int, default=16, help="number of images (default 16)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.add_argument("--out", default="reconstructions.png", help="PNG file (default reconstructions.png)")
    p.set_defaults(func=_reconstruct)
    p = _add_run_command(
        sub, "evaluate", "test-set loss, its parts, latent statistics and sample quality, into RUN/eval.json"
    )
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument(
        "--iwae-k",
        type=_non_negative_int,
        default=0,
        help="also estimate -log p(x) by importance sampling with K samples per image (e.g. 5000)",
    )
    p.add_argument(
        "--samples",
        type=_non_negative_int,
        default=10_000,
        help="samples whose quality a digit classifier measures (default 10000; 0 skips it)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.set_defaults(func=_evaluate)
    p = _add_run_command(sub, "latent", "scatter the latent means of test images, coloured by label")
    p.add_argument("--n", type=_positive_int, default=2000, help="images to place (default 2000)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.add_argument("--out", help="PNG file (default RUN/latent.png)")
    p.set_defaults(func=_latent)
    p = _add_run_command(sub, "manifold", "decode a grid of latents: the classic 2-D manifold picture")
    p.add_argument("--out", help="PNG file (default RUN/manifold.png)")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.set_defaults(func=_picture)
    p.add_argument("--n", type=_int_at_least(2), default=20, help="grid side (default 20)")
    p.add_argument("--label", type=_non_negative_int, help="class, for a conditional model (cvae)")
    p = _add_run_command(sub, "interpolate", "decode the way from one test image's latent to another's")
    p.add_argument("--out", help="PNG file (default RUN/interpolation.png)")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.set_defaults(func=_picture)
    p.add_argument("--from", dest="start", type=_non_negative_int, required=True, help="test image index")
    p.add_argument("--to", dest="end", type=_non_negative_int, required=True, help="test image index")
    p.add_argument("--steps", type=_int_at_least(2), default=10, help="decoded latents (default 10)")
    p.add_argument("--slerp", action="store_true", help="spherical instead of linear interpolation")
    p = _add_run_command(sub, "traverse", "vary one latent dimension at a time around a test image")
    p.add_argument("--out", help="PNG file (default RUN/traversal.png)")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.set_defaults(func=_picture)
    p.add_argument("--index", type=_non_negative_int, default=0, help="test image index (default 0)")
    p.add_argument("--steps", type=_int_at_least(2), default=9, help="values per dimension (default 9)")
    p.add_argument("--limit", type=_positive_float, default=3.0, help="values from -L to L (default 3)")
    p.add_argument(
        "--dims", type=_positive_int, default=10, help="dimensions shown, largest KL first (default 10)"
    )
    p = sub.add_parser(
        "compare",
        help="one report (Markdown and HTML) comparing runs: figures, samples, reconstructions",
        description="Compare runs side by side: a table of their figures (from each eval.json) and their "
        "last sample and reconstruction grids, as report.md and a self-contained report.html.",
    )
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--out", default="comparison", help="report folder (default comparison)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.add_argument("--evaluate", action="store_true", help="evaluate each run first (updates its eval.json)")
    p.add_argument(
        "--iwae-k", type=_non_negative_int, default=0, help="with --evaluate: -log p(x) with K samples"
    )
    p.add_argument(
        "--samples", type=_non_negative_int, default=10_000, help="with --evaluate: samples measured"
    )
    p.add_argument("--data-dir", help="data folder, if not where the runs found it")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=_compare)
    p = _add_run_command(
        sub,
        "train-prior",
        "fit a run's prior: Gaussian mixtures over its training latents (mlp, conv, cvae), or a vqvae's "
        "autoregressive prior over codes",
    )
    p.add_argument(
        "--components", type=_positive_int, help="mixture components, per class (default 8; 40 in all)"
    )
    p.add_argument(
        "--classes",
        choices=("yes", "no"),
        help="one mixture per class (default: yes if the images have labels)",
    )
    p.add_argument(
        "--target",
        choices=("means", "aggregate"),
        help="fit the posterior means (default: clearer samples) or the aggregate posterior "
        "(better -log p(x))",
    )
    p.add_argument("--epochs", type=_positive_int, help="vqvae: epochs over the training codes (default 20)")
    p.add_argument("--batch-size", type=_positive_int, help="vqvae: code grids per step (default 128)")
    p.add_argument("--lr", type=_positive_float, help="vqvae: Adam learning rate (default 1e-3)")
    p.add_argument("--width", type=_positive_int, help="vqvae: transformer width, a multiple of 4 (64)")
    p.add_argument("--depth", type=_positive_int, help="vqvae: transformer blocks (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the run's existing prior")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train_prior)
    p = sub.add_parser(
        "serve",
        help="explore runs' latent spaces in the browser (a local web app and its JSON API)",
        description="Serve one or more runs: the same z is decoded by each (e.g. beta=1 against 4).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)"
    )
    p.add_argument("--port", type=_int_at_least(1), default=8000, help="port (default 8000)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=_serve)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from vaekit.serve import serve

    if args.port > 65535:
        raise VaekitError(f"--port must be at most 65535, got {args.port}")
    serve(args.runs, host=args.host, port=args.port, device=args.device)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors, --help, --version: a return code for in-process callers
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.func(args)
    except (VaekitError, OSError) as exc:  # OSError: permissions, full disk: the user's to fix, not a bug
        rank = os.environ.get("RANK") if os.environ.get("WORLD_SIZE", "1") != "1" else None
        where = f" (rank {rank})" if rank is not None else ""  # under torchrun: which process failed
        print(f"vaekit {args.command}{where}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"vaekit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
