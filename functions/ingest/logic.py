"""Ingest one raw object: validate it chunk by chunk against its dataset's contract, write curated
partitions and quarantined rows, and leave a validation report. The raw object is only ever read.

Invariant per file: rows_in = rows_curated + rows_quarantined + rows_dropped_duplicate (rows whose fact
the lake already holds with the same values, `functions/shared/facts.py`). A file that cannot be read, or
breaks the contract as a whole (columns, type, emptiness), is quarantined whole with its reason.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.ingest import layout
from functions.ingest.layout import SourceObject
from functions.ingest.ranges import ByteRange
from functions.ingest.readers import Origin, RawFile, RejectedFileError, open_raw_file
from functions.ingest.settings import IngestSettings
from functions.ingest.validation import ChunkValidator, FileTally
from functions.shared.contract import ContractError, DataContract, load_contract
from functions.shared.facts import merge_partition

Notify = Callable[[str, str], None]
# The idempotency record and the function's answer carry a few object URIs as a sample, never the full lists.
SUMMARY_SAMPLE = 10
SUMMARY_REASON_CHARS = 1000
WRITE_WORKERS = 4
STAMP_KEYS = ("contract", "contract_version", "source_file")
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
CSV_COPY_BYTES = 8 << 20
# Parquet metadata of a split file's quarantined rows: the row offset already added to `source_row`.
ROW_OFFSET_KEY = "source_row_offset"
MICROS_PER_DAY = 86_400_000_000
# S3 answers a version that is gone with 404, or with 403 when the caller may not list the bucket: retrying
# cannot help, so the file is recorded as unreadable. Any other error is raised, and the event retried.
_GONE = frozenset({"404", "403", "NoSuchKey", "NoSuchVersion", "AccessDenied"})


class ObjectStore(Protocol):
    def download(self, source: SourceObject, path: Path) -> None: ...

    def download_ranges(self, source: SourceObject, path: Path, spans: list[tuple[int, int]]) -> None: ...

    def put(self, bucket: str, key: str, body: bytes, *, metadata: Mapping[str, str], content_type: str) -> None: ...

    def copy(self, source: SourceObject, bucket: str, key: str, *, metadata: Mapping[str, str]) -> None: ...

    def list_keys(self, bucket: str, prefix: str, *, start_after: str) -> Iterator[str]: ...

    def read(self, bucket: str, key: str) -> bytes: ...


def _unreadable_if_gone(exc: Any) -> Exception:
    """The error to raise for a failed read of the raw object: the file is unreadable if it is gone, else `exc`."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code not in _GONE:
        return exc  # type: ignore[no-any-return]
    return RejectedFileError("unreadable_file", f"the object cannot be downloaded ({code}: {exc})", copyable=False)


