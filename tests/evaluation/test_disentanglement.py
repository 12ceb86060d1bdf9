"""Disentanglement metrics on full factor grids: perfect, entangled, missing and random codes give the
scores they must, and the mutual information matches a contingency table worked out by hand."""

import math

import numpy as np
import pytest

from vaekit.evaluation import disentanglement
from vaekit.evaluation.disentanglement import discretize, factor_vae_score, mig, mutual_information

SIZES = (3, 4, 5, 6)  # 360 rows


def grid(sizes: tuple[int, ...] = SIZES) -> np.ndarray:
    """Every combination of factor values exactly once: int [prod(sizes), len(sizes)]."""
    return np.stack(np.unravel_index(np.arange(math.prod(sizes)), sizes), axis=1).astype(np.int64)


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


# ------------------------------------------------------------------------------ discretize
def test_discretize_matches_disentanglement_libs_histogram_discretizer():
    z = np.random.default_rng(0).normal(size=(500, 3)) * [1.0, 10.0, 0.01] + [0.0, -5.0, 3.0]
    codes = discretize(z, bins=7)
    assert codes.shape == z.shape and codes.dtype == np.int64
    for j in range(3):
        expected = np.digitize(z[:, j], np.histogram(z[:, j], 7)[1][:-1]) - 1
        np.testing.assert_array_equal(codes[:, j], expected)
        assert (
            codes[:, j].min() == 0 and codes[:, j].max() == 6
        )  # the min in the first bin, the max in the last


def test_discretize_edge_cases():
    z = np.column_stack([np.full(10, 3.5), np.arange(10.0), np.linspace(-1, 1, 10)])
    codes = discretize(z, bins=4)
    np.testing.assert_array_equal(codes[:, 0], 0)  # a constant column goes to bin 0
    assert ((codes >= 0) & (codes < 4)).all()
    np.testing.assert_array_equal(codes[:, 1], [0, 0, 0, 1, 1, 2, 2, 3, 3, 3])  # equal widths of 9/4
    np.testing.assert_array_equal(discretize(z, bins=1), 0)
    # equally spaced values, scaled and shifted, land in bins of their own when bins >= their number
    values = np.arange(6) * -2.5 + 7.0
    for bins in (6, 7, 20):
        assert np.unique(discretize(values[:, None], bins)).size == 6
    assert np.unique(discretize(values[:, None], 5)).size == 5
    assert discretize(np.array([[1.0]]), bins=3).tolist() == [[0]]


# ------------------------------------------------------------------------------ mutual information
def test_mutual_information_matches_a_contingency_table():
    f = grid()
    rng = np.random.default_rng(1)
    z = np.column_stack([f[:, 2] + rng.normal(scale=0.8, size=len(f)), rng.normal(size=len(f))])
    m = mutual_information(z, f, bins=10)
    assert m.shape == (2, 4)
    a, b = discretize(z, bins=10)[:, 0], f[:, 2]
    table = np.zeros((10, SIZES[2]))
    np.add.at(table, (a, b), 1)
    expected = entropy(table.sum(axis=1)) + entropy(table.sum(axis=0)) - entropy(table.ravel())
    assert expected > 0.3
    assert m[0, 2] == pytest.approx(expected, abs=1e-12)
    # factors of a full grid are independent of each other: a latent equal to one knows nothing of another
    assert mutual_information(f.astype(float), f, bins=20)[0, 1:] == pytest.approx(0, abs=1e-12)


# ------------------------------------------------------------------------------ perfect and random codes
def test_latents_equal_to_the_factors_score_one():
    f = grid()
    perm = [2, 0, 3, 1]  # latent j holds factor perm[j]
    z = f[:, perm] * np.array([2.0, -0.5, 1.0, 3.0]) + np.array([1.0, 0.0, -4.0, 0.3])
    result = mig(z, f)
    assert result["mig"] == pytest.approx(1.0, abs=1e-9)
    assert result["per_factor"] == pytest.approx([1.0] * 4, abs=1e-9)
    assert result["best_latent"] == [perm.index(k) for k in range(4)]
    score = factor_vae_score(z, f)
    assert score == {
        "factor_vae_score": 1.0,
        "train_accuracy": 1.0,
        "active_dims": 4,
        "per_factor": [1.0] * 4,
    }


