"""The embedded AWS follows one clock: controlled time moves only when advanced, and `up` runs timed work on it.

Given `python -m mlloop.localcloud up --clock controlled` (its own process, so nothing another test deployed
fires with it), when `advance` moves the clock, then schedules fire at each due instant with that instant as
the event's time, alarms are evaluated once per period at its boundary, and a Wait state ends only once the
clock has passed it. Given a plain `up` (scaled real time), alarms move without anyone asking.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlloop.archives import tar_gz
from tests.integration.localcloud_support import UpProcess, up_process

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
INFERENCE_PY = """
import json


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    return json.loads(body)


def predict_fn(data, model):
    return data


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""


@pytest.fixture(scope="module")
def controlled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    yield from up_process(tmp_path_factory.mktemp("controlled"), "--clock", "controlled")


@pytest.fixture
def scaled(tmp_path: Path) -> Iterator[UpProcess]:
    yield from up_process(tmp_path)


def _queue_for_rule(up: UpProcess, rule_arn: str) -> tuple[str, str]:
    sqs = up.client("sqs")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return url, arn


def _drain(up: UpProcess, url: str) -> list[dict[str, Any]]:
    sqs = up.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_advancing_a_day_fires_an_hourly_schedule_24_times_at_its_due_times(controlled: UpProcess) -> None:
    events = controlled.client("events")
    name = f"hourly-{uuid.uuid4().hex[:8]}"
    rule_arn = events.put_rule(Name=name, ScheduleExpression="rate(1 hour)")["RuleArn"]
    url, queue_arn = _queue_for_rule(controlled, rule_arn)
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": queue_arn}])
    created = controlled.now()

    controlled.advance("1d")

    fired = _drain(controlled, url)
    assert [event["time"] for event in fired] == [_iso(created + timedelta(hours=h)) for h in range(1, 25)]
    assert {(event["detail-type"], event["source"], tuple(event["resources"])) for event in fired} == {
        ("Scheduled Event", "aws.events", (rule_arn,))
    }


def test_alarms_are_evaluated_once_per_period_at_its_boundary(controlled: UpProcess) -> None:
    cloudwatch = controlled.client("cloudwatch")
    namespace, name = f"Clock/{uuid.uuid4().hex[:8]}", f"alarm-{uuid.uuid4().hex[:8]}"
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace=namespace,
        MetricName="Errors",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    now = controlled.now()
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    # One datapoint inside each of the next three periods: breaching, not breaching, breaching.
    values = [50.0, 1.0, 50.0]
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {"MetricName": "Errors", "Value": value, "Timestamp": boundary + timedelta(minutes=i, seconds=30)}
            for i, value in enumerate(values)
        ],
    )

    controlled.advance("5m")

    history = cloudwatch.describe_alarm_history(
        AlarmName=name, HistoryItemType="StateUpdate", ScanBy="TimestampAscending"
    )["AlarmHistoryItems"]
    # Each boundary judges the period that ends there; the first has no data (notBreaching: OK).
    assert [(item["Timestamp"], item["HistorySummary"]) for item in history] == [
        (boundary, "Alarm updated from INSUFFICIENT_DATA to OK"),
        (boundary + timedelta(minutes=1), "Alarm updated from OK to ALARM"),
        (boundary + timedelta(minutes=2), "Alarm updated from ALARM to OK"),
        (boundary + timedelta(minutes=3), "Alarm updated from OK to ALARM"),
        (boundary + timedelta(minutes=4), "Alarm updated from ALARM to OK"),
    ]


def test_put_metric_data_refuses_timestamps_outside_aws_bounds_of_the_clocks_now(controlled: UpProcess) -> None:
    cloudwatch = controlled.client("cloudwatch")
    now = controlled.now()

    for stamp, words in ((now - timedelta(days=15), "within the past two weeks"), (now + timedelta(hours=3), "")):
        with pytest.raises(cloudwatch.exceptions.InvalidParameterValueException) as refused:
            cloudwatch.put_metric_data(
                Namespace="Clock/bounds", MetricData=[{"MetricName": "m", "Value": 1.0, "Timestamp": stamp}]
            )
        assert "MetricData.member.1.Timestamp" in str(refused.value) and words in str(refused.value)
    cloudwatch.put_metric_data(
        Namespace="Clock/bounds", MetricData=[{"MetricName": "m", "Value": 1.0, "Timestamp": now - timedelta(days=13)}]
    )


