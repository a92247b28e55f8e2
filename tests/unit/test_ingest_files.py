"""Files that cannot be ingested row by row are quarantined whole, with a clear reason and a notification;
files in every supported format are ingested."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.ingest_support import QUARANTINE, RAW, Lake, churn_rows, csv_bytes, lake

__all__ = ["lake"]


def _parquet(frame_rows: int = 30) -> bytes:
    buffer = io.BytesIO()
    churn_rows(frame_rows).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _wrong_delimiter() -> bytes:
    return churn_rows(5).to_csv(index=False, sep=";").encode()


def _header_only() -> bytes:
    return csv_bytes(churn_rows(5)).split(b"\n", 1)[0] + b"\n"


def _missing_column() -> bytes:
    return csv_bytes(churn_rows(5).drop(columns=["plan"]))


def _unexpected_column() -> bytes:
    return csv_bytes(churn_rows(5).assign(shoe_size=42))


def _not_json() -> bytes:
    return b"this is not json\nneither is this\n"


WHOLE_FILE_CASES = [
    ("churn/notes.txt", b"hello", "unsupported_file_type", "not a supported file type"),
    ("churn/empty.csv", b"", "empty_file", "empty"),
    ("churn/semicolons.csv", _wrong_delimiter(), "wrong_delimiter", "';'"),
    ("churn/truncated.parquet", _parquet()[:-200], "unreadable_file", "Parquet"),
    ("churn/header-only.csv", _header_only(), "no_rows", "no data rows"),
    ("churn/no-plan.csv", _missing_column(), "missing_columns", "plan"),
    ("churn/extra.csv", _unexpected_column(), "unexpected_columns", "shoe_size"),
    ("churn/garbage.jsonl", _not_json(), "unreadable_file", "JSON object"),
    ("weather/readings.csv", csv_bytes(churn_rows(5)), "unknown_dataset", "weather"),
    ("loose-file.csv", csv_bytes(churn_rows(5)), "unknown_dataset", "<dataset>/"),
    ("churn/binary.csv", b"\xff\xfe\x00\x01garbage", "unreadable_file", "CSV"),
]


@pytest.mark.parametrize(
    ("key", "body", "rule", "says"), WHOLE_FILE_CASES, ids=[c[2] + ":" + c[0] for c in WHOLE_FILE_CASES]
)
def test_unusable_file_is_quarantined_whole_with_reason_and_notification(
    lake: Lake, key: str, body: bytes, rule: str, says: str
) -> None:
    # Given a raw file that cannot be ingested row by row
    source = lake.put_raw(key, body)

    # When it is ingested (no exception escapes)
    report = lake.ingest(source)

    # Then the file is copied whole to quarantine with its reason, nothing is curated, and people are told
    assert report.quarantined_whole
    assert report.rule == rule
    assert report.reason is not None and says in report.reason
    assert report.curated_objects == [] and report.rows_curated == 0
    (folder,) = report.quarantine_objects
    copied = lake.keys(QUARANTINE, folder.split("/", 3)[3])
    assert len(copied) == 2 and any(k.endswith("reason.json") for k in copied)
    kept = next(k for k in copied if not k.endswith("reason.json"))
    assert lake.s3.get_object(Bucket=QUARANTINE, Key=kept)["Body"].read() == body
    assert lake.report(report)["rule"] == rule
    notices = [n for n in lake.notifications() if rule in n["Subject"]]
    assert notices and source.key in notices[0]["Message"]


def test_raw_object_is_never_modified_or_deleted(lake: Lake) -> None:
    body = csv_bytes(churn_rows(20, corrupt_fraction=0.2))
    source = lake.put_raw("churn/keep-me.csv", body)

    lake.ingest(source)

    versions = lake.s3.list_object_versions(Bucket=RAW, Prefix=source.key)
    assert [v["VersionId"] for v in versions["Versions"]] == [source.version_id]
    assert "DeleteMarkers" not in versions
    assert lake.s3.get_object(Bucket=RAW, Key=source.key)["Body"].read() == body


def test_parquet_file_is_ingested_with_its_types(lake: Lake) -> None:
    source = lake.put_raw("churn/typed.parquet", _parquet(30))

    report = lake.ingest(source)

    assert (report.rows_in, report.rows_curated, report.rows_quarantined) == (30, 30, 0)
    curated = lake.curated(report)
    assert curated["tenure_months"].tolist() == churn_rows(30).sort_values("event_time")["tenure_months"].tolist()


def test_json_lines_file_is_ingested_and_bad_lines_are_quarantined(lake: Lake) -> None:
    frame = churn_rows(12)
    frame.loc[2, "plan"] = "platinum"
    lines = frame.to_json(orient="records", lines=True, date_format="iso").encode() + b"{not json\n"
    source = lake.put_raw("churn/events.jsonl", lines)

    report = lake.ingest(source)

    assert (report.rows_in, report.rows_curated, report.rows_quarantined) == (13, 11, 2)
    assert report.rule_counts == {"malformed_row": 1, "unknown_category": 1}


def test_csv_cut_off_mid_row_keeps_the_whole_rows_and_quarantines_the_cut_one(lake: Lake) -> None:
    body = csv_bytes(churn_rows(10))
    source = lake.put_raw("churn/cut.csv", body[: body.rindex(b",", 0, len(body) - 2)])

    report = lake.ingest(source)

    assert (report.rows_in, report.rows_curated, report.rows_quarantined) == (10, 9, 1)
    assert report.rule_counts == {"malformed_row": 1}


def test_parquet_with_a_wrong_column_type_quarantines_its_rows_not_the_file(lake: Lake) -> None:
    table = pa.Table.from_pandas(churn_rows(5), preserve_index=False)
    table = table.set_column(table.schema.get_field_index("auto_renew"), "auto_renew", pa.array(["x"] * 5))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    source = lake.put_raw("churn/wrong-type.parquet", buffer.getvalue())

    report = lake.ingest(source)

    assert (report.rows_in, report.rows_quarantined) == (5, 5)
    assert report.rule_counts == {"type_mismatch": 5}
