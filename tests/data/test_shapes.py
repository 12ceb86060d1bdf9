"""The procedural dSprites-like shapes: the factor grid, its enumeration, and what each factor does."""

from __future__ import annotations

import numpy as np
import pytest

from vaekit.data.shapes import COLOUR_NAMES, SHAPE_NAMES, factor_grid, make_shapes

GREY_MIN = 24  # the smallest sizes with distinct whole-pixel positions, as documented in the module
RGB_MIN = 18


@pytest.fixture(scope="module")
def grey():
    return make_shapes(GREY_MIN, rgb=False)


@pytest.fixture(scope="module")
def rgb():
    return make_shapes(RGB_MIN, rgb=True)


def grid_sizes(values: list[np.ndarray]) -> tuple[int, ...]:
    return tuple(len(v) for v in values)


def pick(images: np.ndarray, values: list[np.ndarray], *index: int) -> np.ndarray:
    """The image at one combination of factor indices, as float64 [C, H, W]."""
    return images[np.ravel_multi_index(index, grid_sizes(values))].astype(np.float64)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(column, row) of an image [C, H, W]'s intensity."""
    mass = image.sum(0)
    rows, cols = np.indices(mass.shape)
    return float((mass * cols).sum() / mass.sum()), float((mass * rows).sum() / mass.sum())


def test_grey_shapes_dtypes_and_counts(grey):
    images, factors, names, values = grey
    assert images.shape == (46_080, 1, GREY_MIN, GREY_MIN) and images.dtype == np.uint8
    assert factors.shape == (46_080, 5) and factors.dtype == np.int64
    assert names == ["shape", "scale", "rotation", "x", "y"]
    assert grid_sizes(values) == (3, 6, 10, 16, 16)
    assert images.max() == 255 and images.min() == 0


def test_rgb_shapes_dtypes_and_counts(rgb):
    images, factors, names, values = rgb
    assert images.shape == (55_296, 3, RGB_MIN, RGB_MIN) and images.dtype == np.uint8
    assert factors.shape == (55_296, 6) and factors.dtype == np.int64
    assert names == ["colour", "shape", "scale", "rotation", "x", "y"]
    assert grid_sizes(values) == (4, 3, 4, 8, 12, 12)


@pytest.mark.parametrize("is_rgb", [False, True])
def test_factor_grid_values(is_rgb):
    grid = factor_grid(is_rgb)
    n_scales, n_rotations, n_positions = (4, 8, 12) if is_rgb else (6, 10, 16)
    np.testing.assert_array_equal(grid["shape"], np.arange(len(SHAPE_NAMES)))
    np.testing.assert_allclose(grid["scale"], np.linspace(0.5, 1, n_scales))
    np.testing.assert_allclose(grid["rotation"], np.linspace(0, 2 * np.pi, n_rotations, endpoint=False))
    np.testing.assert_allclose(grid["x"], np.linspace(0, 1, n_positions))
    assert ("colour" in grid) == is_rgb
    if is_rgb:
        assert list(grid)[0] == "colour"
        np.testing.assert_array_equal(grid["colour"], np.arange(len(COLOUR_NAMES)))


@pytest.mark.parametrize("data", ["grey", "rgb"])
def test_factors_enumerate_the_grid_once_in_c_order(data, request):
    _, factors, _, values = request.getfixturevalue(data)
    sizes = grid_sizes(values)
    assert len(np.unique(factors, axis=0)) == len(factors) == np.prod(sizes)
    expected = np.stack(np.unravel_index(np.arange(len(factors)), sizes), axis=1)
    np.testing.assert_array_equal(factors, expected)


@pytest.mark.parametrize("data, size, is_rgb", [("grey", GREY_MIN, False), ("rgb", RGB_MIN, True)])
def test_positions_are_distinct_exact_and_span_zero_to_one(data, size, is_rgb, request):
    _, _, names, values = request.getfixturevalue(data)
    for name in ("x", "y"):
        positions = values[names.index(name)]
        assert positions[0] == 0 and positions[-1] == 1
        assert np.all(np.diff(positions) > 0)
        # whole-pixel offsets over the largest offset: some offset below the size makes them all integers
        scaled = positions[None, :] * np.arange(1, size)[:, None]
        assert np.isclose(scaled, np.round(scaled), atol=1e-9).all(axis=1).any()
        np.testing.assert_allclose(positions, factor_grid(is_rgb, size)[name])