def test_mig_is_exact_only_with_at_least_as_many_bins_as_values():
    f = grid()
    z = f.astype(float)
    assert mig(z, f, bins=max(SIZES))["mig"] == pytest.approx(1.0, abs=1e-9)
    coarse = mig(z, f, bins=5)["per_factor"]  # the 6-valued factor shares bins; the others don't
    assert coarse[:3] == pytest.approx([1.0] * 3, abs=1e-9)
    assert 0.5 < coarse[3] < 1 - 1e-3


def test_random_latents_score_low():
    f = grid()
    z = np.random.default_rng(0).normal(size=(len(f), 6))
    assert mig(z, f)["mig"] < 0.05
    assert factor_vae_score(z, f)["factor_vae_score"] < 0.5  # chance is about 1/K = 0.25


# ------------------------------------------------------------------------------ MIG
def test_a_factor_held_by_two_latents_has_no_gap():
    f = grid()
    z = np.column_stack([f.astype(float), f[:, 1] * 2.0])  # factor 1 in latents 1 and 4
    result = mig(z, f)
    assert result["per_factor"] == pytest.approx([1.0, 0.0, 1.0, 1.0], abs=1e-9)
    assert result["mig"] == pytest.approx(3 / 4, abs=1e-9)
    assert result["best_latent"] == [0, 1, 2, 3]


def test_a_factor_missing_from_the_latents_has_a_gap_near_zero():
    f = grid((5, 6, 7, 8))  # 1680 rows: the plug-in estimate's bias on noise is small
    z = f.astype(float)
    z[:, 3] = np.random.default_rng(2).normal(size=len(f))
    per_factor = mig(z, f)["per_factor"]
    # the noise latent's small (biased) information about the other factors makes it their runner-up
    assert all(0.95 < gap < 1 for gap in per_factor[:3])
    assert 0 <= per_factor[3] < 0.05


def test_mig_leaves_out_constant_factors_and_handles_one_latent():
    f = np.column_stack([grid(), np.zeros(360, dtype=np.int64)])  # a fifth factor with one value
    z = np.column_stack([f[:, :4].astype(float), f[:, 1] * 1.0])
    result = mig(z, f)
    assert result["mig"] == pytest.approx(3 / 4, abs=1e-9)  # the mean over the four varying factors
    assert math.isnan(result["per_factor"][4]) and result["best_latent"][4] == -1
    one = mig(f[:, [2]].astype(float), f[:, [2]])  # D == 1: the runner-up is taken as 0
    assert one == {
        "mig": pytest.approx(1.0, abs=1e-9),
        "per_factor": [pytest.approx(1.0)],
        "best_latent": [0],
    }


# ------------------------------------------------------------------------------ FactorVAE score
def test_factor_vae_prunes_collapsed_latents():
    f = grid()
    noise = np.random.default_rng(3).normal(size=len(f))
    # a constant latent first (so kept indices differ from positions) and a collapsed one (std 0.01) last
    z = np.column_stack([np.full(len(f), 0.7), f.astype(float), 0.01 * noise])
    assert factor_vae_score(z, f) == {
        "factor_vae_score": 1.0,
        "train_accuracy": 1.0,
        "active_dims": 4,
        "per_factor": [1.0] * 4,
    }
    assert factor_vae_score(z, f, prune_below=0.0)["active_dims"] == 5  # a constant latent never counts
    assert factor_vae_score(z[:, [0, 5]], f) == {
        "factor_vae_score": 0.0,
        "train_accuracy": 0.0,
        "active_dims": 0,
        "per_factor": [0.0] * 4,
    }


def test_factor_vae_ignores_constant_factors_and_is_seeded():
    f = np.column_stack([np.zeros(360, dtype=np.int64), grid()])
    z = f[:, 1:].astype(float)
    perfect = factor_vae_score(z, f)
    assert perfect["factor_vae_score"] == 1.0
    assert math.isnan(perfect["per_factor"][0]) and perfect["per_factor"][1:] == [1.0] * 4  # no votes: NaN
    noisy = z + np.random.default_rng(4).normal(scale=1.5, size=z.shape)
    first = factor_vae_score(noisy, f, n_votes=200, seed=7)
    assert first == factor_vae_score(noisy, f, n_votes=200, seed=7)
    assert 0.25 < first["factor_vae_score"] < 1.0


