"""An evaluation as people read it: ``format_result``'s grouped table with units, and the collapse warning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaekit.evaluation.likelihood import nll_bits_key
from vaekit.evaluation.quality import MIN_CLASSIFIER_ACCURACY


def collapse_warning(result: dict[str, Any], latent_dim: int) -> str | None:
    """A plain warning when few latent units carry information (posterior collapse), else None."""
    per_group = next((v for k, v in result.items() if k.endswith("active_units_per_group")), None)
    if per_group is not None:  # a hierarchy: its top group may rest while the groups below carry x
        if sum(per_group) > 0:
            return None
        return "warning: no latent unit of any group is active; every group has collapsed to its prior"
    active = next((v for k, v in result.items() if k.endswith("active_units")), None)
    if active is None or active > max(1, latent_dim // 4):
        return None
    return (
        f"warning: only {active} of {latent_dim} latent units are active (their posterior mean varies "
        "with the input); the rest have collapsed to the prior"
    )


# A test KL below this many nats per image says the latent carries almost nothing about the images: a
# plain VAE's is 20-25 on MNIST, and even a 2-unit latent's is above 5.
COLLAPSED_KL = 0.5


def kl_collapse_warning(kl: float, likelihood: str, learned_std: bool) -> str | None:
    """A plain warning when the test KL (nats per image) says the posterior has collapsed to the prior,
    with the likely cause where the pixel likelihood is a Gaussian of learned scale; else None."""
    if not kl < COLLAPSED_KL:
        return None
    warning = (
        f"warning: the test KL is {kl:.2f} nats per image: the latent carries almost nothing about the "
        "images (the posterior has collapsed to the prior, or training ended before the latent was used)"
    )
    if likelihood == "gaussian" and learned_std:
        warning += (
            "; with --likelihood gaussian the learned decoder std shrinks at the optimizer's pace, too "
            "slowly on small datasets: give a fixed one, e.g. --decoder-std 0.1"
        )
    return warning


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    if isinstance(value, list):
        return " ".join("-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def _percentages(values: list[float | None]) -> str:
    return " ".join("-" if a is None else f"{a:.0%}" for a in values)


Rows = list[tuple[str, str]]  # (label, text) lines of one section


class _Figures:
    """An evaluation being formatted, and which of its entries the sections have shown so far."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result, self.shown = result, set()

    def take(self, key: str) -> Any:
        self.shown.add(key)
        return self.result.get(key)


def format_result(result: dict[str, Any], split: str = "test") -> str:
    """An evaluation (``evaluate_run``'s result) as a table for people: grouped, labelled, with units.

    Every entry of ``result`` appears: those the table does not know (a model's own terms, say) are listed
    last under their eval.json names.
    """
    figures = _Figures(result)
    p, q = f"{split}_", "" if split == "test" else f"{split}_"  # per-split terms; latent and sample figures
    sections: list[tuple[str, Rows]] = [
        ("likelihood (nats per image, lower is better)", _likelihood_rows(figures, split, p, q)),
        ("reconstruction from the posterior mean", _reconstruction_rows(figures, p)),
        ("latent" + (" (the top group)" if q + "group_sizes" in result else ""), _latent_rows(figures, q)),
        ("latent groups, from the top", _group_rows(figures, p, q)),
        _sample_quality_section(figures, q),
    ]
    n, epochs = figures.take(p + "n_images"), figures.take("epochs_trained")
    rows = [(key, _text(value)) for key, value in result.items() if key not in figures.shown]
    sections.append(("the model's other figures (eval.json names)", rows))

    labels = [label for _, rows in sections for label, _ in rows]
    width = max((len(label) for label in labels), default=0)
    lines = [f"{split} split: {n:,} images" + ("" if epochs is None else f", after {epochs} epochs")]
    for title, rows in sections:
        if rows:
            lines += ["", title] + [f"  {label.ljust(width)}  {text}" for label, text in rows]
    return "\n".join(lines)


def _likelihood_rows(figures: _Figures, split: str, p: str, q: str) -> Rows:
    take, rows = figures.take, []
    loss, recon, kl = take(p + "loss"), take(p + "recon"), take(p + "kl")
    bpd = take(p + "bits_per_dim")
    if loss is not None:
        parts = f"   recon {recon:.2f} + kl {kl:.2f}" if recon is not None and kl is not None else ""
        rows.append(("-ELBO", f"{loss:.2f}" + ("" if bpd is None else f"   {bpd:.4f} bits/dim") + parts))
    nll, k, nll_bpd = take(q + "iwae_nll"), take(q + "iwae_k"), take(nll_bits_key(split))
    if nll is not None:
        rows.append((f"-log p(x), k={k}", f"{nll:.2f}   {nll_bpd:.4f} bits/dim"))
    fitted_nll = take(q + "fitted_iwae_nll")
    if fitted_nll is not None:
        rows.append(("  with the fitted prior", f"{fitted_nll:.2f}   (p(z) = the fitted mixture, same k)"))
    return rows


def _reconstruction_rows(figures: _Figures, p: str) -> Rows:
    rows = []
    for key, label in ((p + "recon_bce", "BCE per image"), (p + "recon_mse", "MSE per pixel")):
        if figures.take(key) is not None:
            rows.append((label, _text(figures.result[key])))
    return rows


