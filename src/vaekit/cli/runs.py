"""The commands that work on trained runs: sample, reconstruct, evaluate, the latent pictures, compare,
train-prior and serve. Each parses its options and calls library code."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from vaekit.cli.applicability import CODE_PRIOR_OPTIONS, MIXTURE_OPTIONS, options_given, row
from vaekit.cli.arguments import add_run_command, int_at_least, non_negative_int, positive_float, positive_int
from vaekit.cli.sample import add_sample_command
from vaekit.models.base import PRECISIONS
from vaekit.utils import limits
from vaekit.utils.devices import DEVICES, resolve_device
from vaekit.utils.errors import VaekitError
from vaekit.utils.targets import check_run_writable, file_target


def _reconstruct(args: argparse.Namespace) -> int:
    from vaekit import load
    from vaekit.evaluation.runs import run_split
    from vaekit.utils import plots
    from vaekit.utils.files import read_run_config

    file_target(args.out, overwrite=args.overwrite)
    device = resolve_device(args.device)
    model = load(args.run, device=device)
    images = run_split(read_run_config(Path(args.run)), args.split, args.data_dir)
    if args.n > len(images):
        raise VaekitError(f"--n {args.n} is more than the {len(images)} images of the {args.split} split")
    limits.check_images(2 * args.n, model.image_shape, device, "a grid of originals and reconstructions")
    chosen = images.subset(torch.arange(args.n))
    originals = chosen.as_float(device)
    plots.save_reconstructions(originals, model.reconstruct(originals, chosen.labels.to(device)), args.out)
    print(f"{args.n} {args.split} images and their reconstructions written to {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from vaekit.evaluation.report import collapse_warning, format_result
    from vaekit.evaluation.runs import evaluate_run
    from vaekit.utils.files import read_run_config

    check_run_writable(Path(args.run), "eval.json")
    result = evaluate_run(
        args.run,
        split=args.split,
        data_dir=args.data_dir,
        device=args.device,
        iwae_k=args.iwae_k,
        samples=args.samples,
        log=lambda note: print(note, file=sys.stderr),
        precision=args.precision,
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
    from vaekit.evaluation.pictures import latent_scatter

    _picture_target(args, "latent.png")
    result = latent_scatter(
        args.run, out=args.out, split=args.split, n=args.n, data_dir=args.data_dir, device=args.device
    )
    print(f"{' and '.join(result['panels'])} of {result['n']:,} images written to {result['path']}")
    return 0


def _picture(args: argparse.Namespace) -> int:
    from vaekit.evaluation import pictures

    _picture_target(args, args.run_file)
    common = dict(out=args.out, data_dir=args.data_dir, device=args.device)
    if args.command == "manifold":
        result = pictures.manifold(args.run, n=args.n, label=args.label, **common)
        what = f"{args.n}x{args.n} manifold over {result['basis']}"
    elif args.command == "interpolate":
        result = pictures.interpolate(
            args.run, args.start, args.end, steps=args.steps, spherical=args.slerp, **common
        )
        kind = "spherical" if args.slerp else "linear"
        what = f"{kind} interpolation from test image {args.start} to {args.end}"
    else:
        result = pictures.traverse(
            args.run, index=args.index, steps=args.steps, limit=args.limit, dims=args.dims, **common
        )
        shown = ", ".join(f"z{d + 1}" for d in result["dims"])
        what = f"traversal of {shown} (largest KL first) around test image {args.index}"
    print(f"{what} written to {result['path']}")
    return 0


def _picture_target(args: argparse.Namespace, default: str) -> None:
    """A picture's file: --out under the output policy; without it, the run's own default file, rewritten."""
    if args.out is not None:
        file_target(args.out, overwrite=args.overwrite)
    else:
        check_run_writable(Path(args.run), default)


def _compare(args: argparse.Namespace) -> int:
    from vaekit.evaluation.compare import compare_runs

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
    if len(written["likelihoods"]) > 1:  # their -ELBOs do not compare: the report says why
        kinds = ", ".join(written["likelihoods"])
        print(f"the runs have {len(written['likelihoods'])} likelihoods ({kinds}): in separate tables")
    return 0


def _train_prior(args: argparse.Namespace) -> int:
    from vaekit.training.code_prior import train_prior
    from vaekit.training.priors import fit_run_prior
    from vaekit.utils.files import read_run_config

    options, given = vars(args), options_given(args)
    vqvae = read_run_config(Path(args.run))["model"].get("name") == "vqvae"
    wrong = CODE_PRIOR_OPTIONS if not vqvae else MIXTURE_OPTIONS
    for name in wrong:  # the table's rows (cli.applicability): these act on the other kind of run
        if name in given:
            kind = "vqvae" if vqvae else "a Gaussian-latent run"
            raise VaekitError(f"{given[name]} applies to {row('train-prior', name).runs}, not {kind}")
    if vqvae:
        code = {k: options[k] for k in CODE_PRIOR_OPTIONS if options[k] is not None}
        progress = False if args.no_progress else None
        train_prior(
            args.run, seed=args.seed, device=args.device, overwrite=args.overwrite, progress=progress, **code
        )
        return 0
    per_class = {None: None, "yes": True, "no": False}[args.classes]
    target = args.target or "means"
    fit_run_prior(args.run, args.components, per_class, args.seed, args.device, args.overwrite, target=target)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from vaekit.serve import serve

    if args.port > 65535:
        raise VaekitError(f"--port must be at most 65535, got {args.port}")
    serve(args.runs, host=args.host, port=args.port, device=args.device, token=args.token)
    return 0


def _export(args: argparse.Namespace) -> int:
    from vaekit.export.onnx import export_onnx

    export_onnx(args.run, args.out, overwrite=args.overwrite)
    return 0


def _add_reconstruct_command(sub: argparse._SubParsersAction) -> None:
    p = add_run_command(sub, "reconstruct", "originals over their reconstructions, as a PNG grid")
    p.add_argument("--n", type=positive_int, default=16, help="number of images (default 16)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.add_argument("--out", default="reconstructions.png", help="PNG file (default reconstructions.png)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_reconstruct)


def _add_evaluate_command(sub: argparse._SubParsersAction) -> None:
    p = add_run_command(
        sub, "evaluate", "test-set loss, its parts, latent statistics and sample quality, into RUN/eval.json"
    )
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument(
        "--iwae-k",
        type=non_negative_int,
        default=0,
        help="also estimate -log p(x) by importance sampling with K samples per image (e.g. 5000)",
    )
    p.add_argument(
        "--samples",
        type=non_negative_int,
        default=10_000,
        help="samples whose quality a digit classifier measures (default 10000; 0 skips it)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        default="auto",
        help="of the networks in the likelihoods: fp32 or bf16 (densities stay float32); auto (default): "
        "bf16 on a GPU, fp32 elsewhere",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.set_defaults(func=_evaluate)


def _add_latent_command(sub: argparse._SubParsersAction) -> None:
    p = add_run_command(sub, "latent", "scatter the latent means of test images, coloured by label")
    p.add_argument("--n", type=positive_int, default=2000, help="images to place (default 2000)")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.add_argument("--out", help="PNG file (default RUN/latent.png, rewritten each time)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_latent)


def _add_picture_command(
    sub: argparse._SubParsersAction, name: str, help: str, out: str
) -> argparse.ArgumentParser:
    """A latent-picture command (manifold, interpolate, traverse): a run, --out and --data-dir; its own
    options follow."""
    p = add_run_command(sub, name, help)
    p.add_argument("--out", help=f"PNG file (default RUN/{out}, rewritten each time)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--data-dir", help="data folder, if not where the run found it")
    p.set_defaults(func=_picture, run_file=out)
    return p


def _add_picture_commands(sub: argparse._SubParsersAction) -> None:
    p = _add_picture_command(
        sub, "manifold", "decode a grid of latents: the classic 2-D manifold picture", "manifold.png"
    )
    p.add_argument("--n", type=int_at_least(2), default=20, help="grid side (default 20)")
    p.add_argument("--label", type=non_negative_int, help="class, for a conditional model (cvae)")
    p = _add_picture_command(
        sub, "interpolate", "decode the way from one test image's latent to another's", "interpolation.png"
    )
    p.add_argument("--from", dest="start", type=non_negative_int, required=True, help="test image index")
    p.add_argument("--to", dest="end", type=non_negative_int, required=True, help="test image index")
    p.add_argument("--steps", type=int_at_least(2), default=10, help="decoded latents (default 10)")
    p.add_argument("--slerp", action="store_true", help="spherical instead of linear interpolation")
    p = _add_picture_command(
        sub, "traverse", "vary one latent dimension at a time around a test image", "traversal.png"
    )
    p.add_argument("--index", type=non_negative_int, default=0, help="test image index (default 0)")
    p.add_argument("--steps", type=int_at_least(2), default=9, help="values per dimension (default 9)")
    p.add_argument("--limit", type=positive_float, default=3.0, help="values from -L to L (default 3)")
    p.add_argument(
        "--dims", type=positive_int, default=10, help="dimensions shown, largest KL first (default 10)"
    )


def _add_compare_command(sub: argparse._SubParsersAction) -> None:
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
        "--iwae-k", type=non_negative_int, default=0, help="with --evaluate: -log p(x) with K samples"
    )
    p.add_argument(
        "--samples", type=non_negative_int, default=10_000, help="with --evaluate: samples measured"
    )
    p.add_argument("--data-dir", help="data folder, if not where the runs found it")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=_compare)


def _add_train_prior_command(sub: argparse._SubParsersAction) -> None:
    p = add_run_command(
        sub,
        "train-prior",
        "fit a run's prior: Gaussian mixtures over its training latents (mlp, conv, cvae), or a vqvae's "
        "autoregressive prior over codes",
    )
    p.add_argument(
        "--components", type=positive_int, help="mixture components, per class (default 8; 40 in all)"
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
    p.add_argument("--epochs", type=positive_int, help="vqvae: epochs over the training codes (default 20)")
    p.add_argument("--batch-size", type=positive_int, help="vqvae: code grids per step (default 128)")
    p.add_argument("--lr", type=positive_float, help="vqvae: Adam learning rate (default 1e-3)")
    p.add_argument("--width", type=positive_int, help="vqvae: transformer width, a multiple of 4 (64)")
    p.add_argument("--depth", type=positive_int, help="vqvae: transformer blocks (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the run's existing prior")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train_prior)


def _add_serve_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="explore runs' latent spaces in the browser (a local web app and its JSON API)",
        description="Serve one or more runs: the same z is decoded by each (e.g. beta=1 against 4).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)"
    )
    p.add_argument("--port", type=int_at_least(1), default=8000, help="port (default 8000)")
    p.add_argument(
        "--token",
        help="a secret every request must carry (needed to listen beyond this machine; default "
        "$VAEKIT_TOKEN): open the page as /?token=TOKEN",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=_serve)


def _add_export_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's encoder and decoder as ONNX graphs for onnxruntime (pip install 'vaekit[onnx]')",
        description="Export a run as encoder.onnx and decoder.onnx (a dynamic batch axis) and export.json "
        "(shapes and preprocessing); both graphs are checked against PyTorch in onnxruntime.",
    )
    p.add_argument("run", help="run folder")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="onnx (the only format so far)")
    p.add_argument("--out", required=True, help="folder for the exported files")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=_export)


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    """The commands on trained runs, in the order ``vaekit --help`` lists them."""
    add_sample_command(sub)
    _add_reconstruct_command(sub)
    _add_evaluate_command(sub)
    _add_latent_command(sub)
    _add_picture_commands(sub)
    _add_compare_command(sub)
    _add_train_prior_command(sub)
    _add_serve_command(sub)
    _add_export_command(sub)
