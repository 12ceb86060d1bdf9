"""docs/hvae.md's measured section, from benchmarks/results/hvae.json (benchmarks/hvae.py writes both)."""

from __future__ import annotations

from typing import Any

from _common import REPO_ROOT
from harness import markdown_table, write_text

DOCUMENT = REPO_ROOT / "docs" / "hvae.md"
START, END = "<!-- measured:start -->", "<!-- measured:end -->"


def _likelihood_rows(rows: dict[str, Any]) -> list[list[str]]:
    out = []
    for name, r in rows.items():
        out.append([
            name, f"{r['train_seconds'] / 60:.1f} min", str(r["epochs"]), f"{r['steps']:,}",
            f"{r['test_loss']:.2f}", f"{r['nll']:.2f}", f"{r['bits_per_dim']:.4f}",
        ])  # fmt: skip
    return out


def section(results: dict[str, Any]) -> list[str]:
    lines = [START, ""]
    cpu = results.get("machine", {}).get("cpu", "this machine")
    lines.append(f"Measured on {cpu} ({results.get('measured', '?')}), by `benchmarks/hvae.py`.")
    header = ["model", "wall time", "epochs", "steps", "test -ELBO", "-log p(x)", "bits/dim"]
    equal = results.get("equal")
    if equal:
        any_row = next(iter(equal["rows"].values()))
        lines += [
            "", f"### Equal time: {equal['minutes']:g} minutes of training each", "",
            f"-log p(x): importance sampling with k={any_row['k']} on the first {any_row['test_images']:,} "
            "test images, binarized once.", "",
            *markdown_table(header, _likelihood_rows(equal["rows"])),
        ]  # fmt: skip
    anchor = results.get("anchor")
    if anchor:
        lines += [
            "", f"### The hvae trained {anchor['minutes']:g} minutes", "",
            *markdown_table(header, _likelihood_rows({"hvae": anchor})),
            "", "Burda et al. (2015): a one-layer VAE 86.76, a one-layer IWAE (k=50) 84.78, on all 60,000 "
            "images for 3,280 epochs.",
        ]  # fmt: skip
        if anchor.get("groups"):
            groups = anchor["groups"]
            rows = [
                [str(i + 1), str(size), str(active), f"{kl:.2f}"]
                for i, (size, active, kl) in enumerate(
                    zip(
                        groups["group_sizes"],
                        groups["active_units_per_group"],
                        anchor["kl_per_group"],
                        strict=True,
                    )
                )
            ]
            lines += ["", *markdown_table(["group", "units", "active", "KL (nats)"], rows)]
            lines += ["", "![each group redrawn](hvae/groups.png)"]
    samples = results.get("samples")
    if samples:
        rows = [
            [name, f"{value:.2f}"]
            for name, value in samples.items()
            if isinstance(value, float) and name != "classifier_test_accuracy"
        ]
        lines += ["", "### Samples: Frechet distance on vaekit's MNIST classifier (lower is better)", "",
                  *markdown_table(["samples", "Frechet distance"], rows)]  # fmt: skip
    speed = results.get("speed")
    if speed:
        step = speed["seconds_per_step"]
        lines += [
            "", "### Speed", "",
            f"- a training step (batch 128): vaekit {step['vaekit'] * 1000:.0f} ms, the same network in a "
            f"bare PyTorch loop {step['bare'] * 1000:.0f} ms: **{speed['ratio']:.2f}x**",
            f"- -log p(x) with k=1000: {speed['is_seconds']:.0f} s for {speed['is_images']:,} test images, "
            f"so {speed['is_minutes_for_10k']:.1f} minutes for all 10,000",
        ]  # fmt: skip
    return [*lines, "", END]


def write_document(results: dict[str, Any]) -> None:
    text = DOCUMENT.read_text() if DOCUMENT.is_file() else f"# The hierarchical VAE\n\n{START}\n{END}\n"
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    write_text(DOCUMENT, before + "\n".join(section(results)) + after)
