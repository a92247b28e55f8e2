"""Health at a glance: alarm states, recent training executions with their triggers, and last-window metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlloop.cli.platform import Platform


@dataclass(frozen=True)
class AlarmState:
    name: str
    kind: str
    state: str
    reason: str
    updated: datetime | None


@dataclass(frozen=True)
class Execution:
    name: str
    status: str
    started: datetime
    stopped: datetime | None
    trigger: str


def alarm_states(platform: Platform) -> list[AlarmState]:
    cw = platform.client("cloudwatch")
    # With the hyphen: beside model `churn`, `mlloop-dev-churn` alone would also match `mlloop-dev-churn2-…`.
    prefix = f"{platform.config.prefix}-"
    found: list[AlarmState] = []
    for kind in ("MetricAlarm", "CompositeAlarm"):
        page = cw.describe_alarms(AlarmNamePrefix=prefix, AlarmTypes=[kind])
        key = "MetricAlarms" if kind == "MetricAlarm" else "CompositeAlarms"
        for alarm in page.get(key, []):
            found.append(
                AlarmState(
                    name=alarm["AlarmName"],
                    kind="composite" if kind == "CompositeAlarm" else "metric",
                    state=alarm.get("StateValue", "INSUFFICIENT_DATA"),
                    reason=alarm.get("StateReason", ""),
                    updated=alarm.get("StateUpdatedTimestamp"),
                )
            )
    return sorted(found, key=lambda a: (a.state != "ALARM", a.name))


def describe_trigger(execution_input: dict[str, Any]) -> str:
    """A short human description of what started a training execution, from its input."""
    trigger = execution_input.get("trigger", execution_input)
    if not isinstance(trigger, dict):
        return str(trigger)
    kind = str(trigger.get("kind") or "unknown")
    source = str(trigger.get("source") or "")
    reason = str((trigger.get("detail") or {}).get("reason") or "")
    text = f"{kind}: {source}" if source else kind
    return f"{text} ({reason})" if reason and kind == "manual" else text


def recent_executions(platform: Platform, limit: int = 5) -> list[Execution]:
    sfn = platform.client("stepfunctions")
    try:
        listed = sfn.list_executions(stateMachineArn=platform.state_machine_arn, maxResults=limit)["executions"]
    except sfn.exceptions.StateMachineDoesNotExist:
        # The training stack is not deployed in this stage (yet): nothing has run.
        return []
    out = []
    for item in listed[:limit]:
        described = sfn.describe_execution(executionArn=item["executionArn"])
        try:
            execution_input = json.loads(described.get("input") or "{}")
        except json.JSONDecodeError:
            execution_input = {}
        out.append(
            Execution(
                name=item["name"],
                status=item["status"],
                started=item["startDate"],
                stopped=item.get("stopDate"),
                trigger=describe_trigger(execution_input),
            )
        )
    return out


def metric_over_window(
    platform: Platform, metric: str, *, statistic: str = "Sum", hours: int = 1, dimensions: dict[str, str] | None = None
) -> float | None:
    """One statistic of a platform metric over the last `hours`, or None when nothing was published."""
    end = datetime.now(UTC)
    response = platform.client("cloudwatch").get_metric_statistics(
        Namespace=platform.config.metrics_namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in (dimensions or {}).items()],
        StartTime=end - timedelta(hours=hours),
        EndTime=end,
        Period=hours * 3600,
        Statistics=[statistic],
    )
    points = response.get("Datapoints", [])
    if not points:
        return None
    values = [float(p[statistic]) for p in points]
    return sum(values) if statistic == "Sum" else max(values)
