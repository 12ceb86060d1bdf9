"""Data augmentation on whole batches: one random affine warp per image, as tensor operations.

Each image gets its own small rotation and shift, but the batch is warped by one ``affine_grid`` /
``grid_sample`` call, so augmentation costs a few tensor ops per step and no Python per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_DEGREES = 10.0  # rotations drawn uniformly from [-10, 10] degrees
MAX_SHIFT = 0.1  # shifts drawn uniformly from [-0.1, 0.1] of the image side (2.8 pixels at 28x28)


def random_affine(
    x: torch.Tensor,
    max_degrees: float = MAX_DEGREES,
    max_shift: float = MAX_SHIFT,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rotate each image of ``x`` [B, C, H, W] about its centre by an angle in [-max_degrees, max_degrees]
    and shift it by up to ``max_shift`` of its width and height; uniform draws, bilinear interpolation,
    zeros (black) beyond the border. Returns a new tensor of the same shape; ``generator`` draws the
    angles and shifts (the global RNG if None)."""
    batch = len(x)
    draws = torch.rand(batch, 3, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    angle = draws[:, 0] * math.radians(max_degrees)
    # affine_grid works in [-1, 1] coordinates, where the whole side is 2 units: a shift s of the side is 2s
    shift = draws[:, 1:] * (2 * max_shift)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
