"""Pictures of a run: image grids and the loss curve, written atomically as PNG."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence

import matplotlib

# Every picture here is written to a file, so Agg (no display needed) suits the command line and servers.
# Inside a Jupyter kernel the backend is the notebook's (inline): switching it to Agg would stop the
# user's own figures from showing, and vaekit's figures are saved and closed under any backend.
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from vaekit.utils.atomic import atomic_write  # noqa: E402

MIN_GRID_PIXELS = 256  # small images (8x8 digits) are scaled up by whole factors to at least this


def image_grid(images: torch.Tensor, ncol: int, pad: int = 2) -> np.ndarray:
    """Tile images [N, C, H, W] in [0, 1] into one uint8 array (rows of ``ncol``), padded in grey."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    nrow = math.ceil(n / ncol)
    grid = torch.full((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), 0.5)
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i]
    array = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return array[:, :, 0] if c == 1 else array


def save_grid(
    images: torch.Tensor,
    path: str | os.PathLike,
    ncol: int | None = None,
    row_labels: Sequence[str] | None = None,
) -> None:
    """Save images [N, C, H, W] as one PNG grid (near-square unless ``ncol`` is given).

    ``row_labels``, one per row, are written in a white margin left of the grid; the tiles keep their
    places relative to the grid's own left edge.
    """
    ncol = ncol or math.ceil(math.sqrt(len(images)))
    array = image_grid(images, ncol)
    scale = max(1, math.ceil(MIN_GRID_PIXELS / max(array.shape[:2])))
    picture = Image.fromarray(array).resize(
        (array.shape[1] * scale, array.shape[0] * scale), Image.Resampling.NEAREST
    )
    if row_labels is not None:
        nrow = math.ceil(len(images) / ncol)
        if len(row_labels) != nrow:
            raise ValueError(f"{len(row_labels)} row labels for a grid of {nrow} rows")
        picture = _label_rows(picture, row_labels, row_height=picture.height / nrow)
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))


def _label_rows(picture: Image.Image, labels: Sequence[str], row_height: float) -> Image.Image:
    font = ImageFont.load_default(size=max(10, min(16, int(row_height * 0.6))))
    margin = 8 + max(math.ceil(font.getlength(text)) for text in labels)
    white = 255 if picture.mode == "L" else (255,) * len(picture.getbands())
    labelled = Image.new(picture.mode, (picture.width + margin, picture.height), white)
    labelled.paste(picture, (margin, 0))
    draw = ImageDraw.Draw(labelled)
    for row, text in enumerate(labels):
        draw.text((margin - 4, (row + 0.5) * row_height), text, fill=0, font=font, anchor="rm")
    return labelled


def save_reconstructions(originals: torch.Tensor, recons: torch.Tensor, path: str | os.PathLike) -> None:
    """Originals and their reconstructions in alternating rows of up to 8: originals above."""
    ncol = min(len(originals), 8)
    rows = []
    for start in range(0, len(originals), ncol):
        rows += [originals[start : start + ncol], recons[start : start + ncol]]
        # pad a short last pair of rows so that each original sits above its reconstruction
        if len(rows[-1]) < ncol:
            filler = torch.full((ncol - len(rows[-1]), *originals.shape[1:]), 0.5)
            rows[-2], rows[-1] = torch.cat([rows[-2].cpu(), filler]), torch.cat([rows[-1].cpu(), filler])
    save_grid(torch.cat([r.cpu() for r in rows]), path, ncol=ncol)


def save_loss_curve(history: Sequence[dict], path: str | os.PathLike) -> None:
    """Train and validation loss (negative ELBO per image) against epoch."""
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(epochs, [h.get("val_loss") for h in history], marker="o", label="validation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per image)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def save_loss_comparison(histories: dict[str, Sequence[dict]], path: str | os.PathLike) -> None:
    """Several runs' loss curves on one plot: validation solid, training dashed, one colour per run."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    colours = plt.get_cmap("tab10")
    for i, (name, history) in enumerate(histories.items()):
        epochs = [h["epoch"] for h in history]
        colour = colours(i % 10)
        ax.plot(epochs, [h["train_loss"] for h in history], linestyle="--", color=colour, alpha=0.7)
        if any(h.get("val_loss") is not None for h in history):
            ax.plot(epochs, [h.get("val_loss") for h in history], marker="o", color=colour, label=name)
        else:
            ax.plot([], [], color=colour, linestyle="--", label=f"{name} (train)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per image)")
    ax.set_title("validation (solid) and training (dashed) loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def save_animation(
    frames: Sequence[str | os.PathLike], path: str | os.PathLike, ms_per_frame: int = 400
) -> None:
    """The PNG ``frames`` (e.g. per-epoch sample grids) as one looping GIF; the last frame lingers."""
    images = []
    for frame in frames:
        with Image.open(frame) as picture:
            images.append(picture.convert("P"))
    durations = [ms_per_frame] * (len(images) - 1) + [ms_per_frame * 4]
    atomic_write(
        path,
        lambda tmp: images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0
        ),
    )


def save_scatter(
    panels: Sequence[tuple[str, np.ndarray]],
    labels: np.ndarray,
    path: str | os.PathLike,
    title: str = "",
    class_names: Sequence[str] | None = None,
) -> None:
    """One scatter panel per (title, points [N, 2]), points coloured by their integer label with one
    legend (naming each label by ``class_names`` where given); unlabelled points (label -1) in one colour
    and no legend."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5), dpi=100, squeeze=False)
    classes = np.unique(labels)
    labelled = bool(len(classes)) and classes.min() >= 0
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, (panel_title, points) in zip(axes[0], panels, strict=True):
        if not labelled:
            ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.5, color="tab:blue")
        for i, c in enumerate(classes if labelled else ()):
            mask = labels == c
            name = class_names[c] if class_names and c < len(class_names) else str(c)
            ax.scatter(points[mask, 0], points[mask, 1], s=4, alpha=0.7, color=colours(i % 20), label=name)
        ax.set_title(panel_title)
    if labelled:
        axes[0][-1].legend(title="label", markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
