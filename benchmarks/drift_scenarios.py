"""Drift scenarios: how often the detector's verdict alarms on windows with one thing broken, by window size.

Every window is a fresh sample of the drift benchmark's 25-feature table (`benchmarks/drift_data.py`) checked
against a baseline of 20,000 reference rows with the detector's default thresholds. Each scenario breaks one thing
in a copy of the same clean window (common random numbers: scenarios and sizes differ only by what they change),
on a feature that rotates with the window so every feature family is hit:

| scenario | what changes |
|---|---|
| `clean` | nothing: any alarm is a false alarm |
| `mean_shift_0.25sd` | one numeric feature + 0.25 reference sd (integers stay integers: stochastic rounding) |
| `variance_x1.5` | one numeric feature spread about the reference mean so its variance is x1.5 |
| `past_max_2pct` | 2 % of one numeric feature's values moved past the reference maximum (by 0.1 to 1 sd) |
| `new_category_5pct` | an unseen category in 5 % of one categorical feature's rows |
| `missing_jump_10pt` | 10 % more of one feature's rows missing (any feature) |
| `unit_change` | one numeric feature sent in another unit (months as years: / 12), inside any range that starts at 0 |
| `score_shift_0.2sd` | the model's scores + 0.2 reference sd (clipped to [0, 1]); features untouched |

Detection = the window's verdict is `drift` (what raises the alarms). The figures the benchmark keeps:
`drift_power_min_2000` (lowest detection rate over the scenarios at 2,000 rows and more), `drift_false_alarm_rate`
(highest alarm rate on clean windows over the sizes), `drift_power_monotone` (1 when no scenario is detected less
often on a larger window than on a smaller one).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Size
from benchmarks.drift_data import CATEGORICAL, NUMERIC, SCORE_COLUMN, drift_contract, generate

REFERENCE_ROWS = 20_000
WINDOW_SIZES = (500, 2_000, 20_000)
# Windows per (scenario, size): enough at full size that one false alarm in 100 clean windows shows.
WINDOWS: dict[Size, dict[int, int]] = {
    "full": {500: 300, 2_000: 200, 20_000: 100},
    "tiny": {500: 5, 2_000: 5, 20_000: 2},
}
POWER_FROM_ROWS = 2_000
UNSEEN_CATEGORY = "never_seen_in_training"
FEATURES = (*NUMERIC, *CATEGORICAL)

Scenario = Callable[[pd.DataFrame, int, Mapping[str, Any], np.random.Generator], str | None]


def _profiles(baseline: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {p["name"]: p for p in baseline["features"]}


def _as_type(values: np.ndarray, profile: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Integer features stay integers: stochastic rounding keeps each value's expectation."""
    if profile.get("type") != "integer":
        return values
    floor = np.floor(values)
    rounded: np.ndarray = floor + (rng.random(values.size) < values - floor)
    return rounded


def _numeric(window: int) -> str:
    return NUMERIC[window % len(NUMERIC)]


def clean(frame: pd.DataFrame, window: int, baseline: Mapping[str, Any], rng: np.random.Generator) -> str | None:
    return None


def mean_shift(frame: pd.DataFrame, window: int, baseline: Mapping[str, Any], rng: np.random.Generator) -> str:
    name = _numeric(window)
    profile = _profiles(baseline)[name]
    frame[name] = _as_type(frame[name].to_numpy() + 0.25 * profile["std"], profile, rng)
    return name


def variance(frame: pd.DataFrame, window: int, baseline: Mapping[str, Any], rng: np.random.Generator) -> str:
    name = _numeric(window)
    profile = _profiles(baseline)[name]
    values = frame[name].to_numpy()
    frame[name] = _as_type(profile["mean"] + (values - profile["mean"]) * np.sqrt(1.5), profile, rng)
    return name


def past_max(frame: pd.DataFrame, window: int, baseline: Mapping[str, Any], rng: np.random.Generator) -> str:
    name = _numeric(window)
    profile = _profiles(baseline)[name]
    values = frame[name].to_numpy().copy()
    rows = rng.choice(values.size, size=round(0.02 * values.size), replace=False)
    moved = profile["max"] + profile["std"] * rng.uniform(0.1, 1.0, rows.size)
    values[rows] = np.ceil(moved) if profile.get("type") == "integer" else moved
    frame[name] = values
    return name


def new_category(frame: pd.DataFrame, window: int, baseline: Mapping[str, Any], rng: np.random.Generator) -> str:
    name = CATEGORICAL[window % len(CATEGORICAL)]
    values = frame[name].to_numpy().copy()
    values[rng.choice(values.size, size=round(0.05 * values.size), replace=False)] = UNSEEN_CATEGORY
    frame[name] = values
    return name


