"""Where ingestion writes, as pure functions of the source object; docs/data-lake.md describes the layout.

Every key derives from (bucket, key, version id), so a retried or redelivered event rewrites the same
objects instead of adding rows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

QUARANTINE_ROWS_PREFIX = "rows"
QUARANTINE_FILES_PREFIX = "files"
REPORTS_PREFIX = "reports"
EVENT_DATE_PARTITION = "event_date"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SourceObject:
    bucket: str
    key: str
    version_id: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def lineage(self) -> str:
        """The URI with the version id: what curated and quarantined rows name as their source."""
        return f"{self.uri}?versionId={self.version_id}" if self.version_id else self.uri

    @property
    def dataset(self) -> str:
        """Raw files land under `<dataset>/...`; the first key segment names the contract."""
        return self.key.split("/", 1)[0] if "/" in self.key else ""

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def file_id(self) -> str:
        digest = hashlib.sha256(f"{self.bucket}\n{self.key}\n{self.version_id or ''}".encode()).hexdigest()[:16]
        stem = _UNSAFE.sub("_", PurePosixPath(self.key).stem)[:80] or "file"
        return f"{stem}-{digest}"


def _chunk_name(source: SourceObject, chunk: int, part: int | None) -> str:
    """The file's chunk; a byte range of a split file (`part`) numbers its chunks under its own name."""
    return f"{source.file_id}-{chunk:05d}" if part is None else f"{source.file_id}-r{part:04d}-{chunk:05d}"


def curated_key(dataset: str, event_date: str, source: SourceObject, chunk: int, part: int | None = None) -> str:
    return f"{dataset}/{EVENT_DATE_PARTITION}={event_date}/{_chunk_name(source, chunk, part)}.parquet"


def quarantine_rows_key(
    dataset: str, ingest_date: str, source: SourceObject, chunk: int, part: int | None = None
) -> str:
    return f"{QUARANTINE_ROWS_PREFIX}/{dataset}/ingest_date={ingest_date}/{_chunk_name(source, chunk, part)}.parquet"


def quarantine_file_prefix(dataset: str, ingest_date: str, source: SourceObject) -> str:
    return f"{QUARANTINE_FILES_PREFIX}/{dataset or '_unknown'}/ingest_date={ingest_date}/{source.file_id}/"


def report_key(dataset: str, ingest_date: str, source: SourceObject) -> str:
    return f"{REPORTS_PREFIX}/{dataset or '_unknown'}/ingest_date={ingest_date}/{source.file_id}.json"


def range_result_key(dataset: str, ingest_date: str, source: SourceObject, part: int) -> str:
    """A split file's range outcome, read by the step that merges the ranges into the file's report."""
    return f"{REPORTS_PREFIX}/{dataset or '_unknown'}/ingest_date={ingest_date}/{source.file_id}.ranges/{part:04d}.json"
