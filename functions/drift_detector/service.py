"""One drift check of the deployed model: find its baseline and the window's capture, detect, publish, report.

AWS clients are passed in, so the whole flow runs against the embedded local cloud in tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from functions.drift_detector import metric_names as names
from functions.drift_detector.capture import CaptureBatch, FeatureSpec, parse_capture
from functions.drift_detector.logic import DriftDetector, DriftThresholds
from functions.drift_detector.report_html import render_html
from functions.label_quality import metric_names as quality_names
from functions.shared.serving_manifest import load_manifest

# The operator CLI (`mlloop report`) fetches the newest report under this prefix with its siblings (.html).
REPORTS_PREFIX = names.REPORTS_PREFIX
BASELINE_METADATA_KEY = "drift_baseline_uri"
# Capture files are parsed a group at a time: memory follows this size, not the window's traffic.
DEFAULT_PARSE_GROUP_BYTES = 128 << 20
_METRICS_PER_CALL = 500


class DriftCheckError(RuntimeError):
    """The check cannot run (no baseline for the deployed model); the message says what is missing."""


@dataclass(frozen=True)
class DriftSettings:
    endpoint_name: str
    artifacts_bucket: str
    metrics_namespace: str
    window_hours: int
    thresholds: DriftThresholds
    parse_group_bytes: int = DEFAULT_PARSE_GROUP_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DriftSettings:
        source = os.environ if env is None else env
        return cls(
            endpoint_name=source["ENDPOINT_NAME"],
            artifacts_bucket=source["ARTIFACTS_BUCKET"],
            metrics_namespace=source["POWERTOOLS_METRICS_NAMESPACE"],
            window_hours=int(source["DRIFT_WINDOW_HOURS"]),
            thresholds=DriftThresholds(
                psi=float(source["PSI_THRESHOLD"]),
                drifted_share=float(source["DRIFTED_SHARE_THRESHOLD"]),
                prediction_psi=float(source["PREDICTION_PSI_THRESHOLD"]),
                min_samples=int(source["MIN_DRIFT_SAMPLES"]),
                wasserstein=float(source["WASSERSTEIN_THRESHOLD"]),
                out_of_range_rate=float(source["OUT_OF_RANGE_THRESHOLD"]),
                weighted_severity=float(source["WEIGHTED_DRIFT_THRESHOLD"]),
                prediction_wasserstein=float(source["PREDICTION_WASSERSTEIN_THRESHOLD"]),
            ),
        )


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def ending(cls, event: Mapping[str, Any], hours: int, now: datetime) -> Window:
        """Whole hours (capture is filed by hour) up to the hour of the event's `window_end` or `time`, else now."""
        raw = event.get("window_end") or event.get("time")
        end = datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else now
        end = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        span = int(event.get("window_hours") or hours)
        return cls(start=end - timedelta(hours=span), end=end)

    def hours(self) -> Iterator[datetime]:
        hour = self.start
        while hour < self.end:
            yield hour
            hour += timedelta(hours=1)


