"""A wide synthetic table (20 numeric + 5 categorical features) and its baseline, for the drift tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from functions.shared.contract import DataContract, parse_contract
from training.drift_profile import build_drift_baseline

NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
CATEGORY_COUNTS = (3, 4, 5, 6, 8)


def categories(index: int) -> list[str]:
    return [f"c{index}_{j}" for j in range(CATEGORY_COUNTS[index])]


def wide_contract() -> DataContract:
    features: list[dict[str, Any]] = [
        {"name": n, "type": "integer" if i % 4 == 3 else "float", "nullable": i % 4 == 1, "description": "x"}
        for i, n in enumerate(NUMERIC)
    ]
    features += [
        {"name": n, "type": "categorical", "categories": categories(i), "description": "x"}
        for i, n in enumerate(CATEGORICAL)
    ]
    return parse_contract(
        {
            "dataset": "wide",
            "version": "1.0.0",
            "description": "test table",
            "entity_key": "row_id",
            "event_timestamp": "event_time",
            "label": {"name": "label", "definition": "unused", "window_days": 1},
            "freshness": {"max_lag_hours": 1, "max_event_age_days": 1},
            "features": features,
        }
    )


def wide_frame(n: int, seed: int, drift: dict[str, float] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of the wide table and model scores; ``drift`` maps a feature to a shift in sd (numeric) or moved share."""
    drift = drift or {}
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        shift = drift.get(name, 0.0)
        family = i % 4
        if family == 0:
            values = rng.normal(10.0 * i + shift * 2.0, 2.0, n)
        elif family == 1:
            values = np.exp(rng.normal(shift * 0.5, 0.5, n)) * (i + 1)
            values[rng.random(n) < 0.03] = np.nan
        elif family == 2:
            values = rng.uniform(0.0, 12.0, n) + shift * 12.0 / np.sqrt(12.0)
        else:
            values = rng.poisson(3.0 + shift * np.sqrt(3.0), n).astype(np.float64)
        columns[name] = values
    for i, name in enumerate(CATEGORICAL):
        names = np.array(categories(i), dtype=object)
        p = np.linspace(2.0, 1.0, len(names))
        p /= p.sum()
        moved = drift.get(name, 0.0)
        if moved:
            p = p * (1.0 - moved)
            p[-1] += moved
        columns[name] = names[rng.choice(len(names), size=n, p=p)]
    scores = 1.0 / (1.0 + np.exp(-(0.3 * (columns["num_00"] - 0.0) / 2.0 + rng.normal(0, 1, n))))
    return pd.DataFrame(columns), scores


def wide_baseline(n: int = 20_000, seed: int = 1) -> dict[str, Any]:
    frame, scores = wide_frame(n, seed)
    return build_drift_baseline(frame, wide_contract(), scores)
