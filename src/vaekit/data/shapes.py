"""A procedural dSprites-like dataset: 2D shapes drawn at every combination of known generative factors.

dSprites (Matthey, Higgins, Hassabis & Lerchner 2017, https://github.com/deepmind/dsprites-dataset) is the
standard test bed for disentanglement: every image is one combination of a few independent factors, so a
model's latents can be scored against the factors that made them. This module draws such a set on the fly
(numpy only, deterministic, offline) instead of downloading it, at any image size from the minimum up.

The grid (``factor_grid``), enumerated in C order, the last factor fastest:

* grey, 46,080 images of 1 channel: shape (3: square, ellipse, heart) x scale (6, 0.5 to 1) x rotation
  (10, 0 to 2 pi without the endpoint) x x position (16) x y position (16);
* rgb, 55,296 images of 3 channels: colour (4: white, red, green, blue) x shape (3) x scale (4) x
  rotation (8) x x (12) x y (12);
* dsprites, 737,280 images of 1 channel: the grey shapes on dSprites' own grid, shape (3) x scale (6) x
  rotation (40) x x (32) x y (32), as the papers score them (uint8: 3 GB at 64 x 64).

Shapes are white (or their colour) on black with anti-aliased edges (4 x 4 samples per pixel). At scale 1
every shape fits a circle whose diameter is 3/8 of the image side (24 pixels at 64 x 64), whatever its
rotation; rotation is counter-clockwise as seen; x runs left to right and y top to bottom, both in [0, 1]
over the positions that keep the largest shape inside the image.

Positions are whole pixels (the shape is drawn once per shape, scale and rotation and pasted), so the
reported x and y values are the exact pixel offsets divided by the largest offset, not a nominal linspace.
That needs as many distinct offsets as positions: the minimum image size is 24 for the grey grid, 18
for the rgb grid and 50 for the dsprites grid (``make_shapes`` raises ValueError below it).
"""

from __future__ import annotations

import math
import operator

import numpy as np

SHAPE_NAMES = ("square", "ellipse", "heart")
COLOUR_NAMES = ("white", "red", "green", "blue")
COLOURS = np.array([(1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1)], dtype=np.float64) * 255

# The diameter of the circle that holds a scale-1 shape at any rotation, as a fraction of the image side:
# dSprites-like (its largest shapes span about a third of the image), leaving room to move.
SPAN = 3 / 8
# Samples per pixel along each axis: a 4 x 4 grid gives 17 grey levels on the edges.
SUPERSAMPLE = 4

# The grids by name: (number of scales, rotations, positions along each axis).
GRIDS = {"grey": (6, 10, 16), "rgb": (4, 8, 12), "dsprites": (6, 40, 32)}

# The heart (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (lobes up, tip down at (0, -1)) has its smallest enclosing
# circle at (0, 0.25) with radius 1.25 (found numerically: the tip and the two lobes touch it), so local
# unit-circle coordinates map onto the curve's by q = 1.25 p + (0, 0.25).
_HEART_RADIUS = 1.25
_HEART_CENTRE_Y = 0.25


def grid_name(rgb: bool, grid: str | None = None) -> str:
    """The grid's name in GRIDS: ``grid`` if given (``dsprites`` is grey only), else grey or rgb."""
    if grid is None:
        return "rgb" if rgb else "grey"
    if grid not in GRIDS:
        raise ValueError(f"unknown shapes grid {grid!r}; choose from {', '.join(GRIDS)}")
    if rgb != (grid == "rgb"):
        colours = "colour" if grid == "rgb" else "grey"
        raise ValueError(f"the {grid} grid draws {colours} images: pass rgb={not rgb} with it")
    return grid


def factor_grid(rgb: bool, size: int | None = None, grid: str | None = None) -> dict[str, np.ndarray]:
    """Factor name -> its values, in the order images are enumerated (the last factor fastest).

    grey: shape (0, 1, 2 = index into SHAPE_NAMES), scale linspace(0.5, 1, 6), rotation (radians,
    linspace(0, 2 pi, 10, endpoint=False)), x (16 values in [0, 1]), y (16 values in [0, 1]): 46,080 images.
    rgb: colour (0..3 = index into COLOUR_NAMES) first, then shape (3), scale linspace(0.5, 1, 4),
    rotation (8), x (12), y (12): 55,296 images. ``grid="dsprites"``: grey with 40 rotations and 32
    positions per axis, 737,280 images.

    Without ``size`` the positions are the nominal linspace(0, 1, n); with it they are the exact positions
    drawn at that size (whole pixel offsets / the largest offset), as ``make_shapes`` reports them.
    """
    n_scales, n_rotations, n_positions = GRIDS[grid_name(rgb, grid)]
    if size is None:
        positions = np.linspace(0.0, 1.0, n_positions)
    else:
        offsets, max_offset = _offsets(size, n_positions)
        positions = offsets / max_offset
    grid: dict[str, np.ndarray] = {}
    if rgb:
        grid["colour"] = np.arange(len(COLOUR_NAMES), dtype=np.int64)
    grid["shape"] = np.arange(len(SHAPE_NAMES), dtype=np.int64)
    grid["scale"] = np.linspace(0.5, 1.0, n_scales)
    grid["rotation"] = np.linspace(0.0, 2 * math.pi, n_rotations, endpoint=False)
    grid["x"] = positions
    grid["y"] = positions.copy()
    return grid