def test_factor_vae_per_factor_names_the_factor_a_shared_latent_loses():
    # Latent 0 holds factors 0 and 1 together (as a model that codes shape and scale in one latent):
    # fixing factor 1 leaves it the least variance, so the classifier names it for factor 1, and the
    # votes that held factor 0 fixed land on it or on the latents named for factors 2 and 3: all wrong.
    f = grid()
    z = np.column_stack([f[:, 0] + 3.0 * f[:, 1], f[:, 2], f[:, 3]]).astype(float)
    result = factor_vae_score(z, f, n_votes=2000)
    assert result["per_factor"] == [0.0, 1.0, 1.0, 1.0]
    # the score is the per-factor figures weighted by each factor's share of the votes (about 1/4 each)
    assert 0.7 < result["factor_vae_score"] < 0.8


def test_factor_vae_score_counts_disentanglement_libs_votes_unless_told(monkeypatch):
    """10,000 votes build the classifier and 5,000 fresh ones score it (num_train, num_eval); told
    otherwise, each accuracy is a whole number of its own count of votes."""
    f = grid()
    z = f.astype(float) @ np.random.default_rng(1).normal(size=(4, 5))
    z += np.random.default_rng(2).normal(scale=0.5, size=z.shape)
    real_votes, counts = disentanglement._votes, []

    def counted_votes(*args):
        counts.append(args[5])  # n_votes, the sixth argument
        return real_votes(*args)

    monkeypatch.setattr(disentanglement, "_votes", counted_votes)
    default = factor_vae_score(z, f)
    told = factor_vae_score(z, f, n_votes=300, n_eval_votes=7)
    assert counts == [10_000, 5_000, 300, 7]
    for result, n_votes, n_eval_votes in [(default, 10_000, 5_000), (told, 300, 7)]:
        accuracies = [(result["factor_vae_score"], n_eval_votes), (result["train_accuracy"], n_votes)]
        for accuracy, count in accuracies:
            assert 0 < accuracy < 1
            assert accuracy * count == pytest.approx(round(accuracy * count), abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_factor_vae_score_is_about_the_mean_of_its_per_factor_figures(seed):
    # Every latent mixes every factor, so the figures fall between 0 and 1; with many votes each factor
    # gets about a quarter of them, and the score (all votes) is about the mean of the four figures.
    f = grid()
    z = f.astype(float) @ np.random.default_rng(seed).normal(size=(4, 5))
    z += np.random.default_rng(seed + 10).normal(scale=0.5, size=z.shape)
    result = factor_vae_score(z, f, n_votes=4000, seed=seed)
    assert 0 < result["factor_vae_score"] < 1
    assert all(0 <= value <= 1 for value in result["per_factor"])
    assert result["factor_vae_score"] == pytest.approx(np.mean(result["per_factor"]), abs=0.03)


# ------------------------------------------------------------------------------ bad inputs
F = grid()
Z = F.astype(float)


@pytest.mark.parametrize("metric", [mig, factor_vae_score, mutual_information])
@pytest.mark.parametrize(
    ("latents", "factors", "message"),
    [
        (Z[:-1], F, "rows"),
        (Z[:1], F[:1], "at least 2"),
        (Z[:, :0], F, "D == 0"),
        (Z, F[:, :0], "K == 0"),
        (np.where(np.arange(4) == 2, np.nan, Z), F, "finite"),
        (Z[:, 0], F, "2-D"),
        (Z, F[:, 0], "2-D"),
        (Z, F.astype(float), "integer"),
        (Z, np.zeros_like(F), "single value"),
    ],
)
def test_bad_inputs_raise_value_error(metric, latents, factors, message):
    if metric is mutual_information and message == "single value":
        assert mutual_information(latents, factors).shape == (4, 4)  # no entropy needed: all zeros is fine
        return
    with pytest.raises(ValueError, match=message):
        metric(latents, factors)


def test_bad_options_raise_value_error():
    with pytest.raises(ValueError, match="bins"):
        discretize(Z, bins=0)
    with pytest.raises(ValueError, match="bins"):
        mig(Z, F, bins=2.5)
    with pytest.raises(ValueError, match="batch_size"):
        factor_vae_score(Z, F, batch_size=1)
    with pytest.raises(ValueError, match="n_votes"):
        factor_vae_score(Z, F, n_votes=0)
    with pytest.raises(ValueError, match="n_eval_votes"):
        factor_vae_score(Z, F, n_eval_votes=0)
    with pytest.raises(ValueError, match="prune_below"):
        factor_vae_score(Z, F, prune_below=-1.0)
    with pytest.raises(ValueError, match="finite"):
        discretize(np.array([[0.0], [np.inf]]))
