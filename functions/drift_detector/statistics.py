"""Drift statistics in plain numpy, computed against a drift baseline.

The detector never holds the reference sample: the baseline carries a quantile grid with the reference ECDF
on it, so live traffic is reduced to counts on that grid and KS, Wasserstein and PSI follow from the counts.
The unit tests hold each to scipy's reference implementation on the raw samples.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Empty bins would make PSI infinite; this floor is the usual convention (a 0.01 % share).
PSI_EPSILON = 1e-4


def population_stability_index(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """PSI between two share vectors over the same bins: sum((a - e) * ln(a / e)), shares floored at 0.01 %."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def jensen_shannon_distance(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """Jensen-Shannon distance in base 2 (0 = same, 1 = disjoint); inputs are normalised like scipy's."""
    p_arr = np.asarray(p, dtype=np.float64)
    q_arr = np.asarray(q, dtype=np.float64)
    p_arr = p_arr / p_arr.sum()
    q_arr = q_arr / q_arr.sum()
    m = (p_arr + q_arr) / 2.0

    def _kl(x: FloatArray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    divergence = max((_kl(p_arr) + _kl(q_arr)) / 2.0, 0.0)
    return float(np.sqrt(divergence))


def grid_cdf(counts: IntArray) -> FloatArray:
    """ECDF at each grid value from counts per grid cell (cell j holds grid[j-1] < x <= grid[j])."""
    total = counts.sum()
    if total == 0:
        return np.zeros(max(counts.size - 1, 0), dtype=np.float64)
    return np.asarray(np.cumsum(counts[:-1]) / total, dtype=np.float64)


def ks_on_grid(reference_cdf: FloatArray, current_cdf: FloatArray) -> float:
    """KS evaluated at the baseline's grid values: exact when the grid holds the support, else within ~1/grid size."""
    if reference_cdf.size == 0:
        return 0.0
    return float(np.max(np.abs(reference_cdf - current_cdf)))


def wasserstein_on_grid(
    grid: FloatArray,
    reference_cdf: FloatArray,
    current_cdf: FloatArray,
    *,
    mass_below: float = 0.0,
    mass_above: float = 0.0,
    continuous: bool = True,
) -> float:
    """W1 from ECDFs on the grid (step functions between grid values) plus the current sample's tails.

    ``mass_below``/``mass_above`` are the current sample's mean excess beyond the grid's ends, i.e.
    sum(grid[0] - x for x < grid[0]) / n and sum(x - grid[-1] for x > grid[-1]) / n: the reference
    has no mass there, so that area counts in full. Between grid values a discrete feature's ECDFs are flat
    (its grid holds its support), while a continuous feature's rise about linearly: trapezoids fit it better.
    """
    if grid.size == 0:
        return 0.0
    gap = np.abs(current_cdf - reference_cdf)
    heights = (gap[:-1] + gap[1:]) / 2.0 if continuous else gap[:-1]
    return float(np.sum(heights * np.diff(grid))) + mass_below + mass_above


def shares_from_grid_counts(counts: IntArray, edge_positions: IntArray) -> FloatArray:
    """Shares per PSI bin from counts per grid cell, given each PSI edge's index in the grid."""
    total = counts.sum()
    cumulative = np.concatenate(([0], np.cumsum(counts)))
    bounds = np.concatenate(([0], edge_positions + 1, [counts.size]))
    per_bin = np.diff(cumulative[bounds])
    if total == 0:
        return np.zeros(per_bin.size, dtype=np.float64)
    return np.asarray(per_bin / total, dtype=np.float64)
