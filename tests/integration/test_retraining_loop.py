"""The retraining loop on the deployed dev stage: the retraining-needed alarm entering ALARM starts the training
workflow through the trigger function, with the alarm as lineage, and a flapping alarm cannot start a storm."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

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

    for flap in range(FLAPS):
        cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason=f"drift (flap {flap})")
        cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason=f"recovered (flap {flap})")
    local_cloud.wait_idle()

    started = [e for e in _executions(local_cloud, machine) if e["executionArn"] not in before]
    records = _trigger_records(local_cloud, artifacts, alarm)
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
