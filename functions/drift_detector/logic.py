"""Drift detection against a model's drift baseline: accumulate live traffic, then decide on effect sizes.

Traffic is folded into fixed-size sufficient statistics (counts on the baseline's quantile grid, category
counts, missing counts), chunk by chunk, so memory does not grow with the window and capture files can be
streamed. At a million rows every p-value is tiny, so a feature is judged on how much it moved (PSI, KS,
normalised Wasserstein, out-of-reference-range rate, Jensen-Shannon, missing-rate change, share of unseen
categories), never on significance alone.

Each test's severity is the part of its effect size that sampling noise of a window this size cannot explain
(the statistic's mean under no drift plus NOISE_Z of its standard deviations removed), in units of the test's
threshold; a feature's severity is its worst test's. Removing the small-sample bias makes the decision consistent
across window sizes: a plug-in effect size is inflated on a small window, so a shift just under a threshold would
be caught on small windows and missed on large ones. Here a fixed true shift is detected at least as often on a
larger window. The window alarms when one feature is severe (severity >= 1) or the importance-weighted drift is.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from functions.drift_detector import statistics as st
from functions.shared.drift_schema import (
    BASELINE_KIND,
    REPORT_KIND,
    SCHEMA_VERSION,
    importance_shares,
    normalize_category,
)

# Rows per numeric chunk: a chunk and its scratch arrays stay in cache, and scratch memory under 4 MB.
CHUNK_ROWS = 1 << 16
TOP_NEW_CATEGORIES = 10
# Null standard deviations an effect must clear before it counts: with ~100 tests a window, z = 3 keeps sampling
# noise alone from ever reaching a threshold (they sit several such margins above the noise at min_samples).
NOISE_Z = 3.0
_JS_NULL_SCALE = 1.0 / (8.0 * np.log(2.0))


class BaselineError(ValueError):
    """The drift baseline is missing, of another kind, or of an unsupported schema version."""


@dataclass(frozen=True)
class DriftThresholds:
    """Effect sizes that flag a feature, and the rules for a window's verdict."""

    psi: float = 0.2
    drifted_share: float = 0.1
    prediction_psi: float = 0.2
    min_samples: int = 500
    ks: float = 0.1
    js: float = 0.1
    missing_rate_delta: float = 0.05
    new_category_rate: float = 0.01
    # W1 over the reference's standard deviation: a mean shift of d sd gives d, a variance x1.5 about 0.18.
    wasserstein: float = 0.08
    # Share of live values outside [reference min, reference max]; a sample of N puts 2 / (N + 1) there by chance.
    out_of_range_rate: float = 0.01
    # Importance-weighted share of drift: sum of importance * min(severity, 1) over the features.
    weighted_severity: float = 0.3
    prediction_wasserstein: float = 0.075


@dataclass
class FeatureDrift:
    name: str
    kind: str
    count: int
    missing_rate: float
    baseline_missing_rate: float
    psi: float
    ks: float | None = None
    wasserstein: float | None = None
    wasserstein_norm: float | None = None
    js: float | None = None
    new_category_rate: float | None = None
    new_categories: list[str] = field(default_factory=list)
    out_of_range_rate: float | None = None
    mean: float | None = None
    baseline_mean: float | None = None
    importance: float | None = None
    severity: float = 0.0
    severities: dict[str, float] = field(default_factory=dict)
    drifted: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def missing_rate_delta(self) -> float:
        return self.missing_rate - self.baseline_missing_rate

    def to_dict(self) -> dict[str, Any]:
        # A shallow copy: dataclasses.asdict deep-copies and costs more than the statistics on small windows.
        out = dict(vars(self))
        out["new_categories"] = list(self.new_categories)
        out["severities"] = dict(self.severities)
        out["reasons"] = list(self.reasons)
        out["missing_rate_delta"] = self.missing_rate_delta
        return out

    def judge(self, test: str, value: float, threshold: float, null_mean: float = 0.0, null_sd: float = 0.0) -> None:
        """Record a test's severity: its effect beyond the noise of a no-drift window this size, in thresholds."""
        severity = float(max(value - null_mean - NOISE_Z * null_sd, 0.0) / threshold)
        self.severities[test] = severity
        if severity >= 1.0:
            self.reasons.append(test)
        self.severity = max(self.severity, severity)
        self.drifted = bool(self.reasons)

    def judge_missing_rate(self, thresholds: DriftThresholds, reference_rows: int) -> None:
        p = self.baseline_missing_rate
        spread = float(np.sqrt(p * (1.0 - p) * (1.0 / self.count + 1.0 / max(reference_rows, 1))))
        self.judge("missing_rate", abs(self.missing_rate_delta), thresholds.missing_rate_delta, null_sd=spread)


