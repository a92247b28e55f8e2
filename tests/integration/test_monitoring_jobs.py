"""The monitoring jobs as deployed in the dev stage run their real handlers with the template's environment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from functions.shared.contract import load_contract
from functions.shared.serving_manifest import ServingManifest, manifest_key
from infra.config import load_stage_config, read_cdk_json_context
from infra.stacks.monitoring import alarm_names
from mlloop.capture_files import capture_lines
from mlloop.datagen import generate_churn
from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.serving_support import deploy_executions, register_package, stage_bucket, wait_for_new_deploy
from training.drift_profile import build_drift_baseline

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


def _invoke(cloud: LocalCloud, deployment: Deployment, name: str, event: dict[str, Any]) -> dict[str, Any]:
    answer = cloud.client("lambda").invoke(FunctionName=deployment.physical_id(name), Payload=json.dumps(event))
    payload = json.loads(answer["Payload"].read())
    assert answer.get("FunctionError") is None, payload
    return dict(payload)


def test_drift_detector_runs_on_schedule_events(local_cloud: LocalCloud, dev_stage: Deployment) -> None:
    event = {"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-22T09:00:00Z", "detail": {}}

    summary = _invoke(local_cloud, dev_stage, "DriftDetectorFunction", event)

    # Which verdict depends on whether another test deployed a model meanwhile; each is a complete answer.
    assert summary["verdict"] in {"no_model", "insufficient_data", "no_drift", "drift"}
    assert summary["endpoint"] == "mlloop-dev-churn"


def test_label_quality_without_labels_gives_no_verdict_and_says_so(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    summary = _invoke(local_cloud, dev_stage, "LabelQualityFunction", {"detail-type": "Scheduled Event"})

    assert summary["verdict"] == "insufficient_data"
    metrics = local_cloud.client("cloudwatch").list_metrics(
        Namespace="MLLoop/dev", MetricName="LabelQualityInsufficientData"
    )["Metrics"]
    assert metrics
    report = summary["report"].removeprefix("s3://").split("/", 1)
    assert local_cloud.client("s3").head_object(Bucket=report[0], Key=report[1])


def _training_machine(stage: Deployment, prefix: str) -> str:
    machines = stage.of_type("AWS::StepFunctions::StateMachine")
    return next(r.physical_id for r in machines if r.physical_id.endswith(f":{prefix}-training"))


def _executions(cloud: LocalCloud, machine: str) -> list[dict[str, Any]]:
    pages = cloud.client("stepfunctions").get_paginator("list_executions").paginate(stateMachineArn=machine)
    return [e for page in pages for e in page["executions"]]


def _deployed_model(cloud: LocalCloud, evaluated_auc: float | None = None) -> ServingManifest:
    """The model serving the dev endpoint: an approved package deployed now (the serving tests' tiny model)."""
    before = len(deploy_executions(cloud))
    register_package(cloud, broken=False, evaluated_auc=evaluated_auc)
    assert wait_for_new_deploy(cloud, before)["status"] == "SUCCEEDED"
    artifacts = stage_bucket(cloud, "artifacts")
    body = cloud.client("s3").get_object(Bucket=artifacts, Key=manifest_key("mlloop-dev-churn"))["Body"].read()
    return ServingManifest.from_json(body)


def test_one_broken_feature_among_12_raises_the_drift_alarms(local_cloud: LocalCloud, dev_stage: Deployment) -> None:
    # Given the churn model deployed with its baseline, and a window of captured traffic in which one of its 12
    # features arrives in another unit (days since the last login sent in weeks: inside the contract's 0-3650 range)
    config = load_stage_config(read_cdk_json_context(), "dev")
    contract = load_contract("churn")
    manifest = _deployed_model(local_cloud)
    s3, artifacts = local_cloud.client("s3"), stage_bucket(local_cloud, "artifacts")
    reference = generate_churn(4_000, seed=41)
    # The tiny model's score is tenure / 240 (serving_support.INFERENCE_PY): the baseline holds the same rule.
    baseline = build_drift_baseline(reference, contract, reference["tenure_months"].to_numpy() / 240.0)
    baseline_key = "training/runs/drift-integration/output/drift_baseline.json"
    s3.put_object(Bucket=artifacts, Key=baseline_key, Body=json.dumps(baseline).encode())
    live = generate_churn(2 * config.monitoring.min_drift_samples, seed=42)
    live["days_since_last_login"] = live["days_since_last_login"] // 7
    destination = local_cloud.client("sagemaker").describe_endpoint(EndpointName=config.endpoint_name)[
        "DataCaptureConfig"
    ]["DestinationS3Uri"]
    bucket, _, prefix = destination.removeprefix("s3://").partition("/")
    now = datetime.now(UTC)
    s3.put_object(
        Bucket=bucket,
        Key=f"{prefix.strip('/')}/{config.endpoint_name}/{manifest.variant_name}/{now:%Y/%m/%d/%H}/drift-test.jsonl",
        Body=capture_lines(live, live["tenure_months"].to_numpy() / 240.0, feature_order=contract.feature_names),
    )

    # When the deployed drift detector checks the current hour, and the alarms are evaluated
    event = {
        "window_end": (now + timedelta(hours=1)).isoformat(),
        "window_hours": 1,
        "baseline_uri": f"s3://{artifacts}/{baseline_key}",
    }
    training = _training_machine(dev_stage, config.prefix)
    started_before = {e["executionArn"] for e in _executions(local_cloud, training)}
    summary = _invoke(local_cloud, dev_stage, "DriftDetectorFunction", event)
    names = alarm_names(config)
    states = local_cloud.evaluate_alarms()
    # The composite's ALARM starts a retraining (unless inside the cooldown): it ends here, not during a later test.
    local_cloud.wait_idle()
    for execution in _executions(local_cloud, training):
        if execution["executionArn"] not in started_before:
            local_cloud.wait_for_execution(execution["executionArn"], timeout=300)

    # Then that one feature is the window's worst, its severity alarm and the retraining composite are in ALARM,
    # while the share of drifted features (1 of 12, under drifted_share_threshold) would not have alarmed alone
    assert summary["verdict"] == "drift", summary
    assert summary["max_severity_feature"] == "days_since_last_login"
    assert "days_since_last_login" in summary["drifted_features"]
    assert states[names["feature-drift"]] == "ALARM"
    assert states[names["drift-traffic"]] == "ALARM"
    assert states[names["retraining-needed"]] == "ALARM"
    assert states[names["prediction-drift"]] != "ALARM"
    assert 1 / len(contract.features) < config.monitoring.drifted_share_threshold


def _labelled_predictions(
    cloud: LocalCloud, version: str, *, rows: int, day: datetime, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Logged predictions of `version` on one day and their delayed labels, through the lake as the jobs read them:
    scores that rank outcomes only weakly (a concept change: same inputs, another relationship)."""
    rng = np.random.default_rng(seed)
    scores = rng.random(rows)
    churned = (rng.random(rows) < 0.1 + 0.5 * scores).astype(int)
    stamp = f"{day:%Y-%m-%dT%H:%M:%SZ}"
    ids = [f"auc-drop-{seed}-{i}" for i in range(rows)]
    predictions = [
        {
            "request_id": rid,
            "customer_id": f"c-{rid}",
            "predicted_at": stamp,
            "probability": float(p),
            "label": int(p >= 0.5),
            "model_version": version,
        }
        for rid, p in zip(ids, scores, strict=True)
    ]
    labels = pd.DataFrame(
        {
            "request_id": ids,
            "customer_id": [f"c-{rid}" for rid in ids],
            "event_time": pd.Timestamp(stamp),
            "churned": churned,
            "label_source": "window_elapsed",
        }
    )
    s3 = cloud.client("s3")
    s3.put_object(
        Bucket=stage_bucket(cloud, "capture"),
        Key=f"predictions/prediction_date={day:%Y-%m-%d}/auc-drop-{seed}.json",
        Body="".join(json.dumps(p) + "\n" for p in predictions).encode(),
    )
    s3.put_object(
        Bucket=stage_bucket(cloud, "curated"),
        Key=f"churn_labels/event_date={day:%Y-%m-%d}/auc-drop-{seed}.parquet",
        Body=labels.to_parquet(index=False),
    )
    return churned, scores


def test_a_live_auc_fall_below_the_evaluated_auc_raises_the_drop_alarm_and_asks_for_retraining(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    # Given a version serving whose evaluation recorded a test AUC of 0.85, and a month later the delayed labels of
    # its predictions: it still ranks (live AUC above the absolute floor) but clearly worse than it was evaluated
    config = load_stage_config(read_cdk_json_context(), "dev")
    names = alarm_names(config)
    manifest = _deployed_model(local_cloud, evaluated_auc=0.85)
    day = datetime.now(UTC) - timedelta(days=35)
    churned, scores = _labelled_predictions(local_cloud, manifest.model_version, rows=1_000, day=day, seed=19)
    training = _training_machine(dev_stage, config.prefix)
    started_before = {e["executionArn"] for e in _executions(local_cloud, training)}

    # When the deployed label-quality job runs and the drop alarm is evaluated
    summary = _invoke(local_cloud, dev_stage, "LabelQualityFunction", {"detail-type": "Scheduled Event"})
    states = local_cloud.evaluate_alarms([names["live-auc-drop"], names["live-auc"]])
    # The composite's ALARM starts a retraining (unless inside the cooldown): it ends here, not during a later test.
    local_cloud.wait_idle()
    for execution in _executions(local_cloud, training):
        if execution["executionArn"] not in started_before:
            local_cloud.wait_for_execution(execution["executionArn"], timeout=300)

    # Then the job measured that version against its own evaluation, and the drop is over the stage's allowance
    drop = summary["auc_drop"]
    assert drop["model_version"] == manifest.model_version
    assert drop["evaluated_auc"] == pytest.approx(0.85)
    assert drop["live_auc"] == pytest.approx(roc_auc_score(churned, scores))
    assert drop["drop"] > config.monitoring.max_live_auc_drop
    # And the relative alarm fires, and with it the retraining composite, where the absolute floor alone is silent
    assert drop["live_auc"] > config.monitoring.min_live_auc
    assert states[names["live-auc-drop"]] == "ALARM"
    assert states[names["live-auc"]] != "ALARM"
    assert states[names["retraining-needed"]] == "ALARM"
    # And its notification says by how much (the data point) and where the version is named
    (alarm,) = local_cloud.client("cloudwatch").describe_alarms(AlarmNames=[names["live-auc-drop"]])["MetricAlarms"]
    assert str(drop["drop"]) in alarm["StateReason"]
    assert "ModelVersion" in alarm["AlarmDescription"]
    # And the report says which version and by how much
    bucket, key = summary["report"].removeprefix("s3://").split("/", 1)
    report = json.loads(local_cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert report["auc_drop"] == drop
