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


# The Kolmogorov distribution, the null limit of sqrt(n) * KS: mean sqrt(pi / 2) * ln 2, sd sqrt(pi^2 / 12 - mean^2).
KOLMOGOROV_MEAN = 0.8687
KOLMOGOROV_SD = 0.2603
# Slots per grid interval in which a discrete feature's off-support live values are counted.
OFF_GRID_SLOTS = 16
# Grid intervals the Wasserstein null sd is computed on (its covariance is quadratic in them); the mean uses all.
NULL_SD_POINTS = 64


def effective_size(current: int, reference: int) -> float:
    """n * N / (n + N): the sample size that gives a two-sample statistic its null spread (both samples are noisy)."""
    if current <= 0:
        return 0.0
    if reference <= 0:
        return float(current)
    return current * reference / (current + reference)


def wasserstein_null_coefficients(grid: FloatArray, reference_cdf: FloatArray) -> tuple[float, float]:
    """(mean, sd) of sqrt(n) * W1 between a sample of n and the distribution it was drawn from, for large n.

    sqrt(n) * (F_n - F) tends to B(F(x)), B a Brownian bridge, so sqrt(n) * W1 tends to the integral of |B(F(x))|:
    its mean is sqrt(2 / pi) * integral of sqrt(F (1 - F)), its variance the double integral of the covariance of
    |B(s)| and |B(t)| (for a centred normal pair of correlation r: (2 / pi) sd_s sd_t (sqrt(1 - r^2) + r asin r - 1)).
    The mean is summed over every grid interval; the sd on at most NULL_SD_POINTS coarser intervals, rescaled by
    the ratio of the full to the coarse mean (coarse intervals overstate the tails' spread about equally in both).
    """
    if grid.size < 2:
        return 0.0, 0.0

    def level_and_mean(index: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray, FloatArray, float]:
        widths = np.diff(grid[index])
        level = (reference_cdf[index[:-1]] + reference_cdf[index[1:]]) / 2.0
        spread = np.sqrt(level * (1.0 - level))
        return widths, level, spread, float(np.sqrt(2.0 / np.pi) * np.sum(widths * spread))

    *_, mean = level_and_mean(np.arange(grid.size))
    coarse = np.unique(np.linspace(0, grid.size - 1, min(grid.size, NULL_SD_POINTS + 1)).astype(np.int64))
    widths, level, spread, coarse_mean = level_and_mean(coarse)
    outer = np.outer(spread, spread)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(outer > 0, (np.minimum.outer(level, level) - np.multiply.outer(level, level)) / outer, 0.0)
    r = np.clip(r, -1.0, 1.0)
    covariance = (2.0 / np.pi) * outer * (np.sqrt(1.0 - r * r) + r * np.arcsin(r) - 1.0)
    sd = float(np.sqrt(max(float(widths @ covariance @ widths), 0.0)))
    return mean, sd * mean / coarse_mean if coarse_mean > 0 else sd


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
    inside: tuple[FloatArray, FloatArray] | None = None,
) -> float:
    """W1 from ECDFs on the grid plus the current sample's tails beyond the grid's ends.

    ``mass_below``/``mass_above`` are the current sample's mean excess beyond the grid's ends, i.e.
    sum(grid[0] - x for x < grid[0]) / n and sum(x - grid[-1] for x > grid[-1]) / n: the reference
    has no mass there, so that area counts in full.

    Without ``inside`` (a continuous feature) both ECDFs are taken to rise linearly between grid values:
    trapezoids. With it (a discrete feature: its grid holds its support, so the reference ECDF is flat between grid
    values) live values off the support (an integer feature sent 2.5) count where they are, not at the interval's
    start: ``inside`` is (share of the sample, mean) of the current values strictly inside each of OFF_GRID_SLOTS
    equal slots of each grid interval, shaped (intervals, slots). A slot's values are placed at their mean: exact
    when they share one value or the ECDFs do not cross inside the slot, within a slot's width times its share else.
    """
    if grid.size == 0:
        return 0.0
    widths = np.diff(grid)
    if inside is None:
        gap = np.abs(current_cdf - reference_cdf)
        return float(np.sum((gap[:-1] + gap[1:]) / 2.0 * widths)) + mass_below + mass_above
    share, mean = inside
    slots = share.shape[1]
    slot_width = (widths / slots)[:, None]
    slot_end = grid[:-1, None] + slot_width * np.arange(1, slots + 1)
    # The gap between the ECDFs before and after each slot's values; their mean's distance to the slot's end.
    after = (current_cdf[:-1] - reference_cdf[:-1])[:, None] + np.cumsum(share, axis=1)
    before = after - share
    to_end = np.where(share > 0, slot_end - mean, 0.0)
    area = np.abs(before) * (slot_width - to_end) + np.abs(after) * to_end
    return float(np.sum(area)) + mass_below + mass_above


def shares_from_grid_counts(counts: IntArray, edge_positions: IntArray) -> FloatArray:
    """Shares per PSI bin from counts per grid cell, given each PSI edge's index in the grid."""
    total = counts.sum()
    cumulative = np.concatenate(([0], np.cumsum(counts)))
    bounds = np.concatenate(([0], edge_positions + 1, [counts.size]))
    per_bin = np.diff(cumulative[bounds])
    if total == 0:
        return np.zeros(per_bin.size, dtype=np.float64)
    return np.asarray(per_bin / total, dtype=np.float64)
