"""``vaekit sample``: a PNG grid of new images, or many streamed into a .npy file; the cost of either is
checked before anything is drawn."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch

from vaekit.cli.arguments import add_run_command, non_negative_int, positive_int, temperatures
from vaekit.models.base import OLD_SOURCE_NAMES, SAMPLE_SOURCES
from vaekit.models.priors.groups import temperature_line
from vaekit.utils import limits
from vaekit.utils.devices import resolve_device
from vaekit.utils.errors import VaekitError
from vaekit.utils.targets import file_target


def add_sample_command(sub: argparse._SubParsersAction) -> None:
    p = add_run_command(sub, "sample", "draw new images from a trained model into a PNG grid")
    p.add_argument("--n", type=positive_int, help="number of images (default 64; cvae: 8 per class)")
    p.add_argument(
        "--label",
        type=non_negative_int,
        help="class to draw (a cvae, or a model whose fitted prior has classes)",
    )
    p.add_argument(
        "--from",
        dest="source",
        choices=SAMPLE_SOURCES,
        help="fitted (default, if the run has one): the mixture fitted after training; trained: the prior "
        "the model trained with (N(0, I), a VampPrior, ...)",
    )
    # release 0.1's name of --from, "standard" for trained: still read, no longer shown
    p.add_argument("--prior", choices=[*SAMPLE_SOURCES, *OLD_SOURCE_NAMES], help=argparse.SUPPRESS)
    p.add_argument(
        "--temperature",
        type=temperatures,
        metavar="T|T1,T2,..",
        help="scale of the prior's standard deviations (default 1; hvae: its own, see docs/hvae.md); below "
        "1: nearer its modes. hvae: one per group from the top, as NVAE draws",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (default 0)")
    p.add_argument(
        "--out",
        default="samples.png",
        help="PNG grid (default samples.png), or a .npy file that many samples stream into",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_sample)


def _sample(args: argparse.Namespace) -> int:
    from vaekit import load
    from vaekit.utils import plots

    if args.prior is not None:
        if args.source is not None:
            raise VaekitError("--prior is the old name of --from: give one of them")
        args.source = OLD_SOURCE_NAMES.get(args.prior, args.prior)
    file_target(args.out, overwrite=args.overwrite)
    model = load(args.run, device=resolve_device(args.device))
    if args.source == "fitted" and model.fitted_prior is None:
        raise VaekitError(
            f"--from fitted: this {model.name} run has no fitted prior; fit one with `vaekit train-prior "
            f"{args.run}`, or draw from the prior it trained with (--from trained)"
        )
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    chosen = args.temperature is None  # the model's own: a hierarchy's fitted prior keeps chosen ones
    temperature = (
        model.sample_temperature(args.source, args.label is not None) if chosen else args.temperature
    )
    if isinstance(temperature, list) and not model.latent_space.groups:
        raise VaekitError(f"--temperature: one per group applies to a hierarchy (hvae), not {model.name}")
    if args.label is not None and not model.samples_by_class(args.source):
        try:  # the model says why (not conditional, no fitted prior, one without classes)
            model.sample_classes(1, args.label, args.source)
        except VaekitError as exc:
            raise VaekitError(f"--label {args.label}: {exc}") from None
    options = {"generator": generator, "prior": args.source, "temperature": temperature}
    if Path(args.out).suffix == ".npy":  # many samples, streamed to disk in batches
        return _stream_samples(model, args, options)
    n_asked = args.n if args.n is not None else 64
    limits.check_images(n_asked, model.image_shape, model.device, "a sample grid")
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
    source = model.sample_source(args.source)
    heat = "" if temperature == 1.0 else f", at temperature {temperature_line(temperature)}"
    if chosen and heat:
        heat += " (the run's, chosen on held-out images; --temperature overrides)"
    print(f"{what} from {source}{heat} written to {args.out}")
    return 0


def _stream_samples(model: Any, args: argparse.Namespace, options: dict[str, Any]) -> int:
    from vaekit.export.samples import stream_samples

    n = args.n if args.n is not None else 64
    stream_samples(model, n, args.out, label=args.label, progress=sys.stderr.isatty(), **options)
    print(f"{n:,} samples (uint8 [N, C, H, W]) written to {args.out}")
    return 0
