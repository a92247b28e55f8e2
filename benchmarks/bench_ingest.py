"""Ingestion: a 1M-row raw CSV through the full contract checks against two floors, alternating in one run:
pandas read_csv + to_parquet of it (the guard), and Arrow's multithreaded pyarrow.csv.read_csv +
pyarrow.parquet.write_table (the physical floor); plus the peak extra memory of one ingestion over the file.

Every side reads the same local file and writes Parquet to memory: the store stub links the file instead of
downloading it and keeps written objects in memory, so S3 costs nothing on either side. The peak memory is
measured in a fresh process (its resident high-water mark over its resident size before the ingestion).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import ROOT, ROUNDS, WARMUP, BenchResult, Size, data_dir, missing_modules
from benchmarks.timing import Ratio, compare, ratio_over

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

    def download_ranges(self, source: Any, path: Path, spans: list[tuple[int, int]]) -> None:
        with self.raw.open("rb") as raw, path.open("wb") as target:
            for start, end in spans:
                raw.seek(start)
                target.write(raw.read(end - start))

    def put(self, bucket: str, key: str, body: bytes, *, metadata: Mapping[str, str], content_type: str) -> None:
        self.written_bytes += len(body)
        self.objects += 1

    def copy(self, source: Any, bucket: str, key: str, *, metadata: Mapping[str, str]) -> None:
        self.objects += 1

    def list_keys(self, bucket: str, prefix: str, *, start_after: str) -> Iterator[str]:
        return iter(())  # an empty lake: nothing curated before this file

    def read(self, bucket: str, key: str) -> bytes:
        raise FileNotFoundError(key)


def _settings() -> Any:
    from functions.ingest.settings import IngestSettings

    return IngestSettings(
        curated_bucket="curated",
        quarantine_bucket="quarantine",
        idempotency_table="idempotency",
        notifications_topic_arn="arn:aws:sns:us-east-1:123456789012:bench",
    )


def _ingest_once(path: Path) -> Any:
    from functions.ingest.layout import SourceObject
    from functions.ingest.logic import ingest_object

    return ingest_object(SourceObject("raw", RAW_KEY, "v1"), store=LocalStore(path), settings=_settings())


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_extra_bytes(path: Path) -> int:
    """In a fresh process: resident high-water mark during one ingestion minus the resident size before it."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_ingest", "--peak-memory", str(path)],
        cwd=str(ROOT),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(json.loads(out.strip().splitlines()[-1])["peak_extra_bytes"])


def _measure_peak_here(path: Path) -> None:
    import functions.ingest.logic  # noqa: F401  (imports are not the ingestion's memory)

    before = _status_kib("VmRSS")
    _ingest_once(path)
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_extra_bytes": (peak - before) * 1024}))


def run(size: Size) -> BenchResult:
    result = BenchResult("ingest")
    absent = missing_modules(*CONTENDER_MODULES)
    if absent:
        result.skipped.append(f"ingestion: {', '.join(absent)} not written yet")
        return result
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = ensure_csv(size)
    reports: list[Any] = []
    # Process CPU seconds (every thread) per call: on a shared machine the wall-clock ratio moves with the
    # load, the work each side does does not.
    cpu: dict[str, list[float]] = {"ingest": [], "arrow_read_csv_write_table": []}

    def ingest() -> None:
        started = time.process_time()
        reports.append(_ingest_once(path))
        cpu["ingest"].append(time.process_time() - started)

    def floor() -> None:
        pd.read_csv(path).to_parquet(io.BytesIO())

    def arrow_floor() -> None:
        started = time.process_time()
        pq.write_table(pacsv.read_csv(path), io.BytesIO())
        cpu["arrow_read_csv_write_table"].append(time.process_time() - started)

    timings = compare(
        {"ingest": ingest, "read_csv_to_parquet": floor, "arrow_read_csv_write_table": arrow_floor},
        rounds=ROUNDS[size],
        warmup=WARMUP[size],
    )
    result.timings.update(timings)
    report = reports[-1]
    result.facts["csv_bytes"] = path.stat().st_size
    result.facts["report"] = {
        key: value
        for key, value in vars(report).items()
        if key in ("rows_in", "rows_curated", "rows_quarantined", "rows_dropped_duplicate")
    }
    summary = result.facts["report"]
    result.notes.append(
        f"{summary.get('rows_in')} rows in, {summary.get('rows_curated')} curated,"
        f" {summary.get('rows_quarantined')} quarantined ({result.facts['csv_bytes'] / 2**20:.0f} MiB CSV)"
    )
    cpu_medians = {name: statistics.median(seconds) for name, seconds in cpu.items()}
    result.facts["cpu_seconds_median"] = cpu_medians
    result.notes.append(
        f"CPU seconds per run, every thread (median): ingest {cpu_medians['ingest']:.2f},"
        f" arrow floor {cpu_medians['arrow_read_csv_write_table']:.2f}"
        f" ({cpu_medians['ingest'] / cpu_medians['arrow_read_csv_write_table']:.2f}x)"
    )
    result.ratios.append(ratio_over("ingest_time_over_floor", timings, "ingest", "read_csv_to_parquet", 2))
    result.ratios.append(
        ratio_over("ingest_time_over_arrow_floor", timings, "ingest", "arrow_read_csv_write_table", 1.5)
    )
    peak = peak_extra_bytes(path)
    result.facts["ingest_peak_extra_bytes"] = peak
    result.notes.append(f"peak extra memory of one ingestion: {peak / 2**20:.0f} MiB (fresh process, VmHWM - VmRSS)")
    result.ratios.append(
        Ratio("ingest_peak_mem_over_file", peak / path.stat().st_size, 3, "<=", "ingest_peak_extra_bytes", "csv_bytes")
    )
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--peak-memory":
        _measure_peak_here(Path(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m benchmarks.bench_ingest --peak-memory <csv>")
