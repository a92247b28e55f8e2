"""The lake holds each fact once and every file is accounted for: cross-file deduplication (latest arrival
wins), row-level reads of damaged bytes, and a bounded idempotency record whatever the partition count."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from functions.ingest import handler as ingest_handler
from functions.shared.contract import DEFAULT_CONTRACTS_DIR
from tests.unit.ingest_support import CURATED, QUARANTINE, TABLE, Lake, churn_rows, csv_bytes, lake
from tests.unit.test_ingest_handler import FakeContext, function_env, object_created

__all__ = ["function_env", "lake"]


def test_the_same_bytes_uploaded_three_ways_are_curated_once(lake: Lake) -> None:
    # Given one export uploaded, re-uploaded under the same key (a new version), under another key and prefix
    body = csv_bytes(churn_rows(40, seed=11))
    first = lake.put_raw("churn/exports/daily.csv", body)
    uploads = [
        first,
        lake.put_raw("churn/exports/daily.csv", body),
        lake.put_raw("churn/exports/daily-copy.csv", body),
        lake.put_raw("churn/resent/2026/daily.csv", body),
    ]

    # When each upload is ingested
    reports = [lake.ingest(source) for source in uploads]

    # Then the rows are curated once; the later copies count every row as dropped-as-duplicate
    assert [r.rows_curated for r in reports] == [40, 0, 0, 0]
    assert [r.rows_dropped_duplicate for r in reports] == [0, 40, 40, 40]
    for report in reports:
        assert report.rows_in == report.rows_curated + report.rows_quarantined + report.rows_dropped_duplicate
        assert lake.report(report)["rows_dropped_duplicate"] == report.rows_dropped_duplicate
    curated = lake.read_parquet(CURATED, "churn/")
    keys = curated[["customer_id", "event_time"]]
    assert len(curated) == 40 and not keys.duplicated().any()


def test_a_later_copy_with_changed_values_replaces_the_earlier_row(lake: Lake) -> None:
    # Given a file, then a correction that changes one row's values and repeats the others
    frame = churn_rows(20, seed=12)
    first = lake.ingest(lake.put_raw("churn/corrections/base.csv", csv_bytes(frame)))
    corrected = frame.copy()
    corrected.loc[5, "monthly_charges"] = 77.25
    second = lake.ingest(lake.put_raw("churn/corrections/fix.csv", csv_bytes(corrected)))

    # Then the latest arrival wins: the changed row is curated from the correction, the rest stay as they were
    assert (first.rows_curated, second.rows_curated, second.rows_dropped_duplicate) == (20, 1, 19)
    assert second.rows_superseded == 1
    curated = lake.read_parquet(CURATED, "churn/")
    assert len(curated) == 20
    row = curated[curated["customer_id"] == frame.loc[5, "customer_id"]].iloc[0]
    assert row["monthly_charges"] == pytest.approx(77.25)
    assert row["source_file"] == second.source


def test_an_invalid_byte_quarantines_its_row_naming_the_row_and_the_offset(lake: Lake) -> None:
    # Given a CSV whose data row 3 holds a byte that is not UTF-8
    body = csv_bytes(churn_rows(10, seed=13))
    lines = body.split(b"\n")
    lines[3] = (
        lines[3]
        .replace(b"basic", b"ba\xffsic")
        .replace(b"standard", b"stan\xffdard")
        .replace(b"premium", b"pre\xffmium")
    )
    damaged = b"\n".join(lines)
    offset = damaged.index(b"\xff")
    source = lake.put_raw("churn/bad-byte.csv", damaged)

    # When it is ingested
    report = lake.ingest(source)

    # Then that row alone is quarantined, and its reason names the line and the byte offset
    assert not report.quarantined_whole
    assert (report.rows_in, report.rows_curated, report.rows_quarantined) == (10, 9, 1)
    (row,) = lake.quarantined_rows(report).to_dict("records")
    assert row["rules"] == "malformed_row"
    assert "line 4" in row["reason"] and f"byte offset {offset}" in row["reason"]


def test_a_ragged_line_with_an_invalid_byte_quarantines_that_line_only(lake: Lake) -> None:
    body = csv_bytes(churn_rows(10, seed=14)) + b"C99\xfe99,2026-05-01T00:00:00Z,3\n"
    source = lake.put_raw("churn/ragged-bad-byte.csv", body)

    report = lake.ingest(source)

    assert (report.rows_in, report.rows_curated, report.rows_quarantined) == (11, 10, 1)
    assert report.rule_counts == {"malformed_row": 1}


def test_a_file_that_cannot_be_read_is_recorded(lake: Lake) -> None:
    # Given an event for an object version that cannot be read (deleted before ingestion ran)
    source = lake.put_raw("churn/vanished.csv", csv_bytes(churn_rows(5)))
    lake.s3.delete_object(Bucket=source.bucket, Key=source.key, VersionId=source.version_id)

    # When it is ingested (no exception escapes)
    report = lake.ingest(source)

    # Then a report and a quarantine record say so, and people are told
    assert report.quarantined_whole and report.rule == "unreadable_file"
    assert report.reason is not None and "cannot be downloaded" in report.reason
    assert lake.report(report)["rule"] == "unreadable_file"
    assert any(k.endswith("reason.json") for k in lake.keys(QUARANTINE, "files/churn/"))
    assert any("unreadable_file" in n["Subject"] for n in lake.notifications())


@pytest.fixture
def long_history_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The repository's contracts plus the churn contract as dataset `history`, accepting events 20 years old."""
    shutil.copytree(DEFAULT_CONTRACTS_DIR, tmp_path / "contracts")
    raw = json.loads((DEFAULT_CONTRACTS_DIR / "churn" / "v1.json").read_text())
    raw["dataset"] = "history"
    raw["freshness"]["max_event_age_days"] = 7300
    folder = tmp_path / "contracts" / "history"
    folder.mkdir()
    (folder / "v1.json").write_text(json.dumps(raw))
    monkeypatch.setenv("CONTRACTS_DIR", str(tmp_path / "contracts"))
    return "history"


