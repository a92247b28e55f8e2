"""Evaluation for the decision: ranking and calibration metrics, a cost-policy threshold, slices, and the
SageMaker ModelMetrics-shaped report."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from functions.shared.contract import DataContract
from training.calibration import expected_calibration_error
from training.decision import ThresholdPolicy

MISSING_SLICE = "<missing>"


def ranking_and_calibration(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> dict[str, float]:
    """Threshold-free metrics; AUCs are NaN-free only when both classes are present (callers ensure it)."""
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, clipped, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, bins=bins),
        "rows": len(y),
        "positive_rate": float(y.mean()),
        "mean_probability": float(p.mean()),
    }


def choose_threshold(y: np.ndarray, p: np.ndarray, policy: ThresholdPolicy) -> float:
    """The probability at or above which a row is called positive, from the policy, on validation data."""
    order = np.argsort(-p, kind="stable")
    sorted_p = p[order]
    positives = int(y.sum())
    true_pos = np.cumsum(y[order])
    false_pos = np.arange(1, len(p) + 1) - true_pos
    # A cut is only valid where the next probability differs: equal scores get one label.
    last_of_tie = np.append(sorted_p[1:] != sorted_p[:-1], True)
    cuts = np.flatnonzero(last_of_tie)
    never_positive = float(np.nextafter(sorted_p[0], np.inf))
    if policy.target is not None:
        kind, value = policy.target
        tp, fp = true_pos[cuts], false_pos[cuts]
        met = np.flatnonzero(tp / (tp + fp) >= value if kind == "precision" else tp >= value * positives)
        if not met.size:
            # Unreachable: nothing is called positive, which the promotion gate refuses as one-sided.
            return never_positive
        # Precision: the lowest cut reaching it (the most recall); recall: the highest (the most precision).
        return float(sorted_p[cuts[met[-1] if kind == "precision" else met[0]]])
    costs = policy.cost_false_positive * false_pos[cuts] + policy.cost_false_negative * (positives - true_pos[cuts])
    if policy.positive_budget is not None:
        within = (cuts + 1) <= policy.positive_budget * len(p)
        if not within.any():
            return never_positive
        costs = np.where(within, costs, np.inf)
    no_positive_cost = policy.cost_false_negative * positives
    best = int(np.argmin(costs))
    if costs[best] >= no_positive_cost:
        return never_positive
    return float(sorted_p[cuts[best]])


def metrics_at_threshold(y: np.ndarray, p: np.ndarray, threshold: float, policy: ThresholdPolicy) -> dict[str, float]:
    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    tn = int(np.sum(~predicted & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    cost = policy.cost_false_positive * fp + policy.cost_false_negative * fn
    return {
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / len(y),
        "predicted_positive_rate": float(predicted.mean()),
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "true_negatives": tn,
        "expected_cost_per_row": cost / len(y),
        "expected_cost_per_1000": 1000 * cost / len(y),
    }


def evaluate_scores(
    y: np.ndarray, p: np.ndarray, threshold: float, policy: ThresholdPolicy, *, bins: int = 10
) -> dict[str, float]:
    return {**ranking_and_calibration(y, p, bins=bins), **metrics_at_threshold(y, p, threshold, policy)}


def slice_report(
    frame: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    contract: DataContract,
    *,
    threshold: float,
    policy: ThresholdPolicy,
    min_rows: int,
    bins: int = 10,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The same metrics for every value of every categorical feature with enough rows and both outcomes."""
    report: dict[str, dict[str, dict[str, Any]]] = {}
    for feature in contract.categorical_features:
        column = frame[feature.name].astype(object)
        keys = column.where(column.notna(), MISSING_SLICE).to_numpy()
        per_value: dict[str, dict[str, Any]] = {}
        for value in (*feature.categories, MISSING_SLICE):
            members = keys == value
            rows = int(members.sum())
            if rows == 0:
                continue
            if rows < min_rows or len(np.unique(y[members])) < 2:
                per_value[value] = {"rows": rows, "skipped": f"fewer than {min_rows} rows or one outcome only"}
                continue
            per_value[value] = evaluate_scores(y[members], p[members], threshold, policy, bins=bins)
        report[feature.name] = per_value
    return report


