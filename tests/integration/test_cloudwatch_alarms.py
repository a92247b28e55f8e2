"""CloudWatch alarms on the local cloud are evaluated from metric data and act as AWS's do.

Given alarms and metric data put with plain boto3 calls, when the alarms are evaluated, then their
state, reason, history, EventBridge events and SNS messages are the ones CloudWatch produces.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlloop.localcloud import LocalCloud, cloudwatch
from tests.integration.localcloud_support import queue_for_events

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


@pytest.fixture(scope="module")
def cloud(local_cloud: LocalCloud) -> LocalCloud:
    return local_cloud


@pytest.fixture
def ns() -> str:
    """A namespace per test: every alarm in the cloud is evaluated together."""
    return f"Test/{uuid.uuid4().hex[:8]}"


def _put(cloud: LocalCloud, namespace: str, values: list[float], *, ago: float = 5.0, name: str = "Errors") -> None:
    stamp = datetime.now(UTC) - timedelta(seconds=ago)
    data = [{"MetricName": name, "Value": v, "Timestamp": stamp} for v in values]
    cloud.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=data)


def _alarm(cloud: LocalCloud, namespace: str, **overrides: Any) -> str:
    name = f"alarm-{uuid.uuid4().hex[:8]}"
    params: dict[str, Any] = {
        "AlarmName": name,
        "Namespace": namespace,
        "MetricName": "Errors",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    params.update(overrides)
    cloud.client("cloudwatch").put_metric_alarm(**params)
    return name


def _state(cloud: LocalCloud, name: str) -> dict[str, Any]:
    described = cloud.client("cloudwatch").describe_alarms(
        AlarmNames=[name], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )
    return dict((described["MetricAlarms"] + described["CompositeAlarms"])[0])


def _messages(cloud: LocalCloud, url: str) -> list[dict[str, Any]]:
    received = cloud.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(m["Body"]) for m in received.get("Messages", [])]


def test_a_new_alarm_starts_with_insufficient_data_and_breaching_data_raises_it(cloud: LocalCloud, ns: str) -> None:
    name = _alarm(cloud, ns)
    assert _state(cloud, name)["StateValue"] == "INSUFFICIENT_DATA"

    _put(cloud, ns, [4.0, 3.0])
    cloud.evaluate_alarms()

    alarm = _state(cloud, name)
    assert alarm["StateValue"] == "ALARM"
    assert alarm["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [7.0")
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [7.0]


def test_data_below_the_threshold_returns_the_alarm_to_ok(cloud: LocalCloud, ns: str) -> None:
    name = _alarm(cloud, ns, Statistic="Maximum")
    _put(cloud, ns, [2.0, 5.0])
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "OK"


def test_datapoints_to_alarm_counts_breaching_periods_out_of_the_evaluation_periods(cloud: LocalCloud, ns: str) -> None:
    name = _alarm(cloud, ns, EvaluationPeriods=3, DatapointsToAlarm=2, Statistic="Average")
    _put(cloud, ns, [9.0], ago=10)
    _put(cloud, ns, [1.0], ago=70)
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "OK"

    _put(cloud, ns, [9.0], ago=130)
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "ALARM"


def test_a_percentile_alarm_uses_the_raw_values(cloud: LocalCloud, ns: str) -> None:
    cw = cloud.client("cloudwatch")
    p99 = f"p99-{uuid.uuid4().hex[:6]}"
    p50 = f"p50-{uuid.uuid4().hex[:6]}"
    for name, stat in ((p99, "p99"), (p50, "p50")):
        cw.put_metric_alarm(
            AlarmName=name,
            Namespace=ns,
            MetricName="Latency",
            ExtendedStatistic=stat,
            Period=60,
            EvaluationPeriods=1,
            Threshold=98.5,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    _put(cloud, ns, [float(v) for v in range(1, 101)], name="Latency")

    cloud.evaluate_alarms()

    assert _state(cloud, p99)["StateValue"] == "ALARM"
    assert json.loads(_state(cloud, p99)["StateReasonData"])["recentDatapoints"] == [99.0]
    assert _state(cloud, p50)["StateValue"] == "OK"


@pytest.mark.parametrize(
    ("treatment", "expected"),
    [("missing", "INSUFFICIENT_DATA"), ("breaching", "ALARM"), ("notBreaching", "OK"), ("ignore", "OK")],
)
def test_missing_data_is_treated_as_configured(cloud: LocalCloud, ns: str, treatment: str, expected: str) -> None:
    name = _alarm(cloud, ns, TreatMissingData=treatment)
    # Start from OK so that "ignore" (keep the current state) is observable.
    cloud.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test start")
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == expected


def test_less_than_threshold_alarms_fire_on_low_values(cloud: LocalCloud, ns: str) -> None:
    name = _alarm(cloud, ns, ComparisonOperator="LessThanThreshold", Threshold=0.7, Statistic="Average")
    _put(cloud, ns, [0.5, 0.6])
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "ALARM"


def _fallback_rate_alarm(cloud: LocalCloud, ns: str, rate_expression: str) -> str:
    """An alarm on a percentage of two summed metrics, Fallbacks over Requests, above 5."""
    name = f"rate-{uuid.uuid4().hex[:6]}"

    def stat(metric: str) -> dict[str, Any]:
        return {"Metric": {"Namespace": ns, "MetricName": metric}, "Period": 60, "Stat": "Sum"}

    cloud.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        EvaluationPeriods=1,
        Threshold=5.0,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[
            {"Id": "fallbacks", "MetricStat": stat("Fallbacks"), "ReturnData": False},
            {"Id": "requests", "MetricStat": stat("Requests"), "ReturnData": False},
            {"Id": "rate", "Expression": rate_expression, "ReturnData": True},
        ],
    )
    return name


def test_a_metric_math_alarm_evaluates_its_expression(cloud: LocalCloud, ns: str) -> None:
    name = _fallback_rate_alarm(cloud, ns, "100 * FILL(fallbacks, 0) / requests")
    _put(cloud, ns, [1.0] * 10, name="Requests")
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "OK"

    _put(cloud, ns, [1.0], name="Fallbacks")
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "ALARM"


def test_a_metrics_insights_alarm_sums_every_matching_metric(cloud: LocalCloud, ns: str) -> None:
    name = f"insights-{uuid.uuid4().hex[:6]}"
    query = f"SELECT SUM(Errors) FROM SCHEMA(\"{ns}\", EndpointName, VariantName) WHERE EndpointName = 'ep'"
    cloud.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        EvaluationPeriods=1,
        Threshold=4.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        Metrics=[{"Id": "errors", "Expression": query, "Period": 60, "ReturnData": True}],
    )
    stamp = datetime.now(UTC) - timedelta(seconds=5)

    def put(endpoint: str, variant: str, value: float) -> None:
        dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
        cloud.client("cloudwatch").put_metric_data(
            Namespace=ns, MetricData=[{"MetricName": "Errors", "Value": value, "Dimensions": dims, "Timestamp": stamp}]
        )

    put("ep", "v1", 2.0)
    put("other", "v1", 9.0)
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "OK"

    put("ep", "v2", 3.0)
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "ALARM"


def test_if_expressions_guard_a_rate_against_no_traffic(cloud: LocalCloud, ns: str) -> None:
    name = _fallback_rate_alarm(cloud, ns, "IF(requests > 0 AND fallbacks >= 0, 100 * fallbacks / requests, 0)")
    _put(cloud, ns, [0.0], name="Requests")
    _put(cloud, ns, [0.0], name="Fallbacks")
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "OK"
    _put(cloud, ns, [4.0], name="Requests")
    _put(cloud, ns, [1.0], name="Fallbacks")
    cloud.evaluate_alarms()
    assert _state(cloud, name)["StateValue"] == "ALARM"


def test_an_alarm_the_emulation_cannot_evaluate_keeps_its_state_and_spares_the_others(
    cloud: LocalCloud, ns: str
) -> None:
    searching = f"search-{uuid.uuid4().hex[:6]}"
    cloud.client("cloudwatch").put_metric_alarm(
        AlarmName=searching,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[{"Id": "s", "Expression": f"SUM(SEARCH('{{{ns}}} Errors', 'Sum', 60))", "ReturnData": True}],
    )
    plain = _alarm(cloud, ns)
    _put(cloud, ns, [50.0])
    cloud.evaluate_alarms()
    assert _state(cloud, searching)["StateValue"] == "INSUFFICIENT_DATA"
    assert _state(cloud, plain)["StateValue"] == "ALARM"


def test_composite_alarms_follow_their_rule_and_are_listed_only_when_asked_for(cloud: LocalCloud, ns: str) -> None:
    cw = cloud.client("cloudwatch")
    drift = _alarm(cloud, ns)
    traffic = _alarm(
        cloud, ns, MetricName="Requests", Statistic="Minimum", Threshold=100.0, ComparisonOperator="LessThanThreshold"
    )
    composite = f"retrain-{uuid.uuid4().hex[:6]}"
    cw.put_composite_alarm(AlarmName=composite, AlarmRule=f'ALARM("{drift}") AND NOT ALARM({traffic}) AND TRUE')

    assert composite not in [a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]]
    listed = cw.describe_alarms(AlarmTypes=["CompositeAlarm"])
    assert listed["MetricAlarms"] == []
    assert [a["AlarmRule"] for a in listed["CompositeAlarms"] if a["AlarmName"] == composite]

    _put(cloud, ns, [10.0])
    _put(cloud, ns, [500.0], name="Requests")
    cloud.evaluate_alarms()
    assert _state(cloud, composite)["StateValue"] == "ALARM"

    _put(cloud, ns, [1.0], name="Requests")
    cloud.evaluate_alarms()
    assert _state(cloud, traffic)["StateValue"] == "ALARM"
    assert _state(cloud, composite)["StateValue"] == "OK"
    history = cloud.client("cloudwatch").describe_alarm_history(
        AlarmName=composite, AlarmTypes=["CompositeAlarm"], HistoryItemType="StateUpdate"
    )
    assert [h["HistorySummary"] for h in history["AlarmHistoryItems"]] == [
        "Alarm updated from ALARM to OK",
        "Alarm updated from INSUFFICIENT_DATA to ALARM",
    ]


def test_an_invalid_alarm_rule_is_rejected(cloud: LocalCloud) -> None:
    with pytest.raises(ClientError, match="AlarmRule"):
        cloud.client("cloudwatch").put_composite_alarm(AlarmName="bad", AlarmRule="ALARM(a) AND")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ('ALARM("a") OR ALARM("b")', True),
        ("ALARM(a) AND ALARM(b)", False),
        ("NOT (OK(a) OR INSUFFICIENT_DATA(b))", True),
        ("OK(b) AND TRUE", True),
        ("FALSE OR ALARM(arn:aws:cloudwatch:us-east-1:123456789012:alarm:a)", True),
    ],
)
def test_alarm_rules_are_evaluated_with_aws_precedence(rule: str, expected: bool) -> None:
    assert cloudwatch.evaluate_rule(rule, {"a": "ALARM", "b": "OK"}) is expected


def test_state_changes_are_in_the_history_and_emitted_as_events_and_sns_messages(cloud: LocalCloud, ns: str) -> None:
    sns, sqs = cloud.client("sns"), cloud.client("sqs")
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    inbox = sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
    name = _alarm(cloud, ns, AlarmActions=[topic], OKActions=[topic], AlarmDescription="errors")
    events = queue_for_events(
        cloud,
        {
            "source": ["aws.cloudwatch"],
            "detail-type": ["CloudWatch Alarm State Change"],
            "detail": {"alarmName": [name]},
        },
    )

    _put(cloud, ns, [50.0])
    cloud.evaluate_alarms()
    cloud.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="OK", StateReason="operator says fine")

    [raised, cleared] = _messages(cloud, events)
    assert raised["detail"]["state"]["value"] == "ALARM"
    assert raised["detail"]["previousState"]["value"] == "INSUFFICIENT_DATA"
    assert raised["resources"] == [_state(cloud, name)["AlarmArn"]]
    assert raised["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["namespace"] == ns
    assert cleared["detail"]["state"] == {**cleared["detail"]["state"], "value": "OK", "reason": "operator says fine"}

    notices = _messages(cloud, inbox)
    assert [(n["NewStateValue"], n["OldStateValue"]) for n in notices] == [
        ("ALARM", "INSUFFICIENT_DATA"),
        ("OK", "ALARM"),
    ]
    assert notices[0]["Trigger"]["MetricName"] == "Errors"

    history = cloud.client("cloudwatch").describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")
    summaries = [h["HistorySummary"] for h in history["AlarmHistoryItems"]]
    assert summaries == ["Alarm updated from ALARM to OK", "Alarm updated from INSUFFICIENT_DATA to ALARM"]


def test_overwriting_an_alarm_keeps_its_state(cloud: LocalCloud, ns: str) -> None:
    name = _alarm(cloud, ns)
    _put(cloud, ns, [50.0])
    cloud.evaluate_alarms()
    _alarm(cloud, ns, AlarmName=name, Threshold=10.0)
    assert _state(cloud, name)["StateValue"] == "ALARM"
    assert _state(cloud, name)["Threshold"] == 10.0


def test_the_background_evaluator_moves_alarms_without_being_asked(cloud: LocalCloud, ns: str) -> None:
    name = _alarm(cloud, ns)
    _put(cloud, ns, [50.0])
    cloudwatch.start_alarm_evaluator()
    try:
        deadline = time.monotonic() + 10
        while _state(cloud, name)["StateValue"] != "ALARM" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        cloudwatch.stop_alarm_evaluator()
    assert _state(cloud, name)["StateValue"] == "ALARM"
