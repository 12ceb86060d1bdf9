"""The picture of vaekit's packages in docs/architecture.md, drawn from the imports in the source.

    python docs/architecture.py          # writes docs/architecture/packages.png

Each package sits in its layer (LAYERS: a package imports only from layers below it; tests/
test_architecture.py holds the code to that rule with the same table) and every arrow is an import
found in the source, so the picture cannot drift from the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "vaekit"
OUT = ROOT / "docs" / "architecture" / "packages.png"

# Bottom to top. A package may import from any package in a lower layer, never from its own layer's
# neighbours or above (the top-level vaekit/__init__.py and __main__.py stand above all: they re-export).
LAYERS: list[tuple[str, ...]] = [
    ("utils",),
    ("data", "models"),
    ("evaluation",),
    ("training",),
    ("serve", "export", "sweep"),
    ("cli",),
]
WHAT = {
    "utils": "errors, atomic writes, files, devices, plots",
    "data": "datasets as uint8 tensors",
    "models": "networks x priors x posteriors x objectives",
    "evaluation": "likelihoods, quality, latents, MIG, compare",
    "training": "the loop, run folders, prior fitting",
    "serve": "the explorer",
    "export": "ONNX",
    "sweep": "Optuna",
    "cli": "the vaekit command",
}
# Modules kept at the top level for one release: old import paths that forward to the new ones.
ALIASES = ("evaluate", "quality", "compare", "disentanglement", "train_prior")
# The user-facing top-level modules, which stand above every package as __init__.py does: run.py
# (vaekit.Run, a run folder read through training/ and models/) and notebook.py (the notebooks' checks).
TOP_LEVEL = ("__init__", "__main__", "run", "notebook")


def package_of(module: str) -> str | None:
    """``vaekit.models.priors.mixture`` -> ``models``; the top-level modules and aliases -> None."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ALIASES or parts[1] in TOP_LEVEL:
        return None
    return parts[1]


def package_edges() -> set[tuple[str, str]]:
    """(importer, imported) for every import of one vaekit package by another, lazy imports included."""
    edges = set()
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        source = package_of(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vaekit."):
                target = package_of(node.module)
                if source and target and source != target:
                    edges.add((source, target))
    return edges


def layer_of(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def draw(path: Path = OUT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    position = {}
    for level, layer in enumerate(LAYERS):
        for i, name in enumerate(layer):
            position[name] = ((i + 1) / (len(layer) + 1) * 10, level * 1.6)
    fig, ax = plt.subplots(figsize=(10, 7.5))
    for source, target in sorted(package_edges()):
        (x0, y0), (x1, y1) = position[source], position[target]
        ax.annotate(
            "", xy=(x1, y1 + 0.32), xytext=(x0, y0 - 0.32),
            arrowprops={
                "arrowstyle": "-|>", "color": "#8899aa", "lw": 0.9, "connectionstyle": "arc3,rad=0.12",
            },
        )  # fmt: skip
    for name, (x, y) in position.items():
        ax.text(
            x, y, f"{name}/\n{WHAT[name]}", ha="center", va="center", fontsize=9,
            bbox={"boxstyle": "round,pad=0.5", "facecolor": "#eef3fb", "edgecolor": "#335"},
        )  # fmt: skip
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.8, (len(LAYERS) - 1) * 1.6 + 0.8)
    ax.axis("off")
    ax.set_title("vaekit's packages: each imports only from the layers below (arrows: imports in the source)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    draw()
    print(f"wrote {OUT.relative_to(ROOT)}")
