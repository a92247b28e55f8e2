"""The drift baseline: the training data's per-feature reference distributions, shipped inside model.tar.gz.

The drift detector (functions/drift_detector) compares live traffic against this dict and nothing else, so it
carries everything the statistics need: PSI bins, a quantile grid fine enough for KS and Wasserstein, category
frequencies, missing rates and the distribution of the model's scores. The schema is documented in
docs/monitoring.md; bump SCHEMA_VERSION on any incompatible change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from functions.shared.contract import DataContract, Feature
from functions.shared.drift_schema import (
    BASELINE_KIND,
    BOOLEAN_CATEGORIES,
    PREDICTION_NAME,
    SCHEMA_VERSION,
    importance_shares,
    normalize_category,
)

# 1000 quantiles bound the error of KS computed on the grid by 0.001, below the sampling noise of any window
# large enough to get a verdict, while keeping the baseline under ~25 KB per numeric feature.
QUANTILE_GRID_SIZE = 1000
PSI_BINS = 10

FloatArray = npt.NDArray[np.float64]


def _numeric_profile(name: str, ftype: str, values: FloatArray) -> dict[str, Any]:
    total = int(values.size)
    present = np.sort(values[~np.isnan(values)])
    count = int(present.size)
    profile: dict[str, Any] = {
        "name": name,
        "kind": "numeric",
        "type": ftype,
        "count": count,
        "missing_rate": (total - count) / total if total else 0.0,
    }
    if count == 0:
        profile.update(
            mean=None,
            std=None,
            min=None,
            max=None,
            bin_edges=[],
            bin_proportions=[1.0],
            grid=[],
            grid_cdf=[],
            grid_holds_support=True,
        )
        return profile
    # inverted_cdf returns observed values, so a discrete feature's grid holds its exact support.
    raw_grid = np.quantile(present, np.arange(QUANTILE_GRID_SIZE + 1) / QUANTILE_GRID_SIZE, method="inverted_cdf")
    grid = np.unique(raw_grid)
    # PSI edges are taken from the grid itself so the detector derives PSI counts from its grid counts.
    step = QUANTILE_GRID_SIZE // PSI_BINS
    edges = np.unique(raw_grid[step:QUANTILE_GRID_SIZE:step])
    below_or_at = np.searchsorted(present, edges, side="right")
    bin_counts = np.diff(np.concatenate(([0], below_or_at, [count])))
    grid_cdf = np.searchsorted(present, grid, side="right") / count
    # When every distinct value is a grid value, the reference ECDF is flat between grid values: the detector
    # then places live values between them exactly (an integer feature sent 2.5).
    distinct = 1 + int(np.count_nonzero(np.diff(present)))
    profile.update(
        mean=float(present.mean()),
        std=float(present.std()),
        min=float(present[0]),
        max=float(present[-1]),
        bin_edges=[float(e) for e in edges],
        bin_proportions=[float(c) / count for c in bin_counts],
        grid=[float(v) for v in grid],
        grid_cdf=[float(p) for p in grid_cdf],
        grid_holds_support=distinct == grid.size,
    )
    return profile


def _categorical_profile(feature: Feature, series: pd.Series) -> dict[str, Any]:
    categories = list(BOOLEAN_CATEGORIES) if feature.type == "boolean" else list(feature.categories)
    boolean = feature.type == "boolean"
    normalized = [normalize_category(v, boolean=boolean) for v in series.tolist()]
    total = len(normalized)
    present = [v for v in normalized if v is not None]
    count = len(present)
    freq: dict[str, int] = {}
    for v in present:
        freq[v] = freq.get(v, 0) + 1
    # Values outside the contract (if training data carries any) stay visible instead of vanishing.
    extra = sorted(set(freq) - set(categories))
    categories.extend(extra)
    return {
        "name": feature.name,
        "kind": "categorical",
        "type": feature.type,
        "count": count,
        "missing_rate": (total - count) / total if total else 0.0,
        "categories": categories,
        "proportions": [freq.get(c, 0) / count if count else 0.0 for c in categories],
    }


def _as_float(series: pd.Series) -> FloatArray:
    return np.asarray(pd.to_numeric(series, errors="coerce"), dtype=np.float64)


def build_drift_baseline(
    frame: pd.DataFrame,
    contract: DataContract,
    scores: npt.ArrayLike,
    *,
    created_at: datetime | None = None,
    importances: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Profile the training features and the model's scores on them; the result is JSON-serialisable.

    ``frame`` holds at least the contract's features; ``scores`` are the positive-class probabilities the
    model gives those rows (or a held-out subset of them: only their distribution is kept). ``importances``
    (e.g. permutation importances on the validation split) become each feature's ``importance`` share, which
    weighs its drift in the detector's window verdict.
    """
    missing = [f.name for f in contract.features if f.name not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks contract features: {', '.join(missing)}")
    score_values = np.asarray(scores, dtype=np.float64).ravel()
    if score_values.size == 0:
        raise ValueError("scores: need at least one prediction score")
    shares = importance_shares(contract.feature_names, importances)
    features: list[dict[str, Any]] = []
    for feature in contract.features:
        if feature.is_numeric:
            profile = _numeric_profile(feature.name, feature.type, _as_float(frame[feature.name]))
        else:
            profile = _categorical_profile(feature, frame[feature.name])
        features.append({**profile, "importance": shares[feature.name]})
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": BASELINE_KIND,
        "contract": contract.ref,
        "created_at": (created_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "row_count": len(frame),
        "features": features,
        "prediction": _numeric_profile(PREDICTION_NAME, "float", score_values),
    }
