"""Snapshot the curated data of the training window, so the run trains on exactly the bytes its gate checked.

Every current object version under `<dataset>/event_date=YYYY-MM-DD/` inside the window is copied, by version
id, into the run's folder of the artifacts bucket. The manifest lists each source key, version id, ETag and size;
its digest is the data version that the model package's lineage carries.

The snapshot holds each fact once: ingestion already drops repeated facts (`functions/shared/facts.py`), and a
partition whose objects still repeat one (two ingestions that raced) is written to the snapshot merged, the
latest arrival (the object written last) winning. The manifest counts the copies removed.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from functions.shared.contract import DataContract, load_contract
from functions.shared.settings import load_settings

RUNS_PREFIX = "training/runs"
_PARTITION = re.compile(r"/event_date=(\d{4}-\d{2}-\d{2})/")
_JOB_UNSAFE = re.compile(r"[^A-Za-z0-9-]")
COPY_WORKERS = 16
MERGED_PARTITION_FILE = "merged.parquet"


@dataclass(frozen=True)
class PrepareSettings:
    curated_bucket: str
    artifacts_bucket: str
    dataset: str
    model_name: str
    window_days: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PrepareSettings:
        return load_settings(cls, env)


@dataclass(frozen=True)
class SourceObject:
    key: str
    version_id: str
    etag: str
    size: int
    event_date: str
    last_modified: str = ""


@dataclass(frozen=True)
class Snapshot:
    run_id: str
    data_version: str
    object_count: int
    total_bytes: int
    window_start: str
    window_end: str
    # Where the curated data actually is ("first..last" partition dates, or "" when there is none), so an empty
    # window says where to look instead of only "0 rows".
    curated_span: str
    manifest_key: str
    manifest_uri: str
    train_uri: str
    output_uri: str
    training_job_name: str
    model_artifacts_uri: str
    duplicates_removed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_prefix(run_id: str) -> str:
    return f"{RUNS_PREFIX}/{run_id}"


def training_job_name(model_name: str, run_id: str) -> str:
    """SageMaker job names allow 63 letters, digits and hyphens; the run id already makes them unique."""
    return _JOB_UNSAFE.sub("-", f"{model_name}-{run_id}")[:63].strip("-")


def window_for(partition_dates: Iterable[date], *, as_of: date, window_days: int) -> tuple[date, date]:
    """The window ends at the newest curated partition on or before `as_of`, not at the wall clock: a backfill of
    data from years ago trains like fresh data, and a window never ends in days that hold nothing yet. With no
    curated data on or before `as_of`, it ends at `as_of` (and holds nothing)."""
    eligible = [day for day in partition_dates if day <= as_of]
    end = max(eligible, default=as_of)
    return end - timedelta(days=window_days - 1), end


def current_partition_day(version: Mapping[str, Any]) -> date | None:
    """The partition date of a current Parquet object version; None for anything else."""
    key = str(version["Key"])
    match = _PARTITION.search(key)
    if not version.get("IsLatest") or not key.endswith(".parquet") or match is None:
        return None
    return date.fromisoformat(match.group(1))


def curated_span(partition_dates: Iterable[date]) -> str:
    days = sorted(set(partition_dates))
    return f"{days[0].isoformat()}..{days[-1].isoformat()}" if days else ""


def select_objects(versions: Iterable[Mapping[str, Any]], start: date, end: date) -> list[SourceObject]:
    """The current version of every Parquet file whose partition date lies in [start, end], in key order."""
    chosen = []
    for v in versions:
        day = current_partition_day(v)
        if day is not None and start <= day <= end:
            chosen.append(
                SourceObject(
                    key=str(v["Key"]),
                    version_id=str(v.get("VersionId") or "null"),
                    etag=str(v.get("ETag", "")).strip('"'),
                    size=int(v.get("Size", 0)),
                    event_date=day.isoformat(),
                    last_modified=_iso(v.get("LastModified")),
                )
            )
    return sorted(chosen, key=lambda o: o.key)


def _iso(value: Any) -> str:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value or "")


def merge_repeated_facts(
    objects: Iterable[SourceObject], *, s3: Any, bucket: str, contract: DataContract
) -> tuple[dict[str, bytes], int]:
    """Parquet bytes for each partition whose objects repeat a fact, each fact once from its latest arrival;
    and how many copies were removed. Partitions of one object are left alone (ingestion keeps a file unique)."""
    import pyarrow.parquet as pq

    from functions.shared.facts import latest_arrival_wins

    by_date: dict[str, list[SourceObject]] = {}
    for obj in objects:
        by_date.setdefault(obj.event_date, []).append(obj)

    def read(obj: SourceObject) -> Any:
        extra = {"VersionId": obj.version_id} if obj.version_id != "null" else {}
        return pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=obj.key, **extra)["Body"].read()))

    def merge(group: list[SourceObject]) -> tuple[str, bytes | None, int]:
        arrivals = sorted(group, key=lambda o: (o.last_modified, o.key))
        table, removed = latest_arrival_wins([read(o) for o in arrivals], contract.entity_key, contract.event_timestamp)
        if not removed:
            return group[0].event_date, None, 0
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="snappy")
        return group[0].event_date, buffer.getvalue(), removed

    groups = [group for group in by_date.values() if len(group) > 1]
    merged: dict[str, bytes] = {}
    removed = 0
    with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
        for event_date, body, count in pool.map(merge, groups):
            if body is not None:
                merged[event_date] = body
                removed += count
    return merged, removed


def data_version(objects: Iterable[SourceObject]) -> str:
    """Names the exact bytes: the same files at the same versions give the same data version."""
    digest = hashlib.sha256()
    for o in objects:
        digest.update(f"{o.key}@{o.version_id}#{o.etag}\n".encode())
    return f"sha256:{digest.hexdigest()[:20]}"


def window_as_of(trigger: Mapping[str, Any], now: datetime) -> date:
    """The latest day a run may train on: an explicit `window_end` the run was given, else the trigger's time."""
    detail = trigger.get("detail") if isinstance(trigger.get("detail"), Mapping) else {}
    raw = (detail or {}).get("window_end") or trigger.get("time")
    if not isinstance(raw, str) or not raw:
        return now.astimezone(UTC).date()
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC).date()


