"""A drift check against AWS (moto): finds the deployed model's baseline and the window's capture, publishes
metrics only when there is a verdict, and leaves a JSON and an HTML report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pytest
from moto import mock_aws

from functions.drift_detector import metric_names as names
from functions.drift_detector.logic import DriftThresholds
from functions.drift_detector.service import DriftSettings, Window, drift_metrics, run_drift_check
from functions.shared.contract import load_contract
from functions.shared.serving_manifest import ServingManifest, manifest_key
from mlloop.capture_files import capture_lines
from mlloop.datagen import generate_churn
from training.drift_profile import build_drift_baseline

REGION = "us-east-1"
ENDPOINT = "mlloop-dev-churn"
VARIANT = "v3"
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
CONTRACT = load_contract("churn")


def _settings(min_samples: int = 300) -> DriftSettings:
    return DriftSettings(
        endpoint_name=ENDPOINT,
        artifacts_bucket="artifacts",
        metrics_namespace="MLLoop/dev",
        window_hours=24,
        thresholds=DriftThresholds(min_samples=min_samples),
    )


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sm = boto3.client("sagemaker", region_name=REGION)
        cw = boto3.client("cloudwatch", region_name=REGION)
        for bucket in ("artifacts", "capture"):
            s3.create_bucket(Bucket=bucket)
        reference = generate_churn(3_000, seed=1)
        baseline = build_drift_baseline(reference, CONTRACT, np.random.default_rng(0).beta(2, 5, len(reference)))
        s3.put_object(Bucket="artifacts", Key="training/run-1/drift_baseline.json", Body=json.dumps(baseline))
        sm.create_model_package_group(ModelPackageGroupName="mlloop-dev-churn")
        package = sm.create_model_package(
            ModelPackageGroupName="mlloop-dev-churn",
            ModelApprovalStatus="Approved",
            CustomerMetadataProperties={"drift_baseline_uri": "s3://artifacts/training/run-1/drift_baseline.json"},
        )["ModelPackageArn"]
        sm.create_model(
            ModelName="m3", ExecutionRoleArn="arn:aws:iam::123456789012:role/x", PrimaryContainer={"Image": "i"}
        )
        sm.create_endpoint_config(
            EndpointConfigName="c3",
            ProductionVariants=[
                {"VariantName": VARIANT, "ModelName": "m3", "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}
            ],
            DataCaptureConfig={
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": "s3://capture/datacapture",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
        )
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="c3")
        manifest = ServingManifest(
            endpoint_name=ENDPOINT,
            model_version="3",
            model_package_arn=package,
            endpoint_config_name="c3",
            variant_name=VARIANT,
            model_name="m3",
            contract=CONTRACT.to_dict(),
            threshold=0.5,
            deployed_at="2026-11-20T00:00:00Z",
        )
        s3.put_object(Bucket="artifacts", Key=manifest_key(ENDPOINT), Body=manifest.to_json())
        yield s3, sm, cw


def _capture(s3, frame, hour: datetime, name: str) -> None:
    scores = np.random.default_rng(len(frame)).beta(2, 5, len(frame))
    key = f"datacapture/{ENDPOINT}/{VARIANT}/{hour:%Y/%m/%d/%H}/{name}.jsonl"
    s3.put_object(Bucket="capture", Key=key, Body=capture_lines(frame, scores, feature_order=CONTRACT.feature_names))


def _metrics(cw) -> dict[str, float]:
    found = {}
    for metric in cw.list_metrics(Namespace="MLLoop/dev")["Metrics"]:
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        stats = cw.get_metric_statistics(
            Namespace="MLLoop/dev",
            MetricName=metric["MetricName"],
            Dimensions=metric["Dimensions"],
            StartTime=NOW - timedelta(days=2),
            EndTime=NOW + timedelta(days=1),
            Period=3600,
            Statistics=["Maximum"],
        )["Datapoints"]
        key = metric["MetricName"] + (f"/{dims[names.FEATURE_DIMENSION]}" if names.FEATURE_DIMENSION in dims else "")
        found[key] = stats[0]["Maximum"]
    return found


def test_drifted_window_publishes_verdict_metrics_and_reports(aws):
    s3, sm, cw = aws
    drifted = generate_churn(400, seed=7, drift={"monthly_charges": 1.0, "support_calls_90d": 1.0, "plan": 0.6})
    _capture(s3, drifted.iloc[:200], NOW - timedelta(hours=3), "a")
    _capture(s3, drifted.iloc[200:], NOW - timedelta(hours=1), "b")
    _capture(s3, generate_churn(500, seed=8), NOW - timedelta(hours=30), "old")  # outside the window

    summary = run_drift_check(
        {"time": "2026-11-22T09:30:00Z"}, settings=_settings(), s3=s3, sagemaker=sm, cloudwatch=cw, now=NOW
    )

    assert summary["verdict"] == "drift"
    assert summary["sample_count"] == 400
    assert {"monthly_charges", "plan"} <= set(summary["drifted_features"])
    published = _metrics(cw)
    assert published[names.SAMPLE_COUNT] == 400
    assert published[names.INSUFFICIENT_DATA] == 0
    assert published[names.DRIFTED_SHARE] >= 0.1
    assert published[names.DEPLOYED_MODEL_VERSION] == 3
    assert published[f"{names.FEATURE_PSI}/monthly_charges"] >= 0.2
    assert published[names.MAX_FEATURE_SEVERITY] >= 1
    assert published[f"{names.FEATURE_SEVERITY}/monthly_charges"] >= 1
    assert names.WEIGHTED_SEVERITY in published
    report = json.loads(
        s3.get_object(Bucket="artifacts", Key="drift-reports/mlloop-dev-churn/2026/11/22/09/drift_report.json")[
            "Body"
        ].read()
    )
    assert report["model_version"] == "3"
    assert report["window_start"] == "2026-11-21T09:00:00Z"
    html = s3.get_object(Bucket="artifacts", Key="drift-reports/mlloop-dev-churn/2026/11/22/09/drift_report.html")
    assert b"<svg" in html["Body"].read()


def test_too_little_traffic_publishes_no_drift_values(aws):
    s3, sm, cw = aws
    _capture(s3, generate_churn(50, seed=9, drift={"monthly_charges": 3.0}), NOW - timedelta(hours=2), "a")

    summary = run_drift_check({}, settings=_settings(), s3=s3, sagemaker=sm, cloudwatch=cw, now=NOW)

    assert summary["verdict"] == "insufficient_data"
    published = _metrics(cw)
    assert published[names.INSUFFICIENT_DATA] == 1
    assert published[names.SAMPLE_COUNT] == 50
    assert names.DRIFTED_SHARE not in published
    assert names.PREDICTION_PSI not in published
    assert names.MAX_FEATURE_SEVERITY not in published


def test_no_deployed_model_means_nothing_to_check(aws):
    s3, sm, cw = aws
    s3.delete_object(Bucket="artifacts", Key=manifest_key(ENDPOINT))

    summary = run_drift_check({}, settings=_settings(), s3=s3, sagemaker=sm, cloudwatch=cw, now=NOW)

    assert summary["verdict"] == "no_model"
    assert cw.list_metrics(Namespace="MLLoop/dev")["Metrics"] == []


def test_on_demand_window_and_settings_from_environment():
    window = Window.ending({"window_end": "2026-11-22T09:59:00Z", "window_hours": 2}, 24, NOW)
    env = {
        "ENDPOINT_NAME": ENDPOINT,
        "ARTIFACTS_BUCKET": "a",
        "POWERTOOLS_METRICS_NAMESPACE": "MLLoop/dev",
        "DRIFT_WINDOW_HOURS": "24",
        "MIN_DRIFT_SAMPLES": "500",
        "PSI_THRESHOLD": "0.2",
        "DRIFTED_SHARE_THRESHOLD": "0.1",
        "PREDICTION_PSI_THRESHOLD": "0.25",
        "WASSERSTEIN_THRESHOLD": "0.08",
        "OUT_OF_RANGE_THRESHOLD": "0.01",
        "WEIGHTED_DRIFT_THRESHOLD": "0.3",
        "PREDICTION_WASSERSTEIN_THRESHOLD": "0.075",
    }

    assert [f"{h:%H}" for h in window.hours()] == ["07", "08"]
    thresholds = DriftSettings.from_env(env).thresholds
    assert (thresholds.prediction_psi, thresholds.wasserstein, thresholds.out_of_range_rate) == (0.25, 0.08, 0.01)
    assert (thresholds.weighted_severity, thresholds.prediction_wasserstein) == (0.3, 0.075)
    assert drift_metrics({"verdict": "insufficient_data", "sample_count": 3}, ENDPOINT)[0]["Value"] == 3.0


def test_a_deleted_endpoint_is_no_traffic_not_an_error(aws):
    s3, sm, cw = aws
    sm.delete_endpoint(EndpointName=ENDPOINT)

    summary = run_drift_check({}, settings=_settings(), s3=s3, sagemaker=sm, cloudwatch=cw, now=NOW)

    assert summary["verdict"] == "insufficient_data"
    assert summary["sample_count"] == 0


def test_an_on_demand_check_of_the_current_hour_publishes_its_verdict_now(aws):
    s3, sm, cw = aws
    _capture(s3, generate_churn(400, seed=7, drift={"monthly_charges": 1.0}), NOW, "current-hour")

    summary = run_drift_check(
        {"window_end": "2026-11-22T10:30:00Z", "window_hours": 1},
        settings=_settings(),
        s3=s3,
        sagemaker=sm,
        cloudwatch=cw,
        now=NOW,
    )

    assert summary["sample_count"] == 400
    # Alarms evaluate periods ending now: a verdict stamped at the window's end (10:00) would be invisible until then.
    points = cw.get_metric_statistics(
        Namespace="MLLoop/dev",
        MetricName=names.SAMPLE_COUNT,
        Dimensions=[{"Name": names.ENDPOINT_DIMENSION, "Value": ENDPOINT}],
        StartTime=NOW - timedelta(minutes=5),
        EndTime=NOW + timedelta(minutes=5),
        Period=600,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [p["Maximum"] for p in points] == [400]


def test_the_drift_report_carries_the_newest_live_quality_per_model_version(aws):
    # Given two quality runs of the endpoint, the newer measuring v3 and v4 separately
    s3, sm, cw = aws
    _capture(s3, generate_churn(300, seed=9), NOW - timedelta(hours=1), "a")
    older = {"generated_at": "2026-11-20T06:00:00Z", "auc": 0.5, "by_model_version": {}}
    newer = {
        "generated_at": "2026-11-22T06:00:00Z",
        "verdict": "measured",
        "auc": 0.74,
        "calibration": {"expected_calibration_error": 0.03},
        "by_model_version": {
            "3": {"verdict": "measured", "auc": 0.71, "precision": 0.5, "recall": 0.6, "calibration": {}, "by_day": {}},
            "4": {
                "verdict": "measured",
                "auc": 0.79,
                "calibration": {"expected_calibration_error": 0.02},
                "by_day": {"2026-11-21": {"verdict": "measured", "auc": 0.8}},
            },
        },
    }
    for day, doc in (("2026/11/20/06", older), ("2026/11/22/06", newer)):
        key = f"monitoring/quality/mlloop-dev-churn/{day}/quality_report.json"
        s3.put_object(Bucket="artifacts", Key=key, Body=json.dumps(doc).encode())

    # When the drift check runs
    summary = run_drift_check(
        {"time": "2026-11-22T09:30:00Z"}, settings=_settings(), s3=s3, sagemaker=sm, cloudwatch=cw, now=NOW
    )

    # Then its report shows each version's live quality from the newest quality run
    report = json.loads(s3.get_object(Bucket="artifacts", Key=summary["report"].split("/", 3)[3])["Body"].read())
    live = report["live_quality"]
    assert live["generated_at"] == "2026-11-22T06:00:00Z"
    assert live["overall"]["auc"] == 0.74 and live["overall"]["expected_calibration_error"] == 0.03
    assert live["by_model_version"]["3"]["auc"] == 0.71
    assert live["by_model_version"]["4"]["expected_calibration_error"] == 0.02
    assert live["by_model_version"]["4"]["by_day"]["2026-11-21"]["auc"] == 0.8