def _to_float_chunks(values: Any) -> Iterable[st.FloatArray]:
    """Float64 views/copies of a column in chunks; missing values become NaN."""
    chunks = getattr(values, "chunks", None)
    if chunks is not None:
        for chunk in chunks:
            yield from _to_float_chunks(chunk)
        return
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        if hasattr(values, "is_null"):
            # pyarrow arrays: nulls become NaN once cast to float.
            values = values.cast("float64").to_numpy(zero_copy_only=False)
        elif getattr(values.dtype, "kind", "") in "fiub":
            # Plain numpy-backed columns: zero-copy for float64, no per-value NA scan.
            values = values.to_numpy()
        else:
            values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    array = np.asarray(values)
    for start in range(0, array.shape[0], CHUNK_ROWS):
        part = array[start : start + CHUNK_ROWS]
        if part.dtype == object:
            part = np.array([np.nan if v is None else v for v in part], dtype=np.float64)
        elif part.dtype != np.float64:
            part = part.astype(np.float64)
        yield part


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return bool(np.isnan(value))
    return type(value).__name__ in ("NAType", "NaTType")


def _category_counts(values: Any) -> tuple[dict[Any, int], int]:
    """(count per distinct raw value, missing count) of a categorical column in any of its usual forms."""
    counted: dict[Any, int] = {}
    missing = 0
    if hasattr(values, "value_counts") and hasattr(values, "isna"):
        dtype: Any = values.dtype
        if dtype.name == "category":
            codes = np.asarray(values.cat.codes)
            counts = np.bincount(codes[codes >= 0], minlength=len(dtype.categories))
            return {c: int(n) for c, n in zip(dtype.categories, counts, strict=True) if n}, int((codes < 0).sum())
        # dropna=False counts the missing in the same hash pass (isna over object strings costs as much again).
        pairs = [(key, int(n)) for key, n in values.value_counts(dropna=False).items()]
    elif hasattr(values, "value_counts") and hasattr(values, "null_count"):
        pairs = [(item["values"], int(item["counts"])) for item in values.value_counts().to_pylist()]
    else:
        pairs = [(v, 1) for v in values]
    for key, n in pairs:
        if _is_missing(key):
            missing += n
        else:
            counted[key] = counted.get(key, 0) + n
    return counted, missing


@functools.lru_cache(maxsize=512)
def _wasserstein_null(grid: bytes, reference_cdf: bytes) -> tuple[float, float]:
    """The baseline's no-drift Wasserstein moments, once per process and profile (scheduled checks reuse it)."""
    return st.wasserstein_null_coefficients(np.frombuffer(grid), np.frombuffer(reference_cdf))


def _reference_rows(profile: Mapping[str, Any]) -> int:
    """Rows the baseline's profile was built on, missing ones included."""
    count = int(profile.get("count") or 0)
    missing_rate = float(profile.get("missing_rate") or 0.0)
    return round(count / (1.0 - missing_rate)) if missing_rate < 1.0 else count


