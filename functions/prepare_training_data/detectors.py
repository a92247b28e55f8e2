"""What the champion's detectors recorded, read from their reports in the artifacts bucket: the daily drift
verdicts (functions/drift_detector, one report per hourly run) and the per-day live AUC of the newest live-quality
report (functions/label_quality). The snapshot turns them into the change its window may start at (change.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from functions.drift_detector import metric_names as drift_names
from functions.label_quality import metric_names as quality_names
from functions.prepare_training_data.change import (
    ChangeSignal,
    DayQuality,
    days_of_every_version,
    drift_signals,
    live_auc_signals,
    live_metrics_since,
)


@dataclass(frozen=True)
class DetectorThresholds:
    """The live-AUC alarms' thresholds (the stage's monitoring.min_live_auc and max_live_auc_drop)."""

    min_live_auc: float
    max_live_auc_drop: float


@dataclass(frozen=True)
class DetectorRecord:
    signals: list[ChangeSignal]
    # The live figures per day of every version the live-quality report measured.
    live_days: list[DayQuality]

    def live_since(self, since: date) -> dict[str, float] | None:
        return live_metrics_since(self.live_days, since)


def _keys(s3: Any, bucket: str, prefix: str, start_after: str, suffix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, StartAfter=start_after)
    return sorted(str(i["Key"]) for page in pages for i in page.get("Contents", []) if str(i["Key"]).endswith(suffix))


def _read(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def read_detector_record(
    s3: Any,
    bucket: str,
    endpoint_name: str,
    *,
    evaluated_auc: Callable[[list[str]], dict[str, float]],
    since: date,
    thresholds: DetectorThresholds,
) -> DetectorRecord:
    """The detectors' verdicts since `since`: one drift report a day (the day's last run: keys carry yyyy/mm/dd/hh,
    and a 24-hour window judges the day), and the newest live-quality report's days, each judged against the
    test AUC of the version that served it or of one before it (change.live_auc_signals; `evaluated_auc` looks up
    those of the versions it is given)."""
    drift_prefix = f"{drift_names.REPORTS_PREFIX}/{endpoint_name}/"
    last_of_day: dict[str, str] = {}
    for key in _keys(s3, bucket, drift_prefix, f"{drift_prefix}{since:%Y/%m/%d}", drift_names.REPORT_NAME):
        last_of_day[key.removeprefix(drift_prefix)[:10]] = key
    signals = drift_signals([_read(s3, bucket, key) for key in last_of_day.values()])
    quality_prefix = f"{quality_names.REPORTS_PREFIX}/{endpoint_name}/"
    quality_keys = _keys(s3, bucket, quality_prefix, quality_prefix, quality_names.REPORT_NAME)
    days: list[DayQuality] = []
    if quality_keys:
        days = days_of_every_version(_read(s3, bucket, quality_keys[-1]).get("by_model_version") or {})
    if days:
        signals += live_auc_signals(
            days,
            evaluated_auc=evaluated_auc(sorted({version for version, _, _ in days})),
            min_live_auc=thresholds.min_live_auc,
            max_live_auc_drop=thresholds.max_live_auc_drop,
        )
    return DetectorRecord(signals, days)
