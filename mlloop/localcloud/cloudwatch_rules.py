"""What CloudWatch refuses in PutMetricData beyond the service model, as AWS documents it.

MetricDatum.Value (and each of Values, and StatisticValues' Sum/Minimum/Maximum/SampleCount): "Although the
parameter accepts numbers of type Double, CloudWatch rejects values that are either too small or too large.
Values must be in the range of -2^360 to 2^360. In addition, special values (for example, NaN, +Infinity,
-Infinity) are not supported." (CloudWatch API reference, MetricDatum). moto refuses NaN in Value and Values
only; +/-Infinity and values beyond 2^360 reach its store, where they poison every statistic an alarm reads.
The answer is the one moto gives for NaN: InvalidParameterValue, "The value X for parameter P is invalid."
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

_LIMIT = 2.0**360
_STATISTICS = ("SampleCount", "Sum", "Minimum", "Maximum")


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