class _NumericAccumulator:
    def __init__(self, profile: Mapping[str, Any]) -> None:
        self.profile = profile
        self.grid = np.asarray(profile["grid"], dtype=np.float64)
        self.reference_cdf = np.asarray(profile["grid_cdf"], dtype=np.float64)
        edges = np.asarray(profile["bin_edges"], dtype=np.float64)
        self.edge_positions = np.searchsorted(self.grid, edges).astype(np.int64)
        if edges.size and not np.array_equal(self.grid[np.minimum(self.edge_positions, self.grid.size - 1)], edges):
            raise BaselineError(f"{profile['name']}: bin edges must be grid values")
        self.reference_shares = np.asarray(profile["bin_proportions"], dtype=np.float64)
        self.cells = st.GridCells(self.grid) if self.grid.size else None
        self.counts = np.zeros(self.grid.size + 1, dtype=np.int64)
        # Where the grid holds the reference's support (its ECDF is flat between grid values), live values off the
        # grid are counted and summed per slot of their interval and placed exactly. Baselines from before the flag
        # existed assumed it of integer features.
        self.off_grid: tuple[st.IntArray, st.FloatArray] | None = None
        if profile.get("grid_holds_support", profile.get("type") == "integer"):
            slots = (self.grid.size + 1) * st.OFF_GRID_SLOTS
            self.off_grid = (np.zeros(slots, dtype=np.int64), np.zeros(slots))
        self.total = 0
        self.missing = 0
        self.value_sum = 0.0
        self.below = 0
        self._null: tuple[float, float] | None = None
        self.excess_below = 0.0
        self.excess_above = 0.0

    def add(self, values: Any) -> None:
        for chunk in _to_float_chunks(values):
            self.total += chunk.size
            missing = np.isnan(chunk)
            n_missing = int(np.count_nonzero(missing))
            self.missing += n_missing
            if self.cells is None or n_missing == chunk.size:
                continue
            cells = self.cells.cells(chunk)
            counts = np.bincount(cells, minlength=self.counts.size)
            counts[0] -= n_missing
            self.counts += counts
            if self.off_grid is not None and self.cells is not None:
                self._add_off_grid(chunk, cells, missing)
            self.value_sum += float(np.sum(chunk, where=~missing) if n_missing else np.sum(chunk))
            low, high = self.grid[0], self.grid[-1]
            below = chunk < low
            n_below = int(np.count_nonzero(below))
            if n_below:
                self.below += n_below
                self.excess_below += float(np.sum(low - chunk[below]))
            if counts[-1]:
                self.excess_above += float(np.sum(chunk[chunk > high] - high))

    def _add_off_grid(self, chunk: st.FloatArray, cells: npt.NDArray[np.intp], missing: npt.NDArray[np.bool_]) -> None:
        """Count and sum the values strictly inside a grid interval, per slot of the interval (integer data off its
        support: usually none, so this costs one comparison)."""
        assert self.off_grid is not None and self.cells is not None
        off = self.cells.padded.take(cells) != chunk
        off &= ~missing
        off &= cells > 0
        off &= cells < self.grid.size
        if not off.any():
            return
        cell, value = cells[off], chunk[off]
        start, end = self.grid[cell - 1], self.grid[cell]
        slot = np.minimum(((value - start) / (end - start) * st.OFF_GRID_SLOTS).astype(np.intp), st.OFF_GRID_SLOTS - 1)
        index = cell * st.OFF_GRID_SLOTS + slot
        counts, sums = self.off_grid
        counts += np.bincount(index, minlength=counts.size)
        sums += np.bincount(index, weights=value, minlength=sums.size)

    def _inside(self, present: int) -> tuple[st.FloatArray, st.FloatArray] | None:
        """(share of the sample, mean) per slot of each grid interval (cells 1 .. size - 1): (intervals, slots)."""
        if self.off_grid is None:
            return None
        counts, sums = (a.reshape(-1, st.OFF_GRID_SLOTS)[1 : self.grid.size] for a in self.off_grid)
        return counts / present, sums / np.maximum(counts, 1)

    def evaluate(self, thresholds: DriftThresholds, *, scores: bool = False) -> FeatureDrift:
        """Statistics and severities. Model scores are judged on PSI and Wasserstein only, by their own thresholds."""
        present = self.total - self.missing
        result = FeatureDrift(
            name=str(self.profile["name"]),
            kind="numeric",
            count=self.total,
            missing_rate=self.missing / self.total if self.total else 0.0,
            baseline_missing_rate=float(self.profile["missing_rate"]),
            psi=0.0,
            baseline_mean=self.profile.get("mean"),
        )
        if present == 0 or self.grid.size == 0:
            return result
        n_eff = st.effective_size(present, int(self.profile.get("count") or 0))
        current_cdf = st.grid_cdf(self.counts)
        shares = st.shares_from_grid_counts(self.counts, self.edge_positions)
        result.psi = st.population_stability_index(self.reference_shares, shares)
        result.ks = st.ks_on_grid(self.reference_cdf, current_cdf)
        result.wasserstein = st.wasserstein_on_grid(
            self.grid,
            self.reference_cdf,
            current_cdf,
            mass_below=self.excess_below / present,
            mass_above=self.excess_above / present,
            inside=self._inside(present),
        )
        result.out_of_range_rate = (self.below + int(self.counts[-1])) / present
        result.mean = self.value_sum / present
        free = max(int(np.count_nonzero(self.reference_shares)) - 1, 0)
        psi = thresholds.prediction_psi if scores else thresholds.psi
        result.judge("psi", result.psi, psi, free / n_eff, np.sqrt(2.0 * free) / n_eff)
        std = self.profile.get("std") or 0.0
        if std > 0:
            result.wasserstein_norm = result.wasserstein / std
            mean, sd = self._wasserstein_null()
            scale = 1.0 / (std * np.sqrt(n_eff))
            wasserstein = thresholds.prediction_wasserstein if scores else thresholds.wasserstein
            result.judge("wasserstein", result.wasserstein_norm, wasserstein, mean * scale, sd * scale)
        if scores:
            return result
        ks_scale = 1.0 / np.sqrt(n_eff)
        result.judge("ks", result.ks, thresholds.ks, st.KOLMOGOROV_MEAN * ks_scale, st.KOLMOGOROV_SD * ks_scale)
        # A new value falls outside the range of N reference values with chance 2 / (N + 1) at most.
        chance = 2.0 / (int(self.profile.get("count") or 0) + 1)
        result.judge(
            "out_of_range", result.out_of_range_rate, thresholds.out_of_range_rate, chance, np.sqrt(chance / present)
        )
        return result

    def _wasserstein_null(self) -> tuple[float, float]:
        if self._null is None:
            self._null = _wasserstein_null(self.grid.tobytes(), self.reference_cdf.tobytes())
        return self._null