# Rows each shuffle is scored on: an AUC on 10,000 rows has a standard error under 0.01, enough to rank features
# and weigh their drift, while the whole validation split of a year of traffic cost more than the fit itself.
IMPORTANCE_ROWS = 10_000


def permutation_importances(
    model: Any, features: pd.DataFrame, y: np.ndarray, *, seed: int, repeats: int = 5
) -> dict[str, float]:
    """Mean drop in ROC AUC on held-out rows when one feature's column is shuffled, per feature (scikit-learn's
    permutation_importance over the whole pipeline, so a feature counts with everything encoded from it).

    Empty when the rows hold one class only: AUC is undefined there, and the drift detector then weighs features
    equally.
    """
    from sklearn.inspection import permutation_importance

    if len(np.unique(y)) < 2:
        return {}
    result = permutation_importance(
        model,
        features,
        y,
        scoring="roc_auc",
        n_repeats=repeats,
        random_state=seed,
        max_samples=min(len(features), IMPORTANCE_ROWS),
    )
    return {str(name): float(drop) for name, drop in zip(features.columns, result.importances_mean, strict=True)}


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil (1982): deterministic, so the same data gives the same report."""
    if positives == 0 or negatives == 0:
        return 0.0
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    return math.sqrt(max(variance, 0.0))


def _proportion(value: float, n: int) -> dict[str, float]:
    return {"value": value, "standard_deviation": math.sqrt(value * (1 - value) / n) if n else 0.0}


def model_metrics_document(test: dict[str, Any]) -> dict[str, Any]:
    """The `binary_classification_metrics` section SageMaker's ModelMetrics (model quality) expects."""
    positives = test["true_positives"] + test["false_negatives"]
    negatives = test["false_positives"] + test["true_negatives"]
    rows = positives + negatives
    predicted_pos = test["true_positives"] + test["false_positives"]
    return {
        "binary_classification_metrics": {
            "confusion_matrix": {
                "0": {"0": test["true_negatives"], "1": test["false_positives"]},
                "1": {"0": test["false_negatives"], "1": test["true_positives"]},
            },
            "auc": {
                "value": test["roc_auc"],
                "standard_deviation": auc_standard_error(test["roc_auc"], positives, negatives),
            },
            "pr_auc": {"value": test["pr_auc"], "standard_deviation": 0.0},
            "precision": _proportion(test["precision"], predicted_pos),
            "recall": _proportion(test["recall"], positives),
            "true_positive_rate": _proportion(test["recall"], positives),
            "false_positive_rate": _proportion(test["false_positives"] / negatives if negatives else 0.0, negatives),
            "accuracy": _proportion(test["accuracy"], rows),
            "f1": {"value": test["f1"], "standard_deviation": 0.0},
            "log_loss": {"value": test["log_loss"], "standard_deviation": 0.0},
            "brier_score": {"value": test["brier"], "standard_deviation": 0.0},
            "expected_calibration_error": {"value": test["ece"], "standard_deviation": 0.0},
        }
    }


def measure_latency_ms(
    score_one: Callable[[Any], object], payloads: Sequence[Any], *, warmup: int = 20
) -> dict[str, float]:
    """Per-call latency of the serving path on single records (reported, never gated: it depends on the host)."""
    for payload in list(payloads)[:warmup]:
        score_one(payload)
    samples = []
    for payload in payloads:
        start = time.perf_counter()
        score_one(payload)
        samples.append((time.perf_counter() - start) * 1000.0)
    ordered = sorted(samples)
    return {
        "calls": len(samples),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)],
        "mean_ms": statistics.fmean(ordered),
    }
