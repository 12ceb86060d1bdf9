"""The commands whose output is for other programs: ``vaekit encode`` (latents) and ``vaekit score``
(anomaly scores), each a table with a row per image."""

from __future__ import annotations

import argparse
import json
import sys

from vaekit.cli.arguments import positive_int
from vaekit.data import SPLITS
from vaekit.utils.devices import DEVICES


def _common(p: argparse.ArgumentParser, split_default: str) -> None:
    p.add_argument("run", help="run folder")
    p.add_argument("--dataset", metavar="NAME", help="a dataset name or folder:PATH (default: the run's own)")
    p.add_argument(
        "--split", choices=SPLITS, default=split_default, help=f"which images (default {split_default})"
    )
    p.add_argument("--out", required=True, metavar="FILE", help="a .npy, .npz, .parquet or .csv file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--data-dir", help="data folder (default: the run's)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_output_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode",
        help="write every image's latent (posterior mean and log-variance) to a file",
        description="Encode a dataset with a run's model: each image's posterior mean and log-variance "
        "(a vqvae: its codes), label and file name, one row per image.",
    )
    _common(p, "all")
    p.add_argument(
        "--batch-size", type=positive_int, help="images per batch (1000 on a CPU; a GPU's by its memory)"
    )
    p.set_defaults(func=_encode)
    p = sub.add_parser(
        "score",
        help="write every image's anomaly scores to a file; with --reference, AUROC and FPR@95TPR",
        description="Score a dataset with a run's model: negative ELBO, importance-sampled -log p(x), "
        "bits/dim, reconstruction errors and the complexity-corrected score, one row per image.",
    )
    _common(p, "all")
    p.add_argument("--k", type=positive_int, default=100, help="importance samples per image (100)")
    p.add_argument("--reference", metavar="NAME", help="in-distribution dataset: report AUROC, FPR@95TPR")
    p.add_argument(
        "--reference-split", choices=SPLITS, default="test", help="which reference images (default test)"
    )
    p.add_argument("--background", metavar="RUN", help="a background model's run: adds likelihood_ratio")
    p.add_argument("--seed", type=int, default=0, help="seed of the importance samples (0)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_score)


def _progress(args: argparse.Namespace) -> bool:
    """A bar where someone watches: not with --no-progress, nor into a file or pipe."""
    return not args.no_progress and sys.stderr.isatty()


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def _encode(args: argparse.Namespace) -> int:
    from vaekit.export.latents import encode_run

    result = encode_run(
        args.run, args.out, dataset=args.dataset, split=args.split, data_dir=args.data_dir,
        device=args.device, batch_size=args.batch_size, progress=_progress(args), log=_note,
        overwrite=args.overwrite,
    )  # fmt: skip
    what = ", ".join(result["columns"])
    print(f"{what} of {result['n']:,} images of {result['dataset']} written to {args.out}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from vaekit.evaluation.anomaly import score_run

    result = score_run(
        args.run, args.out, dataset=args.dataset, reference=args.reference, split=args.split,
        reference_split=args.reference_split, k=args.k, background=args.background,
        data_dir=args.data_dir, device=args.device, seed=args.seed, progress=_progress(args),
        log=_note, overwrite=args.overwrite,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"scores of {result['n']:,} images of {result['dataset']} (k={args.k}) written to {args.out}")
    if "detection" in result:
        ref = result["reference"]
        print(f"against {ref['n']:,} {ref['split']} images of {ref['dataset']} (in-distribution):")
        print(f"  {'score':<18} {'AUROC':>7} {'FPR@95TPR':>10}")
        for name, figures in result["detection"].items():
            print(f"  {name:<18} {figures['auroc']:>7.4f} {figures['fpr_at_95_tpr']:>10.4f}")
    return 0
