"""One live-quality run: read the curated labels and the prediction log of the lookback window, join, measure,
publish and report. AWS clients are passed in, so the run is testable against the embedded local cloud."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from functions.label_quality import metric_names as names
from functions.label_quality.logic import (
    AucDrop,
    QualityReport,
    auc_drop,
    join_labels,
    measure_quality,
    quality_by_version,
)
from functions.shared.contract import DataContract, load_contract
from functions.shared.package_metadata import evaluated_metric
from functions.shared.serving_manifest import load_manifest
from functions.shared.settings import load_settings

REPORTS_PREFIX = names.REPORTS_PREFIX
# The figure registration records from the candidate's evaluation on its test set (register_model.logic).
EVALUATED_METRIC = "roc_auc"
# PutMetricData takes at most 1000 metrics a call (PutMetricData API reference); a version adds seven.
MAX_METRICS_PER_CALL = 1000
_PARTITION = {"labels": "event_date=", "predictions": "prediction_date="}


@dataclass(frozen=True)
class QualitySettings:
    endpoint_name: str
    curated_bucket: str
    labels_dataset: str
    predictions_bucket: str
    predictions_prefix: str
    artifacts_bucket: str
    metrics_namespace: str
    lookback_days: int
    min_labeled: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> QualitySettings:
        source = os.environ if env is None else env
        return load_settings(cls, source, metrics_namespace=source.get("POWERTOOLS_METRICS_NAMESPACE", ""))


def _keys_since(s3: Any, bucket: str, prefix: str, partition: str, since: str) -> list[str]:
    """Object keys under `prefix/` whose `partition=YYYY-MM-DD` folder is on or after `since`."""
    keys: list[str] = []
    # Keys sort by their date folder: the listing starts at the window instead of walking all history.
    start_after = f"{prefix}/{partition}{since}"
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/", StartAfter=start_after)
    for page in pages:
        for item in page.get("Contents", []):
            key = str(item["Key"])
            marker = key.find(partition)
            if marker >= 0 and key[marker + len(partition) : marker + len(partition) + 10] >= since:
                keys.append(key)
    return keys


def read_labels(s3: Any, settings: QualitySettings, since: str) -> pd.DataFrame:
    frames = []
    for key in _keys_since(s3, settings.curated_bucket, settings.labels_dataset, _PARTITION["labels"], since):
        if key.endswith(".parquet"):
            body = s3.get_object(Bucket=settings.curated_bucket, Key=key)["Body"].read()
            frames.append(pd.read_parquet(io.BytesIO(body)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_predictions(s3: Any, settings: QualitySettings, since: str) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    keys = _keys_since(s3, settings.predictions_bucket, settings.predictions_prefix, _PARTITION["predictions"], since)
    for key in keys:
        body = s3.get_object(Bucket=settings.predictions_bucket, Key=key)["Body"].read().decode()
        rows.extend(json.loads(line) for line in body.splitlines() if line.strip())
    # The table is the stage's, shared by its models, whose version numbers repeat: only this endpoint's answers
    # (rows logged before rows named their endpoint are a single-model stage's own).
    own = [r for r in rows if r.get("endpoint_name") in (None, settings.endpoint_name)]
    return pd.DataFrame(own)


def quality_metrics(report: QualityReport, endpoint_name: str, model_version: str = "") -> list[dict[str, Any]]:
    dims = [{"Name": names.ENDPOINT_DIMENSION, "Value": endpoint_name}]
    if model_version:
        dims.append({"Name": names.MODEL_VERSION_DIMENSION, "Value": model_version})
    values: list[tuple[str, float | None, str]] = [
        (names.LABELED_PREDICTIONS, report.labeled_predictions, "Count"),
        (names.INSUFFICIENT_DATA, 0 if report.verdict == "measured" else 1, "None"),
    ]
    if report.verdict == "measured":
        values += [
            (names.LIVE_AUC, report.auc, "None"),
            (names.LIVE_PRECISION, report.precision, "None"),
            (names.LIVE_RECALL, report.recall, "None"),
            (names.CALIBRATION_ERROR, report.calibration.get("expected_calibration_error"), "None"),
            (names.BRIER_SCORE, report.calibration.get("brier_score"), "None"),
        ]
    return [
        {"MetricName": name, "Value": float(value), "Unit": unit, "Dimensions": dims}
        for name, value, unit in values
        if value is not None
    ]


def auc_drop_metrics(drop: AucDrop, endpoint_name: str) -> list[dict[str, Any]]:
    """The drop per endpoint (what the alarm watches) and per version (which version it was)."""
    endpoint = {"Name": names.ENDPOINT_DIMENSION, "Value": endpoint_name}
    version = {"Name": names.MODEL_VERSION_DIMENSION, "Value": drop.model_version}
    return [
        {"MetricName": names.LIVE_AUC_DROP, "Value": float(drop.drop), "Unit": "None", "Dimensions": dims}
        for dims in ([endpoint], [endpoint, version])
    ]


def serving_evaluation(s3: Any, sagemaker: Any, settings: QualitySettings) -> tuple[str, float | None] | None:
    """The version the endpoint serves (its manifest) and the test AUC its model package recorded; None before
    the first deploy."""
    manifest = load_manifest(s3, settings.artifacts_bucket, settings.endpoint_name)
    if manifest is None:
        return None
    package = sagemaker.describe_model_package(ModelPackageName=manifest.model_package_arn)
    return manifest.model_version, evaluated_metric(package.get("CustomerMetadataProperties") or {}, EVALUATED_METRIC)


def run_quality_check(
    *,
    settings: QualitySettings,
    s3: Any,
    cloudwatch: Any,
    sagemaker: Any,
    now: datetime,
    contract: DataContract | None = None,
) -> dict[str, Any]:
    labels_contract = contract or load_contract(settings.labels_dataset)
    since = (now - timedelta(days=settings.lookback_days)).astimezone(UTC).strftime("%Y-%m-%d")
    labels = read_labels(s3, settings, since)
    predictions = read_predictions(s3, settings, since)
    joined = join_labels(predictions, labels, labels_contract) if len(labels) and len(predictions) else pd.DataFrame()
    report = measure_quality(
        joined, contract=labels_contract, labels_received=len(labels), min_labeled=settings.min_labeled
    )
    by_version = quality_by_version(joined, contract=labels_contract, min_labeled=settings.min_labeled)
    data = quality_metrics(report, settings.endpoint_name)
    for version, quality in by_version.items():
        fields = {k: v for k, v in quality.items() if k != "by_day"}
        data += quality_metrics(QualityReport(**fields), settings.endpoint_name, version)
    serving = serving_evaluation(s3, sagemaker, settings)
    drop = auc_drop(by_version, serving_version=serving[0], evaluated_auc=serving[1]) if serving else None
    if drop is not None:
        data += auc_drop_metrics(drop, settings.endpoint_name)
    # Stamped at the run, not at the predictions' days: a label lands window_days after its prediction, and
    # CloudWatch takes data points at most two weeks old (CloudWatch User Guide, "Publish custom metrics").
    # The report below keeps the per-day figures.
    for start in range(0, len(data), MAX_METRICS_PER_CALL):
        cloudwatch.put_metric_data(
            Namespace=settings.metrics_namespace,
            MetricData=[{**d, "Timestamp": now} for d in data[start : start + MAX_METRICS_PER_CALL]],
        )
    document = {
        "kind": "mlloop.quality_report",
        "endpoint": settings.endpoint_name,
        "window_start": since,
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels_contract": labels_contract.ref,
        **report.to_dict(),
        "by_model_version": by_version,
        "auc_drop": drop.to_dict() if drop else None,
    }
    key = f"{REPORTS_PREFIX}/{settings.endpoint_name}/{now:%Y/%m/%d/%H}/{names.REPORT_NAME}"
    s3.put_object(
        Bucket=settings.artifacts_bucket,
        Key=key,
        Body=json.dumps(document, separators=(",", ":"), allow_nan=False).encode(),
        ContentType="application/json",
    )
    return {
        "verdict": report.verdict,
        "labeled_predictions": report.labeled_predictions,
        "auc": report.auc,
        "auc_by_model_version": {v: q["auc"] for v, q in by_version.items()},
        "auc_drop": drop.to_dict() if drop else None,
        "report": f"s3://{settings.artifacts_bucket}/{key}",
    }
