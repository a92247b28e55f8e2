"""The ingestion function's settings, read from its environment when a file is processed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class IngestSettings:
    curated_bucket: str
    quarantine_bucket: str
    idempotency_table: str
    notifications_topic_arn: str
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    stage: str = ""
    # A CSV larger than this is split into byte ranges run by the split state machine; 0: never split.
    split_bytes: int = 0
    split_state_machine_arn: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        source = os.environ if env is None else env
        missing = [
            name
            for name in ("CURATED_BUCKET", "QUARANTINE_BUCKET", "IDEMPOTENCY_TABLE", "NOTIFICATIONS_TOPIC_ARN")
            if not source.get(name)
        ]
        if missing:
            raise RuntimeError(f"ingest settings: missing environment variable {missing[0]}")
        chunk_rows = int(source.get("INGEST_CHUNK_ROWS", str(DEFAULT_CHUNK_ROWS)))
        if chunk_rows < 1:
            raise RuntimeError(f"ingest settings: INGEST_CHUNK_ROWS must be positive, got {chunk_rows}")
        return cls(
            curated_bucket=source["CURATED_BUCKET"],
            quarantine_bucket=source["QUARANTINE_BUCKET"],
            idempotency_table=source["IDEMPOTENCY_TABLE"],
            notifications_topic_arn=source["NOTIFICATIONS_TOPIC_ARN"],
            chunk_rows=chunk_rows,
            stage=source.get("STAGE", ""),
            split_bytes=int(source.get("INGEST_SPLIT_BYTES", "0")),
            split_state_machine_arn=source.get("INGEST_SPLIT_STATE_MACHINE_ARN", ""),
        )