def _latent_rows(figures: _Figures, q: str) -> Rows:
    take, rows = figures.take, []
    kl_per_dim, active = take(q + "kl_per_dim"), take(q + "active_units")
    if active is not None:
        rows.append(("active units", f"{active} of {len(kl_per_dim)}"))
    if kl_per_dim is not None:
        rows.append(("KL per dimension", _text(kl_per_dim)))
    gap, per_factor, factor_vae = take(q + "mig"), take(q + "mig_per_factor"), take(q + "factor_vae_score")
    if gap is not None:
        rows.append(("MIG (Chen et al. 2018)", f"{gap:.3f}   {_by_factor(per_factor)}"))
    if factor_vae is not None:
        # the votes that held each factor fixed and went to a latent named for it (a run from before: none)
        terms = _by_factor(take(q + "factor_vae_per_factor") or {}) or "(chance 1/factors)"
        rows.append(("FactorVAE score (Kim & Mnih 2018)", f"{factor_vae:.1%}   {terms}"))
    return rows


def _by_factor(figures: dict[str, float]) -> str:
    """A figure per factor, by name: "shape 0.45  scale 0.71 ..."."""
    return "  ".join(f"{name} {value:.2f}" for name, value in figures.items())


def _group_rows(figures: _Figures, p: str, q: str) -> Rows:
    """A hierarchy's groups: size, active units and KL (the ELBO's, at drawn z: ``kl1``..)."""
    sizes, active = figures.take(q + "group_sizes"), figures.take(q + "active_units_per_group")
    at_means = figures.take(q + "kl_per_group")
    if sizes is None:
        return []
    rows = []
    for level, (size, units) in enumerate(zip(sizes, active, strict=True), start=1):
        kl = figures.take(f"{p}kl{level}")
        text = (
            f"{units:4d} of {size:<5d} active   KL {kl if kl is not None else at_means[level - 1]:.2f} nats"
        )
        rows.append((f"group {level}", text))
    return rows


def _sample_quality_section(figures: _Figures, q: str) -> tuple[str, Rows]:
    take, result = figures.take, figures.result
    # One column per prior the samples came from: N(0, I) (or a vqvae's code prior) and the fitted one.
    columns = [(q, "N(0, I)")] + (
        [(q + "fitted_", "fitted prior")] if q + "fitted_frechet_distance" in result else []
    )
    rows = _sample_rows(figures, q, columns)
    count, accuracy = take(q + "quality_samples"), take(q + "classifier_test_accuracy")
    second = take(q + "second_classifier_test_accuracy")
    take(q + "fitted_quality_samples")
    title = "sample quality"
    if count is not None:
        each = " each" if len(columns) > 1 else ""
        title += f" ({count:,} samples{each}; the classifier is {accuracy:.2%} accurate on the test set"
        title += f", the second {second:.2%})" if second is not None else ")"
    elif accuracy is not None:  # withheld: the classifier is too often wrong to measure samples with
        rows.append(
            (
                "not reported",
                f"the measuring classifier is only {accuracy:.1%} accurate on the test set "
                f"(below {MIN_CLASSIFIER_ACCURACY:.0%})",
            )
        )
    return title, rows


def _sample_rows(figures: _Figures, q: str, columns: list[tuple[str, str]]) -> Rows:
    """The sample-quality rows, a column of figures per prior in ``columns`` (key prefix, title)."""
    take, result, rows = figures.take, figures.result, []

    def row(label: str, key: str, show: Callable[[Any], str]) -> None:
        values = [take(prefix + key) for prefix, _ in columns]
        if any(v is not None for v in values):
            rows.append((label, "".join(("-" if v is None else show(v)).ljust(18) for v in values).rstrip()))

    def pair_row(label: str, first: str, second: str) -> None:  # two figures in a cell: "0.91 / 0.85"
        values = [(take(prefix + first), take(prefix + second)) for prefix, _ in columns]
        if any(a is not None for a, _ in values):
            cells = ("-" if a is None else f"{a:.2f} / {b:.2f}" for a, b in values)
            rows.append((label, "".join(cell.ljust(18) for cell in cells).rstrip()))

    if len(columns) > 1:
        rows.append(("", "".join(title.ljust(18) for _, title in columns).rstrip()))
    row("Frechet distance", "frechet_distance", _text)
    row("  by the second classifier", "independent_frechet_distance", _text)
    pair_row("precision / recall", "precision", "recall")
    pair_row("density / coverage", "density", "coverage")
    row("class mix distance (TV)", "class_tv_distance", _text)
    row("mode coverage", "mode_coverage", lambda v: f"{v} of {len(result[q + 'class_histogram'])} classes")
    row("label accuracy", "label_accuracy", lambda v: f"{v:.1%}")
    for prefix, title in columns:
        where = f" ({title})" if len(columns) > 1 else ""
        histogram = take(prefix + "class_histogram")
        if histogram is not None:
            rows.append((f"samples per class{where}", " ".join(f"{c}:{n}" for c, n in enumerate(histogram))))
        per_class = take(prefix + "label_accuracy_per_class")
        if per_class is not None:
            rows.append((f"label accuracy per class{where}", _percentages(per_class)))
    swap = take(q + "label_swap_accuracy")
    if swap is not None:
        rows.append(("label swap test", f"{swap:.1%} of latents decoded with another label show it"))
        rows.append(("  per new label", _percentages(take(q + "label_swap_accuracy_per_class"))))
    return rows
