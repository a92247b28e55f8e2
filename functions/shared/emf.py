"""EMF documents for hot paths: built once per shape by Powertools' serializer, then only filled in per call.

A request-path function publishing through `Metrics.add_metric` and `log_metrics` pays for unit validation,
the metric set, schema checks and a full JSON encode on every call, several times the cost of the request's
own work. The document Powertools writes for one shape (namespace, service, dimensions, metric names and
units) differs from call to call only in its timestamp and values, so it is serialized once with
placeholders and later calls format the numbers into it: the same bytes Powertools would print.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from functions.shared.jsonenc import compact_json

# (metric name, CloudWatch unit as Powertools spells it, e.g. "Count" or "Milliseconds")
MetricSpec = tuple[str, str]
Dimensions = tuple[tuple[str, str], ...]
_TIMESTAMP = "\x00t"


def _placeholder(index: int) -> str:
    return f"\x00{index}"


def document_template(namespace: str, service: str, metrics: Sequence[MetricSpec], dimensions: Dimensions) -> str:
    """A %-template of the EMF document Powertools prints for this shape: the timestamp in milliseconds first,
    then the value of each metric in order."""
    emitter = EphemeralMetrics(namespace=namespace, service=service)
    for name, value in dimensions:
        emitter.add_dimension(name=name, value=value)
    for name, unit in metrics:
        emitter.add_metric(name=name, unit=unit, value=0)
    document = emitter.serialize_metric_set()
    document["_aws"]["Timestamp"] = _TIMESTAMP  # type: ignore[typeddict-item]
    for index, (name, _unit) in enumerate(metrics):
        document[name] = _placeholder(index)  # type: ignore[literal-required]
    text = compact_json(document).replace("%", "%%")
    # The placeholders hold a NUL, which JSON escapes: no dimension or name the caller chose can spell them.
    text = text.replace(compact_json(_TIMESTAMP), "%d")
    for index in range(len(metrics)):
        # Powertools writes each value as a one-element list; %r of a float is its repr, as json.dumps writes it.
        text = text.replace(compact_json(_placeholder(index)), "[%r]")
    return text


@dataclass(frozen=True)
class EmfDocument:
    """One document shape, ready to print with the current time and this call's values."""

    template: str
    write: Callable[[str], object]
    enabled: bool

    def emit(self, *values: float) -> None:
        if not self.enabled:
            return
        numbers = tuple(map(float, values))
        if not all(map(math.isfinite, numbers)):
            raise ValueError(f"EMF metric values must be finite, got {values!r}")
        self.write(self.template % (time.time_ns() // 1_000_000, *numbers))


@dataclass
class EmfWriter:
    """Prints EMF documents to stdout, where the Lambda runtime ships them to CloudWatch."""

    namespace: str
    service: str
    write: Callable[[str], object] = print
    enabled: bool = field(default_factory=lambda: not is_metrics_disabled())
    _documents: dict[tuple[tuple[MetricSpec, ...], Dimensions], EmfDocument] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if not self.namespace:
            # Powertools would refuse at the first flush, mid-request; refuse at start-up instead.
            raise ValueError("EMF metrics need a namespace: set POWERTOOLS_METRICS_NAMESPACE")

    @classmethod
    def like(cls, metrics: Metrics) -> EmfWriter:
        """A writer with the namespace and service of a Powertools `Metrics` (both resolved from the environment)."""
        return cls(namespace=metrics.namespace or "", service=metrics.service or "")

    def document(self, metrics: tuple[MetricSpec, ...], dimensions: Dimensions = ()) -> EmfDocument:
        """The document for this shape, built on first use; keep it where the same shape is emitted often."""
        found = self._documents.get((metrics, dimensions))
        if found is None:
            template = document_template(self.namespace, self.service, metrics, dimensions)
            found = self._documents[(metrics, dimensions)] = EmfDocument(template, self.write, self.enabled)
        return found

    def emit(self, metrics: tuple[MetricSpec, ...], values: Sequence[float], dimensions: Dimensions = ()) -> None:
        self.document(metrics, dimensions).emit(*values)