class S3ObjectStore:
    """The lake's buckets through a boto3 S3 client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def download(self, source: SourceObject, path: Path) -> None:
        from botocore.exceptions import ClientError

        extra = {"VersionId": source.version_id} if source.version_id else None
        try:
            self.client.download_file(source.bucket, source.key, str(path), ExtraArgs=extra)
        except ClientError as exc:
            raise _unreadable_if_gone(exc) from exc

    def download_ranges(self, source: SourceObject, path: Path, spans: list[tuple[int, int]]) -> None:
        """Bytes [start, end) of each span, one after another, into `path` (a split file's header and range)."""
        from botocore.exceptions import ClientError

        extra = {"VersionId": source.version_id} if source.version_id else {}
        with path.open("wb") as target:
            for start, end in spans:
                if end <= start:
                    continue
                # HTTP ranges are inclusive of their last byte (RFC 9110, section 14.1.2).
                try:
                    body = self.client.get_object(
                        Bucket=source.bucket, Key=source.key, Range=f"bytes={start}-{end - 1}", **extra
                    )["Body"]
                except ClientError as exc:
                    raise _unreadable_if_gone(exc) from exc
                shutil.copyfileobj(body, target, CSV_COPY_BYTES)

    def put(self, bucket: str, key: str, body: bytes, *, metadata: Mapping[str, str], content_type: str) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=body, Metadata=dict(metadata), ContentType=content_type)

    def copy(self, source: SourceObject, bucket: str, key: str, *, metadata: Mapping[str, str]) -> None:
        copy_source = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            copy_source["VersionId"] = source.version_id
        self.client.copy(
            copy_source, bucket, key, ExtraArgs={"Metadata": dict(metadata), "MetadataDirective": "REPLACE"}
        )

    def list_keys(self, bucket: str, prefix: str, *, start_after: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, StartAfter=start_after
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def read(self, bucket: str, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())


@dataclass
class IngestReport:
    """The validation report written beside the quarantine, and what the metrics are made of."""

    source: str
    dataset: str
    contract_version: str | None
    ingest_date: str
    started_at: str
    rows_in: int = 0
    rows_curated: int = 0
    rows_quarantined: int = 0
    rows_dropped_duplicate: int = 0
    rows_superseded: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    null_rate_percent: float = 0.0
    duplicate_rate_percent: float = 0.0
    freshness_lag_seconds: float | None = None
    stale: bool = False
    quarantined_whole: bool = False
    rule: str | None = None
    reason: str | None = None
    curated_objects: list[str] = field(default_factory=list)
    quarantine_objects: list[str] = field(default_factory=list)
    report_object: str | None = None
    # sha256 of the report as written to `report_object`; not part of that document.
    report_digest: str | None = None

    @property
    def quarantine_rate_percent(self) -> float:
        return 100.0 * self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    def to_dict(self) -> dict[str, Any]:
        full = {**asdict(self), "quarantine_rate_percent": round(self.quarantine_rate_percent, 4)}
        full.pop("report_digest")
        return full

    def summary(self) -> dict[str, Any]:
        """The report in bounded size (counts, a sample of objects, the digest and where the full report lies):
        what the idempotency record stores and the function answers, whatever the number of partitions."""
        full = self.to_dict()
        return {
            **full,
            "reason": None if self.reason is None else self.reason[:SUMMARY_REASON_CHARS],
            "curated_objects": self.curated_objects[:SUMMARY_SAMPLE],
            "quarantine_objects": self.quarantine_objects[:SUMMARY_SAMPLE],
            "curated_object_count": len(self.curated_objects),
            "quarantine_object_count": len(self.quarantine_objects),
            "report_digest": self.report_digest,
        }


@dataclass
class RangeOutcome:
    """What one byte range of a split file left: its report (counts relative to the range, `source_row`s from 0
    within it) and the tallies the file's report is merged from. Stored as JSON between the steps."""

    index: int
    report: dict[str, Any]
    parsed_rows: int
    null_cells: int
    feature_cells: int
    newest_event: str | None
    rejected_rule: str | None = None
    rejected_reason: str | None = None
    rejected_copyable: bool = True


def low_cardinality_columns(contract: DataContract) -> frozenset[str]:
    """Columns whose values repeat (categories, stamps, rule names): dictionary pages pay off only for those."""
    return frozenset({*(f.name for f in contract.categorical_features), "contract_version", "source_file", "rules"})


def parquet_bytes(table: pa.Table, metadata: Mapping[str, str], dictionary: frozenset[str] = frozenset()) -> bytes:
    """The table as Parquet, `metadata` added to its schema's. Dictionary-encoded columns are written from their
    codes and read back as their values' type: the Arrow schema is not stored (it would make them read back as
    dictionaries), and every other type the lake holds reads back the same from Parquet's own types."""
    kept = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"ARROW:schema"}
    stamp = {**kept, **{k.encode(): v.encode() for k, v in metadata.items()}}
    buffer = io.BytesIO()
    encoded = [name for name in table.column_names if name in dictionary]
    unstamped = table.replace_schema_metadata(None)
    with pq.ParquetWriter(
        buffer, unstamped.schema, compression="snappy", use_dictionary=encoded, store_schema=False
    ) as writer:
        writer.write_table(unstamped)
        writer.add_key_value_metadata(stamp)
    return buffer.getvalue()