def make_shapes(
    size: int = 64, rgb: bool = False, grid: str | None = None
) -> tuple[np.ndarray, np.ndarray, list[str], list[np.ndarray]]:
    """Every combination of the factor grid (see ``factor_grid``), drawn at ``size`` x ``size``.

    Returns the images as uint8 [N, C, size, size] (C = 1 grey, 3 rgb; background 0, the shape at full
    intensity with anti-aliased edges), the factors as int64 [N, K] (the index of each factor's value; row
    i is np.unravel_index(i, grid sizes) in C order, the last factor fastest), the K factor names and the
    K arrays of factor values (x and y are the exact drawn positions). Raises ValueError if ``size`` is
    below the minimum (24 grey, 18 rgb, 50 dsprites), where the positions would not be distinct whole
    pixels.
    """
    size = operator.index(size)
    rgb = bool(rgb)
    grid = grid_name(rgb, grid)
    n_scales, n_rotations, n_positions = GRIDS[grid]
    factors_values = factor_grid(rgb, size, grid)
    names = list(factors_values)
    values = list(factors_values.values())
    sizes = tuple(len(v) for v in values)
    offsets, _ = _offsets(size, n_positions)

    # [shape, scale, rotation, T, T] in [0, 1]
    templates = _templates(size, factors_values["scale"], factors_values["rotation"])
    t = templates.shape[-1]
    n_templates = len(SHAPE_NAMES) * n_scales * n_rotations
    if rgb:
        # Colour multiplies the coverage per channel: [colour, template, channel, T, T].
        flat = templates.reshape(1, n_templates, 1, t, t)
        stamps = np.rint(flat * COLOURS[:, None, :, None, None]).astype(np.uint8)
    else:
        stamps = np.rint(templates.reshape(1, n_templates, 1, t, t) * 255).astype(np.uint8)
    n_colours, channels = stamps.shape[0], stamps.shape[2]

    images = np.zeros((int(np.prod(sizes)), channels, size, size), dtype=np.uint8)
    # Images are ordered (colour, template, x, y): one slice assignment per position pastes every
    # template (and colour) at once, so Python loops over the n_positions^2 positions, not the images.
    view = images.reshape(n_colours, n_templates, n_positions, n_positions, channels, size, size)
    for i, ox in enumerate(offsets):
        for j, oy in enumerate(offsets):
            view[:, :, i, j, :, oy : oy + t, ox : ox + t] = stamps

    factors = np.indices(sizes, dtype=np.int64).reshape(len(sizes), -1).T
    return images, np.ascontiguousarray(factors), names, values


def _template_side(size: int) -> int:
    """The side of the square canvas that holds a scale-1 shape at any rotation."""
    return math.ceil(SPAN * size)


def _min_size(n_positions: int) -> int:
    """The smallest image side with ``n_positions`` distinct whole-pixel offsets for the template."""
    size = 1
    while size - _template_side(size) + 1 < n_positions:
        size += 1
    return size


def _offsets(size: int, n_positions: int) -> tuple[np.ndarray, int]:
    """``n_positions`` distinct whole-pixel offsets of the template, evenly spread from 0 to the largest
    offset that keeps it inside the image, and that largest offset."""
    size = operator.index(size)
    max_offset = size - _template_side(size)
    if max_offset + 1 < n_positions:
        raise ValueError(
            f"image size {size} is too small for {n_positions} distinct positions of the shapes; "
            f"the minimum size for this grid is {_min_size(n_positions)}"
        )
    offsets = np.round(np.linspace(0, max_offset, n_positions)).astype(np.int64)
    # Steps of max_offset / (n - 1) >= 1 pixel round to distinct integers; checked, as positions must be.
    assert len(np.unique(offsets)) == n_positions
    return offsets, max_offset


def _templates(size: int, scales: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of each (shape, scale, rotation) on a T x T canvas, T = ceil(SPAN * size): the
    fraction of SUPERSAMPLE^2 sample points per pixel that fall inside the shape. Float64 [3, S, R, T, T]."""
    t = _template_side(size)
    radius = SPAN * size / 2  # pixels per local unit at scale 1: the unit circle holds every shape
    # Sample points at the centres of a SUPERSAMPLE x finer grid, in pixel units from the canvas centre;
    # local y points up so that the heart stands upright and rotation is counter-clockwise as seen.
    sub = (np.arange(t * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - t / 2
    px = sub[None, :]
    py = -sub[:, None]
    # Inverse transform, per (scale, rotation): local = R(-theta) p / (scale * radius).
    cos = np.cos(rotations)[None, :, None, None]
    sin = np.sin(rotations)[None, :, None, None]
    unit = (scales * radius)[:, None, None, None]
    lx = (cos * px + sin * py) / unit  # [S, R, T*ss, T*ss]
    ly = (-sin * px + cos * py) / unit

    # Square of side sqrt(2): its corners lie on the unit circle, as large as can rotate inside it.
    half = 1 / math.sqrt(2)
    square = (np.abs(lx) <= half) & (np.abs(ly) <= half)
    ellipse = lx**2 + (ly / 0.5) ** 2 <= 1.0  # semi-axes 1 x 0.5, so rotation shows
    hx = lx * _HEART_RADIUS
    hy = ly * _HEART_RADIUS + _HEART_CENTRE_Y
    heart = (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0

    inside = np.stack([square, ellipse, heart]).astype(np.float64)  # [3, S, R, T*ss, T*ss]
    shape = inside.shape[:3]
    # Average each SUPERSAMPLE x SUPERSAMPLE block of samples into one pixel's coverage.
    blocks = inside.reshape(*shape, t, SUPERSAMPLE, t, SUPERSAMPLE)
    return blocks.mean(axis=(4, 6))