def _split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise DriftCheckError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _read_json(s3: Any, uri: str) -> dict[str, Any]:
    bucket, key = _split_s3_uri(uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    loaded: dict[str, Any] = json.loads(body)
    return loaded


def baseline_uri_for(sagemaker: Any, model_package_arn: str) -> str:
    package = sagemaker.describe_model_package(ModelPackageName=model_package_arn)
    uri = (package.get("CustomerMetadataProperties") or {}).get(BASELINE_METADATA_KEY)
    if not uri:
        raise DriftCheckError(f"{model_package_arn}: no {BASELINE_METADATA_KEY} in CustomerMetadataProperties")
    return str(uri)


def capture_destination(sagemaker: Any, endpoint_name: str) -> str | None:
    """The endpoint's capture prefix; None when it captures nothing or no longer exists (no traffic to judge)."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
            return None
        raise
    uri = (described.get("DataCaptureConfig") or {}).get("DestinationS3Uri")
    return str(uri).rstrip("/") if uri else None


def capture_keys(
    s3: Any, destination: str, endpoint_name: str, variant: str, window: Window
) -> list[tuple[str, str, int]]:
    """(bucket, key, size) of every capture object of the variant filed under the window's hours."""
    bucket, base = _split_s3_uri(destination)
    base = f"{base.rstrip('/')}/" if base else ""
    found: list[tuple[str, str, int]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for hour in window.hours():
        prefix = f"{base}{endpoint_name}/{variant}/{hour:%Y/%m/%d/%H}/"
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            found.extend((bucket, o["Key"], int(o["Size"])) for o in page.get("Contents", []))
    return found


def read_capture(
    s3: Any, objects: list[tuple[str, str, int]], spec: FeatureSpec, detector: DriftDetector, group_bytes: int
) -> int:
    """Stream capture objects into the detector a group at a time; returns the records that could not be read."""
    skipped = 0
    group: list[bytes] = []
    size = 0

    def flush() -> int:
        batch = parse_capture(b"".join(group), spec, CaptureBatch())
        batch.feed(detector)
        return batch.records_skipped

    for bucket, key, _ in objects:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        # Flushing before the group would outgrow its size keeps memory to the group size (or one object) and
        # lets an object as large as a group be parsed alone, from its own bytes, with no joined copy.
        if group and size + len(body) > group_bytes:
            skipped += flush()
            group, size = [], 0
        group.append(body if body.endswith(b"\n") else body + b"\n")
        size += len(body)
    if group:
        skipped += flush()
    return skipped


def drift_metrics(report: Mapping[str, Any], endpoint_name: str) -> list[dict[str, Any]]:
    """CloudWatch MetricData for a report: aggregates always, drift values only when there was a verdict."""
    endpoint = [{"Name": names.ENDPOINT_DIMENSION, "Value": endpoint_name}]
    sufficient = report["verdict"] != "insufficient_data"

    def datum(name: str, value: float, unit: str = "None", extra: list[dict[str, str]] | None = None) -> dict[str, Any]:
        return {"MetricName": name, "Value": float(value), "Unit": unit, "Dimensions": endpoint + (extra or [])}

    data = [
        datum(names.SAMPLE_COUNT, report["sample_count"], "Count"),
        datum(names.INSUFFICIENT_DATA, 0 if sufficient else 1),
    ]
    version = str(report.get("model_version") or "")
    if version.isdigit():
        data.append(datum(names.DEPLOYED_MODEL_VERSION, int(version)))
    if not sufficient:
        return data
    data += [
        datum(names.DRIFTED_SHARE, report["drifted_share"]),
        datum(names.DRIFTED_COUNT, len(report["drifted_features"]), "Count"),
        datum(names.MAX_PSI, report["max_psi"]),
        datum(names.MAX_FEATURE_SEVERITY, report["max_severity"]),
        datum(names.WEIGHTED_SEVERITY, report["weighted_severity"]),
    ]
    if report.get("prediction"):
        data.append(datum(names.PREDICTION_PSI, report["prediction"]["psi"]))
        data.append(datum(names.PREDICTION_SEVERITY, report["prediction"]["severity"]))
    for feature in report["features"]:
        dim = [{"Name": names.FEATURE_DIMENSION, "Value": feature["name"]}]
        data.append(datum(names.FEATURE_PSI, feature["psi"], extra=dim))
        data.append(datum(names.FEATURE_SEVERITY, feature["severity"], extra=dim))
        data.append(datum(names.FEATURE_DRIFTED, 1 if feature["drifted"] else 0, extra=dim))
    return data


def publish_metrics(cloudwatch: Any, namespace: str, data: list[dict[str, Any]], timestamp: datetime) -> None:
    for start in range(0, len(data), _METRICS_PER_CALL):
        chunk = [{**d, "Timestamp": timestamp} for d in data[start : start + _METRICS_PER_CALL]]
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=chunk)


_QUALITY_FIELDS = ("verdict", "labeled_predictions", "auc", "precision", "recall", "positive_rate", "mean_score")


def latest_live_quality(s3: Any, bucket: str, endpoint_name: str) -> dict[str, Any] | None:
    """The newest live-quality report of the endpoint, per model version (functions/label_quality): the drift report
    shows beside the inputs' drift how each version did on the labels that have arrived. None before the first."""
    prefix = f"{quality_names.REPORTS_PREFIX}/{endpoint_name}/"
    keys = [
        str(item["Key"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if str(item["Key"]).endswith(quality_names.REPORT_NAME)
    ]
    if not keys:
        return None
    # Keys carry yyyy/mm/dd/hh: the greatest is the newest.
    newest = max(keys)
    report = json.loads(s3.get_object(Bucket=bucket, Key=newest)["Body"].read())

    def summary(quality: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: quality.get(k) for k in _QUALITY_FIELDS}
        out["expected_calibration_error"] = (quality.get("calibration") or {}).get("expected_calibration_error")
        return out

    return {
        "report_uri": f"s3://{bucket}/{newest}",
        "generated_at": report.get("generated_at"),
        "window_start": report.get("window_start"),
        "overall": summary(report),
        "by_model_version": {
            str(version): {
                **summary(quality),
                "by_day": {day: summary(q) for day, q in (quality.get("by_day") or {}).items()},
            }
            for version, quality in (report.get("by_model_version") or {}).items()
        },
    }


def report_keys(endpoint_name: str, window: Window) -> dict[str, str]:
    folder = f"{REPORTS_PREFIX}/{endpoint_name}/{window.end:%Y/%m/%d/%H}"
    return {"json": f"{folder}/{names.REPORT_NAME}", "html": f"{folder}/drift_report.html"}


def run_drift_check(
    event: Mapping[str, Any], *, settings: DriftSettings, s3: Any, sagemaker: Any, cloudwatch: Any, now: datetime
) -> dict[str, Any]:
    """Check the window the event names (or the last `window_hours` whole hours) and return the summary."""
    window = Window.ending(event, settings.window_hours, now)
    manifest = load_manifest(s3, settings.artifacts_bucket, settings.endpoint_name)
    if manifest is None:
        return {"verdict": "no_model", "endpoint": settings.endpoint_name}
    baseline_uri = str(event.get("baseline_uri") or baseline_uri_for(sagemaker, manifest.model_package_arn))
    baseline = _read_json(s3, baseline_uri)
    detector = DriftDetector(baseline)
    destination = capture_destination(sagemaker, settings.endpoint_name)
    objects = (
        capture_keys(s3, destination, settings.endpoint_name, manifest.variant_name, window) if destination else []
    )
    skipped = read_capture(s3, objects, FeatureSpec.from_baseline(baseline), detector, settings.parse_group_bytes)
    report = detector.evaluate(
        settings.thresholds,
        endpoint=settings.endpoint_name,
        variant=manifest.variant_name,
        model_version=manifest.model_version,
        model_package_arn=manifest.model_package_arn,
        baseline_uri=baseline_uri,
        window_start=f"{window.start:%Y-%m-%dT%H:%M:%SZ}",
        window_end=f"{window.end:%Y-%m-%dT%H:%M:%SZ}",
        capture_objects=len(objects),
        records_skipped=skipped,
    )
    # An on-demand check of the current hour ends in the future; metrics stamped there would be invisible to the
    # alarms (CloudWatch evaluates periods ending now), so the verdict is stamped no later than now.
    stamp = min(window.end, now)
    publish_metrics(cloudwatch, settings.metrics_namespace, drift_metrics(report, settings.endpoint_name), stamp)
    report["live_quality"] = latest_live_quality(s3, settings.artifacts_bucket, settings.endpoint_name)
    keys = report_keys(settings.endpoint_name, window)
    body = json.dumps(report, separators=(",", ":"), allow_nan=False).encode()
    s3.put_object(Bucket=settings.artifacts_bucket, Key=keys["json"], Body=body, ContentType="application/json")
    s3.put_object(
        Bucket=settings.artifacts_bucket,
        Key=keys["html"],
        Body=render_html(report).encode(),
        ContentType="text/html; charset=utf-8",
    )
    return {
        "verdict": report["verdict"],
        "endpoint": settings.endpoint_name,
        "model_version": manifest.model_version,
        "sample_count": report["sample_count"],
        "drifted_features": report.get("drifted_features", []),
        "max_severity_feature": report.get("max_severity_feature"),
        "report": f"s3://{settings.artifacts_bucket}/{keys['json']}",
    }
