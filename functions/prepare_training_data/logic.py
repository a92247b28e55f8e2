"""Snapshot the curated data of the training window as it was known at the run's cut, labels joined point-in-time.

The cut T is the time the run was asked for (its trigger's time; `now` without one). The window holds the event
dates `[end - window_days + 1, end]`, `end` being the newest curated partition on or before T's date, or on or
before the day a run names as its `window_end` (a backfill of old data trains like fresh data).

What the snapshot may hold at T (docs/training-workflow.md, "Labels arrive late"):
- a row only if its curated object had landed by T (S3's LastModified of the version that was current at T: the
  lake's own arrival record, to the second);
- a label only if it was an outcome by T. An inline label (the dataset's own label column) is one when its
  object landed after the label window had closed (event time + window_days <= arrival): written earlier it is a
  guess about a future that had not happened yet, not a label. A row of the label dataset (`<dataset>_labels`,
  joined on entity key and event time) is one when it had landed by T and its window had closed by T. When a fact
  has several, the latest arrival wins (the label feed corrects an inline value, a later delivery an earlier one).
- Rows without a label at T are left out; the manifest counts them by why.

Each fact once: ingestion already drops repeated facts (`functions/shared/facts.py`); objects that still repeat one
(two ingestions that raced) give it once, the latest arrival winning; the manifest counts the copies removed.

The manifest lists each source object (key, version id, ETag, size, arrival) and the run's label counts; its data
version names the source bytes and the cut. "Newly matured" counts the snapshot's labels that were not yet labels at
the champion's cut (read from the champion package's manifest): with none, the run has nothing new to learn from.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from functions.prepare_training_data.change import ChangeSignal, change_start, window_rule
from functions.prepare_training_data.detectors import DetectorRecord, DetectorThresholds, read_detector_record
from functions.shared.champion import describe_champion
from functions.shared.contract import DataContract, load_contract
from functions.shared.package_metadata import evaluated_metric
from functions.shared.settings import load_settings

RUNS_PREFIX = "training/runs"
_PARTITION = re.compile(r"/event_date=(\d{4}-\d{2}-\d{2})/")
_JOB_UNSAFE = re.compile(r"[^A-Za-z0-9-]")
COPY_WORKERS = 16
SNAPSHOT_PARTITION_FILE = "labelled.parquet"
ARRIVED_AT = "__arrived_at"
_LABEL_FROM = "__label_from"


@dataclass(frozen=True)
class PrepareSettings:
    curated_bucket: str
    artifacts_bucket: str
    dataset: str
    model_name: str
    window_days: int
    labels_dataset: str = ""
    # The champion's lineage says which labels its snapshot had; empty = no registry to ask (every label is new).
    model_package_group: str = ""
    # A window cut at a change trains only with this many labelled rows (the data gate's min_rows) over more than
    # this many days (what the training split needs: change.min_split_span_days).
    min_rows: int = 0
    min_span_days: float = 0.0
    # Whose detectors' reports say when the world changed (empty: none are read), judged by the live-AUC alarms'
    # thresholds.
    endpoint_name: str = ""
    min_live_auc: float = 0.0
    max_live_auc_drop: float = 1.0

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


@dataclass
class LabelCounts:
    """What the snapshot holds and what it left out at the cut, in rows (each fact once)."""

    cut: str
    rows_in_window: int = 0
    labelled: int = 0
    inline_labels: int = 0
    feed_labels: int = 0
    immature_dropped: int = 0
    unlabelled_dropped: int = 0
    rows_not_yet_arrived: int = 0
    labels_not_yet_arrived: int = 0
    newly_matured: int = 0
    champion_model_version: str = ""
    champion_cut: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    # The cut: labels are known up to it (training's `label_as_of`).
    label_as_of: str = ""
    labels: dict[str, Any] = field(default_factory=dict)
    # False when nothing was learnt since the champion: the workflow stops before the training job.
    has_new_labels: bool = True
    retraining_reason: str = ""
    # Where the window starts and why (the stage's window, or the change the detectors found): change.WindowRule.
    window_rule: dict[str, Any] = field(default_factory=dict)

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


def partition_day(key: str) -> date | None:
    """The partition date of a curated Parquet key; None for anything else."""
    match = _PARTITION.search(key)
    if not key.endswith(".parquet") or match is None:
        return None
    return date.fromisoformat(match.group(1))


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def versions_as_of(
    versions: Iterable[Mapping[str, Any]], delete_markers: Iterable[Mapping[str, Any]], cut: datetime
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The version of each Parquet key that was current at `cut` (none when a delete marker was), and the keys that
    had no version yet at `cut` (their newest version): what had landed by then, and what landed after."""
    by_key: dict[str, list[tuple[datetime, bool, Mapping[str, Any]]]] = {}
    for v in versions:
        if partition_day(str(v["Key"])) is not None:
            by_key.setdefault(str(v["Key"]), []).append((_utc(v["LastModified"]), False, v))
    for m in delete_markers:
        if str(m["Key"]) in by_key:
            by_key[str(m["Key"])].append((_utc(m["LastModified"]), True, m))
    current, later = [], []
    for entries in by_key.values():
        # On a tie the version listed first is the newer one (S3 lists a key's versions newest first).
        ordered = sorted(enumerate(entries), key=lambda e: (e[1][0], -e[0]))
        known = [entry for _, entry in ordered if entry[0] <= cut]
        if known:
            if not known[-1][1]:
                current.append(known[-1][2])
        else:
            newest = [entry for _, entry in ordered if not entry[1]]
            later.append(newest[-1][2])
    return current, later