def missing_jump(frame: pd.DataFrame, window: int, baseline: Mapping[str, Any], rng: np.random.Generator) -> str:
    name = FEATURES[window % len(FEATURES)]
    values = frame[name].to_numpy().copy()
    present = np.flatnonzero(pd.notna(values))
    rows = rng.choice(present, size=min(round(0.10 * values.size), present.size), replace=False)
    values[rows] = np.nan if name in NUMERIC else None
    frame[name] = values
    return name


def unit_change(frame: pd.DataFrame, window: int, baseline: Mapping[str, Any], rng: np.random.Generator) -> str:
    name = _numeric(window)
    frame[name] = _as_type(frame[name].to_numpy() / 12.0, _profiles(baseline)[name], rng)
    return name


def score_shift(frame: pd.DataFrame, window: int, baseline: Mapping[str, Any], rng: np.random.Generator) -> None:
    frame[SCORE_COLUMN] = np.clip(frame[SCORE_COLUMN].to_numpy() + 0.2 * baseline["prediction"]["std"], 0.0, 1.0)


SCENARIOS: dict[str, Scenario] = {
    "clean": clean,
    "mean_shift_0.25sd": mean_shift,
    "variance_x1.5": variance,
    "past_max_2pct": past_max,
    "new_category_5pct": new_category,
    "missing_jump_10pt": missing_jump,
    "unit_change": unit_change,
    "score_shift_0.2sd": score_shift,
}


@dataclass
class SuiteResult:
    """Detection rate per scenario and window size; `attributed`: share of detections naming the broken feature."""

    windows: dict[int, int]
    rates: dict[str, dict[int, float]] = field(default_factory=dict)
    attributed: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def false_alarm_rate(self) -> float:
        return max(self.rates["clean"].values())

    @property
    def power_min(self) -> float:
        return min(
            rate
            for name, by_size in self.rates.items()
            if name != "clean"
            for size, rate in by_size.items()
            if size >= POWER_FROM_ROWS
        )

    @property
    def power_monotone(self) -> bool:
        for name, by_size in self.rates.items():
            if name == "clean":
                continue
            ordered = [by_size[size] for size in sorted(by_size)]
            if any(later < earlier for earlier, later in itertools.pairwise(ordered)):
                return False
        return True

    def table(self) -> str:
        sizes = sorted(self.windows)
        head = "| scenario | " + " | ".join(f"{s:,} rows ({self.windows[s]} windows)" for s in sizes) + " |"
        rows = [head, "|---|" + "---|" * len(sizes)]
        for name, by_size in self.rates.items():
            rows.append(f"| `{name}` | " + " | ".join(f"{by_size[s]:.2f}" for s in sizes) + " |")
        return "\n".join(rows)


def reference_baseline(seed: int = 1) -> dict[str, Any]:
    from training.drift_profile import build_drift_baseline

    reference = generate(REFERENCE_ROWS, seed=seed, drifted=False)
    return build_drift_baseline(reference, drift_contract(), reference[SCORE_COLUMN].to_numpy())


def run_suite(size: Size, baseline: Mapping[str, Any] | None = None, thresholds: Any = None) -> SuiteResult:
    from functions.drift_detector.logic import DriftThresholds, detect_drift

    baseline = baseline if baseline is not None else reference_baseline()
    thresholds = thresholds or DriftThresholds()
    windows = WINDOWS[size]
    result = SuiteResult(windows=dict(windows))
    for name in SCENARIOS:
        result.rates[name] = {}
        result.attributed[name] = {}
    for rows, count in windows.items():
        detected = dict.fromkeys(SCENARIOS, 0)
        named = dict.fromkeys(SCENARIOS, 0)
        for window in range(count):
            seed = 1_000_000 * rows + window
            base = generate(rows, seed=seed, drifted=False)
            for name, scenario in SCENARIOS.items():
                frame = base.copy()
                broken = scenario(frame, window, baseline, np.random.default_rng(seed + 7))
                report = detect_drift(baseline, frame, frame[SCORE_COLUMN].to_numpy(), thresholds)
                if report["verdict"] == "drift":
                    detected[name] += 1
                    named[name] += broken is None or report["max_severity_feature"] == broken
        for name in SCENARIOS:
            result.rates[name][rows] = detected[name] / count
            result.attributed[name][rows] = named[name] / detected[name] if detected[name] else 0.0
    return result
