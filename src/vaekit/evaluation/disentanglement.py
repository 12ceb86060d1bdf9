"""Disentanglement metrics: how well the latent codes of images line up with their known generative factors.

Both metrics take ``latents`` [N, D] (say, the posterior means of N images) and ``factors`` [N, K] (for each
image, the integer index of the value of each of its K generative factors). They were made for a full
factor grid such as dSprites', where every combination of factor values appears exactly once, and they
follow disentanglement_lib (Locatello et al. 2019, "Challenging Common Assumptions in the Unsupervised
Learning of Disentangled Representations"):

- MIG, the mutual information gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"): for
  each factor, how much more the latent that knows most about it knows than the runner-up, as a fraction
  of the factor's entropy. 1 when each factor is held by one latent alone, 0 when none or two hold it.
- The FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising"): hold one factor fixed, and the
  latent that varies least (relative to its overall spread) should name it; the accuracy of a
  majority-vote classifier from latent to factor. 1 when each factor has a latent of its own.

numpy and scikit-learn only: the metrics work on arrays, whatever model produced them.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import mutual_info_score


# ------------------------------------------------------------------------------ input checks
def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_latents(latents: np.ndarray, min_rows: int = 1) -> np.ndarray:
    """``latents`` as a float64 [N, D] array with N >= ``min_rows``, D >= 1 and finite entries."""
    z = np.asarray(latents)
    if z.dtype.kind not in "biuf":
        raise ValueError(f"latents must be real numbers, got dtype {z.dtype}")
    if z.ndim != 2:
        raise ValueError(f"latents must be a 2-D array [N, D], got shape {z.shape}")
    if z.shape[0] < min_rows:
        raise ValueError(f"latents need at least {min_rows} rows (codes), got {z.shape[0]}")
    if z.shape[1] == 0:
        raise ValueError("latents have no dimensions (D == 0)")
    z = z.astype(np.float64)
    if not np.isfinite(z).all():
        bad = np.argwhere(~np.isfinite(z))[0]
        raise ValueError(f"latents must be finite; row {bad[0]}, dimension {bad[1]} is {z[tuple(bad)]}")
    return z


def _check_inputs(latents: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(latents as float64 [N, D], factors as int64 [N, K]), checked against each other."""
    z = _check_latents(latents, min_rows=2)
    v = np.asarray(factors)
    if v.ndim != 2:
        raise ValueError(f"factors must be a 2-D array [N, K], got shape {v.shape}")
    if v.dtype.kind not in "biu":
        raise ValueError(f"factors must be integer indices of each factor's value, got dtype {v.dtype}")
    if v.shape[0] != z.shape[0]:
        raise ValueError(f"latents have {z.shape[0]} rows but factors have {v.shape[0]}; they must match")
    if v.shape[1] == 0:
        raise ValueError("factors have no columns (K == 0)")
    return z, v.astype(np.int64)


def _varying_factors(v: np.ndarray) -> np.ndarray:
    """Indices of the factors that take more than one value; a ValueError if there are none."""
    varying = np.array([np.unique(column).size > 1 for column in v.T])
    if not varying.any():
        raise ValueError(f"every factor takes a single value over the {len(v)} rows: nothing to measure")
    return np.flatnonzero(varying)


# ------------------------------------------------------------------------------ mutual information
def discretize(latents: np.ndarray, bins: int = 20) -> np.ndarray:
    """[N, D] floats -> [N, D] int64 bin indices in [0, bins), dimension by dimension.

    Each dimension is cut into ``bins`` equal-width bins between its own min and max (disentanglement_lib's
    histogram discretizer: ``np.digitize(z, np.histogram(z, bins)[1][:-1]) - 1``); the max falls in the last
    bin. A constant dimension goes to bin 0 throughout. ``bins`` values equally spaced (like factor
    indices, scaled and shifted) land in distinct bins when ``bins`` is at least their number.
    """
    bins = _check_int("bins", bins, 1)
    z = _check_latents(latents)
    out = np.zeros(z.shape, dtype=np.int64)
    for j, column in enumerate(z.T):
        if column.min() == column.max():
            continue
        edges = np.histogram_bin_edges(column, bins)
        out[:, j] = np.digitize(column, edges[:-1]) - 1
    return out


