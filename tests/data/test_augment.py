"""Batch augmentation: a random rotation and shift per image, by affine grids."""

import math

import torch

from vaekit.data.augment import random_affine


def square(size: int = 28) -> torch.Tensor:
    x = torch.zeros(1, 1, size, size)
    x[..., 10:18, 10:18] = 1.0
    return x


def test_no_rotation_or_shift_is_the_identity():
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(random_affine(x, max_degrees=0, max_shift=0), x)


def test_a_shift_moves_the_mass_by_the_drawn_amount():
    x = square().repeat(64, 1, 1, 1)
    out = random_affine(x, max_degrees=0, max_shift=0.1, generator=torch.Generator().manual_seed(0))
    draws = torch.rand(64, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cols = torch.arange(28.0)
    centre_x = (out.sum(2).squeeze(1) * cols).sum(1) / out.sum((1, 2, 3))
    # grid_sample reads the input at x + shift, so the content moves by -shift (in pixels: shift * 28 / 2 * 2)
    expected = 13.5 - draws[:, 1] * 0.1 * 28
    torch.testing.assert_close(centre_x, expected, atol=0.05, rtol=0)
    assert (draws[:, 1].abs() * 0.1 * 28).max() <= 2.8


def test_rotations_keep_the_mass_and_differ_per_image():
    x = square().repeat(16, 1, 1, 1)
    out = random_affine(x, max_degrees=10, max_shift=0.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.03, atol=0)
    assert len({round(v, 4) for v in (out - x).abs().sum((1, 2, 3)).tolist()}) == 16
    assert out.min() >= 0 and out.max() <= 1


def test_a_known_rotation():
    # a quarter turn, by asking for 90 degrees and forcing the draw to its maximum
    x = torch.zeros(1, 1, 8, 8)
    x[..., 1, 2:6] = 1.0  # a horizontal bar in row 1
    generator = torch.Generator().manual_seed(0)
    draws = torch.rand(1, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    degrees = 90 / draws[0, 0].item()  # so that the drawn angle is exactly 90 degrees
    out = random_affine(x, max_degrees=degrees, max_shift=0.0, generator=generator)
    assert math.isclose(out.sum().item(), 4.0, rel_tol=1e-4)
    assert out[0, 0, :, 1].sum() > 3.9 or out[0, 0, :, 6].sum() > 3.9  # now a vertical bar at the edge