class _CategoricalAccumulator:
    def __init__(self, profile: Mapping[str, Any]) -> None:
        self.profile = profile
        self.boolean = profile.get("type") == "boolean"
        self.categories = [str(c) for c in profile["categories"]]
        self.reference_shares = np.asarray(profile["proportions"], dtype=np.float64)
        self.counts: dict[str, int] = {}
        self.total = 0
        self.missing = 0

    def add(self, values: Any) -> None:
        raw, missing = _category_counts(values)
        self.missing += missing
        self.total += missing
        for value, n in raw.items():
            key = normalize_category(value, boolean=self.boolean)
            self.total += n
            if key is None:
                self.missing += n
            else:
                self.counts[key] = self.counts.get(key, 0) + n

    def evaluate(self, thresholds: DriftThresholds) -> FeatureDrift:
        present = self.total - self.missing
        result = FeatureDrift(
            name=str(self.profile["name"]),
            kind="categorical",
            count=self.total,
            missing_rate=self.missing / self.total if self.total else 0.0,
            baseline_missing_rate=float(self.profile["missing_rate"]),
            psi=0.0,
        )
        if present == 0:
            return result
        known = set(self.categories)
        unseen = {k: n for k, n in self.counts.items() if k not in known}
        current = np.array([self.counts.get(c, 0) for c in self.categories] + [sum(unseen.values())], dtype=np.float64)
        current_shares = current / present
        reference = np.append(self.reference_shares, 0.0)
        result.psi = st.population_stability_index(reference, current_shares)
        result.js = st.jensen_shannon_distance(reference, current_shares) if reference.sum() > 0 else 0.0
        result.new_category_rate = float(current_shares[-1])
        result.new_categories = sorted(unseen, key=lambda k: -unseen[k])[:TOP_NEW_CATEGORIES]
        n_eff = st.effective_size(present, int(self.profile.get("count") or 0))
        free = max(int(np.count_nonzero(self.reference_shares)) - 1, 0)
        result.judge("psi", result.psi, thresholds.psi, free / n_eff, np.sqrt(2.0 * free) / n_eff)
        # JS divergence (the distance squared) under no drift is about chi-square(k - 1) / (8 ln 2 n): judged there.
        js_mean, js_sd = free * _JS_NULL_SCALE / n_eff, np.sqrt(2.0 * free) * _JS_NULL_SCALE / n_eff
        excess = max(result.js**2 - js_mean - NOISE_Z * js_sd, 0.0)
        result.judge("js", float(np.sqrt(excess)), thresholds.js)
        result.judge("new_categories", result.new_category_rate, thresholds.new_category_rate)
        return result


def validate_baseline(baseline: Mapping[str, Any]) -> None:
    if baseline.get("kind") != BASELINE_KIND:
        raise BaselineError(f"kind: expected {BASELINE_KIND!r}, got {baseline.get('kind')!r}")
    if baseline.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(f"schema_version: {baseline.get('schema_version')!r} is not {SCHEMA_VERSION}")
    if not baseline.get("features") or "prediction" not in baseline:
        raise BaselineError("features/prediction: the baseline profiles no features or no prediction scores")


