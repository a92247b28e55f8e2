"""Measure ingestion throughput (rows per second per invocation) on a 1,000,000-row raw CSV.

    .venv/bin/python scripts/measure_ingest_throughput.py [--rows 1000000] [--chunk-rows 200000] [--s3] [--repeat 1]

Prints one line per figure: the floor (pandas read_csv + to_parquet of the same file), ingestion with every
contract check writing Parquet to memory, and with --s3 the same through moto's in-process S3 (upload,
download and every put). The CSV is generated once (seeded, 0.1 % corrupt rows) under benchmarks/data/.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from functions.ingest.layout import SourceObject
from functions.ingest.logic import IngestReport, ObjectStore, S3ObjectStore, ingest_object
from functions.ingest.settings import IngestSettings
from mlloop.datagen import generate_churn

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "ingest-throughput"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
RAW_KEY = "churn/exports/churn-export.csv"


class MemoryStore:
    """Reads the local file in place of S3 and keeps only the count and size of what is written."""

    def __init__(self, raw: Path) -> None:
        self.raw = raw
        self.objects = 0
        self.bytes = 0

    def download(self, source: SourceObject, path: Path) -> None:
        os.symlink(self.raw, path)

    def put(self, bucket: str, key: str, body: bytes, *, metadata: Mapping[str, str], content_type: str) -> None:
        self.objects += 1
        self.bytes += len(body)

    def copy(self, source: SourceObject, bucket: str, key: str, *, metadata: Mapping[str, str]) -> None:
        self.objects += 1

    def list_keys(self, bucket: str, prefix: str, *, start_after: str) -> Iterator[str]:
        return iter(())  # an empty lake: nothing curated before this file

    def read(self, bucket: str, key: str) -> bytes:
        raise FileNotFoundError(key)


def raw_csv(rows: int) -> Path:
    path = DATA / f"churn-{rows}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = generate_churn(rows, seed=3, start=datetime(2026, 1, 1, tzinfo=UTC), months=10, corrupt_fraction=0.001)
        frame.to_csv(path.with_suffix(".tmp"), index=False)
        path.with_suffix(".tmp").rename(path)
    return path


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    seconds, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def settings(chunk_rows: int) -> IngestSettings:
    return IngestSettings(
        curated_bucket="bench-curated",
        quarantine_bucket="bench-quarantine",
        idempotency_table="bench-idempotency",
        notifications_topic_arn="arn:aws:sns:us-east-1:123456789012:bench",
        chunk_rows=chunk_rows,
    )


def ingest_with(store: ObjectStore, source: SourceObject, chunk_rows: int) -> IngestReport:
    return ingest_object(source, store=store, settings=settings(chunk_rows), now=NOW)


def through_moto(path: Path, chunk_rows: int, repeat: int) -> tuple[float, IngestReport]:
    import boto3
    from moto import mock_aws

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with mock_aws():
        s3 = boto3.Session(region_name="us-east-1").client("s3")
        for bucket in ("bench-raw", "bench-curated", "bench-quarantine"):
            s3.create_bucket(Bucket=bucket)
        version = s3.put_object(Bucket="bench-raw", Key=RAW_KEY, Body=path.read_bytes()).get("VersionId")
        source = SourceObject("bench-raw", RAW_KEY, version)
        return timed(lambda: ingest_with(S3ObjectStore(s3), source, chunk_rows), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--s3", action="store_true", help="also measure through moto's in-process S3")
    args = parser.parse_args()

    path = raw_csv(args.rows)
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB, {args.rows} rows, chunk {args.chunk_rows} rows)")

    floor_s, _ = timed(lambda: pd.read_csv(path).to_parquet(io.BytesIO()), args.repeat)
    print(f"floor  pandas read_csv + to_parquet: {floor_s:.2f} s = {args.rows / floor_s:,.0f} rows/s")

    store = MemoryStore(path)
    source = SourceObject("bench-raw", RAW_KEY, "v1")
    ingest_s, report = timed(lambda: ingest_with(store, source, args.chunk_rows), args.repeat)
    print(
        f"ingest full contract checks, memory store: {ingest_s:.2f} s = {args.rows / ingest_s:,.0f} rows/s "
        f"({ingest_s / floor_s:.2f}x the floor); curated {report.rows_curated}, quarantined {report.rows_quarantined}, "
        f"{len(report.curated_objects)} curated objects"
    )
    assert report.rows_in == report.rows_curated + report.rows_quarantined == args.rows

    if args.s3:
        s3_s, s3_report = through_moto(path, args.chunk_rows, args.repeat)
        rate = args.rows / s3_s
        print(f"ingest through moto S3: {s3_s:.2f} s = {rate:,.0f} rows/s ({s3_s / floor_s:.2f}x the floor)")
        assert s3_report.rows_in == args.rows


if __name__ == "__main__":
    main()
