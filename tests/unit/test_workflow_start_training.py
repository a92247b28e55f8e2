"""The retraining entry point: trigger recognition, execution naming, cooldown and duplicates (moto Step Functions)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.start_training.logic import (
    START_LEASE_KEY,
    START_LEASE_TTL,
    BotoExecutions,
    Lease,
    S3StartLease,
    S3TriggerLog,
    StartTrainingSettings,
    TriggerError,
    decide,
    lease_refusal,
    parse_trigger,
    start_lease_key,
    start_training,
)

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
BUCKET = "artifacts"


def schedule_event(event_id: str = "evt-1", time: str = "2026-11-22T08:00:00Z") -> dict[str, Any]:
    return {
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": time,
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/mlloop-dev-training-schedule"],
        "detail": {},
    }


def alarm_event(event_id: str = "alarm-1", state: str = "ALARM") -> dict[str, Any]:
    return {
        "id": event_id,
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "time": "2026-11-22T07:59:00Z",
        "detail": {
            "alarmName": "mlloop-dev-churn-feature-drift",
            "state": {"value": state, "reason": "PSI 0.31 > 0.2", "timestamp": "2026-11-22T07:58:30.000+0000"},
        },
    }


def test_each_trigger_kind_is_recognised_with_its_source() -> None:
    schedule = parse_trigger(schedule_event(), NOW)
    alarm = parse_trigger(alarm_event(), NOW)
    new_data = parse_trigger(
        {
            "id": "ingest-1",
            "source": "mlloop.ingest",
            "detail-type": "Curated Data Ingested",
            "time": "2026-11-22T07:00:00Z",
            "detail": {
                "stage": "dev",
                "dataset": "churn",
                "source": {"bucket": "raw", "key": "churn/2026-11-21.csv", "version_id": "1"},
                "rows_curated": 990,
            },
        },
        NOW,
    )
    manual = parse_trigger({"trigger": "manual", "requested_by": "alice", "reason": "new features"}, NOW)

    assert (schedule.kind, schedule.source) == ("schedule", "mlloop-dev-training-schedule")
    assert (alarm.kind, alarm.source, alarm.detail["state"]) == ("alarm", "mlloop-dev-churn-feature-drift", "ALARM")
    assert alarm.time == datetime(2026, 11, 22, 7, 58, 30, tzinfo=UTC)
    assert (new_data.kind, new_data.source) == ("new_data", "churn/2026-11-21.csv")
    assert new_data.detail == {"bucket": "raw", "rows_curated": "990"}
    assert (manual.kind, manual.source, manual.detail["reason"]) == ("manual", "alice", "new features")


def test_an_unknown_event_or_anonymous_manual_request_is_refused() -> None:
    with pytest.raises(TriggerError, match="unrecognised trigger"):
        parse_trigger({"hello": "world"}, NOW)
    with pytest.raises(TriggerError, match="requested_by"):
        parse_trigger({"trigger": "manual"}, NOW)
    with pytest.raises(TriggerError, match="window_end"):
        parse_trigger({"trigger": "manual", "requested_by": "alice", "window_end": "last tuesday"}, NOW)


def test_a_manual_request_may_name_the_last_day_it_trains_on() -> None:
    trigger = parse_trigger({"trigger": "manual", "requested_by": "alice", "window_end": "2016-03-31T10:00:00Z"}, NOW)

    assert trigger.to_input()["detail"]["window_end"] == "2016-03-31"


def test_the_same_event_names_the_same_execution_and_different_events_differ() -> None:
    first = parse_trigger(schedule_event("evt-1"), NOW).execution_name
    again = parse_trigger(schedule_event("evt-1"), NOW + timedelta(minutes=3)).execution_name
    other = parse_trigger(schedule_event("evt-2"), NOW).execution_name

    assert first == again
    assert first != other
    assert first.startswith("schedule-20261122T080000Z-")
    assert len(first) <= 80


def test_a_manual_request_sent_twice_names_one_execution_whatever_the_clock_says() -> None:
    request = {"trigger": "manual", "requested_by": "alice", "request_id": "req-1"}

    first = parse_trigger(request, NOW).execution_name
    later = parse_trigger(request, NOW + timedelta(minutes=5)).execution_name

    assert first == later
    assert first.startswith("manual-")


def test_cooldown_running_and_alarm_recovery_hold_automatic_triggers_back() -> None:
    alarm = parse_trigger(alarm_event(), NOW)
    recovered = parse_trigger(alarm_event(state="OK"), NOW)
    forced = parse_trigger({"trigger": "manual", "requested_by": "bob", "force": True}, NOW)
    recent = NOW - timedelta(minutes=10)

    assert decide(alarm, running=[], last_start=None, cooldown_minutes=60, now=NOW).start
    assert not decide(alarm, running=[], last_start=recent, cooldown_minutes=60, now=NOW).start
    assert decide(alarm, running=[], last_start=recent, cooldown_minutes=5, now=NOW).start
    assert "already running" in decide(alarm, running=["run-1"], last_start=None, cooldown_minutes=0, now=NOW).reason
    assert "not ALARM" in decide(recovered, running=[], last_start=None, cooldown_minutes=0, now=NOW).reason
    assert decide(forced, running=[], last_start=recent, cooldown_minutes=60, now=NOW).start
    assert not decide(forced, running=["run-1"], last_start=recent, cooldown_minutes=60, now=NOW).start


WAIT_DEFINITION = json.dumps({"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 600, "End": True}}})


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        sfn = session.client("stepfunctions")
        s3 = session.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        arn = sfn.create_state_machine(
            name="mlloop-dev-training",
            definition=WAIT_DEFINITION,
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        yield sfn, s3, arn


def run(aws: tuple[Any, Any, str], event: dict[str, Any], *, cooldown: int = 60, now: datetime = NOW) -> Any:
    sfn, s3, arn = aws
    settings = StartTrainingSettings(state_machine_arn=arn, artifacts_bucket=BUCKET, cooldown_minutes=cooldown)
    return start_training(
        event,
        executions=BotoExecutions(sfn, arn),
        lease=S3StartLease(s3, BUCKET),
        log=S3TriggerLog(s3, BUCKET),
        settings=settings,
        now=now,
    )


def test_a_trigger_starts_one_execution_whose_input_carries_the_trigger(aws: tuple[Any, Any, str]) -> None:
    outcome = run(aws, alarm_event())

    sfn, s3, _ = aws
    assert outcome.started
    described = sfn.describe_execution(executionArn=outcome.execution_arn)
    assert described["name"] == outcome.execution_name
    trigger = json.loads(described["input"])["trigger"]
    assert trigger["kind"] == "alarm"
    assert trigger["source"] == "mlloop-dev-churn-feature-drift"
    records = s3.list_objects_v2(Bucket=BUCKET, Prefix="training/triggers/")["Contents"]
    assert len(records) == 1
    assert "-started-" in records[0]["Key"]


def test_the_same_trigger_delivered_twice_starts_one_execution(aws: tuple[Any, Any, str]) -> None:
    first = run(aws, schedule_event("evt-7"), cooldown=0)
    second = run(aws, schedule_event("evt-7"), cooldown=0)

    sfn, _, arn = aws
    assert first.started
    assert not second.started
    assert "duplicate" in second.reason
    assert second.execution_arn == first.execution_arn
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1


def test_an_alarm_during_a_running_retraining_is_recorded_not_started(aws: tuple[Any, Any, str]) -> None:
    run(aws, schedule_event("evt-1"), cooldown=0)
    outcome = run(aws, alarm_event("alarm-9"), cooldown=0)

    sfn, s3, arn = aws
    assert not outcome.started
    assert "already running" in outcome.reason
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="training/triggers/")["Contents"]]
    assert any("-recorded-alarm-" in k for k in keys)


def manual_event(request_id: str, *, force: bool = False) -> dict[str, Any]:
    return {"trigger": "manual", "requested_by": "alice", "request_id": request_id, "force": force}


def test_a_lease_left_by_a_start_that_crashed_expires(aws: tuple[Any, Any, str]) -> None:
    _, s3, _ = aws
    crashed = Lease(holder="schedule-crashed", taken_at=NOW - timedelta(minutes=1))
    s3.put_object(Bucket=BUCKET, Key=START_LEASE_KEY, Body=crashed.to_json())

    held = run(aws, alarm_event("alarm-1"), cooldown=0)
    later = NOW + START_LEASE_TTL
    expired = run(aws, alarm_event("alarm-2"), cooldown=0, now=later)

    assert not held.started
    assert "schedule-crashed" in held.reason
    assert expired.started
    lease = Lease.from_json(s3.get_object(Bucket=BUCKET, Key=START_LEASE_KEY)["Body"].read())
    assert (lease.holder, lease.execution_arn) == (expired.execution_name, expired.execution_arn)


def test_the_lease_of_a_finished_run_is_free_and_a_forced_run_skips_only_the_cooldown(
    aws: tuple[Any, Any, str],
) -> None:
    sfn, _, _ = aws
    first = run(aws, schedule_event("evt-1"), cooldown=60)
    forced_while_running = run(aws, manual_event("req-1", force=True), cooldown=60)
    sfn.stop_execution(executionArn=first.execution_arn)
    in_cooldown = run(aws, alarm_event("alarm-3"), cooldown=60)
    forced = run(aws, manual_event("req-2", force=True), cooldown=60)

    assert first.started
    assert not forced_while_running.started
    assert "already running" in forced_while_running.reason
    assert not in_cooldown.started
    assert "cooldown" in in_cooldown.reason
    assert forced.started


class ChecksBeforeTheRunIsListed(BotoExecutions):
    """ListExecutions is eventually consistent: the first check does not list a run that has just started."""

    def __init__(self, sfn: Any, arn: str) -> None:
        super().__init__(sfn, arn)
        self.checks = 0

    def running(self) -> list[str]:
        self.checks += 1
        return [] if self.checks == 1 else super().running()


def test_a_trigger_refused_under_the_lease_frees_it(aws: tuple[Any, Any, str]) -> None:
    sfn, s3, arn = aws
    run(aws, schedule_event("evt-1"), cooldown=0)
    s3.put_object(Bucket=BUCKET, Key=START_LEASE_KEY, Body=Lease(holder="gone", taken_at=NOW, released=True).to_json())
    settings = StartTrainingSettings(state_machine_arn=arn, artifacts_bucket=BUCKET, cooldown_minutes=0)

    outcome = start_training(
        alarm_event("alarm-4"),
        executions=ChecksBeforeTheRunIsListed(sfn, arn),
        lease=S3StartLease(s3, BUCKET),
        log=S3TriggerLog(s3, BUCKET),
        settings=settings,
        # After the run moto stamped with the wall clock, so only the running check can refuse.
        now=datetime.now(UTC) + timedelta(minutes=1),
    )

    assert not outcome.started
    assert "already running" in outcome.reason
    lease = Lease.from_json(s3.get_object(Bucket=BUCKET, Key=START_LEASE_KEY)["Body"].read())
    assert (lease.holder, lease.released) == (outcome.execution_name, True)


def test_a_lease_is_held_while_its_run_runs_or_its_holder_may_still_start_one() -> None:
    run_arn = "arn:aws:states:us-east-1:123456789012:execution:mlloop-dev-training:alarm-1"
    starting = Lease(holder="alarm-1", taken_at=NOW)
    started = Lease(holder="alarm-1", taken_at=NOW, execution_arn=run_arn)
    later = NOW + START_LEASE_TTL

    assert "another trigger (alarm-1)" in str(lease_refusal(starting, now=NOW, execution_status=None))
    assert lease_refusal(starting, now=later, execution_status=None) is None
    assert "already running (alarm-1" in str(lease_refusal(started, now=later, execution_status="RUNNING"))
    # Not listed yet (Step Functions reads are eventually consistent): held until the lease would expire.
    assert lease_refusal(started, now=NOW, execution_status=None) is not None
    assert lease_refusal(started, now=NOW, execution_status="SUCCEEDED") is None
    assert lease_refusal(replace(starting, released=True), now=NOW, execution_status=None) is None


def test_two_models_of_one_dataset_both_start_on_its_new_data_under_their_own_names_and_leases(
    aws: tuple[Any, Any, str],
) -> None:
    """One `Curated Data Ingested` event reaches every model of its dataset: each model's run (whose name is its
    training/runs/<run id>/ folder in the shared artifacts bucket) and start lease must be its own."""
    sfn, s3, _ = aws
    event = {
        "id": "ingest-1",
        "source": "mlloop.ingest",
        "detail-type": "Curated Data Ingested",
        "time": "2026-11-22T07:00:00Z",
        "detail": {"stage": "dev", "dataset": "churn", "source": {"bucket": "raw", "key": "churn/a.csv"}},
    }
    outcomes = {}
    for model in ("churn", "upsell"):
        arn = sfn.create_state_machine(
            name=f"mlloop-dev-{model}-training",
            definition=WAIT_DEFINITION,
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        settings = StartTrainingSettings(
            state_machine_arn=arn, artifacts_bucket=BUCKET, cooldown_minutes=60, mlloop_model=model
        )
        outcomes[model] = start_training(
            event,
            executions=BotoExecutions(sfn, arn),
            lease=S3StartLease(s3, BUCKET, start_lease_key(model)),
            log=S3TriggerLog(s3, BUCKET),
            settings=settings,
            now=NOW,
        )
    assert all(o.started for o in outcomes.values()), outcomes
    assert outcomes["churn"].execution_name != outcomes["upsell"].execution_name
    assert "upsell" in outcomes["upsell"].execution_name
    assert start_lease_key("churn") != start_lease_key("upsell") != START_LEASE_KEY == start_lease_key("")
    # A stage's only model names its runs as it always did.
    assert "churn" not in parse_trigger(event, NOW).execution_name