class DriftDetector:
    """Feed it column batches (and prediction scores), then ask for the report.

    Columns are keyed by feature name; each may be a numpy array, a pandas Series or a pyarrow array.
    Features absent from a batch count as missing in every row of that batch.
    """

    def __init__(self, baseline: Mapping[str, Any]) -> None:
        validate_baseline(baseline)
        self.baseline = baseline
        self.features: dict[str, _NumericAccumulator | _CategoricalAccumulator] = {
            p["name"]: _NumericAccumulator(p) if p["kind"] == "numeric" else _CategoricalAccumulator(p)
            for p in baseline["features"]
        }
        self.prediction = _NumericAccumulator(baseline["prediction"])
        self.rows = 0

    def add_columns(self, columns: Mapping[str, Any], n_rows: int | None = None) -> None:
        names = [n for n in self.features if n in columns]
        if n_rows is None:
            n_rows = len(columns[names[0]]) if names else 0
        for name, acc in self.features.items():
            if name in columns:
                acc.add(columns[name])
            else:
                acc.add(np.full(n_rows, np.nan) if isinstance(acc, _NumericAccumulator) else [None] * n_rows)
        self.rows += n_rows

    def add_scores(self, scores: Any) -> None:
        self.prediction.add(scores)

    @staticmethod
    def _evaluate_feature(
        acc: _NumericAccumulator | _CategoricalAccumulator, thresholds: DriftThresholds
    ) -> FeatureDrift:
        result = acc.evaluate(thresholds)
        result.judge_missing_rate(thresholds, _reference_rows(acc.profile))
        return result

    def _importances(self) -> dict[str, float]:
        """Each feature's share of the model's importance (the baseline's, else equal shares)."""
        features = self.baseline["features"]
        return importance_shares([p["name"] for p in features], {p["name"]: p.get("importance") for p in features})

    def evaluate(self, thresholds: DriftThresholds, **context: Any) -> dict[str, Any]:
        """The drift report (JSON-serialisable); ``context`` (endpoint, model version, window) is copied in."""
        report: dict[str, Any] = {
            "kind": REPORT_KIND,
            "schema_version": SCHEMA_VERSION,
            **context,
            "contract": self.baseline.get("contract"),
            "sample_count": self.rows,
            "thresholds": asdict(thresholds),
        }
        if self.rows < thresholds.min_samples:
            report.update(
                verdict="insufficient_data",
                drift_detected=False,
                prediction_drift_detected=False,
                features=[],
                prediction=None,
            )
            return report
        results = [self._evaluate_feature(acc, thresholds) for acc in self.features.values()]
        weights = self._importances()
        for r in results:
            r.importance = weights[r.name]
        prediction = self.prediction.evaluate(thresholds, scores=True)
        has_scores = self.prediction.total > self.prediction.missing
        drifted = [r.name for r in results if r.drifted]
        share = len(drifted) / len(results)
        top = max(results, key=lambda r: r.psi)
        worst = max(results, key=lambda r: r.severity)
        weighted = float(sum(weights[r.name] * min(r.severity, 1.0) for r in results))
        drift_detected = worst.severity >= 1.0 or weighted >= thresholds.weighted_severity
        report.update(
            verdict="drift" if drift_detected or prediction.drifted else "no_drift",
            drift_detected=drift_detected,
            prediction_drift_detected=prediction.drifted,
            drifted_features=drifted,
            drifted_share=share,
            max_severity=worst.severity,
            max_severity_feature=worst.name,
            weighted_severity=weighted,
            max_psi=top.psi,
            max_psi_feature=top.name,
            features=[r.to_dict() for r in results],
            prediction=prediction.to_dict() if has_scores else None,
        )
        return report


def detect_drift(
    baseline: Mapping[str, Any],
    columns: Mapping[str, Any],
    scores: Any,
    thresholds: DriftThresholds,
    **context: Any,
) -> dict[str, Any]:
    """One-shot form: the whole window is in memory (a DataFrame or a mapping of columns)."""
    detector = DriftDetector(baseline)
    detector.add_columns(columns)
    if scores is not None:
        detector.add_scores(scores)
    return detector.evaluate(thresholds, **context)
