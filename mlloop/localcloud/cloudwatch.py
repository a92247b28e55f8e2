"""CloudWatch alarms that really evaluate: what moto stores but never runs.

moto 5.2.5 keeps alarms and metric data but never evaluates an alarm, has no composite alarms, no
alarm history, and fires neither SNS actions nor EventBridge events (notes/moto-5.2.5.md). This
module patches moto's CloudWatch backend and response classes in-process so that plain boto3
calls against the local endpoint behave as AWS does:

- metric alarms are evaluated from stored metric data: period, Statistic or ExtendedStatistic
  (percentiles such as p99 from the raw values), EvaluationPeriods, DatapointsToAlarm, the
  comparison operators, TreatMissingData, and metric-math alarms over MetricStat queries;
- put_composite_alarm, describe_alarms(AlarmTypes=[...]) and AlarmRule evaluation;
- every state change (from evaluation or set_alarm_state) is recorded in describe_alarm_history,
  emitted as an AWS-shaped "CloudWatch Alarm State Change" event and published to the SNS topics
  named in AlarmActions / OKActions / InsufficientDataActions.

Alarms are evaluated on the cloud's clock (clock.py) by `AlarmPeriods`: with a controlled clock at each
boundary of the alarm's period (UTC epoch multiples) that `advance` passes, over the periods ending there;
on the scaled timeline while the clock runs in the background (`up`), ending at the host's now. PutMetricData
stamps data without a Timestamp with the clock's now and refuses timestamps AWS refuses relative to it.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlloop.localcloud import aws_state, cloudwatch_rules

ALARM = "ALARM"
OK = "OK"
INSUFFICIENT = "INSUFFICIENT_DATA"
_STATES = (OK, ALARM, INSUFFICIENT)

_COMPARATORS = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
_COMPARISON_WORDS = {
    "GreaterThanThreshold": "greater than",
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}

LOG = logging.getLogger("mlloop.localcloud")
_lock = threading.RLock()
_history: dict[str, list[dict[str, Any]]] = {}
_originals: dict[str, Any] = {}


# ---------------------------------------------------------------- statistics


def _percentile(values: list[float], stat: str) -> float | None:
    """Nearest-rank percentile of raw values, as CloudWatch computes pNN for non-aggregated data."""
    match = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?|100)", stat)
    if not match or not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(float(match.group(1)) / 100.0 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def _statistic(datums: list[Any], stat: str) -> float | None:
    from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum

    if not datums:
        return None
    raw = [d.value for d in datums if isinstance(d, MetricDatum)]
    agg = [d for d in datums if isinstance(d, MetricAggregatedDatum)]
    count = len(raw) + sum(d.sample_count for d in agg)
    total = sum(raw) + sum(d.sum for d in agg)
    if stat == "SampleCount":
        return float(count)
    if stat == "Sum":
        return float(total)
    if stat == "Average":
        return float(total / count) if count else None
    if stat == "Minimum":
        return float(min([*raw, *(d.min for d in agg)]))
    if stat == "Maximum":
        return float(max([*raw, *(d.max for d in agg)]))
    if agg:
        # Percentiles need the raw values; StatisticValues sets do not carry them (AWS says the same).
        return None
    return _percentile(raw, stat)


def _dimension_map(dimensions: list[Any]) -> dict[str, str | None]:
    return {d.name: d.value for d in dimensions}


def _matching(
    all_data: list[Any], *, namespace: str, metric_name: str, dimensions: dict[str, str | None], unit: str | None
) -> list[Any]:
    """Datapoints of exactly one metric: CloudWatch identifies a metric by namespace, name and all its dimensions."""
    return [
        d
        for d in all_data
        if d.namespace == namespace
        and d.name == metric_name
        and _dimension_map(d.dimensions) == dimensions
        and (unit is None or d.unit == unit)
    ]


def _series(
    matching: list[Any], *, stat: str, period: int, periods: int, now: datetime
) -> list[tuple[datetime, float | None]]:
    """(period start, statistic or None) for the last `periods` periods, newest first."""
    out = []
    for i in range(periods):
        end = now - timedelta(seconds=i * period)
        start = end - timedelta(seconds=period)
        in_period = [d for d in matching if start <= _aware(d.timestamp) < end]
        out.append((start, _statistic(in_period, stat)))
    return out


# ---------------------------------------------------------------- Metrics Insights

_INSIGHTS = re.compile(
    r"^\s*SELECT\s+(?P<func>SUM|AVG|MIN|MAX|COUNT)\s*\(\s*(?P<metric>[\w.\-]+|\"[^\"]+\")\s*\)\s+"
    r"FROM\s+(?:SCHEMA\s*\((?P<schema>[^)]*)\)|(?P<namespace>\"[^\"]+\"|[\w/.\-]+))"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+GROUP\s+BY\s+.+?)?(?:\s+ORDER\s+BY\s+.+?)?(?:\s+LIMIT\s+\d+)?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_INSIGHTS_STAT = {"SUM": "Sum", "AVG": "Average", "MIN": "Minimum", "MAX": "Maximum", "COUNT": "SampleCount"}
_CONDITION = re.compile(r"^\s*(\"[^\"]+\"|[\w.\-]+)\s*(=|!=)\s*'((?:[^']|'')*)'\s*$")


def _unquote(token: str) -> str:
    token = token.strip()
    return token[1:-1] if len(token) >= 2 and token[0] == token[-1] == '"' else token


def _insights(query: str, all_data: list[Any]) -> tuple[list[Any], str]:
    """Datapoints selected by a Metrics Insights query (one aggregated series) and the statistic to apply."""
    parsed = _INSIGHTS.match(query)
    if parsed is None:
        raise ValueError(f"unsupported Metrics Insights query: {query}")
    metric = _unquote(parsed["metric"])
    if parsed["schema"] is not None:
        parts = [_unquote(p) for p in parsed["schema"].split(",")]
        namespace, schema_keys = parts[0], set(parts[1:])
    else:
        namespace, schema_keys = _unquote(parsed["namespace"]), None
    conditions = []
    for clause in re.split(r"\s+AND\s+", parsed["where"] or "", flags=re.IGNORECASE) if parsed["where"] else []:
        condition = _CONDITION.match(clause)
        if condition is None:
            raise ValueError(f"unsupported Metrics Insights condition: {clause}")
        conditions.append((_unquote(condition[1]), condition[2], condition[3].replace("''", "'")))
    selected = []
    for d in all_data:
        dims = _dimension_map(d.dimensions)
        if d.namespace != namespace or d.name != metric:
            continue
        if schema_keys is not None and set(dims) != schema_keys:
            continue
        if all((dims.get(key) == value) == (op == "=") for key, op, value in conditions):
            selected.append(d)
    return selected, _INSIGHTS_STAT[parsed["func"].upper()]


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------- metric math

_COMPARE_OPS: dict[type, Any] = {
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}


def _math(expression: str, series: dict[str, list[float | None]], length: int) -> list[float | None]:
    """Metric math period by period: ids, numbers, + - * /, comparisons, AND/OR/NOT, IF(c, a, b), FILL(x, v)."""
    python = re.sub(r"\bAND\b", " and ", expression.strip())
    python = re.sub(r"\bOR\b", " or ", python)
    python = re.sub(r"\bNOT\b", " not ", python)
    tree = ast.parse(python, mode="eval")
    return [_math_node(tree.body, series, i) for i in range(length)]


def _math_node(node: ast.AST, series: dict[str, list[float | None]], i: int) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in series:
            raise ValueError(f"unknown metric id {node.id}")
        return series[node.id][i]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _math_node(node.operand, series, i)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp):
        left, right = _math_node(node.left, series, i), _math_node(node.right, series, i)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return None if right == 0 else left / right
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _math_node(node.left, series, i), _math_node(node.comparators[0], series, i)
        if left is None or right is None:
            return None
        return 1.0 if _COMPARE_OPS[type(node.ops[0])](left, right) else 0.0
    if isinstance(node, ast.BoolOp):
        values = [_math_node(v, series, i) for v in node.values]
        if any(v is None for v in values):
            return None
        truth = all(values) if isinstance(node.op, ast.And) else any(values)
        return 1.0 if truth else 0.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _math_node(node.operand, series, i)
        return None if inner is None else float(not inner)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.upper() == "FILL":
        value = _math_node(node.args[0], series, i)
        return value if value is not None else _math_node(node.args[1], series, i)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.upper() == "IF":
        condition = _math_node(node.args[0], series, i)
        if condition is None:
            return None
        otherwise = node.args[2] if len(node.args) > 2 else None
        if condition:
            return _math_node(node.args[1], series, i)
        return _math_node(otherwise, series, i) if otherwise is not None else None
    raise ValueError(f"unsupported metric math: {ast.unparse(node)}")


# ---------------------------------------------------------------- composite rules

_RULE_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_:./\-]*))')


def _tokenize_rule(rule: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    rule = rule.strip()
    while pos < len(rule):
        match = _RULE_TOKEN.match(rule, pos)
        if not match:
            raise ValueError(f"cannot parse AlarmRule at: {rule[pos:]!r}")
        pos = match.end()
        if match.group(1):
            tokens.append(("(", "("))
        elif match.group(2):
            tokens.append((")", ")"))
        elif match.group(3) is not None:
            tokens.append(("name", match.group(3)))
        else:
            tokens.append(("word", match.group(4)))
        while pos < len(rule) and rule[pos].isspace():
            pos += 1
    return tokens


class _RuleParser:
    """Recursive descent over AlarmRule: OR < AND < NOT < ALARM()/OK()/INSUFFICIENT_DATA()/TRUE/FALSE/(...)."""

    def __init__(self, rule: str, states: dict[str, str]):
        self.tokens = _tokenize_rule(rule)
        self.pos = 0
        self.states = states
        self.referenced: list[str] = []

    def parse(self) -> bool:
        value = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos][1]!r} in AlarmRule")
        return value

    def _peek_word(self) -> str | None:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "word":
            return self.tokens[self.pos][1].upper()
        return None

    def _expect(self, kind: str) -> str:
        if self.pos >= len(self.tokens) or self.tokens[self.pos][0] != kind:
            raise ValueError(f"AlarmRule: expected {kind}")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def _or(self) -> bool:
        value = self._and()
        while self._peek_word() == "OR":
            self.pos += 1
            right = self._and()
            value = value or right
        return value

    def _and(self) -> bool:
        value = self._not()
        while self._peek_word() == "AND":
            self.pos += 1
            right = self._not()
            value = value and right
        return value

    def _not(self) -> bool:
        if self._peek_word() == "NOT":
            self.pos += 1
            return not self._not()
        return self._atom()

    def _atom(self) -> bool:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "(":
            self.pos += 1
            value = self._or()
            self._expect(")")
            return value
        word = self._peek_word()
        if word in ("TRUE", "FALSE"):
            self.pos += 1
            return word == "TRUE"
        if word in _STATES:
            self.pos += 1
            self._expect("(")
            kind, name = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")
            if kind not in ("name", "word"):
                raise ValueError("AlarmRule: expected an alarm name")
            self.pos += 1
            self._expect(")")
            name = name.rsplit(":alarm:", 1)[-1]
            self.referenced.append(name)
            return self.states.get(name) == word
        raise ValueError(f"AlarmRule: unexpected {self.tokens[self.pos][1] if self.pos < len(self.tokens) else 'end'}")


def evaluate_rule(rule: str, states: dict[str, str]) -> bool:
    """Truth of a composite AlarmRule given the current state of every alarm by name."""
    return _RuleParser(rule, states).parse()


# ---------------------------------------------------------------- evaluation


@dataclass
class _Verdict:
    state: str
    reason: str
    reason_data: dict[str, Any]


def _alarm_type(alarm: Any) -> str:
    return "CompositeAlarm" if alarm.rule is not None else "MetricAlarm"


def _metric_alarm_series(
    alarm: Any, all_data: list[Any], now: datetime
) -> tuple[list[tuple[datetime, float | None]], int]:
    periods = int(alarm.evaluation_periods or 1)
    if not alarm.metric_data_queries:
        period = int(alarm.period or 60)
        matching = _matching(
            all_data,
            namespace=alarm.namespace,
            metric_name=alarm.metric_name,
            dimensions=_dimension_map(alarm.dimensions),
            unit=alarm.unit,
        )
        stat = alarm.statistic or alarm.extended_statistic
        return _series(matching, stat=stat, period=period, periods=periods, now=now), period
    series: dict[str, list[float | None]] = {}
    starts: list[datetime] = []
    period = int(alarm.period or 60)
    for query in alarm.metric_data_queries:
        if query.metric_stat is not None:
            ms = query.metric_stat
            period = int(ms.period or query.period or period)
            matching = _matching(
                all_data,
                namespace=ms.metric.namespace,
                metric_name=ms.metric.metric_name,
                dimensions=_dimension_map(ms.metric.dimensions),
                unit=ms.unit,
            )
            stat = ms.stat
        elif query.expression and query.expression.lstrip().upper().startswith("SELECT"):
            period = int(query.period or period)
            matching, stat = _insights(query.expression, all_data)
        else:
            continue
        rows = _series(matching, stat=stat, period=period, periods=periods, now=now)
        series[query.id] = [value for _, value in rows]
        starts = [start for start, _ in rows]
    for query in alarm.metric_data_queries:
        if query.expression and query.id not in series:
            series[query.id] = _math(query.expression, series, periods)
    if not starts:
        starts = [now - timedelta(seconds=(i + 1) * period) for i in range(periods)]
    returned = [q for q in alarm.metric_data_queries if q.return_data in (True, "true", "True")]
    chosen = returned[0] if returned else alarm.metric_data_queries[-1]
    return list(zip(starts, series[chosen.id], strict=True)), period


def _judge_metric_alarm(alarm: Any, all_data: list[Any], now: datetime) -> _Verdict | None:
    compare = _COMPARATORS.get(alarm.comparison_operator)
    if compare is None:
        return None
    points, period = _metric_alarm_series(alarm, all_data, now)
    threshold = float(alarm.threshold)
    needed = int(alarm.datapoints_to_alarm or alarm.evaluation_periods or 1)
    treat = alarm.treat_missing_data or "missing"
    present = [(start, v) for start, v in points if v is not None]
    missing = len(points) - len(present)
    reason_data = {
        "version": "1.0",
        "queryDate": aws_state.iso_millis(now),
        "startDate": aws_state.iso_millis(points[-1][0]) if points else aws_state.iso_millis(now),
        "statistic": alarm.statistic or None,
        "period": period,
        "recentDatapoints": [v for _, v in present],
        "threshold": threshold,
        "evaluatedDatapoints": [{"timestamp": aws_state.iso_millis(s), "value": v} for s, v in present],
    }
    if not present:
        if treat == "ignore":
            return None
        state = {"breaching": ALARM, "notBreaching": OK}.get(treat, INSUFFICIENT)
        reason = (
            f"Insufficient Data: {len(points)} datapoint{'s were' if len(points) != 1 else ' was'} unknown."
            if state == INSUFFICIENT
            else f"Threshold Crossed: no datapoints were received for {len(points)} periods and "
            f"{len(points)} missing datapoints were treated as [{treat[0].upper() + treat[1:]}]."
        )
        return _Verdict(state, reason, reason_data)
    breaching = sum(1 for _, v in present if compare(v, threshold)) + (missing if treat == "breaching" else 0)
    state = ALARM if breaching >= needed else OK
    shown = ", ".join(f"{v} ({s.strftime('%d/%m/%y %H:%M:%S')})" for s, v in present)
    word = _COMPARISON_WORDS[alarm.comparison_operator]
    verb = "was" if breaching == 1 else "were"
    reason = (
        f"Threshold Crossed: {breaching} out of the last {len(points)} datapoints [{shown}] {verb} {word} "
        f"the threshold ({threshold}) (minimum {needed} datapoint{'s' if needed != 1 else ''} for "
        f"{'OK -> ALARM' if state == ALARM else 'ALARM -> OK'} transition)."
    )
    return _Verdict(state, reason, reason_data)


def _judge_composite(alarm: Any, states: dict[str, str]) -> _Verdict:
    parser = _RuleParser(alarm.rule, states)
    truth = parser.parse()
    triggering = list(dict.fromkeys(name for name in parser.referenced if states.get(name) == ALARM))
    reason = f"arn:aws:cloudwatch alarm rule {alarm.rule} evaluated to {'TRUE' if truth else 'FALSE'}" + (
        f"; triggering child alarms: {', '.join(triggering)}" if truth and triggering else ""
    )
    data = {"triggeringAlarms": [{"arn": _arn_like(alarm, n), "state": {"value": states[n]}} for n in triggering]}
    return _Verdict(ALARM if truth else OK, reason, data)


def _arn_like(alarm: Any, name: str) -> str:
    return str(alarm.alarm_arn).rsplit(":alarm:", 1)[0] + f":alarm:{name}"


def _evaluate_backend(
    account_id: str, region: str, backend: Any, *, names: set[str] | None, now: datetime, outbox: list[_Notice]
) -> None:
    all_data = backend.get_all_metrics()
    alarms = list(backend.alarms.values())
    for alarm in alarms:
        if alarm.rule is not None or (names is not None and alarm.name not in names):
            continue
        try:
            verdict = _judge_metric_alarm(alarm, all_data, now)
        except (ValueError, SyntaxError) as exc:
            # One alarm this emulation cannot evaluate (e.g. SEARCH() math) must not stop the others.
            LOG.warning("local cloud: alarm %s left as is: %s", alarm.name, exc)
            continue
        if verdict is not None:
            _transition(
                account_id,
                region,
                alarm,
                verdict.state,
                reason=verdict.reason,
                reason_data=json.dumps(verdict.reason_data),
                outbox=outbox,
            )
    # Composites may reference composites: settle until no state changes (bounded by the alarm count).
    for _ in range(len(alarms) + 1):
        changed = False
        states = {a.name: a.state_value for a in backend.alarms.values()}
        for alarm in list(backend.alarms.values()):
            if alarm.rule is None:
                continue
            try:
                verdict = _judge_composite(alarm, states)
            except ValueError as exc:
                LOG.warning("local cloud: composite alarm %s left as is: %s", alarm.name, exc)
                continue
            changed |= _transition(
                account_id,
                region,
                alarm,
                verdict.state,
                reason=verdict.reason,
                reason_data=json.dumps(verdict.reason_data),
                outbox=outbox,
            )
        if not changed:
            break


def evaluate_alarms(
    cloud: object = None, alarm_names: list[str] | None = None, *, now: datetime | None = None
) -> dict[str, str]:
    """Evaluate every alarm (or the named metric alarms, plus all composites) at `now` (default: the clock's now);
    return state by alarm name."""
    from moto.cloudwatch.models import cloudwatch_backends

    names = set(alarm_names) if alarm_names is not None else None
    now = now or aws_state.utcnow()
    states: dict[str, str] = {}
    outbox: list[_Notice] = []
    with _lock:
        for account_id, region, backend in aws_state.iter_backends(cloudwatch_backends):
            _evaluate_backend(account_id, region, backend, names=names, now=now, outbox=outbox)
            states.update({a.name: a.state_value for a in backend.alarms.values()})
    _deliver(outbox)
    return states


# ---------------------------------------------------------------- transitions, history, actions


def _record(alarm: Any, item_type: str, summary: str, data: dict[str, Any]) -> None:
    with _lock:
        _history.setdefault(alarm.alarm_arn, []).append(
            {
                "AlarmName": alarm.name,
                "AlarmType": _alarm_type(alarm),
                "Timestamp": aws_state.utcnow(),
                "HistoryItemType": item_type,
                "HistorySummary": summary,
                "HistoryData": json.dumps(data),
            }
        )


def _configuration(alarm: Any) -> dict[str, Any]:
    if alarm.rule is not None:
        return {"alarmRule": alarm.rule, "description": alarm.description or ""}
    if alarm.metric_data_queries:
        metrics = []
        for q in alarm.metric_data_queries:
            entry: dict[str, Any] = {"id": q.id, "returnData": q.return_data in (True, "true", "True")}
            if q.expression:
                entry["expression"] = q.expression
            if q.metric_stat is not None:
                entry["metricStat"] = {
                    "metric": {
                        "namespace": q.metric_stat.metric.namespace,
                        "name": q.metric_stat.metric.metric_name,
                        "dimensions": _dimension_map(q.metric_stat.metric.dimensions),
                    },
                    "period": int(q.metric_stat.period or 60),
                    "stat": q.metric_stat.stat,
                }
            metrics.append(entry)
    else:
        metrics = [
            {
                "id": "m1",
                "metricStat": {
                    "metric": {
                        "namespace": alarm.namespace,
                        "name": alarm.metric_name,
                        "dimensions": _dimension_map(alarm.dimensions),
                    },
                    "period": int(alarm.period or 60),
                    "stat": alarm.statistic or alarm.extended_statistic,
                },
                "returnData": True,
            }
        ]
    return {"description": alarm.description or "", "metrics": metrics}


@dataclass
class _Notice:
    """A state change's event and actions, delivered after the lock is released.

    Delivery can run code that calls CloudWatch again (a subscriber, an event target): holding the
    lock meanwhile would deadlock the server thread serving that call.
    """

    account_id: str
    region: str
    alarm: Any
    old_state: str
    detail: dict[str, Any]


def _deliver(outbox: list[_Notice]) -> None:
    for notice in outbox:
        alarm, current = notice.alarm, notice.detail["state"]
        aws_state.emit("aws.cloudwatch", "CloudWatch Alarm State Change", notice.detail, [alarm.alarm_arn])
        if alarm.actions_enabled:
            actions = {ALARM: alarm.alarm_actions, OK: alarm.ok_actions, INSUFFICIENT: alarm.insufficient_data_actions}
            for target in actions[current["value"]] or []:
                _run_action(
                    notice.account_id, notice.region, alarm, target, old_state=notice.old_state, current=current
                )


def _transition(
    account_id: str, region: str, alarm: Any, state: str, *, reason: str, reason_data: str, outbox: list[_Notice]
) -> bool:
    """Move an alarm to `state` as AWS does (history now; event and SNS actions via outbox). False if unchanged."""
    previous = {
        "value": alarm.state_value,
        "reason": alarm.state_reason,
        "reasonData": alarm.state_reason_data,
        "timestamp": aws_state.iso_millis(_aware(alarm.state_updated_timestamp)),
    }
    if state == alarm.state_value:
        return False
    alarm.update_state(reason, reason_data, state)
    now = _aware(alarm.state_updated_timestamp)
    current = {"value": state, "reason": reason, "reasonData": reason_data, "timestamp": aws_state.iso_millis(now)}
    _record(
        alarm,
        "StateUpdate",
        f"Alarm updated from {previous['value']} to {state}",
        {
            "version": "1.0",
            "oldState": {"stateValue": previous["value"], "stateReason": previous["reason"]},
            "newState": {"stateValue": state, "stateReason": reason, "stateReasonData": reason_data},
        },
    )
    detail = {
        "alarmName": alarm.name,
        "state": current,
        "previousState": previous,
        "configuration": _configuration(alarm),
    }
    outbox.append(_Notice(account_id, region, alarm, previous["value"], detail))
    return True


def _sns_message(account_id: str, region: str, alarm: Any, old_state: str, current: dict[str, Any]) -> str:
    message: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": aws_state.iso_millis(_aware(alarm.configuration_updated_timestamp)),
        "NewStateValue": current["value"],
        "NewStateReason": current["reason"],
        "StateChangeTime": current["timestamp"],
        "Region": region,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old_state,
        "OKActions": list(alarm.ok_actions or []),
        "AlarmActions": list(alarm.alarm_actions or []),
        "InsufficientDataActions": list(alarm.insufficient_data_actions or []),
    }
    if alarm.rule is not None:
        message["AlarmRule"] = alarm.rule
    else:
        message["Trigger"] = {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "StatisticType": "ExtendedStatistic" if alarm.extended_statistic else "Statistic",
            "Statistic": (alarm.statistic or "").upper() or None,
            "ExtendedStatistic": alarm.extended_statistic,
            "Unit": alarm.unit,
            "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
            "Period": alarm.period,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": alarm.threshold,
            "TreatMissingData": alarm.treat_missing_data or "missing",
            "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or "",
        }
    return json.dumps(message)


def _run_action(
    account_id: str, region: str, alarm: Any, target: str, *, old_state: str, current: dict[str, Any]
) -> None:
    from moto.sns.models import sns_backends

    from mlloop.localcloud import authz

    if ":sns:" not in target:
        failure = {"actionState": "Failed", "error": "only SNS actions run locally"}
        _record(alarm, "Action", f"Failed to execute action {target}", failure)
        return
    topic_account, topic_region = target.split(":")[4], target.split(":")[3]
    subject = f'{current["value"]}: "{alarm.name}" in {region}'[:100]
    try:
        # CloudWatch publishes as cloudwatch.amazonaws.com: the topic (and its key) policy must allow it.
        authz.authorise_service_publish(
            "cloudwatch.amazonaws.com", target, source_arn=alarm.alarm_arn, account=account_id
        )
        sns_backends[topic_account][topic_region].publish(
            _sns_message(account_id, region, alarm, old_state, current), arn=target, subject=subject
        )
    except Exception as exc:  # the alarm still changes state when its action fails, as in AWS
        _record(alarm, "Action", f"Failed to execute action {target}", {"actionState": "Failed", "error": str(exc)})
        return
    _record(alarm, "Action", f"Successfully executed action {target}", {"actionState": "Succeeded"})


# ---------------------------------------------------------------- patches


def _patched_put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    with _lock:
        existing = self.alarms.get(name)
        alarm = _originals["put_metric_alarm"](self, name, *args, **kwargs)
        if existing is not None:
            # AWS keeps the state of an alarm whose configuration is overwritten; moto would reset it to OK.
            alarm.state_value = existing.state_value
            alarm.state_reason = existing.state_reason
            alarm.state_reason_data = existing.state_reason_data
            alarm.state_updated_timestamp = existing.state_updated_timestamp
            alarm.history = existing.history
            _record(alarm, "ConfigurationUpdate", f'Alarm "{name}" updated', {"type": "Update"})
        else:
            alarm.state_value = INSUFFICIENT
            alarm.state_reason = "Unchecked: Initial alarm creation"
            _record(alarm, "ConfigurationUpdate", f'Alarm "{name}" created', {"type": "Create"})
        return alarm


def _patched_set_alarm_state(self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
    from moto.cloudwatch.exceptions import InvalidFormat, ResourceNotFound, ValidationError

    try:
        if reason_data is not None:
            json.loads(reason_data)
    except ValueError as exc:
        raise InvalidFormat("Unknown") from exc
    if alarm_name not in self.alarms:
        raise ResourceNotFound
    if state_value not in _STATES:
        raise ValidationError(
            "1 validation error detected: "
            f"Value '{state_value}' at 'stateValue' failed to satisfy constraint: "
            "Member must satisfy enum value set: [INSUFFICIENT_DATA, ALARM, OK]"
        )
    outbox: list[_Notice] = []
    with _lock:
        alarm = self.alarms[alarm_name]
        _transition(
            self.account_id,
            self.region_name,
            alarm,
            state_value,
            reason=reason,
            reason_data=reason_data or "{}",
            outbox=outbox,
        )
    _deliver(outbox)


def _response_put_composite_alarm(self: Any) -> Any:
    from moto.cloudwatch.exceptions import ValidationError
    from moto.core.responses import EmptyResult

    rule = self._get_param("AlarmRule")
    try:
        evaluate_rule(rule, {})
    except ValueError as exc:
        raise ValidationError(f"AlarmRule is invalid: {exc}") from exc
    self.cloudwatch_backend.put_metric_alarm(
        name=self._get_param("AlarmName"),
        namespace=None,
        metric_name=None,
        comparison_operator=None,
        evaluation_periods=None,
        period=None,
        threshold=None,
        statistic=None,
        description=self._get_param("AlarmDescription"),
        dimensions=[],
        alarm_actions=self._get_param("AlarmActions", []),
        ok_actions=self._get_param("OKActions", []),
        insufficient_data_actions=self._get_param("InsufficientDataActions", []),
        actions_enabled=self._get_bool_param("ActionsEnabled"),
        rule=rule,
        tags=self._get_param("Tags", []),
    )
    return EmptyResult()


def _response_describe_alarms(self: Any) -> Any:
    from moto.core.responses import ActionResult

    prefix = self._get_param("AlarmNamePrefix")
    names = self._get_param("AlarmNames", [])
    action_prefix = self._get_param("ActionPrefix")
    state_value = self._get_param("StateValue")
    # AWS returns only metric alarms when AlarmTypes is omitted.
    types = self._get_param("AlarmTypes") or ["MetricAlarm"]
    alarms = [
        a
        for a in self.cloudwatch_backend.alarms.values()
        if (not prefix or a.name.startswith(prefix))
        and (not names or a.name in names)
        and (not action_prefix or any(x.startswith(action_prefix) for x in a.alarm_actions or []))
        and (not state_value or a.state_value == state_value)
    ]
    return ActionResult(
        {
            "MetricAlarms": [a for a in alarms if a.rule is None and "MetricAlarm" in types],
            "CompositeAlarms": [a for a in alarms if a.rule is not None and "CompositeAlarm" in types],
        }
    )


def _response_describe_alarm_history(self: Any) -> Any:
    from moto.core.responses import ActionResult

    name = self._get_param("AlarmName")
    item_type = self._get_param("HistoryItemType")
    # As in DescribeAlarms, omitting AlarmTypes means metric alarms only.
    types = self._get_param("AlarmTypes") or ["MetricAlarm"]
    start, end = self._get_param("StartDate"), self._get_param("EndDate")
    max_records = int(self._get_param("MaxRecords") or 100)
    scope = [self.cloudwatch_backend.region_name, self.cloudwatch_backend.account_id]
    with _lock:
        items = [item for arn, rows in _history.items() if arn.split(":")[3:5] == scope for item in rows]
    items = [
        i
        for i in items
        if (not name or i["AlarmName"] == name)
        and (not item_type or i["HistoryItemType"] == item_type)
        and i["AlarmType"] in types
        and (start is None or i["Timestamp"] >= _aware(_as_datetime(start)))
        and (end is None or i["Timestamp"] <= _aware(_as_datetime(end)))
    ]
    items.sort(key=lambda i: i["Timestamp"], reverse=self._get_param("ScanBy") != "TimestampAscending")
    return ActionResult({"AlarmHistoryItems": items[:max_records]})


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# ---------------------------------------------------------------- evaluation on the clock


def _alarm_period(alarm: Any) -> int:
    for query in alarm.metric_data_queries or []:
        if query.metric_stat is not None and query.metric_stat.period:
            return int(query.metric_stat.period)
        if query.period:
            return int(query.period)
    return int(alarm.period or 60)


def _metric_alarm_periods() -> dict[str, int]:
    from moto.cloudwatch.models import cloudwatch_backends

    with _lock:
        return {
            alarm.name: _alarm_period(alarm)
            for _, _, backend in aws_state.iter_backends(cloudwatch_backends)
            for alarm in list(backend.alarms.values())
            if alarm.rule is None
        }


class AlarmPeriods:
    """Each metric alarm is evaluated at every boundary of its period (multiples of it since the epoch)."""

    name = "alarms"

    def next_due(self, after: datetime) -> datetime | None:
        periods = set(_metric_alarm_periods().values())
        if not periods:
            return None
        epoch = after.timestamp()
        return min(datetime.fromtimestamp((epoch // p + 1) * p, tz=UTC) for p in periods)

    def run_due(self, due: datetime, now: datetime) -> None:
        epoch = round(due.timestamp())
        names = [name for name, period in _metric_alarm_periods().items() if epoch % period == 0]
        if names:
            evaluate_alarms(alarm_names=names, now=now)


_PERIODS = AlarmPeriods()


def start_alarm_evaluator() -> None:
    """Evaluate alarms period by period on the clock's scaled timeline in the background (`up` runs it too)."""
    aws_state.clock().start_background(only=(_PERIODS.name,))


def stop_alarm_evaluator() -> None:
    aws_state.clock().stop_background()


def _patched_put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
    from moto.cloudwatch.exceptions import InvalidParameterValue

    stamps = [None if m.get("Timestamp") is None else _aware(_as_datetime(m["Timestamp"])) for m in metric_data]
    problems = cloudwatch_rules.timestamp_problems(stamps, aws_state.utcnow())
    if problems:
        raise InvalidParameterValue("\n".join(problems))
    _originals["put_metric_data"](self, namespace, metric_data)


def _clock_utcnow() -> datetime:
    """moto's CloudWatch stamps (datapoints received without a Timestamp, alarm updates) in its naive UTC."""
    return aws_state.utcnow().astimezone(UTC).replace(tzinfo=None)


def install(cloud: object) -> None:
    """Patch moto's CloudWatch in this process; emit events through the cloud."""
    from moto.cloudwatch import models
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse

    aws_state.bind(cloud)
    aws_state.clock().add_source(_PERIODS)
    if _originals:
        return
    from moto.logs import models as logs_models

    # CloudWatch Logs too: it accepts events from 14 days before to 2 hours after its now, the clock's.
    for module in (models, logs_models):
        _originals[f"utcnow:{module.__name__}"] = getattr(module, "utcnow")  # noqa: B009
        setattr(module, "utcnow", _clock_utcnow)  # noqa: B010
    _originals["put_metric_data"] = CloudWatchBackend.put_metric_data
    CloudWatchBackend.put_metric_data = _patched_put_metric_data  # type: ignore[method-assign]
    _originals["put_metric_alarm"] = CloudWatchBackend.put_metric_alarm
    _originals["set_alarm_state"] = CloudWatchBackend.set_alarm_state
    _originals["describe_alarms"] = CloudWatchResponse.describe_alarms
    CloudWatchBackend.put_metric_alarm = _patched_put_metric_alarm  # type: ignore[method-assign]
    CloudWatchBackend.set_alarm_state = _patched_set_alarm_state  # type: ignore[method-assign]
    CloudWatchResponse.describe_alarms = _response_describe_alarms  # type: ignore[method-assign]
    CloudWatchResponse.put_composite_alarm = _response_put_composite_alarm  # type: ignore[attr-defined]
    CloudWatchResponse.describe_alarm_history = _response_describe_alarm_history  # type: ignore[attr-defined]


def uninstall() -> None:
    """Stop the evaluator and restore moto's CloudWatch classes."""
    from moto.cloudwatch import models
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.logs import models as logs_models

    aws_state.clock().remove_source(_PERIODS)
    with _lock:
        if _originals:
            for module in (models, logs_models):
                setattr(module, "utcnow", _originals.pop(f"utcnow:{module.__name__}"))  # noqa: B010
            CloudWatchBackend.put_metric_data = _originals.pop("put_metric_data")  # type: ignore[method-assign]
            CloudWatchBackend.put_metric_alarm = _originals.pop("put_metric_alarm")  # type: ignore[method-assign]
            CloudWatchBackend.set_alarm_state = _originals.pop("set_alarm_state")  # type: ignore[method-assign]
            CloudWatchResponse.describe_alarms = _originals.pop("describe_alarms")  # type: ignore[method-assign]
            del CloudWatchResponse.put_composite_alarm  # type: ignore[attr-defined]
            del CloudWatchResponse.describe_alarm_history  # type: ignore[attr-defined]
        _history.clear()
    aws_state.unbind()


__all__ = [
    "evaluate_alarms",
    "evaluate_rule",
    "install",
    "start_alarm_evaluator",
    "stop_alarm_evaluator",
    "uninstall",
]
