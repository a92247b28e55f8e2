"""The monitoring jobs as deployed in the dev stage run their real handlers with the template's environment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

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


def _deployed_model(cloud: LocalCloud) -> ServingManifest:
    """The model serving the dev endpoint: an approved package deployed now (the serving tests' tiny model)."""
    before = len(deploy_executions(cloud))
    register_package(cloud, broken=False)
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