def _stamp_of(table: pa.Table) -> dict[str, str]:
    """The contract stamp a curated object carries in its Parquet metadata, kept when the object is rewritten."""
    metadata = table.schema.metadata or {}
    return {name: metadata[name.encode()].decode() for name in STAMP_KEYS if name.encode() in metadata}


def rows_by_event_date(table: pa.Table, column: str, rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The given row indices grouped by UTC event date, in date order (rows keep their order within a date)."""
    if not len(rows):
        return []
    # Days since the epoch in UTC from the microseconds (the rows given have a time; others read as 0).
    micros = pc.fill_null(pc.cast(table.column(column), pa.timestamp("us", tz="UTC")).cast(pa.int64()), 0)
    days = (np.asarray(micros.to_numpy(), dtype=np.int64)[rows] // MICROS_PER_DAY).astype(np.int32)
    order = np.argsort(days, kind="stable")
    ordered, sorted_days = rows[order], days[order]
    starts = np.flatnonzero(np.r_[True, sorted_days[1:] != sorted_days[:-1]])
    ends = np.r_[starts[1:], len(sorted_days)]
    epoch = np.datetime64("1970-01-01", "D")
    return [
        (str(epoch + np.timedelta64(int(sorted_days[a]), "D")), ordered[a:b]) for a, b in zip(starts, ends, strict=True)
    ]


class ParallelWriter:
    """Writes Parquet objects on a few threads (encoding releases the GIL, puts wait on the network). A chunk's
    objects are written while the next chunk is validated; at most two chunks are held at a time."""

    def __init__(self, store: ObjectStore, stamp: Mapping[str, str], dictionary: frozenset[str]) -> None:
        self.store, self.stamp, self.dictionary = store, dict(stamp), dictionary
        self._pool = ThreadPoolExecutor(max_workers=WRITE_WORKERS)
        # Per chunk, oldest first: its objects' (bucket, key) and their writes.
        self._chunks: list[tuple[list[tuple[str, str]], list[Future[None]]]] = [([], [])]

    def _write(self, bucket: str, key: str, rows: pa.Table | Callable[[], pa.Table]) -> None:
        body = parquet_bytes(rows if isinstance(rows, pa.Table) else rows(), self.stamp, self.dictionary)
        self.store.put(bucket, key, body, metadata=self.stamp, content_type=PARQUET_CONTENT_TYPE)

    def submit(self, bucket: str, key: str, rows: pa.Table | Callable[[], pa.Table]) -> None:
        """Write `rows` (or what the callable returns, built on the writer's thread) to bucket/key."""
        objects, writes = self._chunks[-1]
        writes.append(self._pool.submit(self._write, bucket, key, rows))
        objects.append((bucket, key))

    def end_chunk(self) -> list[tuple[str, str]]:
        """Close the current chunk's objects and wait for the chunk before it: (bucket, key) of the objects
        written by then, in submission order."""
        self._chunks.append(([], []))
        return self._wait(len(self._chunks) - 2)

    def flush(self) -> list[tuple[str, str]]:
        """Wait for every submitted object; (bucket, key) of each not returned yet, in submission order."""
        return self._wait(len(self._chunks))

    def _wait(self, chunks: int) -> list[tuple[str, str]]:
        done: list[tuple[str, str]] = []
        while chunks > 0 and self._chunks:
            objects, writes = self._chunks[0]
            for future in writes:
                future.result()
            done += objects
            self._chunks.pop(0)
            chunks -= 1
        if not self._chunks:
            self._chunks.append(([], []))
        return done

    def __enter__(self) -> ParallelWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


class Ingestion:
    """One run over one raw object."""

    def __init__(
        self,
        source: SourceObject,
        *,
        store: ObjectStore,
        settings: IngestSettings,
        now: datetime | None = None,
        notify: Notify | None = None,
        contracts_root: Path | None = None,
        part: ByteRange | None = None,
        header_end: int = 0,
    ) -> None:
        self.source = source
        self.part = part
        self.header_end = header_end
        self.tally = FileTally()
        self.rejected: RejectedFileError | None = None
        self.store = store
        self.settings = settings
        self.now = now or datetime.now(UTC)
        self.notify = notify
        self.contracts_root = contracts_root
        self.ingest_date = self.now.date().isoformat()
        self.report = IngestReport(
            source=source.lineage,
            dataset=source.dataset,
            contract_version=None,
            ingest_date=self.ingest_date,
            started_at=self.now.isoformat(),
        )
        # Objects other files curated, per event date, read once per run; and the date ranges listed so far.
        self._partitions: dict[str, dict[str, pa.Table | None]] = {}
        self._listed: list[tuple[str, str]] = []
        self._dropped = 0
        self._superseded = 0

    def run(self) -> IngestReport:
        try:
            self._read_and_validate()
        except RejectedFileError as rejected:
            self._quarantine_whole(rejected)
        self._write_report()
        return self.report

    def run_range(self) -> RangeOutcome:
        """Ingest this run's byte range as a file of its own; the merge step writes the file's report."""
        assert self.part is not None
        try:
            self._read_and_validate()
        except RejectedFileError as rejected:
            self.rejected = rejected
        tally = self.tally
        return RangeOutcome(
            index=self.part.index,
            report=self.report.to_dict(),
            parsed_rows=tally.rows_in - tally.rule_counts.get("malformed_row", 0),
            null_cells=tally.null_cells,
            feature_cells=tally.feature_cells,
            newest_event=None if tally.newest_event is None else tally.newest_event.isoformat(),
            rejected_rule=None if self.rejected is None else self.rejected.rule,
            rejected_reason=None if self.rejected is None else self.rejected.reason,
            rejected_copyable=True if self.rejected is None else self.rejected.copyable,
        )

    def _read_and_validate(self) -> None:
        contract = self._contract()
        self.report.contract_version = contract.version
        with tempfile.TemporaryDirectory(prefix="ingest-") as workdir:
            local = Path(workdir) / "raw"
            origin = None
            if self.part is None:
                self.store.download(self.source, local)
            else:
                # The header, then the range: the range reads as a file, reporting the raw file's lines and offsets.
                self.store.download_ranges(self.source, local, [(0, self.header_end), (self.part.start, self.part.end)])
                origin = Origin(line_shift=self.part.first_line - 2, byte_shift=self.part.start - self.header_end)
            raw = open_raw_file(local, self.source.file_name, self.settings.chunk_rows, origin)
            self._check_columns(raw, contract)
            self._ingest_rows(raw, contract)

    def _contract(self) -> DataContract:
        if not self.source.dataset:
            raise RejectedFileError("unknown_dataset", "raw files must land under <dataset>/, this key has no folder")
        try:
            return load_contract(self.source.dataset, root=self.contracts_root)
        except (ContractError, OSError) as exc:
            raise RejectedFileError(
                "unknown_dataset", f"no usable contract for dataset {self.source.dataset!r} ({exc})"
            ) from exc

    @staticmethod
    def _check_columns(raw: RawFile, contract: DataContract) -> None:
        missing = [c for c in contract.columns if c not in raw.columns]
        if missing:
            raise RejectedFileError("missing_columns", f"contract {contract.ref} needs column(s) {', '.join(missing)}")
        unexpected = [c for c in raw.columns if c not in contract.columns]
        if unexpected:
            raise RejectedFileError(
                "unexpected_columns", f"contract {contract.ref} has no column(s) {', '.join(unexpected)}"
            )

    def _ingest_rows(self, raw: RawFile, contract: DataContract) -> None:
        validator = ChunkValidator(contract, now=self.now, source_file=self.source.lineage)
        stamp = {
            "contract": contract.ref,
            "contract_version": contract.version,
            "source_file": self.source.lineage,
        }
        next_row = 0
        chunk_number = 0
        curated, quarantine = self.settings.curated_bucket, self.settings.quarantine_bucket
        part = None if self.part is None else self.part.index
        with ParallelWriter(self.store, stamp, low_cardinality_columns(contract)) as writer:
            try:
                for chunk in raw.chunks:
                    table = chunk.table.select(contract.columns)
                    result = validator.validate(table, chunk.malformed, first_row=next_row)
                    next_row += table.num_rows
                    parts = rows_by_event_date(result.typed, contract.event_timestamp, np.flatnonzero(result.good))
                    self._list_partitions(contract, [event_date for event_date, _ in parts])
                    for event_date, rows in parts:
                        key = layout.curated_key(contract.dataset, event_date, self.source, chunk_number, part)
                        if not self._partitions.get(event_date):
                            # Nothing else curated on that date: the rows are taken on the writer's thread.
                            writer.submit(curated, key, functools.partial(result.rows, rows))
                            continue
                        fresh = self._merge(contract, event_date, result.take(rows))
                        if fresh.num_rows:
                            writer.submit(curated, key, fresh)
                    if result.quarantined.num_rows:
                        key = layout.quarantine_rows_key(
                            contract.dataset, self.ingest_date, self.source, chunk_number, part
                        )
                        writer.submit(quarantine, key, result.quarantined)
                    self._record(writer.end_chunk())
                    chunk_number += 1
                    # Let this chunk go once its objects are written: two chunks in memory at a time.
                    del chunk, table, result, parts
            finally:
                try:
                    self._record(writer.flush())
                finally:
                    self._tally(validator.tally, contract)
        if self.report.rows_in == 0 and self.part is None:
            raise RejectedFileError("no_rows", "the file has a header or schema but no data rows")

    def _record(self, written: list[tuple[str, str]]) -> None:
        for bucket, key in written:
            into = (
                self.report.curated_objects
                if bucket == self.settings.curated_bucket
                else self.report.quarantine_objects
            )
            into.append(f"s3://{bucket}/{key}")

    def _list_partitions(self, contract: DataContract, dates: list[str]) -> None:
        """Find what other files curated on these dates, with one listing over the dates not yet listed."""
        todo = [d for d in dates if not any(lo <= d <= hi for lo, hi in self._listed)]
        if not todo:
            return
        lo, hi = min(todo), max(todo)
        self._listed.append((lo, hi))
        prefix = f"{contract.dataset}/{layout.EVENT_DATE_PARTITION}="
        own = f"{self.source.file_id}-"
        for key in self.store.list_keys(self.settings.curated_bucket, prefix, start_after=prefix + lo):
            event_date, _, name = key[len(prefix) :].partition("/")
            if event_date > hi:
                break
            self._partitions.setdefault(event_date, {})
            if name.endswith(".parquet") and not name.startswith(own):
                self._partitions[event_date][key] = None  # read when rows of that date arrive

    def _merge(self, contract: DataContract, event_date: str, part: pa.Table) -> pa.Table:
        """The part's rows the lake does not hold yet; earlier rows it replaces are rewritten without them."""
        found = self._partitions.get(event_date)
        if not found:
            return part
        bucket = self.settings.curated_bucket
        existing = {
            key: table if table is not None else pq.read_table(io.BytesIO(self.store.read(bucket, key)))
            for key, table in found.items()
        }
        merged = merge_partition(part, existing, contract.columns, contract.entity_key, contract.event_timestamp)
        for key, survivors in merged.rewrites.items():
            stamp = _stamp_of(survivors)
            self.store.put(
                bucket,
                key,
                parquet_bytes(survivors, stamp, low_cardinality_columns(contract)),
                metadata=stamp,
                content_type=PARQUET_CONTENT_TYPE,
            )
            existing[key] = survivors
        found.update(existing)
        self._dropped += merged.dropped
        self._superseded += merged.superseded
        return merged.fresh

    def _tally(self, tally: FileTally, contract: DataContract) -> None:
        self.tally = tally
        report = self.report
        report.rows_in = tally.rows_in
        report.rows_curated = tally.rows_curated - self._dropped
        report.rows_quarantined = tally.rows_quarantined
        report.rows_dropped_duplicate = self._dropped
        report.rows_superseded = self._superseded
        report.rule_counts = dict(sorted(tally.rule_counts.items()))
        report.null_rate_percent = (
            round(100.0 * tally.null_cells / tally.feature_cells, 4) if tally.feature_cells else 0.0
        )
        duplicates = tally.rule_counts.get("duplicate_key", 0)
        report.duplicate_rate_percent = round(100.0 * duplicates / tally.rows_in, 4) if tally.rows_in else 0.0
        if tally.newest_event is not None:
            lag = (self.now - tally.newest_event).total_seconds()
            report.freshness_lag_seconds = round(lag, 3)
            report.stale = lag > contract.freshness.max_lag_hours * 3600

    def _quarantine_whole(self, rejected: RejectedFileError) -> None:
        report = self.report
        report.quarantined_whole = True
        report.rule = rejected.rule
        report.reason = rejected.reason
        if report.rows_curated:
            # Reading failed part-way: the rows before the failure are curated; the file is kept whole anyway.
            report.reason = f"{rejected.reason} (after {report.rows_in} rows, which were ingested)"
        prefix = layout.quarantine_file_prefix(self.source.dataset, self.ingest_date, self.source)
        bucket = self.settings.quarantine_bucket
        metadata = {"rule": rejected.rule, "source_file": self.source.lineage}
        if rejected.copyable:
            self.store.copy(self.source, bucket, prefix + (self.source.file_name or "file"), metadata=metadata)
        reason = {
            "source": self.source.lineage,
            "rule": rejected.rule,
            "reason": report.reason,
            "at": report.started_at,
        }
        self.store.put(
            bucket,
            prefix + "reason.json",
            json.dumps(reason, indent=2).encode(),
            metadata=metadata,
            content_type="application/json",
        )
        report.quarantine_objects.append(f"s3://{bucket}/{prefix}")
        if self.notify is not None:
            self.notify(
                f"Raw file quarantined: {rejected.rule}"[:100],
                json.dumps({**reason, "quarantined_to": f"s3://{bucket}/{prefix}"}, indent=2),
            )

    def _write_report(self) -> None:
        key = layout.report_key(self.source.dataset, self.ingest_date, self.source)
        self.report.report_object = f"s3://{self.settings.quarantine_bucket}/{key}"
        body = json.dumps(self.report.to_dict(), indent=2, default=str).encode()
        self.report.report_digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        self.store.put(
            self.settings.quarantine_bucket,
            key,
            body,
            metadata={"source_file": self.source.lineage},
            content_type="application/json",
        )


def ingest_object(
    source: SourceObject,
    *,
    store: ObjectStore,
    settings: IngestSettings,
    now: datetime | None = None,
    notify: Notify | None = None,
    contracts_root: Path | None = None,
) -> IngestReport:
    return Ingestion(
        source, store=store, settings=settings, now=now, notify=notify, contracts_root=contracts_root
    ).run()


def ingest_range(
    source: SourceObject,
    part: ByteRange,
    *,
    header_end: int,
    store: ObjectStore,
    settings: IngestSettings,
    now: datetime,
    contracts_root: Path | None = None,
) -> RangeOutcome:
    """Ingest one byte range of a split file and store its outcome where `merge_ranges` reads it."""
    ingestion = Ingestion(
        source, store=store, settings=settings, now=now, contracts_root=contracts_root, part=part, header_end=header_end
    )
    outcome = ingestion.run_range()
    store.put(
        settings.quarantine_bucket,
        layout.range_result_key(source.dataset, ingestion.ingest_date, source, part.index),
        json.dumps(asdict(outcome), default=str).encode(),
        metadata={"source_file": source.lineage},
        content_type="application/json",
    )
    return outcome


def merge_ranges(
    source: SourceObject,
    range_count: int,
    *,
    store: ObjectStore,
    settings: IngestSettings,
    now: datetime,
    notify: Notify | None = None,
    contracts_root: Path | None = None,
) -> IngestReport:
    """The split file's one report from its ranges' outcomes: counts summed, quarantined rows numbered as the
    unsplit path numbers them (each range's `source_row`s shifted by the rows parsed before it), report written."""
    ingestion = Ingestion(source, store=store, settings=settings, now=now, notify=notify, contracts_root=contracts_root)
    report = ingestion.report
    outcomes = [
        RangeOutcome(
            **json.loads(
                store.read(
                    settings.quarantine_bucket,
                    layout.range_result_key(source.dataset, ingestion.ingest_date, source, index),
                )
            )
        )
        for index in range(range_count)
    ]
    tally = FileTally()
    rows_before = 0
    for outcome in outcomes:
        part = outcome.report
        report.contract_version = report.contract_version or part["contract_version"]
        report.curated_objects += part["curated_objects"]
        report.quarantine_objects += part["quarantine_objects"]
        for uri in part["quarantine_objects"]:
            _shift_source_rows(store, uri, rows_before)
        rows_before += outcome.parsed_rows
        ingestion._dropped += part["rows_dropped_duplicate"]
        ingestion._superseded += part["rows_superseded"]
        tally.rows_in += part["rows_in"]
        tally.rows_curated += part["rows_curated"] + part["rows_dropped_duplicate"]
        tally.rows_quarantined += part["rows_quarantined"]
        tally.rule_counts.update(part["rule_counts"])
        tally.null_cells += outcome.null_cells
        tally.feature_cells += outcome.feature_cells
        if outcome.newest_event is not None:
            newest = datetime.fromisoformat(outcome.newest_event)
            tally.newest_event = newest if tally.newest_event is None else max(tally.newest_event, newest)
    rejected = next(
        (
            RejectedFileError(o.rejected_rule, o.rejected_reason or "", copyable=o.rejected_copyable)
            for o in outcomes
            if o.rejected_rule is not None
        ),
        None,
    )
    try:
        contract = ingestion._contract()
        ingestion._tally(tally, contract)
        if rejected is not None:
            raise rejected
        if report.rows_in == 0:
            raise RejectedFileError("no_rows", "the file has a header or schema but no data rows")
    except RejectedFileError as whole:
        ingestion._quarantine_whole(whole)
    ingestion._write_report()
    return report


def _shift_source_rows(store: ObjectStore, uri: str, offset: int) -> None:
    """Number a range's quarantined rows from the file's start; idempotent, as a retried merge runs it again."""
    bucket, key = uri[len("s3://") :].split("/", 1)
    if not key.endswith(".parquet"):
        return
    table = pq.read_table(io.BytesIO(store.read(bucket, key)))
    metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    applied = int(metadata.get(ROW_OFFSET_KEY, "0"))
    if applied == offset:
        return
    rows = table.column("source_row")
    shifted = pc.add(rows, pa.scalar(offset - applied, pa.int64()))
    table = table.set_column(table.schema.get_field_index("source_row"), "source_row", shifted)
    stamp = {**_stamp_of(table), ROW_OFFSET_KEY: str(offset)}
    store.put(bucket, key, parquet_bytes(table, stamp), metadata=_stamp_of(table), content_type=PARQUET_CONTENT_TYPE)