def source_object(version: Mapping[str, Any]) -> SourceObject:
    key = str(version["Key"])
    day = partition_day(key)
    return SourceObject(
        key=key,
        version_id=str(version.get("VersionId") or "null"),
        etag=str(version.get("ETag", "")).strip('"'),
        size=int(version.get("Size", 0)),
        event_date=day.isoformat() if day else "",
        last_modified=_utc(version["LastModified"]).isoformat(),
    )


def in_window(objects: Iterable[SourceObject], start: date, end: date) -> list[SourceObject]:
    return sorted((o for o in objects if start.isoformat() <= o.event_date <= end.isoformat()), key=lambda o: o.key)


def curated_span(partition_dates: Iterable[date]) -> str:
    days = sorted(set(partition_dates))
    return f"{days[0].isoformat()}..{days[-1].isoformat()}" if days else ""


def data_version(objects: Iterable[SourceObject], cut: str = "") -> str:
    """Names the exact bytes and what was known of them: the same files at the same versions, cut at the same
    time, give the same data version."""
    digest = hashlib.sha256()
    for o in objects:
        digest.update(f"{o.key}@{o.version_id}#{o.etag}\n".encode())
    if cut:
        digest.update(f"cut {cut}\n".encode())
    return f"sha256:{digest.hexdigest()[:20]}"


def run_cut(trigger: Mapping[str, Any], now: datetime) -> datetime:
    """When the run was asked for: the trigger's time (never later than now), else now."""
    raw = trigger.get("time")
    if not isinstance(raw, str) or not raw:
        return now.astimezone(UTC)
    return min(_utc(raw), now.astimezone(UTC))


def window_as_of(trigger: Mapping[str, Any], now: datetime) -> date:
    """The latest event day a run may train on: an explicit `window_end` the run was given, else its cut's day."""
    detail = trigger.get("detail") if isinstance(trigger.get("detail"), Mapping) else {}
    raw = (detail or {}).get("window_end")
    if isinstance(raw, str) and raw:
        return _utc(raw).date()
    return run_cut(trigger, now).date()


