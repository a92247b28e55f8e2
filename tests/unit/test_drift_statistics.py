"""The drift statistics agree with scipy's reference implementations, exactly or within the grid's resolution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from functions.drift_detector import statistics as st
from functions.drift_detector.logic import DriftDetector, DriftThresholds
from functions.shared.contract import parse_contract
from training.drift_profile import build_drift_baseline


@pytest.mark.parametrize("seed", range(5))
def test_jensen_shannon_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.random(6), rng.random(6)
    q[2] = 0.0

    assert st.jensen_shannon_distance(p, q) == pytest.approx(distance.jensenshannon(p, q, base=2), abs=1e-12)


def test_psi_is_the_textbook_formula_and_zero_for_equal_shares():
    e = np.array([0.25, 0.25, 0.5])
    a = np.array([0.2, 0.3, 0.5])

    assert st.population_stability_index(e, a) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert st.population_stability_index(e, e) == 0.0
    # An empty bin is floored, not infinite.
    assert np.isfinite(st.population_stability_index([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))


@pytest.mark.parametrize(
    "grid",
    [
        np.quantile(np.random.default_rng(0).normal(0, 1, 50_000), np.linspace(0, 1, 1001), method="inverted_cdf"),
        np.arange(12.0),
        # Heavy tails crowd nearly every grid value into the first lattice bucket.
        np.concatenate((np.linspace(0.0, 1.0, 999), [1e12, 1e300])),
        np.array([3.5]),
        np.array([-np.inf, 0.0, 1.0, np.inf]),
    ],
    ids=["quantiles", "integers", "heavy_tail", "one_value", "infinite_ends"],
)
def test_grid_cells_are_searchsorted_exactly(grid):
    grid = np.unique(grid)
    rng = np.random.default_rng(1)
    values = np.concatenate(
        (
            rng.choice(grid, 2_000),
            np.nextafter(rng.choice(grid, 2_000), np.inf),
            np.nextafter(rng.choice(grid, 2_000), -np.inf),
            rng.normal(0, 3, 2_000) * rng.choice([1.0, 1e6, 1e305], 2_000),
            [np.inf, -np.inf, np.finfo(np.float64).max, -np.finfo(np.float64).max, 0.0, -0.0],
        )
    )

    assert np.array_equal(st.GridCells(grid).cells(values), np.searchsorted(grid, values, side="left"))
    assert st.GridCells(grid).cells(np.array([np.nan])).tolist() == [0]


def _one_feature_baseline(reference: np.ndarray, ftype: str) -> dict:
    contract = parse_contract(
        {
            "dataset": "one",
            "version": "1.0.0",
            "description": "x",
            "entity_key": "id",
            "event_timestamp": "ts",
            "label": {"name": "y", "definition": "x", "window_days": 1},
            "freshness": {"max_lag_hours": 1, "max_event_age_days": 1},
            "features": [{"name": "x", "type": ftype, "description": "x"}],
        }
    )
    import pandas as pd

    return build_drift_baseline(pd.DataFrame({"x": reference}), contract, np.full(reference.size, 0.5))


def _grid_stats(baseline: dict, current: np.ndarray) -> dict:
    detector = DriftDetector(baseline)
    detector.add_columns({"x": current})
    return detector.evaluate(DriftThresholds(min_samples=1))["features"][0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_forms_are_exact_on_discrete_data(seed):
    rng = np.random.default_rng(seed)
    # Every value carries more than 1/1000 of the mass, so the baseline's grid holds the whole support.
    reference = rng.integers(0, 10, 30_000).astype(float)
    current = rng.binomial(9, 0.55, 5_000).astype(float)

    got = _grid_stats(_one_feature_baseline(reference, "integer"), current)

    assert got["ks"] == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=1e-12)
    assert got["wasserstein"] == pytest.approx(stats.wasserstein_distance(reference, current), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_forms_track_scipy_on_continuous_data(seed):
    rng = np.random.default_rng(seed)
    reference = rng.normal(0, 1, 50_000)
    current = rng.normal(0.3, 1.2, 20_000)
    baseline = _one_feature_baseline(reference, "float")

    got = _grid_stats(baseline, current)

    # The baseline keeps 1000 quantiles, so KS is resolved to about 1/1000 and W1 to a fraction of a percent.
    assert got["ks"] == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=3e-3)
    assert got["wasserstein"] == pytest.approx(stats.wasserstein_distance(reference, current), rel=0.02)


def test_grid_psi_equals_psi_over_the_baseline_bins():
    rng = np.random.default_rng(7)
    reference, current = rng.gamma(2.0, 1.0, 40_000), rng.gamma(2.4, 1.0, 9_000)
    baseline = _one_feature_baseline(reference, "float")
    profile = baseline["features"][0]
    edges = np.asarray(profile["bin_edges"])
    bins = np.searchsorted(edges, current, side="left")
    shares = np.bincount(bins, minlength=edges.size + 1) / current.size

    got = _grid_stats(baseline, current)

    assert got["psi"] == pytest.approx(st.population_stability_index(profile["bin_proportions"], shares), rel=1e-12)


@pytest.mark.parametrize(
    "offsets",
    [
        lambda rng, n: np.full(n, 0.5),
        lambda rng, n: rng.uniform(0.0, 1.0, n),
        lambda rng, n: rng.choice([0.25, 0.5], n),
    ],
    ids=["half", "uniform_fraction", "quarters"],
)
def test_integer_feature_wasserstein_matches_scipy_for_non_integer_live_values(offsets):
    rng = np.random.default_rng(3)
    # Every value carries more than 1/1000 of the mass, so the baseline's grid holds the whole support.
    reference = rng.integers(0, 10, 30_000).astype(float)
    current = rng.binomial(9, 0.55, 5_000) + offsets(rng, 5_000)

    got = _grid_stats(_one_feature_baseline(reference, "integer"), current)

    assert got["wasserstein"] == pytest.approx(stats.wasserstein_distance(reference, current), rel=1e-3)