def test_images_are_deterministic(grey):
    images, factors, _, _ = make_shapes(GREY_MIN)
    np.testing.assert_array_equal(images, grey[0])
    np.testing.assert_array_equal(factors, grey[1])


@pytest.mark.parametrize("data", ["grey", "rgb"])
def test_every_image_has_the_whole_shape_at_every_position(data, request):
    images, _, _, values = request.getfixturevalue(data)
    n_positions = len(values[-1])
    # [combination of the other factors, position]: a shape cut by the border would lose coverage
    totals = images.reshape(-1, n_positions * n_positions, *images.shape[1:]).sum(axis=(2, 3, 4))
    assert (totals > 0).all()
    assert (totals == totals[:, :1]).all()


def test_the_largest_shape_spans_about_a_third_of_the_image(grey):
    images, _, _, values = grey
    # ellipse (semi-axes 1 x 0.5) at scale 1 and rotation 0: its long axis is horizontal
    image = pick(images, values, 1, 5, 0, 8, 8)[0]
    columns = np.flatnonzero(image.sum(0) > 0)
    width = columns[-1] - columns[0] + 1
    assert GREY_MIN / 3 <= width <= GREY_MIN * 2 / 5 + 1


def test_x_moves_the_shape_right_and_y_moves_it_down(grey):
    images, _, _, values = grey
    for shape in range(3):
        xs = [centre_of_mass(pick(images, values, shape, 3, 2, i, 5)) for i in range(16)]
        ys = [centre_of_mass(pick(images, values, shape, 3, 2, 5, j)) for j in range(16)]
        assert np.all(np.diff([c[0] for c in xs]) > 0)
        np.testing.assert_allclose([c[1] for c in xs], xs[0][1])
        assert np.all(np.diff([c[1] for c in ys]) > 0)
        np.testing.assert_allclose([c[0] for c in ys], ys[0][0])


def test_scale_increases_the_area(grey):
    images, _, _, values = grey
    for shape in range(3):
        for rotation in (0, 3):
            areas = [pick(images, values, shape, s, rotation, 7, 7).sum() for s in range(6)]
            assert np.all(np.diff(areas) > 0)
            # area grows as scale squared, give or take the anti-aliased edge
            expected = areas[-1] * values[1] ** 2
            np.testing.assert_allclose(areas, expected, rtol=0.15)


def test_the_three_shapes_differ_in_area(grey):
    images, _, _, values = grey
    areas = [pick(images, values, shape, 5, 0, 7, 7).sum() for shape in range(3)]
    assert len(set(areas)) == 3
    assert min(abs(a - b) for i, a in enumerate(areas) for b in areas[i + 1 :]) > 0.05 * max(areas)


def test_rotation_changes_the_ellipse_and_the_heart(grey):
    images, _, _, values = grey
    for shape in (SHAPE_NAMES.index("ellipse"), SHAPE_NAMES.index("heart")):
        for scale in range(6):
            rotated = [pick(images, values, shape, scale, r, 7, 7) for r in range(10)]
            # the ellipse looks the same half a turn later (rotation index + 5); the heart never does
            others = range(1, 5) if SHAPE_NAMES[shape] == "ellipse" else range(1, 10)
            for r in others:
                assert np.abs(rotated[r] - rotated[0]).sum() > 0.05 * rotated[0].sum()


def test_heart_points_down_at_rotation_zero(grey):
    images, _, _, values = grey
    heart = pick(images, values, SHAPE_NAMES.index("heart"), 5, 0, 7, 7)[0]
    rows = heart.sum(1)
    filled = np.flatnonzero(rows)
    top, bottom = rows[filled[:3]].sum(), rows[filled[-3:]].sum()
    assert top > bottom  # wide lobes above, a narrow tip below