def test_a_file_spanning_5000_days_ingests_with_a_bounded_idempotency_record(
    function_env: Lake, long_history_contract: str
) -> None:
    # Given a file with one row per day over 5,000 days (5,000 curated partitions)
    frame = churn_rows(5000, seed=15)
    days = pd.date_range(end=pd.Timestamp("2026-05-30T10:00:00Z"), periods=5000, freq="D")
    frame["event_time"] = days
    frame["customer_id"] = [f"H{i:07d}" for i in range(5000)]
    source = function_env.put_raw(f"{long_history_contract}/decade.csv", csv_bytes(frame))

    # When the function handles its event (Powertools idempotency on DynamoDB, 400 KB item limit)
    summary = ingest_handler.handler(object_created(source.key, source.version_id), FakeContext())

    # Then it succeeds; the record holds counts, a digest and where the full report lies, never the full list
    assert (summary["rows_in"], summary["rows_curated"]) == (5000, 5000)
    assert summary["curated_object_count"] == 5000
    assert summary["report_digest"].startswith("sha256:")
    items = function_env.dynamodb.scan(TableName=TABLE)["Items"]
    record = next(i for i in items if "data" in i and source.key in i["data"]["S"])
    assert len(record["data"]["S"]) < 8_000
    full = function_env.report_at(summary["report_object"])
    assert len(full["curated_objects"]) == 5000


def test_a_ragged_line_is_quarantined_naming_its_line(lake: Lake) -> None:
    body = (
        csv_bytes(churn_rows(10, seed=16))
        + b"C9999999,2026-05-01T00:00:00Z,3\n"
        + csv_bytes(churn_rows(3, seed=17)).split(b"\n", 1)[1]
    )
    source = lake.put_raw("churn/ragged-middle.csv", body)

    report = lake.ingest(source)

    (row,) = lake.quarantined_rows(report).to_dict("records")
    assert report.rows_in == 14 and report.rows_quarantined == 1
    assert row["reason"] == "malformed_row: line 12 expected 15 columns, found 3"
