"""Run-versus-run reports: one table of figures and the runs' pictures side by side.

``compare_runs`` reads each run folder (config.json, metrics.jsonl, eval.json, the last sample and
reconstruction grids) and writes report.md (images beside it in images/) and report.html (one
self-contained file: the images are embedded). Figures a run's eval.json lacks are shown as "-", with
the command that adds them; ``evaluate=True`` runs that evaluation first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaekit.evaluation.compare_report import (
    Extra,
    html_report,
    likelihood_groups,
    likelihood_of,
    markdown_report,
)
from vaekit.models.saving import load
from vaekit.utils import plots
from vaekit.utils.atomic import atomic_write, write_text
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_json, read_json_lines, read_run_config
from vaekit.utils.targets import folder_target, staged_folder


def _last_grid(folder: Path, preferred: str | None = None) -> Path | None:
    if preferred and (folder / preferred).is_file():
        return folder / preferred
    grids = sorted(folder.glob("epoch_*.png"))
    return grids[-1] if grids else None


def _latent_size(model: Any) -> str:
    return model.latent_space.describe()


def _parameters(model: Any) -> str:
    """The parameter count; a prior (a VQ-VAE's learned one, a fitted mixture's numbers) is counted
    apart, as it is fitted apart."""
    total = sum(p.numel() for p in model.parameters())
    prior = model.fitted_prior
    if prior is None:
        return f"{total:,}"
    in_prior = sum(p.numel() for p in prior.parameters())
    fitted = sum(b.numel() for b in prior.buffers())
    return f"{total - in_prior:,} + prior {in_prior + fitted:,}"


def summarise_run(run: str | os.PathLike) -> dict[str, Any]:
    """What the report shows of one run folder: its settings, figures and picture paths."""
    run = Path(run)
    config = read_run_config(run)
    model = load(run)
    history = read_json_lines(run / "metrics.jsonl")
    try:
        figures = read_json(run / "eval.json")
    except FileNotFoundError:
        figures = {}
    return {
        "run": run,
        "dataset": config["data"]["dataset"],
        "binarize": config["train"].get("binarize", "none"),
        "model": model.name,
        "likelihood": likelihood_of(model.config),
        "conditional": model.conditional,
        "parameters": _parameters(model),
        "latent": _latent_size(model),
        "epochs": config.get("epochs_completed", len(history)),
        "seconds": sum(h.get("seconds", 0.0) for h in history),
        "history": history,
        "eval": figures,
        "samples": _last_grid(run / "samples", preferred="prior.png"),
        "reconstructions": _last_grid(run / "reconstructions"),
        # a hierarchy's groups, each redrawn (vaekit evaluate draws it)
        "groups": run / "groups.png" if (run / "groups.png").is_file() else None,
    }


def _names(runs: list[Path]) -> list[str]:
    """Folder names, or fuller paths where two runs share a folder name."""
    names = [run.name for run in runs]
    if len(set(names)) == len(names):
        return names
    return [str(run) for run in runs]


def _checked_folders(
    runs: list[str | os.PathLike], out: str | os.PathLike, overwrite: bool
) -> tuple[list[Path], Path]:
    """The run folders and the report folder, refused before any work is done where they will not do."""
    if len(runs) < 1:
        raise VaekitError("give at least one run folder to compare")
    paths = [Path(run) for run in runs]
    if len({p.resolve() for p in paths}) != len(paths):
        raise VaekitError("a run folder is given twice")
    out = folder_target(out, overwrite=overwrite)
    for run in paths:
        read_run_config(run)  # every run folder is checked before any work is done
    return paths, out


def _write_images(
    summaries: list[dict[str, Any]], image_dir: Path
) -> tuple[dict[tuple[Any, str], Path], dict[tuple[Any, str], str]]:
    """Each run's last samples and reconstructions copied into ``image_dir``, and the
    runs' loss curves drawn there; returns the files, and their paths relative to the report, by
    (run index, kind) (the curves: ("curves", ""))."""
    image_dir.mkdir(parents=True)
    sources: dict[tuple[Any, str], Path] = {}
    relative: dict[tuple[Any, str], str] = {}
    for i, s in enumerate(summaries):
        for kind in ("samples", "reconstructions", "groups"):
            if s.get(kind) is not None:
                target = image_dir / f"{i + 1}-{s['run'].name}-{kind}.png"
                data = s[kind].read_bytes()
                atomic_write(target, lambda tmp, data=data: tmp.write_bytes(data))
                sources[(i, kind)], relative[(i, kind)] = target, f"images/{target.name}"
    if any(s["history"] for s in summaries):
        curves = image_dir / "loss_curves.png"
        plots.save_loss_comparison({s["name"]: s["history"] for s in summaries}, curves)
        sources[("curves", "")], relative[("curves", "")] = curves, "images/loss_curves.png"
    return sources, relative


def compare_runs(
    runs: list[str | os.PathLike],
    out: str | os.PathLike = "comparison",
    overwrite: bool = False,
    evaluate: bool = False,
    iwae_k: int = 0,
    samples: int = 10_000,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
    extra: Extra | None = None,
) -> dict[str, Any]:
    """Write a comparison of ``runs`` into the folder ``out``: report.md, images/ and report.html.
    ``extra`` (title, header, rows): a further table after the figures (vaekit sweep's trials).

    ``out`` must not exist unless ``overwrite``. With ``evaluate``, each run is first evaluated on its
    test split (as ``vaekit evaluate RUN --iwae-k K --samples N``), which updates its eval.json.
    Returns the paths written, and the runs' likelihood families (their tables are apart).
    """
    paths, out = _checked_folders(runs, out, overwrite)
    if evaluate:
        from vaekit.evaluation.runs import evaluate_run

        for run in paths:
            if log:
                log(f"evaluating {run}")
            evaluate_run(run, data_dir=data_dir, device=device, iwae_k=iwae_k, samples=samples, log=log)
    summaries = [summarise_run(run) for run in paths]
    for summary, name in zip(summaries, _names(paths), strict=True):
        summary["name"] = name

    with staged_folder(out) as staging:  # a report is replaced whole, or not at all
        sources, relative = _write_images(summaries, staging / "images")
        write_text(staging / "report.md", markdown_report(summaries, relative, extra))
        write_text(staging / "report.html", html_report(summaries, sources, extra))
    families = list(likelihood_groups(summaries))
    written: dict[str, Any] = {"markdown": out / "report.md", "html": out / "report.html"}
    return {**written, "images": out / "images", "likelihoods": families}