def test_colour_puts_intensity_only_in_its_channels(rgb):
    images, factors, _, _ = rgb
    channels = {"white": (0, 1, 2), "red": (0,), "green": (1,), "blue": (2,)}
    for colour, name in enumerate(COLOUR_NAMES):
        these = images[factors[:, 0] == colour]
        per_channel = these.reshape(len(these), 3, -1).max(axis=2)
        lit = list(channels[name])
        dark = [c for c in range(3) if c not in lit]
        assert (per_channel[:, lit] > 0).all()
        assert (per_channel[:, dark] == 0).all()
        # lit channels carry the same coverage
        np.testing.assert_array_equal(these[:, lit], np.repeat(these[:, lit[:1]], len(lit), axis=1))
    # the colour multiplies one coverage: red's channel 0 equals white's
    np.testing.assert_array_equal(images[factors[:, 0] == 1][:, 0], images[factors[:, 0] == 0][:, 0])


@pytest.mark.parametrize("size", [GREY_MIN - 1, 16])
def test_too_small_grey_raises(size):
    with pytest.raises(ValueError, match=f"minimum size for this grid is {GREY_MIN}"):
        make_shapes(size)


def test_too_small_rgb_raises():
    with pytest.raises(ValueError, match=f"minimum size for this grid is {RGB_MIN}"):
        make_shapes(RGB_MIN - 1, rgb=True)
    with pytest.raises(ValueError, match="too small"):
        factor_grid(True, size=8)


# ----------------------------------------------------------------------------- dSprites' own grid
DSPRITES_MIN = 50  # 32 distinct whole-pixel positions need 50 - ceil(3/8 x 50) + 1 = 32 offsets


def test_dsprites_grid_is_dsprites_own():
    grid = factor_grid(False, grid="dsprites")
    assert list(grid) == ["shape", "scale", "rotation", "x", "y"]
    assert grid_sizes(list(grid.values())) == (3, 6, 40, 32, 32)
    assert np.prod(grid_sizes(list(grid.values()))) == 737_280
    np.testing.assert_allclose(grid["rotation"], np.linspace(0, 2 * np.pi, 40, endpoint=False))
    np.testing.assert_allclose(grid["scale"], factor_grid(False)["scale"])  # dSprites' 6 scales, as grey
    at_min = factor_grid(False, DSPRITES_MIN, grid="dsprites")["x"]
    np.testing.assert_allclose(at_min * 31, np.arange(32))  # every whole pixel from 0 to 31


def test_dsprites_grid_too_small_raises_before_drawing():
    with pytest.raises(ValueError, match=f"minimum size for this grid is {DSPRITES_MIN}"):
        make_shapes(DSPRITES_MIN - 1, grid="dsprites")


@pytest.mark.parametrize(
    ("rgb", "grid", "message"),
    [
        (True, "dsprites", "the dsprites grid draws grey images: pass rgb=False"),
        (False, "rgb", "the rgb grid draws colour images: pass rgb=True"),
        (False, "x", "unknown"),
    ],
)
def test_a_grid_that_does_not_fit_raises(rgb, grid, message):
    with pytest.raises(ValueError, match=message):
        factor_grid(rgb, grid=grid)


def test_a_finer_grid_draws_the_same_shapes(monkeypatch):
    """The dsprites grid is the grey one drawn at more rotations and positions: on a shrunk copy of it
    (2 scales, 5 rotations, 32 positions) the images at the values both grids hold are the grey ones."""
    from vaekit.data import shapes

    monkeypatch.setitem(shapes.GRIDS, "dsprites", (2, 5, 32))
    fine, fine_factors, _, fine_values = make_shapes(DSPRITES_MIN, grid="dsprites")
    coarse, _, _, coarse_values = make_shapes(DSPRITES_MIN)
    assert fine.shape == (3 * 2 * 5 * 32 * 32, 1, DSPRITES_MIN, DSPRITES_MIN)
    assert len(np.unique(fine_factors, axis=0)) == len(fine)
    # both hold scales 0.5 and 1, rotation 0 and the first and last positions
    for shape in range(3):
        for fine_scale, coarse_scale in ((0, 0), (1, 5)):
            for position in (0, -1):
                fx, cx = position % 32, position % 16
                np.testing.assert_array_equal(
                    pick(fine, fine_values, shape, fine_scale, 0, fx, fx),
                    pick(coarse, coarse_values, shape, coarse_scale, 0, cx, cx),
                )
