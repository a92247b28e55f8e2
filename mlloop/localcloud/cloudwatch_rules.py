"""What CloudWatch refuses in PutMetricData beyond the service model, as AWS documents it.

MetricDatum.Value (and each of Values, and StatisticValues' Sum/Minimum/Maximum/SampleCount): "Although the
parameter accepts numbers of type Double, CloudWatch rejects values that are either too small or too large.
Values must be in the range of -2^360 to 2^360. In addition, special values (for example, NaN, +Infinity,
-Infinity) are not supported." (CloudWatch API reference, MetricDatum). moto refuses NaN in Value and Values
only; +/-Infinity and values beyond 2^360 reach its store, where they poison every statistic an alarm reads.
The answer is the one moto gives for NaN: InvalidParameterValue, "The value X for parameter P is invalid."

Timestamps: "time stamps that are as much as two weeks before the current date, and as much as 2 hours after the
current day and time" (botocore's cloudwatch service model, PutMetricData), relative to the clock's now. This
bound is checked where moto stores the data (`cloudwatch.py`), so the emulation's own puts honour it too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

_LIMIT = 2.0**360
_STATISTICS = ("SampleCount", "Sum", "Minimum", "Maximum")
_OLDEST_TIMESTAMP = timedelta(weeks=2)
_NEWEST_TIMESTAMP = timedelta(hours=2)


def _numbers(datum: Mapping[str, Any], member: str) -> Iterator[tuple[str, Any]]:
    if datum.get("Value") is not None:
        yield f"{member}.Value", datum["Value"]
    for value in datum.get("Values") or []:
        yield f"{member}.Values", value
    statistics = datum.get("StatisticValues") or {}
    for name in _STATISTICS:
        if statistics.get(name) is not None:
            yield f"{member}.StatisticValues.{name}", statistics[name]


def _render(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def put_metric_data_refusal(params: Mapping[str, Any]) -> str | None:
    """The InvalidParameterValue message CloudWatch answers this PutMetricData with, or None when it accepts it."""
    for index, datum in enumerate(params.get("MetricData") or [], start=1):
        for parameter, raw in _numbers(datum, f"MetricData.member.{index}"):
            value = float(raw)
            if not math.isfinite(value) or abs(value) > _LIMIT:
                return f"The value {_render(value)} for parameter {parameter} is invalid."
    return None


def _member(number: int) -> str:
    # AWS's message (e.g. github.com/cloud-custodian/cloud-custodian/issues/2559): "The parameter
    # MetricData.member.1.Timestamp must specify a time within the past two weeks."
    return f"The parameter MetricData.member.{number}.Timestamp"


def timestamp_problems(stamps: Sequence[datetime | None], now: datetime) -> list[str]:
    """CloudWatch's messages for the data points (their Timestamp, None when absent) outside its bounds at `now`."""
    problems = []
    for number, moment in enumerate(stamps, start=1):
        if moment is None:
            continue
        if moment < now - _OLDEST_TIMESTAMP:
            problems.append(f"{_member(number)} must specify a time within the past two weeks.")
        elif moment > now + _NEWEST_TIMESTAMP:
            # AWS's wording for this bound is not documented; the message mirrors the past-bound one.
            problems.append(f"{_member(number)} must specify a time no more than two hours in the future.")
    return problems
