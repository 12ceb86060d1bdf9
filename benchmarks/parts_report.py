"""The "Priors, posteriors and objectives" section of docs/models.md, from benchmarks/results/parts.json."""

from __future__ import annotations

from typing import Any

from _common import REPO_ROOT

START, END = "<!-- parts: made by benchmarks/parts.py -->", "<!-- /parts -->"


def _f(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _machines(rows: dict[str, Any]) -> str:
    """Which rows were timed on which CPU."""
    by_cpu: dict[str, list[str]] = {}
    for name, r in rows.items():
        by_cpu.setdefault(r.get("cpu", "?"), []).append(name)
    if len(by_cpu) == 1:
        return f"every row on {next(iter(by_cpu))}"
    return "; ".join(f"{', '.join(names)} on {cpu}" for cpu, names in by_cpu.items())


def mnist_lines(m: dict[str, Any]) -> list[str]:
    rows, plain = m["rows"], m["rows"]["plain"]
    lines = [
        f"### Every part on dynamically binarized MNIST ({m['epochs']} epochs each)",
        "",
        "The mlp (784-400-20), Adam 1e-3, batch 128, on the 12,000-image subset (1,200 held out), each "
        "image binarized anew each time it is seen. -log p(x): importance sampling with k=1000 on the "
        "first 1,000 test images (binarized once), p(z) the prior the model trained with. Frechet: 10,000 "
        "samples against the test images (grey), from the trained prior and from the fitted mixture, "
        f"on the cached classifier ({m['classifier_test_accuracy']:.2%} test accuracy). Time: the median "
        "epoch (its steps and its validation), and its ratio to the plain model's measured on the same "
        f"machine ({_machines(rows)}).",
        "",
        "| part | test -ELBO | -log p(x), k=1000 | vs plain | Frechet, trained prior | Frechet, fitted "
        "| s / epoch | x plain |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {_f(r['test_loss'])} | {_f(r['nll_k1000'])} "
            f"| {_f(r['nll_k1000'] - plain['nll_k1000'])} "
            f"| {_f(r['frechet_standard'], 1)} | {_f(r['frechet_fitted'], 1)} | {_f(r['seconds_per_epoch'])} "
            f"| {r.get('x_plain', r['seconds_per_epoch'] / plain['seconds_per_epoch']):.2f} |"
        )
    pictures = [f"| {n} | ![{n}](parts/mnist_{_slug(n)}.png) |" for n in rows]
    header = ["", "Samples from the trained prior of each:", "", "| part | samples |", "|---|---|"]
    return [*lines, *header, *pictures, ""]


def cvae_lines(c: dict[str, Any]) -> list[str]:
    lines = [
        "### The cvae's samples by class",
        "",
        "The share of 10,000 samples drawn by class that the classifier reads as the requested digit, and "
        "the share of the test images' reconstructions read as their own label (the decoder's ceiling).",
        "",
        "| cvae | epochs | trained prior | fitted prior | worst digit (fitted) | reconstructions "
        "| s / epoch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in c.items():
        per_class = r["label_accuracy_per_class_fitted"]
        worst = min(range(len(per_class)), key=lambda d: per_class[d])
        recon = r.get("reconstruction_accuracy")
        lines.append(
            f"| {name.split(', ')[0]}, {name.split(', ')[1]} | {r.get('epochs', 5)} "
            f"| {r['label_accuracy_standard']:.1%} | {r['label_accuracy_fitted']:.1%} "
            f"| {worst}: {per_class[worst]:.0%} | {'-' if recon is None else f'{recon:.1%}'} "
            f"| {_f(r['seconds_per_epoch'])} |"
        )
    return [*lines, ""]


def shapes_lines(s: dict[str, Any]) -> list[str]:
    lines = [
        f"### Disentanglement on shapes (32x32), {s['max_time_seconds'] / 60:g} minutes of training each",
        "",
        "The conv VAE (the mlp where the row says so), z=10, Bernoulli pixels, batches of 64, `--max-time` "
        "for each; MIG and the FactorVAE score of the "
        "test split's posterior means against the known factors (`vaekit evaluate`).",
        "",
        "| objective | steps | MIG | "
        + " | ".join(f"MIG {k}" for k in _factors(s))
        + " | FactorVAE score | test -ELBO |",
        "|---|---:|---:|" + "---:|" * len(_factors(s)) + "---:|---:|",
    ]
    for name, r in s["rows"].items():
        per = r.get("mig_per_factor") or {}
        cells = " | ".join(_f(per.get(k), 3) for k in _factors(s))
        lines.append(
            f"| {name} | {r['steps']:,} | {_f(r['mig'], 3)} | {cells} | {r['factorvae_score']:.1%} "
            f"| {_f(r['test_loss'])} |"
        )
    pictures = " ".join(f"![{n}](parts/shapes_{_slug(n)}.png)" for n in s["rows"])
    return [*lines, "", "Traversals of the most informative latents:", "", pictures, ""]


def speed_lines(speed: dict[str, Any]) -> list[str]:
    rows = speed["rows"]
    lines = [
        "### Time per training step, interleaved",
        "",
        "Made by `benchmarks/parts_speed.py` (figures and CPU in `benchmarks/results/parts_speed.json`): "
        "one step (forward, backward, Adam) of each part's mlp and of the plain one in turn on the same "
        f"batches of {speed['batch']}, "
        f"{speed['steps']} rounds, medians. Interleaving cancels the drift of this CPU's speed over minutes, "
        "which the seconds per epoch above (each model trained in turn) carry.",
        "",
        "| part | ms / step | x plain |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {r['step_ms']:.2f} | {r['x_plain']:.2f} |" for name, r in rows.items()]
    return [*lines, ""]


def _factors(s: dict[str, Any]) -> list[str]:
    first = next(iter(s["rows"].values()))
    return list((first.get("mig_per_factor") or {}).keys())


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def write_section(results: dict[str, Any], speed: dict[str, Any] | None = None) -> None:
    lines = [START, "## Priors, posteriors and objectives", ""]
    lines.append(
        f"Produced by `.venv/bin/python benchmarks/parts.py` on {results.get('cpu', 'this CPU')} "
        f"({results.get('threads', 2)} threads), figures in `benchmarks/results/parts.json`."
    )
    lines.append("")
    for key, make in (("mnist", mnist_lines), ("cvae", cvae_lines), ("shapes", shapes_lines)):
        if key in results:
            lines += make(results[key])
        if key == "mnist" and speed is not None:
            lines += speed_lines(speed)
    lines.append(END)
    path = REPO_ROOT / "docs" / "models.md"
    text = path.read_text()
    if START in text:
        text = text[: text.index(START)] + "\n".join(lines) + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    path.write_text(text)