def _mutual_information(codes: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.array([[mutual_info_score(factor, code) for factor in v.T] for code in codes.T])


def mutual_information(latents: np.ndarray, factors: np.ndarray, bins: int = 20) -> np.ndarray:
    """[D, K] matrix of I(z_j; v_k) in nats, between discretized latent j and factor k.

    I(z; v) = sum_{a,b} p(a, b) log(p(a, b) / (p(a) p(b))) over the empirical joint distribution of the
    bin index of z (``discretize(latents, bins)``) and the value of v, each by
    ``sklearn.metrics.mutual_info_score``. ``latents`` [N, D], ``factors`` [N, K] integers.
    """
    bins = _check_int("bins", bins, 1)
    z, v = _check_inputs(latents, factors)
    return _mutual_information(discretize(z, bins), v)


# ------------------------------------------------------------------------------ MIG
def mig(latents: np.ndarray, factors: np.ndarray, bins: int = 20) -> dict:
    """Mutual information gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs").

    MIG = (1/K') sum_k (I_(1)(k) - I_(2)(k)) / H(v_k), where I_(1)(k) >= I_(2)(k) are the two largest of
    I(z_j; v_k) over latents j (``mutual_information``: latents discretized into ``bins`` equal-width bins)
    and H(v_k) is the entropy of factor k in nats, as disentanglement_lib computes it. With D == 1 the
    runner-up is taken as 0 (as if a constant latent were added).

    A factor that takes a single value has H = 0: it is left out of the mean (K' counts the others), and
    its ``per_factor`` entry is NaN and its ``best_latent`` -1. If every factor is constant: ValueError.

    ``latents`` [N, D] floats, ``factors`` [N, K] integer value indices. Returns ``{"mig": float,
    "per_factor": [K] floats (the gap over the entropy of each factor), "best_latent": [K] ints (the latent
    with I_(1) for each factor)}``.
    """
    bins = _check_int("bins", bins, 1)
    z, v = _check_inputs(latents, factors)
    varying = _varying_factors(v)
    m = _mutual_information(discretize(z, bins), v)  # [D, K]
    top = np.sort(m, axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros(v.shape[1])
    per_factor = [math.nan] * v.shape[1]
    best_latent = [-1] * v.shape[1]
    for k in varying:
        entropy = mutual_info_score(v[:, k], v[:, k])
        per_factor[k] = float((top[0, k] - second[k]) / entropy)
        best_latent[k] = int(np.argmax(m[:, k]))
    return {
        "mig": float(np.mean([per_factor[k] for k in varying])),
        "per_factor": per_factor,
        "best_latent": best_latent,
    }


# ------------------------------------------------------------------------------ FactorVAE score
def _value_groups(column: np.ndarray) -> list[np.ndarray]:
    """The row indices of each distinct value of ``column``, one array per value."""
    _, inverse, counts = np.unique(column, return_inverse=True, return_counts=True)
    return np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])


