"""Two different triggers at the same instant start one retraining, not two (start_training's logic with real
boto3 clients against the embedded AWS: moto's Step Functions and S3 behind the local cloud's request path).

dev and staging cannot reserve concurrency 1 for the function (a new account's quota of 10 forbids it), so two
invocations may run the check at once; the barrier makes both finish the "nothing running, outside the cooldown"
check before either starts, the interleaving that doubled runs.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.start_training.logic import (
    BotoExecutions,
    Outcome,
    S3StartLease,
    S3TriggerLog,
    StartTrainingSettings,
    start_training,
)
from mlloop.localcloud import LocalCloud

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]
# Long enough to still run when both triggers are handled; the local cloud stops it at shutdown.
HOLD = json.dumps({"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 86400, "End": True}}})


class BothCheckBeforeEitherStarts(BotoExecutions):
    """Each trigger's first "what is running" check waits until the other trigger has made its own."""

    def __init__(self, sfn: Any, arn: str, barrier: threading.Barrier) -> None:
        super().__init__(sfn, arn)
        self._barrier = barrier
        self._checked = False

    def running(self) -> list[str]:
        found = super().running()
        if not self._checked:
            self._checked = True
            self._barrier.wait(timeout=30)
        return found


@pytest.fixture
def machine_and_bucket(local_cloud: LocalCloud) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    bucket = f"race-artifacts-{suffix}"
    local_cloud.client("s3").create_bucket(Bucket=bucket)
    sfn = local_cloud.client("stepfunctions")
    arn = sfn.create_state_machine(
        name=f"race-training-{suffix}", definition=HOLD, roleArn="arn:aws:iam::123456789012:role/race-training"
    )["stateMachineArn"]
    yield arn, bucket
    for execution in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
        sfn.stop_execution(executionArn=execution["executionArn"])


def _alarm_event() -> dict[str, Any]:
    return {
        "id": f"alarm-{uuid.uuid4()}",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "time": datetime.now(UTC).isoformat(),
        "detail": {"alarmName": "race-drift", "state": {"value": "ALARM", "reason": "PSI 0.3 > 0.2"}},
    }


def _new_data_event() -> dict[str, Any]:
    return {
        "id": f"ingest-{uuid.uuid4()}",
        "detail-type": "Curated Data Ingested",
        "source": "mlloop.ingest",
        "time": datetime.now(UTC).isoformat(),
        "detail": {"source": {"bucket": "raw", "key": "churn/new.csv"}, "rows_curated": 10},
    }


def test_two_different_triggers_at_the_same_instant_start_one_run(
    local_cloud: LocalCloud, machine_and_bucket: tuple[str, str]
) -> None:
    arn, bucket = machine_and_bucket
    settings = StartTrainingSettings(state_machine_arn=arn, artifacts_bucket=bucket, cooldown_minutes=60)
    barrier = threading.Barrier(2)
    now = datetime.now(UTC)

    def handle(event: dict[str, Any]) -> Outcome:
        sfn, s3 = local_cloud.client("stepfunctions"), local_cloud.client("s3")
        return start_training(
            event,
            executions=BothCheckBeforeEitherStarts(sfn, arn, barrier),
            lease=S3StartLease(s3, bucket),
            log=S3TriggerLog(s3, bucket),
            settings=settings,
            now=now,
        )

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(handle, [_alarm_event(), _new_data_event()]))

    executions = local_cloud.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]
    records = local_cloud.client("s3").list_objects_v2(Bucket=bucket, Prefix="training/triggers/")["Contents"]
    assert len(executions) == 1
    assert sorted(o.started for o in outcomes) == [False, True]
    (refused,) = [o for o in outcomes if not o.started]
    assert "trigger recorded" in refused.reason
    assert sorted("-started-" in r["Key"] for r in records) == [False, True]
