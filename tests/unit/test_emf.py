"""EMF documents built once per shape: byte for byte what Powertools prints, whatever the names hold."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from aws_lambda_powertools import Metrics

from functions.shared.emf import EmfWriter

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def _powertools_line(
    capsys: pytest.CaptureFixture[str], metrics: list[tuple[str, str, float]], dimensions: tuple[tuple[str, str], ...]
) -> str:
    reference = Metrics(namespace="ns-%s{0}", service="svc")
    for name, value in dimensions:
        reference.add_dimension(name=name, value=value)
    for name, unit, value in metrics:
        reference.add_metric(name=name, unit=unit, value=value)
    reference.flush_metrics()
    return capsys.readouterr().out.strip()


def _timestamp_free(line: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(line)
    document["_aws"].pop("Timestamp")
    return document


@pytest.mark.parametrize(
    "dimensions",
    [(), (("reason", "circuit_open"),), (("field", 'odd %d {1} "quoted" \\ é'),)],
)
def test_documents_match_what_powertools_prints(
    dimensions: tuple[tuple[str, str], ...], capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []
    writer = EmfWriter(namespace="ns-%s{0}", service="svc", write=lines.append, enabled=True)
    specs = (("Latency", "Milliseconds"), ("Answers", "Count"))
    writer.emit(specs, (0.1 + 0.2, 1), dimensions)
    expected = _powertools_line(capsys, [("Latency", "Milliseconds", 0.1 + 0.2), ("Answers", "Count", 1)], dimensions)
    (line,) = lines
    assert _timestamp_free(line) == _timestamp_free(expected)
    assert json.loads(line)["Latency"] == [0.30000000000000004], "every digit of the float is kept"


def test_values_are_written_as_json_numbers_and_non_finite_ones_are_refused() -> None:
    lines: list[str] = []
    writer = EmfWriter(namespace="ns", service="svc", write=lines.append, enabled=True)
    document = writer.document((("Latency", "Milliseconds"),))
    document.emit(np.float64(2.5))
    document.emit(True)
    assert [json.loads(line)["Latency"] for line in lines] == [[2.5], [1.0]]
    with pytest.raises(ValueError, match="finite"):
        document.emit(float("nan"))
    assert writer.document((("Latency", "Milliseconds"),)) is document, "one template per shape"


def test_a_writer_needs_a_namespace_at_start_up() -> None:
    with pytest.raises(ValueError, match="POWERTOOLS_METRICS_NAMESPACE"):
        EmfWriter(namespace="", service="svc")