def _votes(
    z_kept: np.ndarray,
    scale: np.ndarray,
    kept: np.ndarray,
    groups: dict[int, list[np.ndarray]],
    shape: tuple[int, int],
    n_votes: int,
    batch_size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """[K, D] counts of votes (factor held fixed, latent of least normalised variance)."""
    votes = np.zeros(shape, dtype=np.int64)
    varying = list(groups)
    for _ in range(n_votes):
        k = varying[rng.integers(len(varying))]
        rows = groups[k][rng.integers(len(groups[k]))]
        batch = z_kept[rows[rng.integers(len(rows), size=batch_size)]]
        votes[k, kept[np.argmin(batch.var(axis=0, ddof=1) / scale)]] += 1
    return votes


def factor_vae_score(
    latents: np.ndarray,
    factors: np.ndarray,
    n_votes: int = 10_000,
    batch_size: int = 64,
    seed: int = 0,
    prune_below: float = 0.05,
    n_eval_votes: int = 5_000,
) -> dict:
    """FactorVAE disentanglement metric (Kim & Mnih 2018, "Disentangling by Factorising").

    As in disentanglement_lib: s_j^2 is the variance (ddof=1) of latent j over all N rows; latents with
    s_j < ``prune_below`` (disentanglement_lib's ``prune_dims.threshold``, compared with the standard
    deviation) or constant are collapsed and ignored. One vote: pick a factor k uniformly (among those that
    take more than one value), a value of it uniformly, ``batch_size`` rows with that value uniformly with
    replacement, and vote (argmin_j Var_batch(z_j) / s_j^2 over the kept latents, k). A majority-vote
    classifier (each latent -> the factor it got most votes for; a latent with none -> factor 0) is built
    from ``n_votes`` votes, and its accuracy (the fraction of votes whose factor it names) measured on
    those and on ``n_eval_votes`` fresh ones. Seeded: a ``numpy.random.Generator`` from ``seed``. The
    counts are disentanglement_lib's (num_train, num_eval; Locatello et al. 2019): at 800 and 800 a
    model's score moved by a standard deviation of up to 0.027 with the seed of the votes; at these, 0.007.

    ``latents`` [N, D] floats, ``factors`` [N, K] integer value indices. Returns ``{"factor_vae_score":
    accuracy on the fresh votes, "train_accuracy": on the classifier's own votes, "active_dims": number of
    latents kept, "per_factor": [K] the accuracy on the fresh votes that held factor k fixed}`` (NaN for a
    constant factor, which gets no votes; the score is their mean weighted by each factor's votes); all
    0 when no latent is kept. If every factor is constant: ValueError.
    """
    n_votes = _check_int("n_votes", n_votes, 1)
    n_eval_votes = _check_int("n_eval_votes", n_eval_votes, 1)
    batch_size = _check_int("batch_size", batch_size, 2)
    if not math.isfinite(prune_below) or prune_below < 0:
        raise ValueError(f"prune_below must be a finite number >= 0, got {prune_below!r}")
    z, v = _check_inputs(latents, factors)
    varying = _varying_factors(v)
    variances = z.var(axis=0, ddof=1)
    constant = z.min(axis=0) == z.max(axis=0)  # np.var of a constant need not be exactly 0
    kept = np.flatnonzero(~constant & (np.sqrt(variances) >= prune_below))
    if kept.size == 0:
        per_factor = [0.0 if k in varying else math.nan for k in range(v.shape[1])]
        return {"factor_vae_score": 0.0, "train_accuracy": 0.0, "active_dims": 0, "per_factor": per_factor}

    groups = {int(k): _value_groups(v[:, k]) for k in varying}
    rng = np.random.default_rng(seed)
    args = (z[:, kept], variances[kept], kept, groups, (v.shape[1], z.shape[1]))
    train = _votes(*args, n_votes, batch_size, rng)
    classifier = np.argmax(train, axis=0)  # [D]: latent -> factor
    evaluation = _votes(*args, n_eval_votes, batch_size, rng)

    named = (classifier, np.arange(z.shape[1]))  # [D]: each latent's votes for the factor it is named
    # Per factor: of the fresh votes that held k fixed, those cast for a latent the classifier names k.
    right_votes, cast = evaluation[named], evaluation.sum(axis=1)
    right_per_factor = np.bincount(classifier, weights=right_votes, minlength=v.shape[1])
    per_factor = [float(right_per_factor[k] / cast[k]) if cast[k] else math.nan for k in range(v.shape[1])]
    return {
        "factor_vae_score": float(right_votes.sum() / cast.sum()),
        "train_accuracy": float(train[named].sum() / train.sum()),
        "active_dims": int(kept.size),
        "per_factor": per_factor,
    }
