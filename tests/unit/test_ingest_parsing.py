"""Value parsing behind the row rules, and the function's settings: plain Python, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from functions.ingest.layout import SourceObject, curated_key
from functions.ingest.readers import RejectedFileError, detect_format
from functions.ingest.settings import IngestSettings
from functions.ingest.validation import parse_boolean, parse_number, parse_timestamp, repeated_in_order


def test_numbers_parse_from_text_and_bad_text_is_flagged() -> None:
    values, bad = parse_number(pa.array(["1", "+3", "1e3", " 2.5 ", None, "seventy", "inf", "1,5"]))

    assert values.to_pylist() == [1.0, 3.0, 1000.0, 2.5, None, None, None, None]
    assert bad.tolist() == [False, False, False, False, False, True, True, True]


def test_typed_numbers_pass_and_non_finite_ones_are_flagged() -> None:
    values, bad = parse_number(pa.array([1.5, float("nan"), None]))

    assert values.to_pylist() == [1.5, None, None]
    assert bad.tolist() == [False, True, False]


def test_booleans_accept_the_usual_spellings() -> None:
    values, bad = parse_boolean(pa.array(["true", "False", "1", "no", "maybe", None]))

    assert values.to_pylist() == [True, False, True, False, None, None]
    assert bad.tolist() == [False, False, False, False, True, False]


def test_timestamps_with_zone_without_zone_and_date_only_are_utc() -> None:
    values, bad = parse_timestamp(
        pa.array(["2026-05-01T10:00:00+02:00", "2026-05-01 10:00:00", "2026-05-01", "2026-13-01", "soon", None])
    )

    assert values.to_pylist()[:3] == [
        datetime(2026, 5, 1, 8, tzinfo=UTC),
        datetime(2026, 5, 1, 10, tzinfo=UTC),
        datetime(2026, 5, 1, tzinfo=UTC),
    ]
    assert bad.tolist() == [False, False, False, True, True, False]


def test_repeats_are_marked_after_their_first_occurrence() -> None:
    hashes = pa.array([5, 3, 5, 9, 3, 5], type=pa.uint64()).to_numpy()

    assert repeated_in_order(hashes).tolist() == [False, False, True, False, True, True]


@pytest.mark.parametrize("name", ["a.csv", "b.JSONL", "c.ndjson", "d.parquet"])
def test_supported_file_types_are_recognised(name: str) -> None:
    assert detect_format(name) in {"csv", "jsonl", "parquet"}


def test_unsupported_file_type_is_rejected_by_name() -> None:
    with pytest.raises(RejectedFileError) as rejected:
        detect_format("data.xlsx")

    assert rejected.value.rule == "unsupported_file_type"


def test_output_keys_follow_the_object_version() -> None:
    first = SourceObject("raw", "churn/2026/05/export file.csv", "v1")
    second = SourceObject("raw", "churn/2026/05/export file.csv", "v2")

    assert first.dataset == "churn"
    assert curated_key("churn", "2026-05-01", first, 0).startswith("churn/event_date=2026-05-01/export_file-")
    assert curated_key("churn", "2026-05-01", first, 0) != curated_key("churn", "2026-05-01", second, 0)


def test_settings_come_from_the_environment_and_name_what_is_missing() -> None:
    env = {
        "CURATED_BUCKET": "c",
        "QUARANTINE_BUCKET": "q",
        "IDEMPOTENCY_TABLE": "t",
        "NOTIFICATIONS_TOPIC_ARN": "arn",
        "INGEST_CHUNK_ROWS": "5000",
    }

    assert IngestSettings.from_env(env).chunk_rows == 5000
    with pytest.raises(RuntimeError, match="QUARANTINE_BUCKET"):
        IngestSettings.from_env({k: v for k, v in env.items() if k != "QUARANTINE_BUCKET"})
