"""Ingestion: a 1M-row raw CSV through the full contract checks against pandas read_csv + to_parquet of it.

Both sides read the same local file and write Parquet to memory: the store stub links the file instead of
downloading it and keeps written objects in memory, so S3 costs nothing on either side.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import ROUNDS, WARMUP, BenchResult, Size, data_dir, missing_modules
from benchmarks.timing import compare, ratio_over

CONTENDER_MODULES = ("functions.ingest.logic", "mlloop.datagen")
ROWS: dict[Size, int] = {"tiny": 5_000, "full": 1_000_000}
# A raw export with a few broken rows, so the quarantine path is part of the figure.
CORRUPT_FRACTION = 0.001
RAW_KEY = "churn/bench/churn-export.csv"


def ensure_csv(size: Size) -> Path:
    from mlloop.datagen import generate_churn

    path = data_dir(size) / "ingest-v1" / "churn-export.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = generate_churn(
            ROWS[size], seed=3, start=datetime(2026, 1, 1, tzinfo=UTC), months=10, corrupt_fraction=CORRUPT_FRACTION
        )
        frame.to_csv(path.with_suffix(".tmp"), index=False)
        path.with_suffix(".tmp").rename(path)
    return path


class LocalStore:
    """The ingestion's ObjectStore over one local file; writes are kept in memory and only counted."""

    def __init__(self, raw: Path) -> None:
        self.raw = raw
        self.written_bytes = 0
        self.objects = 0

    def download(self, source: Any, path: Path) -> None:
        os.symlink(self.raw, path)

    def put(self, bucket: str, key: str, body: bytes, *, metadata: Mapping[str, str], content_type: str) -> None:
        self.written_bytes += len(body)
        self.objects += 1

    def copy(self, source: Any, bucket: str, key: str, *, metadata: Mapping[str, str]) -> None:
        self.objects += 1


def run(size: Size) -> BenchResult:
    result = BenchResult("ingest")
    absent = missing_modules(*CONTENDER_MODULES)
    if absent:
        result.skipped.append(f"ingestion: {', '.join(absent)} not written yet")
        return result
    from functions.ingest.layout import SourceObject
    from functions.ingest.logic import ingest_object
    from functions.ingest.settings import IngestSettings

    path = ensure_csv(size)
    settings = IngestSettings(
        curated_bucket="curated",
        quarantine_bucket="quarantine",
        idempotency_table="idempotency",
        notifications_topic_arn="arn:aws:sns:us-east-1:123456789012:bench",
    )
    reports: list[Any] = []

    def ingest() -> None:
        source = SourceObject("raw", RAW_KEY, "v1")
        reports.append(ingest_object(source, store=LocalStore(path), settings=settings))

    def floor() -> None:
        pd.read_csv(path).to_parquet(io.BytesIO())

    timings = compare({"ingest": ingest, "read_csv_to_parquet": floor}, rounds=ROUNDS[size], warmup=WARMUP[size])
    result.timings.update(timings)
    report = reports[-1]
    result.facts["csv_bytes"] = path.stat().st_size
    result.facts["report"] = {
        key: value
        for key, value in vars(report).items()
        if key in ("rows_in", "rows_curated", "rows_quarantined", "status", "outcome")
    }
    summary = result.facts["report"]
    result.notes.append(
        f"{summary.get('rows_in')} rows in, {summary.get('rows_curated')} curated,"
        f" {summary.get('rows_quarantined')} quarantined ({result.facts['csv_bytes'] / 2**20:.0f} MiB CSV)"
    )
    result.ratios.append(ratio_over("ingest_time_over_floor", timings, "ingest", "read_csv_to_parquet", 2))
    return result
