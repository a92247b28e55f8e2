"""Live model quality on delayed labels: join ground truth to logged predictions, then AUC, precision/recall at
the served threshold, and calibration. Plain numpy/pandas, no AWS.

A label joins its prediction by request id when the label carries one; otherwise by entity key and time: the
prediction for that entity made nearest the labelled snapshot's event time, within the label contract's
maximum lag (a snapshot is scored around when it is taken, not weeks later).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from functions.shared.contract import DataContract
from training.calibration import expected_calibration_error, reliability_curve

CALIBRATION_BINS = 10
REQUEST_ID = "request_id"
PREDICTED_AT = "predicted_at"
PROBABILITY = "probability"
DECISION = "label"


def roc_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve via the Mann-Whitney rank statistic (ties get average ranks)."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    negatives = int(y.size - positives)
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_scores = s[order]
    # Average rank for each run of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [s.size]))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def precision_recall(y_true: npt.ArrayLike, decisions: npt.ArrayLike) -> tuple[float, float]:
    y = np.asarray(y_true, dtype=bool)
    d = np.asarray(decisions, dtype=bool)
    true_positives = int(np.sum(y & d))
    predicted, actual = int(d.sum()), int(y.sum())
    precision = true_positives / predicted if predicted else float("nan")
    recall = true_positives / actual if actual else float("nan")
    return precision, recall


def calibration(y_true: npt.ArrayLike, scores: npt.ArrayLike, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Expected calibration error over equal-width score bins (binned as training's evaluation bins them, so
    live and offline figures compare), the Brier score, and the reliability table."""
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    return {
        "expected_calibration_error": expected_calibration_error(y, s, bins=bins) if s.size else 0.0,
        "brier_score": float(np.mean((s - y) ** 2)) if s.size else float("nan"),
        "bins": [
            {
                "lower": b["bin_low"],
                "upper": b["bin_high"],
                "count": int(b["count"]),
                "mean_score": b["mean_probability"],
                "observed_rate": b["observed_rate"],
            }
            for b in reliability_curve(y, s, bins=bins)
        ],
    }


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """One row per label that found its prediction: probability, decision, model version and the true label."""
    label_col = contract.label.name
    wanted = [
        c
        for c in (REQUEST_ID, contract.entity_key, PREDICTED_AT, PROBABILITY, DECISION, "model_version")
        if c in predictions
    ]
    preds = predictions[wanted].dropna(subset=[PROBABILITY])
    labelled = labels.dropna(subset=[label_col])
    if REQUEST_ID in labelled and REQUEST_ID in preds:
        by_request = labelled.dropna(subset=[REQUEST_ID])
        joined = by_request.merge(
            preds.drop(columns=[contract.entity_key], errors="ignore"), on=REQUEST_ID, how="inner"
        )
        rest = labelled[labelled[REQUEST_ID].isna()].drop(columns=[REQUEST_ID])
    else:
        joined = pd.DataFrame()
        rest = labelled
    if len(rest) and contract.entity_key in preds:
        left = rest.assign(_t=pd.to_datetime(rest[contract.event_timestamp], utc=True)).sort_values("_t")
        right = preds.dropna(subset=[contract.entity_key]).assign(_t=pd.to_datetime(preds[PREDICTED_AT], utc=True))
        right = right.drop(columns=[REQUEST_ID], errors="ignore").sort_values("_t")
        left[contract.entity_key] = left[contract.entity_key].astype(str)
        right[contract.entity_key] = right[contract.entity_key].astype(str)
        by_entity = pd.merge_asof(
            left,
            right.drop(columns=[PREDICTED_AT]),
            on="_t",
            by=contract.entity_key,
            direction="nearest",
            tolerance=pd.Timedelta(hours=contract.freshness.max_lag_hours),
        ).dropna(subset=[PROBABILITY])
        joined = pd.concat([joined, by_entity.drop(columns=["_t"])], ignore_index=True)
    return joined


@dataclass
class QualityReport:
    labeled_predictions: int
    labels_received: int
    min_labeled: int
    verdict: str
    auc: float | None = None
    precision: float | None = None
    recall: float | None = None
    positive_rate: float | None = None
    mean_score: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    model_versions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def measure_quality(
    joined: pd.DataFrame, *, contract: DataContract, labels_received: int, min_labeled: int, threshold: float = 0.5
) -> QualityReport:
    """Quality of the joined rows; fewer than ``min_labeled`` rows (or one class only) gives no verdict."""
    n = len(joined)
    report = QualityReport(
        labeled_predictions=n, labels_received=labels_received, min_labeled=min_labeled, verdict="insufficient_data"
    )
    if n == 0:
        return report
    y = joined[contract.label.name].to_numpy(dtype=np.float64) == contract.label.positive_value
    scores = joined[PROBABILITY].to_numpy(dtype=np.float64)
    decisions = joined[DECISION].to_numpy(dtype=np.float64) >= 0.5 if DECISION in joined else scores >= threshold
    if "model_version" in joined:
        report.model_versions = {str(k): int(v) for k, v in joined["model_version"].astype(str).value_counts().items()}
    report.positive_rate = float(y.mean())
    report.mean_score = float(scores.mean())
    if n < min_labeled or y.all() or not y.any():
        return report
    report.verdict = "measured"
    report.auc = _finite(roc_auc(y, scores))
    precision, recall = precision_recall(y, decisions)
    report.precision, report.recall = _finite(precision), _finite(recall)
    report.calibration = calibration(y, scores)
    return report


def quality_by_version(
    joined: pd.DataFrame, *, contract: DataContract, min_labeled: int, threshold: float = 0.5
) -> dict[str, dict[str, Any]]:
    """Per model version: its quality over every labelled prediction of the window, and per day (the labelled
    snapshot's event date, the day the prediction was about). Each version is judged on its own answers only."""
    if not len(joined) or "model_version" not in joined:
        return {}
    days = pd.to_datetime(joined[contract.event_timestamp], utc=True).dt.strftime("%Y-%m-%d")
    out: dict[str, dict[str, Any]] = {}
    for version, rows in joined.groupby(joined["model_version"].astype(str), sort=True):
        report = measure_quality(
            rows, contract=contract, labels_received=len(rows), min_labeled=min_labeled, threshold=threshold
        ).to_dict()
        report["by_day"] = {
            str(day): measure_quality(
                part, contract=contract, labels_received=len(part), min_labeled=min_labeled, threshold=threshold
            ).to_dict()
            for day, part in rows.groupby(days.loc[rows.index], sort=True)
        }
        out[str(version)] = report
    return out


@dataclass(frozen=True)
class AucDrop:
    """How far the serving version's live AUC fell below the AUC its evaluation measured on the test set."""

    model_version: str
    evaluated_auc: float
    live_auc: float
    labeled_predictions: int

    @property
    def drop(self) -> float:
        return self.evaluated_auc - self.live_auc

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop": self.drop}


def auc_drop(
    by_version: dict[str, dict[str, Any]], *, serving_version: str, evaluated_auc: float | None
) -> AucDrop | None:
    """The serving version judged against its own evaluation. None when it has no live AUC (fewer labelled
    predictions than the minimum, or one class only) or no evaluated AUC: no figure is no evidence."""
    quality = by_version.get(serving_version)
    if evaluated_auc is None or not quality or quality.get("verdict") != "measured" or quality.get("auc") is None:
        return None
    return AucDrop(
        model_version=serving_version,
        evaluated_auc=float(evaluated_auc),
        live_auc=float(quality["auc"]),
        labeled_predictions=int(quality["labeled_predictions"]),
    )