def _read_tables(s3: Any, bucket: str, objects: list[SourceObject]) -> list[Any]:
    """Each object's rows (a pyarrow Table), with its arrival (LastModified) on every row, in arrival order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def read(obj: SourceObject) -> Any:
        extra = {"VersionId": obj.version_id} if obj.version_id != "null" else {}
        table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=obj.key, **extra)["Body"].read()))
        arrived = pa.array([_utc(obj.last_modified)] * table.num_rows, pa.timestamp("us", tz="UTC"))
        return table.append_column(ARRIVED_AT, arrived)

    ordered = sorted(objects, key=lambda o: (o.last_modified, o.key))
    with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
        return list(pool.map(read, ordered))


def _facts(tables: list[Any], contract: DataContract, columns: list[str]) -> tuple[Any, int]:
    """Each fact once, the latest arrival winning (`functions/shared/facts.py`); and how many copies were removed."""
    import pandas as pd

    from functions.shared.facts import latest_arrival_wins

    present = [t.select([c for c in [*columns, ARRIVED_AT] if c in t.column_names]) for t in tables if t.num_rows]
    if present:
        table, removed = latest_arrival_wins(present, contract.entity_key, contract.event_timestamp)
        frame = table.to_pandas().reindex(columns=[*columns, ARRIVED_AT])
    else:
        frame, removed = pd.DataFrame(columns=[*columns, ARRIVED_AT]), 0
    for column in (contract.event_timestamp, ARRIVED_AT):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.reset_index(drop=True), removed


def join_labels_as_of(facts: Any, feed: Any, contract: DataContract, cut: datetime) -> tuple[Any, Any]:
    """The facts labelled at `cut`, indexed by their row in `facts`: each one's label (the latest usable arrival) and
    where it came from; and since when each had a usable label. Facts without one are in neither."""
    import pandas as pd

    label, ts, key = contract.label.name, contract.event_timestamp, contract.entity_key
    window = pd.Timedelta(days=contract.label.window_days)
    cut_ts = pd.Timestamp(cut)
    closes = facts[ts] + window
    inline_ok = facts[label].notna() & (closes <= facts[ARRIVED_AT])
    candidates = [
        pd.DataFrame(
            {
                "__row": facts.index[inline_ok],
                label: facts.loc[inline_ok, label].to_numpy(),
                # `.array`, not `.to_numpy()`: a zoned datetime column would become Timestamp objects, one by one.
                ARRIVED_AT: facts.loc[inline_ok, ARRIVED_AT].array,
                _LABEL_FROM: "inline",
            }
        )
    ]
    if len(feed):
        usable = feed[feed[label].notna() & (feed[ts] + window <= cut_ts) & (feed[ARRIVED_AT] <= cut_ts)]
        rows = facts[[key, ts]].reset_index(names="__row")
        matched = rows.merge(usable[[key, ts, label, ARRIVED_AT]], on=[key, ts], how="inner")
        candidates.append(matched[["__row", label, ARRIVED_AT]].assign(**{_LABEL_FROM: "feed"}))
    present = [c for c in candidates if len(c)]
    if not present:
        return candidates[0].set_index("__row"), pd.Series([], dtype="datetime64[ns, UTC]")
    every = pd.concat(present, ignore_index=True)
    every[ARRIVED_AT] = pd.to_datetime(every[ARRIVED_AT], utc=True)
    # Known from when both had happened: the window closed and the label landed.
    closed = closes.loc[every["__row"]].set_axis(every.index)
    every["__known"] = every[ARRIVED_AT].where(every[ARRIVED_AT] >= closed, pd.to_datetime(closed, utc=True))
    latest = every.sort_values(ARRIVED_AT, kind="stable").groupby("__row").last()
    known_since = every.groupby("__row")["__known"].min()
    return latest, known_since


@dataclass(frozen=True)
class ChampionLineage:
    model_version: str = ""
    # The cut of the snapshot it was trained on (None when its manifest has none: every label counts as new).
    cut: datetime | None = None
    # The change its window started at (None: the stage's whole window).
    change_since: date | None = None


def champion_lineage(sagemaker: Any, s3: Any, group: str) -> ChampionLineage:
    """What the champion's training manifest says about the data it learnt from; empty without a champion."""
    if not group:
        return ChampionLineage()
    described = describe_champion(sagemaker, group)
    if described is None:
        return ChampionLineage()
    metadata = described.get("CustomerMetadataProperties") or {}
    version = str(metadata.get("model_version", described["ModelPackageArn"].rsplit("/", 1)[-1]))
    uri = str(metadata.get("manifest_uri", ""))
    if not uri.startswith("s3://"):
        return ChampionLineage(version)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    cut = (manifest.get("labels") or {}).get("cut")
    since = ((manifest.get("window") or {}).get("rule") or {}).get("change_since")
    return ChampionLineage(version, _utc(cut) if cut else None, date.fromisoformat(since) if since else None)


def evaluated_aucs(sagemaker: Any, group: str, versions: list[str]) -> dict[str, float]:
    """The test AUC registration recorded for each of these model versions (approved packages of the group,
    newest first, until all are found)."""
    wanted, found = set(versions), {}
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, ModelApprovalStatus="Approved", SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            arn = str(summary["ModelPackageArn"])
            metadata = sagemaker.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties") or {}
            version = str(metadata.get("model_version", arn.rsplit("/", 1)[-1]))
            auc = evaluated_metric(metadata, "roc_auc")
            if version in wanted and auc is not None:
                found[version] = auc
            if wanted <= set(found):
                return found
    return found


