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
# Lattice buckets per grid value: enough that a bucket of a 1000-quantile grid of a smooth distribution holds
# one or two grid values, while the bucket table (8 bytes a bucket) stays within a core's L2 cache.
LATTICE_PER_GRID_VALUE = 8


class GridCells:
    """The grid cell of each value (cell j holds grid[j-1] < x <= grid[j]), like np.searchsorted(grid, x), faster.

    A value's cell is its rank among the grid values, i.e. the CDF the drift statistics need, and it takes no sort.
    Both a sort (of a cache-sized chunk) and a binary search per value cost ~40-60 ns a value at a 1000-value grid;
    here a value is scaled onto equal-width lattice buckets over [grid[0], grid[-1]], a table gives the first cell
    of its bucket, and a branchless binary search over the few grid values sharing that bucket ends it: ~13 ns.
    The result is exact, rounding included: the bucket of a value and of each grid value come from the same
    monotone float operations, so a grid value in an earlier (later) bucket is below (above) the value. A skewed
    grid (heavy tails crowd most values into one bucket) only costs more search steps, up to a full binary search.
    NaN lands in cell 0: callers that count NaN as missing take them out of that cell.
    """

    def __init__(self, grid: FloatArray) -> None:
        if grid.size == 0:
            raise ValueError("grid: needs at least one value")
        self.lattice = LATTICE_PER_GRID_VALUE * grid.size
        self.low = float(grid[0])
        span = float(grid[-1]) - self.low
        # A span of zero, infinity or NaN (a grid reaching infinity) puts everything in one bucket: exact, slower.
        self.scale = self.lattice / span if 0.0 < span < np.inf else 0.0
        self.first_cell = np.searchsorted(self._buckets(grid), np.arange(self.lattice + 2), side="left")
        self.steps = int(np.max(np.diff(self.first_cell))).bit_length()
        # +inf padding lets a search probe past the last grid value without a bounds check.
        self.padded = np.concatenate((grid, np.full(1 << self.steps, np.inf)))

    def _buckets(self, values: FloatArray) -> npt.NDArray[np.intp]:
        # Overflow to +-inf and inf * 0 = NaN are expected here; fmax/fmin then clamp both (NaN to bucket 0).
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = values - self.low
            scaled *= self.scale
        np.fmax(scaled, 0.0, out=scaled)
        np.fmin(scaled, float(self.lattice), out=scaled)
        return scaled.astype(np.intp)

    def cells(self, values: FloatArray) -> npt.NDArray[np.intp]:
        """Cell per value: 0 at or below grid[0] (and for NaN), grid.size above grid[-1]."""
        cell = self.first_cell.take(self._buckets(values))
        for power in range(self.steps - 1, -1, -1):
            step = 1 << power
            probe = cell + (step - 1) if step > 1 else cell
            below = self.padded.take(probe) < values
            cell += below * step if step > 1 else below
        return cell


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
