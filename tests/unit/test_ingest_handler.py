"""The Lambda entry point: an EventBridge "Object Created" event in, curated data and EMF metrics out;
idempotent on (bucket, key, version id)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from functions.ingest import handler as ingest_handler
from functions.shared.observability import metrics
from tests.unit.ingest_support import CURATED, QUARANTINE, RAW, Lake, churn_rows, csv_bytes, lake

__all__ = ["lake"]


@dataclass
class FakeContext:
    function_name: str = "mlloop-test-ingest"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlloop-test-ingest"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


def object_created(key: str, version_id: str | None) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-06-01T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{RAW}"],
        "detail": {
            "version": "0",
            "bucket": {"name": RAW},
            "object": {"key": key, "size": 100, "etag": "0e2a", "version-id": version_id, "sequencer": "00617F08"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


@pytest.fixture
def function_env(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    settings = lake.settings
    monkeypatch.setenv("CURATED_BUCKET", settings.curated_bucket)
    monkeypatch.setenv("QUARANTINE_BUCKET", settings.quarantine_bucket)
    monkeypatch.setenv("IDEMPOTENCY_TABLE", settings.idempotency_table)
    monkeypatch.setenv("NOTIFICATIONS_TOPIC_ARN", settings.notifications_topic_arn)
    monkeypatch.setenv("INGEST_CHUNK_ROWS", "1000")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setattr(metrics, "namespace", "MLLoop/test")
    yield lake


def emf_metrics(output: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    name = metric["Name"]
                    suffix = f"[{blob['Rule']}]" if "Rule" in blob else ""
                    value = blob[name]
                    values[name + suffix] = sum(value) if isinstance(value, list) else value
    return values


def test_object_created_event_is_ingested_and_measured(function_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a raw file with one bad row, announced by EventBridge
    frame = churn_rows(50)
    frame.loc[4, "plan"] = "platinum"
    source = function_env.put_raw("churn/handler run.csv", csv_bytes(frame))
    event = object_created("churn/handler+run.csv", source.version_id)

    # When the function handles the event
    report = ingest_handler.handler(event, FakeContext())

    # Then the file is ingested and its numbers are published as EMF metrics
    assert (report["rows_in"], report["rows_curated"], report["rows_quarantined"]) == (50, 49, 1)
    emitted = emf_metrics(capsys.readouterr().out)
    assert emitted["RowsIn"] == 50 and emitted["RowsCurated"] == 49 and emitted["RowsQuarantined"] == 1
    assert emitted["RowsQuarantinedByRule[unknown_category]"] == 1
    assert emitted["QuarantineRate"] == pytest.approx(2.0)
    assert {"NullRate", "DuplicateRate", "FreshnessLag", "FilesQuarantined"} <= set(emitted)


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_redelivered_event_adds_no_duplicate_rows(function_env: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    source = function_env.put_raw("churn/redelivered.csv", csv_bytes(churn_rows(40)))
    event = object_created(source.key, source.version_id)
    first = ingest_handler.handler(event, FakeContext())
    written = function_env.s3.list_object_versions(Bucket=CURATED, Prefix="churn/")["Versions"]
    capsys.readouterr()

    again = ingest_handler.handler(event, FakeContext(aws_request_id="req-2"))

    assert again == first
    assert function_env.s3.list_object_versions(Bucket=CURATED, Prefix="churn/")["Versions"] == written
    assert "RowsIn" not in emf_metrics(capsys.readouterr().out)


def test_a_new_version_of_the_same_key_is_ingested_again(function_env: Lake) -> None:
    first = function_env.put_raw("churn/daily.csv", csv_bytes(churn_rows(10, seed=1)))
    second = function_env.put_raw("churn/daily.csv", csv_bytes(churn_rows(12, seed=2)))

    one = ingest_handler.handler(object_created(first.key, first.version_id), FakeContext())
    two = ingest_handler.handler(object_created(second.key, second.version_id), FakeContext())

    assert (one["rows_curated"], two["rows_curated"]) == (10, 12)
    assert set(one["curated_objects"]).isdisjoint(two["curated_objects"])


def test_a_rerun_after_a_crash_rewrites_the_same_objects(function_env: Lake) -> None:
    source = function_env.put_raw("churn/crashed.csv", csv_bytes(churn_rows(30, corrupt_fraction=0.1)))

    first = function_env.ingest(source)
    rerun = function_env.ingest(source)

    assert rerun.curated_objects == first.curated_objects
    assert rerun.quarantine_objects == first.quarantine_objects
    assert len(function_env.curated(rerun)) == first.rows_curated


def test_file_quarantined_whole_counts_as_a_quarantined_file(
    function_env: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    source = function_env.put_raw("churn/empty.csv", b"")

    report = ingest_handler.handler(object_created(source.key, source.version_id), FakeContext())

    assert report["quarantined_whole"] and report["rule"] == "empty_file"
    assert emf_metrics(capsys.readouterr().out)["FilesQuarantined"] == 1
    assert function_env.keys(QUARANTINE, "files/churn/")
