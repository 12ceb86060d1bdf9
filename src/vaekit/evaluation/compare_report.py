"""The comparison report's two pages: report.md and a self-contained report.html (every image embedded),
from the summaries and tables of ``evaluation.compare``."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

MISSING = "-"


LIKELIHOOD_KINDS = {"bernoulli": "Bernoulli", "gaussian": "Gaussian"}
WHY_APART = (
    "Runs of different likelihoods are in separate tables: a Bernoulli -ELBO or -log p(x) is a negative "
    "log-probability of the pixels (each a probability of being lit), a Gaussian one a negative log-density "
    "of their values, which depends on the scale the values are measured in; the two are different "
    "quantities, and no order between them says which model is better."
)


def likelihood_of(config: dict[str, Any]) -> str:
    """A run's pixel likelihood in words: "Bernoulli", "Gaussian, calibrated std", "Gaussian, std 0.1"."""
    name = config.get("likelihood", "bernoulli")
    kind = LIKELIHOOD_KINDS.get(name, name)
    if name != "gaussian":
        return kind
    std = config.get("decoder_std", "calibrated")
    return f"{kind}, {std} std" if isinstance(std, str) else f"{kind}, std {std:g}"


def likelihood_groups(summaries: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The runs' indices by likelihood family ("Bernoulli", "Gaussian"), in the order first seen: the
    negative log-likelihoods of different families do not compare."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(summaries):
        groups.setdefault(s["likelihood"].split(",")[0], []).append(i)
    return groups


# ------------------------------------------------------------------------------------ formatting
def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _number(value: Any, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def table_rows(summaries: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The comparison table: a header and one row of display strings per run."""
    header = [
        "run", "dataset", "model", "likelihood", "parameters", "latent", "epochs", "training time",
        "test -ELBO", "-log p(x)", "Frechet distance", "mode coverage",
    ]  # fmt: skip
    fitted = any("fitted_frechet_distance" in s["eval"] for s in summaries)
    if fitted:
        header += ["Frechet, fitted prior", "mode coverage, fitted prior"]
    second = [  # the second classifier's Frechet distances, where the runs were measured by it
        (key, title) for key, title in (
            ("independent_frechet_distance", "Frechet, second classifier"),
            ("fitted_independent_frechet_distance", "Frechet, fitted prior, second classifier"),
        ) if any(key in s["eval"] for s in summaries)
    ]  # fmt: skip
    header += [title for _, title in second]
    conditional = any(s["conditional"] or "fitted_label_accuracy" in s["eval"] for s in summaries)
    if conditional:
        header.append("label accuracy")
    hierarchy = any("active_units_per_group" in s["eval"] for s in summaries)
    if hierarchy:
        header.append("groups: active units, KL")
    rows = []
    for s in summaries:
        e = s["eval"]
        nll = MISSING if "iwae_nll" not in e else f"{e['iwae_nll']:.2f} (k={e['iwae_k']})"
        coverage = MISSING
        if "mode_coverage" in e:
            coverage = f"{e['mode_coverage']}/{len(e['class_histogram'])}"
        row = [
            s["name"], s["dataset"] + ("" if s["binarize"] == "none" else f" ({s['binarize']} binary)"),
            s["model"], s["likelihood"], s["parameters"], s["latent"], str(s["epochs"]),
            _duration(s["seconds"]),
            _number(e.get("test_loss")), nll, _number(e.get("frechet_distance")), coverage,
        ]  # fmt: skip
        if fitted:
            row.append(_number(e.get("fitted_frechet_distance")))
            covered = e.get("fitted_mode_coverage")
            row.append(MISSING if covered is None else f"{covered}/{len(e['fitted_class_histogram'])}")
        row += [_number(e.get(key)) for key, _ in second]
        if conditional:  # asked-for classes drawn as such: from the fitted prior where there is one
            accuracy = e.get("fitted_label_accuracy", e.get("label_accuracy"))
            row.append(MISSING if accuracy is None else f"{accuracy:.1%}")
        if hierarchy:
            row.append(_groups_cell(e))
        rows.append(row)
    return header, rows


def grouped_tables(summaries: list[dict[str, Any]]) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """The comparison table, one per likelihood family where the runs have several (titled by it), else
    one untitled: each (title, (header, rows))."""
    groups = likelihood_groups(summaries)
    header, rows = table_rows(summaries)
    if len(groups) == 1:
        return [("", (header, rows))]
    return [(f"{name} likelihood", (header, [rows[i] for i in group])) for name, group in groups.items()]


def _groups_cell(figures: dict[str, Any]) -> str:
    """A hierarchy's groups from the top, each "active/size KL": e.g. "3/128 1.2 · 40/512 20.3"."""
    active, sizes = figures.get("active_units_per_group"), figures.get("group_sizes")
    if active is None or sizes is None:
        return MISSING
    kls = [figures.get(f"test_kl{level}") for level in range(1, len(active) + 1)]
    return " · ".join(f"{a}/{n} {_number(kl, 1)}" for a, n, kl in zip(active, sizes, kls, strict=True))


def report_notes(summaries: list[dict[str, Any]]) -> list[str]:
    """Caveats: figures that do not compare across these runs, and how to fill in missing ones."""
    notes = []
    if len(likelihood_groups(summaries)) > 1:
        notes.append(WHY_APART)
    if len({s["dataset"] for s in summaries}) > 1:
        notes.append("The runs use different datasets: their figures do not compare.")
    if len({s["binarize"] for s in summaries}) > 1:
        notes.append(
            "The runs differ in binarization, so their likelihoods are of different test images "
            "(grey levels or one fixed binary draw) and do not compare."
        )
    ks = {s["eval"]["iwae_k"] for s in summaries if "iwae_k" in s["eval"]}
    if len(ks) > 1:
        notes.append("The -log p(x) estimates use different k; a larger k gives a tighter (lower) estimate.")
    lacking = [s["name"] for s in summaries if "iwae_nll" not in s["eval"] and s["model"] != "vqvae"]
    if lacking:
        notes.append(
            f"No -log p(x) estimate for {', '.join(lacking)}: run `vaekit evaluate RUN --iwae-k 5000`."
        )
    lacking = [s["name"] for s in summaries if "frechet_distance" not in s["eval"]]
    if lacking:
        notes.append(
            f"No sample quality for {', '.join(lacking)}: run `vaekit evaluate RUN` "
            "(a vqvae run first needs `vaekit train-prior RUN`)."
        )
    counts = sorted({s["eval"]["quality_samples"] for s in summaries if "quality_samples" in s["eval"]})
    drawn = f"{counts[0]:,} samples" if len(counts) == 1 else "samples (different numbers per run)"
    notes.append(
        "Test -ELBO and -log p(x) are nats per image (lower is better; a vqvae's -ELBO is its "
        "reconstruction plus the code prior's -log p(codes)). The Frechet distance compares a digit "
        f"classifier's features of {drawn} and of the test images (lower is better). Mode "
        "coverage counts the classes drawn at least half as often as they occur in the test set."
    )
    if any("fitted_frechet_distance" in s["eval"] for s in summaries):
        notes.append(
            "Frechet distance and mode coverage are of samples from z ~ N(0, I) (a vqvae's: from its prior "
            "over codes); the fitted-prior columns of samples from the run's Gaussian mixture prior "
            "fitted to its training latents (what vaekit sample draws). Label accuracy is from the fitted "
            "prior where a run has one."
        )
    if any("independent_frechet_distance" in s["eval"] for s in summaries):
        notes.append(
            "The second classifier's Frechet distances are of the same samples, by an independently "
            "trained classifier: where the two order runs differently, the runs are closer than either "
            "figure can tell (docs/evaluation.md)."
        )
    return notes


Extra = tuple[str, list[str], list[list[str]]]  # a further table: (title, header, rows)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def html_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = html.escape
    parts = ["<table><thead><tr>"] + [f"<th>{esc(h)}</th>" for h in header] + ["</tr></thead><tbody>"]
    for row in rows:
        parts += ["<tr>"] + [f"<td>{esc(cell)}</td>" for cell in row] + ["</tr>"]
    return parts + ["</tbody></table>"]


def markdown_report(
    summaries: list[dict[str, Any]], images: dict[tuple[int, str], str], extra: Extra | None = None
) -> str:
    lines = ["# vaekit run comparison", ""]
    for title, (header, rows) in grouped_tables(summaries):
        lines += ([f"## {title}", ""] if title else []) + [markdown_table(header, rows).rstrip(), ""]
    lines += [f"- {note}" for note in report_notes(summaries)] + [""]
    if extra is not None:
        title, extra_header, extra_rows = extra
        lines += [f"## {title}", "", markdown_table(extra_header, extra_rows)]
    if ("curves", "") in images:
        lines += ["## Loss curves", "", f"![loss curves]({images[('curves', '')]})", ""]
    for kind, title in picture_sections(summaries):
        lines += [f"## {title}", "", "| " + " | ".join(s["name"] for s in summaries) + " |"]
        lines += ["|" + "|".join("---" for _ in summaries) + "|"]
        cells = [
            f"![{s['name']} {kind}]({images[(i, kind)]})" if (i, kind) in images else MISSING
            for i, s in enumerate(summaries)
        ]
        lines += ["| " + " | ".join(cells) + " |", ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; } figcaption { text-align: center; font-size: 0.9em; margin-top: 0.3em; }
img { image-rendering: pixelated; max-width: 360px; }
li { margin: 0.3em 0; }
"""


def picture_sections(summaries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The report's picture sections (kind, title): samples, reconstructions, and a hierarchy's groups."""
    sections = [("samples", "Samples"), ("reconstructions", "Reconstructions (originals above)")]
    if any(s.get("groups") is not None for s in summaries):
        sections.append(
            ("groups", "Latent groups from the top: an image, its reconstruction, the group redrawn")
        )
    return sections


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def html_report(
    summaries: list[dict[str, Any]], images: dict[tuple[int, str], Path], extra: Extra | None = None
) -> str:
    """One self-contained page: the table, the notes and every image embedded as a data URI."""
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">']
    parts += ["<title>vaekit run comparison</title>", f"<style>{_STYLE}</style></head><body>"]
    parts.append("<h1>vaekit run comparison</h1>")
    for title, (header, rows) in grouped_tables(summaries):
        parts += ([f"<h2>{esc(title)}</h2>"] if title else []) + html_table(header, rows)
    parts.append("<ul>")
    # notes carry `command` spans in Markdown; show them as code
    for note in report_notes(summaries):
        pieces = esc(note).split("`")
        parts.append(
            "<li>" + "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces)) + "</li>"
        )
    parts.append("</ul>")
    if extra is not None:
        title, extra_header, extra_rows = extra
        parts += [f"<h2>{esc(title)}</h2>", *html_table(extra_header, extra_rows)]
    if ("curves", "") in images:
        curves = _data_uri(images[("curves", "")])
        parts += ["<h2>Loss curves</h2>", f'<img src="{curves}" alt="loss curves" style="max-width:720px">']
    for kind, title in picture_sections(summaries):
        parts += [f"<h2>{title}</h2>", '<div class="row">']
        for i, s in enumerate(summaries):
            picture = (
                f'<img src="{_data_uri(images[(i, kind)])}" alt="{esc(s["name"])} {kind}">'
                if (i, kind) in images
                else f"<p>no {kind}</p>"
            )
            parts.append(f"<figure>{picture}<figcaption>{esc(s['name'])}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
