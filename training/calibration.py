"""Calibration over equal-width probability bins, in numpy only: training's evaluation and the live
label-quality job (a Lambda without scikit-learn) compute it the same way, so the two figures compare."""

from __future__ import annotations

import numpy as np


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    mean_p = np.bincount(index, weights=p, minlength=bins)
    mean_y = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
    filled = counts > 0
    gaps = np.abs(mean_p[filled] - mean_y[filled])
    return float(gaps.sum() / len(p))


def reliability_curve(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> list[dict[str, float]]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    curve = []
    for b in range(bins):
        members = index == b
        if members.any():
            curve.append(
                {
                    "bin_low": float(edges[b]),
                    "bin_high": float(edges[b + 1]),
                    "mean_probability": float(p[members].mean()),
                    "observed_rate": float(y[members].mean()),
                    "count": int(members.sum()),
                }
            )
    return curve