def prepare_training_data(
    run_id: str, trigger: Mapping[str, Any], *, s3: Any, settings: PrepareSettings, now: datetime
) -> Snapshot:
    paginator = s3.get_paginator("list_object_versions")
    versions: list[Mapping[str, Any]] = []
    for page in paginator.paginate(Bucket=settings.curated_bucket, Prefix=f"{settings.dataset}/event_date="):
        versions.extend(page.get("Versions", []))
    days = {day for v in versions if (day := current_partition_day(v)) is not None}
    start, end = window_for(days, as_of=window_as_of(trigger, now), window_days=settings.window_days)
    objects = select_objects(versions, start, end)
    prefix = run_prefix(run_id)
    dataset_prefix = f"{settings.dataset}/"
    contract = load_contract(settings.dataset)
    merged, duplicates_removed = merge_repeated_facts(objects, s3=s3, bucket=settings.curated_bucket, contract=contract)

    def snapshot_key(obj: SourceObject) -> str:
        if obj.event_date in merged:
            return f"{prefix}/data/event_date={obj.event_date}/{MERGED_PARTITION_FILE}"
        return f"{prefix}/data/{obj.key.removeprefix(dataset_prefix)}"

    def copy(obj: SourceObject) -> None:
        source = {"Bucket": settings.curated_bucket, "Key": obj.key}
        if obj.version_id != "null":
            source["VersionId"] = obj.version_id
        s3.copy_object(CopySource=source, Bucket=settings.artifacts_bucket, Key=snapshot_key(obj))

    with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
        list(pool.map(copy, [o for o in objects if o.event_date not in merged]))
    for event_date, body in merged.items():
        s3.put_object(
            Bucket=settings.artifacts_bucket,
            Key=f"{prefix}/data/event_date={event_date}/{MERGED_PARTITION_FILE}",
            Body=body,
            ContentType="application/vnd.apache.parquet",
        )

    version = data_version(objects)
    manifest = {
        "run_id": run_id,
        "dataset": settings.dataset,
        "data_version": version,
        "window": {"start": start.isoformat(), "end": end.isoformat(), "days": settings.window_days},
        "curated_span": curated_span(days),
        "source_bucket": settings.curated_bucket,
        "created_at": now.isoformat(),
        "trigger": dict(trigger),
        "duplicates_removed": duplicates_removed,
        "objects": [{**asdict(o), "snapshot_key": snapshot_key(o)} for o in objects],
    }
    manifest_key = f"{prefix}/manifest.json"
    s3.put_object(
        Bucket=settings.artifacts_bucket,
        Key=manifest_key,
        Body=json.dumps(manifest, sort_keys=True, indent=1).encode(),
        ContentType="application/json",
    )
    bucket = settings.artifacts_bucket
    job_name = training_job_name(settings.model_name, run_id)
    output_uri = f"s3://{bucket}/{prefix}/output"
    return Snapshot(
        run_id=run_id,
        data_version=version,
        object_count=len(objects),
        total_bytes=sum(o.size for o in objects),
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        curated_span=curated_span(days),
        manifest_key=manifest_key,
        manifest_uri=f"s3://{bucket}/{manifest_key}",
        train_uri=f"s3://{bucket}/{prefix}/data/",
        output_uri=output_uri,
        training_job_name=job_name,
        # Where SageMaker writes SM_MODEL_DIR: <S3OutputPath>/<job name>/output/model.tar.gz.
        model_artifacts_uri=f"{output_uri}/{job_name}/output/model.tar.gz",
        duplicates_removed=duplicates_removed,
    )
