"""The retraining loop on the deployed dev stage: the retraining-needed alarm entering ALARM starts the training
workflow through the trigger function, with the alarm as lineage; a flapping alarm cannot start a storm; and the
drift detector's metrics drive the drift alarms and the composite as deployed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from functions.drift_detector import metric_names as drift_names
from infra.config import load_stage_config, read_cdk_json_context
from infra.stacks.monitoring import alarm_names
from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]
FLAPS = 100


def _executions(cloud: LocalCloud, machine: str) -> list[dict]:
    sfn = cloud.client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine)
    return [e for page in pages for e in page["executions"]]


def _trigger_records(cloud: LocalCloud, bucket: str, alarm: str) -> list[dict]:
    s3 = cloud.client("s3")
    records = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="training/triggers/"):
        for item in page.get("Contents", []):
            record = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            if record.get("trigger", {}).get("source") == alarm:
                records.append(record)
    return records


def _publish_drift_window(cloud: LocalCloud, endpoint: str, *, share: float, samples: int) -> None:
    """The aggregates the drift detector publishes for one window with a verdict."""
    dims = [{"Name": drift_names.ENDPOINT_DIMENSION, "Value": endpoint}]
    stamp = datetime.now(UTC) - timedelta(seconds=30)
    data = [
        (drift_names.SAMPLE_COUNT, samples),
        (drift_names.INSUFFICIENT_DATA, 0),
        (drift_names.DRIFTED_SHARE, share),
        (drift_names.PREDICTION_PSI, 0.01),
        (drift_names.MAX_PSI, 0.6),
    ]
    cloud.client("cloudwatch").put_metric_data(
        Namespace="MLLoop/dev",
        MetricData=[{"MetricName": n, "Value": float(v), "Dimensions": dims, "Timestamp": stamp} for n, v in data],
    )


def test_a_flapping_retraining_alarm_starts_at_most_one_training_run(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    config = load_stage_config(read_cdk_json_context(), "dev")
    alarm = alarm_names(config)["retraining-needed"]
    machine = next(
        r.physical_id
        for r in dev_stage.of_type("AWS::StepFunctions::StateMachine")
        if r.physical_id.endswith(f":{config.prefix}-training")
    )
    artifacts = dev_stage.physical_id("ArtifactsBucket")
    before = {e["executionArn"] for e in _executions(local_cloud, machine)}
    cooldown_start = datetime.now(UTC) - timedelta(minutes=config.training.cooldown_minutes)
    # Another test of this session may have started a run inside the cooldown; then no flap may start one.
    expected = 0 if any(e["startDate"] >= cooldown_start for e in _executions(local_cloud, machine)) else 1
    cw = local_cloud.client("cloudwatch")
    names = alarm_names(config)

    cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test start")
    for flap in range(FLAPS):
        cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason=f"drift (flap {flap})")
        cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason=f"recovered (flap {flap})")
    local_cloud.wait_idle()

    started = [e for e in _executions(local_cloud, machine) if e["executionArn"] not in before]
    # The shared cloud's own evaluations may move the same alarm meanwhile (another test's drift data): count the
    # records of this test's flaps, which carry their reason.
    records = [
        r
        for r in _trigger_records(local_cloud, artifacts, alarm)
        if "(flap " in str(r["trigger"].get("detail", {}).get("reason", ""))
    ]
    alarm_entries = [r for r in records if r["trigger"].get("detail", {}).get("state") == "ALARM"]
    assert len(started) == expected
    assert len(alarm_entries) == FLAPS
    assert sum(r["started"] for r in records) == expected
    if expected:
        (execution,) = started
        lineage = json.loads(
            local_cloud.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])["input"]
        )
        assert lineage["trigger"]["kind"] == "alarm"
        assert lineage["trigger"]["source"] == alarm

    # Then the detector's own metrics: a drifted window with enough traffic puts the composite in ALARM; the
    # trigger is recorded and, inside the cooldown, starts nothing more.
    def alarm_records() -> int:
        found = _trigger_records(local_cloud, artifacts, alarm)
        return len([r for r in found if r["trigger"].get("detail", {}).get("state") == "ALARM"])

    # Counted from here: the shared cloud's own evaluations may have recorded the same alarm before.
    recorded_before = alarm_records()
    _publish_drift_window(local_cloud, config.endpoint_name, share=0.2, samples=5 * config.monitoring.min_drift_samples)
    states = local_cloud.evaluate_alarms([names["drift"], names["prediction-drift"], names["drift-traffic"]])
    local_cloud.wait_idle()

    assert (states[names["drift"]], states[names["drift-traffic"]]) == ("ALARM", "ALARM")
    assert states[names["prediction-drift"]] != "ALARM"
    assert states[alarm] == "ALARM"
    assert alarm_records() == recorded_before + 1
    assert len([e for e in _executions(local_cloud, machine) if e["executionArn"] not in before]) == expected