def retraining_verdict(counts: LabelCounts, trigger: Mapping[str, Any], has_champion: bool) -> tuple[bool, str]:
    """Whether the snapshot is worth a training job: it holds labels the champion never saw, or a person forced it."""
    if not has_champion:
        return True, "no champion yet"
    if counts.newly_matured > 0:
        return True, (
            f"{counts.newly_matured} label(s) matured and arrived since the champion {counts.champion_model_version}'s "
            f"cut {counts.champion_cut or '(none recorded)'}"
        )
    if trigger.get("force") is True:
        return True, "no new labels since the champion's cut, but a person forced the run"
    return False, (
        f"no new labels: none of the {counts.labelled} labelled rows matured or arrived between the champion "
        f"{counts.champion_model_version}'s cut {counts.champion_cut} and this run's cut {counts.cut}; "
        f"a model trained on them would repeat the champion"
    )


def _list_versions(s3: Any, bucket: str, prefix: str) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    versions: list[Mapping[str, Any]] = []
    markers: list[Mapping[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions.extend(page.get("Versions", []))
        markers.extend(page.get("DeleteMarkers", []))
    return versions, markers


def prepare_training_data(
    run_id: str,
    trigger: Mapping[str, Any],
    *,
    s3: Any,
    settings: PrepareSettings,
    now: datetime,
    sagemaker: Any = None,
    change_signals: Iterable[ChangeSignal] = (),
) -> Snapshot:
    """`change_signals`: the detectors' daily verdicts about the champion (change.drift_signals,
    change.live_auc_signals); the window starts at the change they establish (change.window_rule)."""
    import pandas as pd

    cut = run_cut(trigger, now)
    contract = load_contract(settings.dataset)
    versions, markers = _list_versions(s3, settings.curated_bucket, f"{settings.dataset}/event_date=")
    current, later = versions_as_of(versions, markers, cut)
    landed = [source_object(v) for v in current]
    days = {date.fromisoformat(o.event_date) for o in landed}
    start, end = window_for(days, as_of=window_as_of(trigger, now), window_days=settings.window_days)
    objects = in_window(landed, start, end)
    late_objects = in_window([source_object(v) for v in later], start, end)
    columns = list(contract.columns)
    facts, duplicates_removed = _facts(_read_tables(s3, settings.curated_bucket, objects), contract, columns)
    counts = LabelCounts(cut=cut.isoformat(), rows_in_window=len(facts))
    counts.rows_not_yet_arrived = sum(t.num_rows for t in _read_tables(s3, settings.curated_bucket, late_objects))

    label_objects: list[SourceObject] = []
    feed = pd.DataFrame()
    if settings.labels_dataset:
        labels_contract = load_contract(settings.labels_dataset)
        label_versions, label_markers = _list_versions(
            s3, settings.curated_bucket, f"{settings.labels_dataset}/event_date="
        )
        label_current, label_later = versions_as_of(label_versions, label_markers, cut)
        label_objects = in_window([source_object(v) for v in label_current], start, end)
        label_columns = [labels_contract.entity_key, labels_contract.event_timestamp, labels_contract.label.name]
        feed, _ = _facts(_read_tables(s3, settings.curated_bucket, label_objects), labels_contract, label_columns)
        late_feed, _ = _facts(
            _read_tables(s3, settings.curated_bucket, in_window([source_object(v) for v in label_later], start, end)),
            labels_contract,
            label_columns,
        )
        counts.labels_not_yet_arrived = len(late_feed)

    latest, known_since = join_labels_as_of(facts, feed, contract, cut)
    champion = (
        champion_lineage(sagemaker, s3, settings.model_package_group) if sagemaker is not None else ChampionLineage()
    )
    record = DetectorRecord([*change_signals], [])
    if settings.endpoint_name and champion.model_version:
        read = read_detector_record(
            s3,
            settings.artifacts_bucket,
            settings.endpoint_name,
            evaluated_auc=lambda versions: evaluated_aucs(sagemaker, settings.model_package_group, versions),
            since=start,
            thresholds=DetectorThresholds(settings.min_live_auc, settings.max_live_auc_drop),
        )
        record = DetectorRecord([*record.signals, *read.signals], read.live_days)
    labelled_days = facts.loc[latest.index, contract.event_timestamp].dt.date.value_counts()
    rule = window_rule(
        start,
        change_start(record.signals),
        {day: int(n) for day, n in labelled_days.items()},
        min_rows=settings.min_rows,
        min_span_days=settings.min_span_days,
        inherited=champion.change_since,
    )
    if rule.change_since:
        start = date.fromisoformat(rule.start)
        since = facts[contract.event_timestamp].dt.date >= start
        facts = facts[since]
        latest, known_since = latest[latest.index.isin(facts.index)], known_since[known_since.index.isin(facts.index)]
        objects = in_window(objects, start, end)
        label_objects = in_window(label_objects, start, end)
        counts.rows_in_window = len(facts)
    label = contract.label.name
    labelled_rows = latest.index.to_numpy()
    snapshot_frame = facts.loc[labelled_rows].copy()
    snapshot_frame[label] = latest[label].astype("int64").to_numpy()
    unlabelled = facts.drop(index=labelled_rows)
    open_window = unlabelled[contract.event_timestamp] + pd.Timedelta(days=contract.label.window_days) > cut
    counts.labelled = len(snapshot_frame)
    counts.inline_labels = int((latest[_LABEL_FROM] == "inline").sum())
    counts.feed_labels = int((latest[_LABEL_FROM] == "feed").sum())
    counts.immature_dropped = int(open_window.sum())
    counts.unlabelled_dropped = int((~open_window).sum())

    has_champion = False
    if sagemaker is not None and settings.model_package_group:
        has_champion = bool(champion.model_version)
        counts.champion_model_version = champion.model_version
        counts.champion_cut = champion.cut.isoformat() if champion.cut else ""
        fresh = known_since > pd.Timestamp(champion.cut) if champion.cut else known_since.notna()
        counts.newly_matured = int(fresh.sum())
    else:
        counts.newly_matured = counts.labelled
    has_new_labels, reason = retraining_verdict(counts, trigger, has_champion)
    if not rule.ready:
        has_new_labels, reason = False, rule.reason

    prefix = run_prefix(run_id)
    written = _write_partitions(s3, settings.artifacts_bucket, prefix, snapshot_frame, contract)
    version = data_version([*objects, *label_objects], cut.isoformat())
    manifest = {
        "run_id": run_id,
        "dataset": settings.dataset,
        "labels_dataset": settings.labels_dataset,
        "data_version": version,
        "window": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "days": settings.window_days,
            "rule": rule.to_dict(),
        },
        # What the champion scores on the world since the change (live, on delayed labels): the promotion gate's
        # reference for a candidate trained since it (training.gate.champion_since_change).
        "champion_live_since_change": record.live_since(start) if rule.change_since else None,
        "curated_span": curated_span(days),
        "source_bucket": settings.curated_bucket,
        "created_at": now.isoformat(),
        "trigger": dict(trigger),
        "duplicates_removed": duplicates_removed,
        "labels": {
            **counts.to_dict(),
            "rule": "inline label: its object landed after event_time + window_days; label feed row: landed by the "
            "cut and event_time + window_days <= cut; latest arrival wins; rows without a label are left out",
        },
        "retraining": {"has_new_labels": has_new_labels, "reason": reason},
        "objects": [{**asdict(o), "snapshot_key": written.get(o.event_date, "")} for o in objects],
        "label_objects": [asdict(o) for o in label_objects],
        "not_yet_arrived_objects": [asdict(o) for o in late_objects],
    }
    manifest_key = f"{prefix}/manifest.json"
    s3.put_object(
        Bucket=settings.artifacts_bucket,
        Key=manifest_key,
        Body=json.dumps(manifest, sort_keys=True, indent=1, default=str).encode(),
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
        label_as_of=cut.isoformat(),
        labels=counts.to_dict(),
        has_new_labels=has_new_labels,
        retraining_reason=reason,
        window_rule=rule.to_dict(),
    )


def _write_partitions(s3: Any, bucket: str, prefix: str, frame: Any, contract: DataContract) -> dict[str, str]:
    """One Parquet file of labelled rows per event date; the snapshot key of each date written."""
    days = frame[contract.event_timestamp].dt.strftime("%Y-%m-%d")
    jobs = []
    for day, part in frame.groupby(days, sort=True):
        buffer = io.BytesIO()
        part[list(contract.columns)].to_parquet(buffer, index=False, compression="snappy")
        jobs.append((str(day), f"{prefix}/data/event_date={day}/{SNAPSHOT_PARTITION_FILE}", buffer.getvalue()))

    def put(job: tuple[str, str, bytes]) -> None:
        s3.put_object(Bucket=bucket, Key=job[1], Body=job[2], ContentType="application/vnd.apache.parquet")

    with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
        list(pool.map(put, jobs))
    return {day: key for day, key, _ in jobs}
