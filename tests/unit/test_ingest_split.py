"""The split path: a file cut into byte ranges at line boundaries, each range ingested as a file, one report
merged from the ranges, with the same curated rows and quarantine reasons as the unsplit path."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from functools import cache
from itertools import pairwise

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from functions.ingest.layout import SourceObject
from functions.ingest.logic import IngestReport, S3ObjectStore, ingest_range, merge_ranges
from functions.ingest.ranges import ByteRange, largest_single_file, plan_ranges, read_blocks
from functions.ingest.service import start_split
from tests.unit.ingest_support import NOW, RAW, Lake, _make_lake, churn_rows, csv_bytes

HEADER = b"a,b\n"


def plan(data: bytes, range_bytes: int, block_bytes: int = 3) -> list[ByteRange]:
    blocks = [data[i : i + block_bytes] for i in range(0, len(data), block_bytes)]
    return plan_ranges(blocks, len(data), range_bytes)


def pieces(data: bytes, ranges: list[ByteRange]) -> list[bytes]:
    return [data[r.start : r.end] for r in ranges]


def test_ranges_start_after_the_header_and_cut_after_the_first_newline_at_or_after_each_offset() -> None:
    data = HEADER + b"1,2\n3,4\n5,6\n7,8\n"
    ranges = plan(data, 6)
    # Nominal cuts at 6, 12, 18: the next newlines end at 8, 16, 20.
    assert pieces(data, ranges) == [b"1,2\n", b"3,4\n5,6\n", b"7,8\n"]
    assert [r.first_line for r in ranges] == [2, 3, 5]
    assert b"".join(pieces(data, ranges)) == data[len(HEADER) :]


def test_a_crlf_stays_whole_and_the_last_range_may_lack_its_newline() -> None:
    data = b"a,b\r\n1,2\r\n3,4\r\n5,6"
    ranges = plan(data, 5)
    assert pieces(data, ranges) == [b"1,2\r\n", b"3,4\r\n", b"5,6"]
    assert all(not p.startswith(b"\n") for p in pieces(data, ranges))


def test_a_line_longer_than_a_range_leaves_the_ranges_it_spans_empty_and_they_are_dropped() -> None:
    long_line = b"x" * 50 + b",1\n"
    data = HEADER + b"1,2\n" + long_line + b"3,4\n"
    ranges = plan(data, 10)
    assert pieces(data, ranges) == [b"1,2\n" + long_line, b"3,4\n"]
    assert [r.index for r in ranges] == [0, 1]
    assert [r.first_line for r in ranges] == [2, 4]


def test_a_file_without_a_newline_after_the_header_is_one_range_or_none() -> None:
    assert plan(b"a,b", 2) == []
    assert pieces(HEADER + b"1,2", plan(HEADER + b"1,2", 2)) == [b"1,2"]


def test_a_quoted_newline_is_cut_like_any_other_as_the_reader_ends_the_row_there_too() -> None:
    data = HEADER + b'1,"x\ny"\n3,4\n'
    ranges = plan(data, 5)
    assert pieces(data, ranges) == [b'1,"x\n', b'y"\n', b"3,4\n"]


def test_every_byte_after_the_header_is_in_exactly_one_range_whatever_the_block_and_range_sizes() -> None:
    data = HEADER + b"".join(f"{i},{'y' * (i % 7)}\r\n".encode() for i in range(60))
    for range_bytes in (1, 5, 17, 64, 10_000):
        for block_bytes in (1, 4, 9, 1 << 20):
            ranges = plan(data, range_bytes, block_bytes)
            assert b"".join(pieces(data, ranges)) == data[len(HEADER) :]
            assert all(a.end == b.start for a, b in pairwise(ranges))
            assert all(data.count(b"\n", 0, r.start) + 1 == r.first_line for r in ranges)


def test_the_largest_single_file_is_bound_by_memory_at_the_stage_settings() -> None:
    # 3008 MB over a peak of 2.8x the file, with 30 % headroom; 15 minutes at ~41 MiB/s is far more.
    assert largest_single_file(3008, 900, 10240) == int(0.7 * 3008 * (1 << 20) / 2.8)
    assert largest_single_file(3008, 10, 10240) < largest_single_file(3008, 900, 10240)


def split_ingest(lake: Lake, source: SourceObject, range_bytes: int) -> tuple[IngestReport, int]:
    store = S3ObjectStore(lake.s3)
    size = lake.s3.head_object(Bucket=source.bucket, Key=source.key)["ContentLength"]
    body = lake.s3.get_object(Bucket=source.bucket, Key=source.key, VersionId=source.version_id)["Body"]
    ranges = plan_ranges(read_blocks(body), size, range_bytes)
    for part in ranges:
        ingest_range(source, part, header_end=ranges[0].start, store=store, settings=lake.settings, now=NOW)
    return merge_ranges(source, len(ranges), store=store, settings=lake.settings, now=NOW), len(ranges)


@cache
def raw_file() -> tuple[bytes, bytes]:
    """An earlier file, and a file with rule breaks, a malformed row, a line that is not UTF-8, CRLFs, and rows
    the earlier file already brought (dropped as duplicates)."""
    frame = churn_rows(300, seed=5, corrupt_fraction=0.05)
    earlier = csv_bytes(frame.iloc[:40])
    lines = csv_bytes(frame).split(b"\n")
    lines.insert(120, b"only,three,fields")
    lines.insert(200, b"cust-\xff," + lines[201].split(b",", 1)[1])
    return earlier, b"\r\n".join(lines[:150]) + b"\r\n" + b"\n".join(lines[150:])


def ingest_both_ways(split: bool) -> tuple[IngestReport, pd.DataFrame, pd.DataFrame, dict, int]:
    earlier, body = raw_file()
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        lake = _make_lake(monkeypatch)
        lake.ingest(lake.put_raw("churn/earlier.csv", earlier))
        source = lake.put_raw("churn/big.csv", body)
        report, count = split_ingest(lake, source, len(body) // 5) if split else (lake.ingest(source), 1)
        curated = lake.curated(report).drop(columns=["source_file"]).sort_values(["customer_id", "event_time"])
        quarantined = lake.quarantined_rows(report).drop(columns=["source_file"])
        quarantined = quarantined.sort_values(["source_row", "reason", "record"])
        return report, curated.reset_index(drop=True), quarantined.reset_index(drop=True), lake.report(report), count


def test_a_split_file_has_one_report_with_the_same_rows_and_reasons_as_the_unsplit_path() -> None:
    whole, whole_curated, whole_quarantined, _, _ = ingest_both_ways(split=False)
    split, curated, quarantined, written, ranges = ingest_both_ways(split=True)

    assert ranges == 5
    assert split.rows_in == split.rows_curated + split.rows_quarantined + split.rows_dropped_duplicate
    assert split.rows_dropped_duplicate > 0 and split.rows_quarantined > 0
    assert "malformed_row" in split.rule_counts
    for field in ("rows_in", "rows_curated", "rows_quarantined", "rows_dropped_duplicate", "rule_counts"):
        assert getattr(split, field) == getattr(whole, field), field
    assert split.null_rate_percent == whole.null_rate_percent
    assert split.freshness_lag_seconds == whole.freshness_lag_seconds
    pd.testing.assert_frame_equal(curated, whole_curated)
    # Quarantine reasons keep the file's own line numbers, byte offsets and row numbers.
    pd.testing.assert_frame_equal(quarantined, whole_quarantined)
    assert any("byte offset" in r for r in quarantined["reason"])
    assert written["rows_in"] == split.rows_in and written["source"].startswith(f"s3://{RAW}/churn/big.csv")


def test_merging_again_numbers_the_quarantined_rows_once() -> None:
    _, body = raw_file()
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        lake = _make_lake(monkeypatch)
        source = lake.put_raw("churn/big.csv", body)
        first, count = split_ingest(lake, source, len(body) // 4)
        again = merge_ranges(source, count, store=S3ObjectStore(lake.s3), settings=lake.settings, now=NOW)
        rows = lake.quarantined_rows(again)["source_row"].dropna().tolist()
        assert rows == lake.quarantined_rows(first)["source_row"].dropna().tolist()
        assert len(set(rows)) == len(rows) and again.report_digest == first.report_digest


def test_starting_the_split_again_for_the_same_object_version_starts_no_second_execution() -> None:
    _, body = raw_file()
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        lake = _make_lake(monkeypatch)
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(
            name="split",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/split",
        )["stateMachineArn"]
        settings = replace(lake.settings, split_bytes=len(body) // 3, split_state_machine_arn=machine)
        source = lake.put_raw("churn/big.csv", body)

        first = start_split(source, size=len(body), s3=lake.s3, sfn=sfn, settings=settings, now=NOW)
        later = NOW + timedelta(minutes=5)
        again = start_split(source, size=len(body), s3=lake.s3, sfn=sfn, settings=settings, now=later)
        small = start_split(source, size=len(body) // 3, s3=lake.s3, sfn=sfn, settings=settings, now=NOW)

        assert first is not None and again is not None and small is None
        assert again["execution_arn"] == first["execution_arn"] and first["ranges"] == 3
        assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1


def test_a_range_whose_object_version_is_gone_quarantines_the_file_whole_in_the_merged_report() -> None:
    _, body = raw_file()
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        lake = _make_lake(monkeypatch)
        source = lake.put_raw("churn/gone.csv", body)
        ranges = plan_ranges([body], len(body), len(body) // 2)
        lake.s3.delete_object(Bucket=source.bucket, Key=source.key, VersionId=source.version_id)
        store = S3ObjectStore(lake.s3)

        outcomes = [
            ingest_range(source, part, header_end=ranges[0].start, store=store, settings=lake.settings, now=NOW)
            for part in ranges
        ]
        report = merge_ranges(source, len(ranges), store=store, settings=lake.settings, now=NOW)

        assert {o.rejected_rule for o in outcomes} == {"unreadable_file"}
        assert report.quarantined_whole and report.rule == "unreadable_file" and report.rows_in == 0
        assert lake.report(report)["rule"] == "unreadable_file"