def test_a_wait_state_completes_only_once_the_clock_has_passed_it(controlled: UpProcess) -> None:
    role = controlled.client("iam").create_role(
        RoleName=f"waits-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    sfn = controlled.client("stepfunctions")
    definition = {
        "StartAt": "Wait",
        "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "Next": "Done"}, "Done": {"Type": "Succeed"}},
    }
    machine = sfn.create_state_machine(
        name=f"w-{uuid.uuid4().hex[:8]}", roleArn=role, definition=json.dumps(definition)
    )
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"]
    deadline = time.monotonic() + 60
    while controlled.status()["clock"]["waiting"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)

    controlled.advance("3599s")
    before = sfn.describe_execution(executionArn=execution)["status"]
    controlled.advance("1s")
    after = sfn.describe_execution(executionArn=execution)["status"]

    assert (before, after) == ("RUNNING", "SUCCEEDED")


def test_up_evaluates_alarms_on_its_scaled_clock_without_being_asked(scaled: UpProcess) -> None:
    cloudwatch = scaled.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="errors",
        Namespace="Clock/up",
        MetricName="Errors",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.put_metric_data(Namespace="Clock/up", MetricData=[{"MetricName": "Errors", "Value": 50.0}])
    deadline = time.monotonic() + 60
    state = "INSUFFICIENT_DATA"
    while state != "ALARM" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = cloudwatch.describe_alarms(AlarmNames=["errors"])["MetricAlarms"][0]["StateValue"]

    assert state == "ALARM"


def _serving_model(up: UpProcess, version: str) -> str:
    """A model the scikit-learn serving container loads, readable by its execution role."""
    bucket, name = f"models-{uuid.uuid4().hex[:8]}", f"m-{version}-{uuid.uuid4().hex[:6]}"
    up.client("s3").create_bucket(Bucket=bucket)
    up.client("s3").put_object(Bucket=bucket, Key="model.tar.gz", Body=tar_gz({"code/inference.py": INFERENCE_PY}))
    iam = up.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    reads = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
            {"Effect": "Allow", "Action": ["logs:*", "cloudwatch:PutMetricData"], "Resource": "*"},
        ],
    }
    iam.put_role_policy(RoleName=name, PolicyName="serve", PolicyDocument=json.dumps(reads))
    up.client("sagemaker").create_model(
        ModelName=name,
        ExecutionRoleArn=role,
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": f"s3://{bucket}/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        },
    )
    config = f"c-{version}-{uuid.uuid4().hex[:6]}"
    up.client("sagemaker").create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {"VariantName": "live", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    return config


def test_a_blue_green_bake_and_termination_wait_elapse_only_as_the_clock_passes_them(controlled: UpProcess) -> None:
    sagemaker = controlled.client("sagemaker")
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=_serving_model(controlled, "v1"))
    sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    target = _serving_model(controlled, "v2")

    sagemaker.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=target,
        DeploymentConfig={
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600},
                "TerminationWaitInSeconds": 300,
                "MaximumExecutionTimeoutInSeconds": 3600,
            }
        },
    )
    deadline = time.monotonic() + 120
    while controlled.status()["clock"]["waiting"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)

    controlled.advance("899s")
    during = sagemaker.describe_endpoint(EndpointName=endpoint)
    controlled.advance("1s")
    after = sagemaker.describe_endpoint(EndpointName=endpoint)

    assert during["EndpointStatus"] == "Updating" and during["EndpointConfigName"] != target
    assert during["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["Status"] == "Baking"
    assert (after["EndpointStatus"], after["EndpointConfigName"]) == ("InService", target)
