"""The ingestion function's wiring to AWS: S3 store, SNS notifications, idempotency on DynamoDB, EMF metrics.

Idempotent on (bucket, key, version id): a redelivered "Object Created" event returns the first run's
report summary and writes nothing; a run that failed part-way leaves no record, so the retry runs again and
rewrites the same deterministic keys. The record holds the bounded summary (`IngestReport.summary`), never
the full report, whose object lists grow with the partition count past DynamoDB's 400 KB item limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ingest.layout import SourceObject
from functions.ingest.logic import IngestReport, S3ObjectStore, ingest_object, ingest_range, merge_ranges
from functions.ingest.ranges import ByteRange, plan_ranges, read_blocks, should_split
from functions.ingest.settings import IngestSettings
from functions.shared.platform_events import CURATED_DATA_INGESTED, INGEST_SOURCE

# Longer than EventBridge's retry window (6 hours on the rule), so every redelivery finds the record.
IDEMPOTENCY_SECONDS = 7 * 24 * 3600


@cache
def _client(service: str) -> Any:
    return boto3.client(service)


def record_metrics(report: IngestReport, metrics: Metrics) -> None:
    dataset = report.dataset or "_unknown"
    metrics.add_dimension("Dataset", dataset)
    metrics.add_metric(name="RowsIn", unit=MetricUnit.Count, value=report.rows_in)
    metrics.add_metric(name="RowsCurated", unit=MetricUnit.Count, value=report.rows_curated)
    metrics.add_metric(name="RowsQuarantined", unit=MetricUnit.Count, value=report.rows_quarantined)
    metrics.add_metric(name="RowsDroppedDuplicate", unit=MetricUnit.Count, value=report.rows_dropped_duplicate)
    metrics.add_metric(name="QuarantineRate", unit=MetricUnit.Percent, value=report.quarantine_rate_percent)
    metrics.add_metric(name="NullRate", unit=MetricUnit.Percent, value=report.null_rate_percent)
    metrics.add_metric(name="DuplicateRate", unit=MetricUnit.Percent, value=report.duplicate_rate_percent)
    metrics.add_metric(name="FilesQuarantined", unit=MetricUnit.Count, value=int(report.quarantined_whole))
    if report.freshness_lag_seconds is not None:
        metrics.add_metric(name="FreshnessLag", unit=MetricUnit.Seconds, value=report.freshness_lag_seconds)
    for rule, count in report.rule_counts.items():
        with single_metric(
            name="RowsQuarantinedByRule",
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions={"Dataset": dataset, "Rule": rule},
        ):
            pass


def announce_curated_data(bus: Any, report: IngestReport, *, source: dict[str, Any], stage: str) -> None:
    """One event per ingested file; inside the idempotent step, so a redelivered file announces nothing."""
    detail = {
        "stage": stage,
        "dataset": report.dataset,
        "contract_version": report.contract_version,
        "source": source,
        "rows_curated": report.rows_curated,
        "rows_quarantined": report.rows_quarantined,
    }
    bus.put_events(
        Entries=[{"Source": INGEST_SOURCE, "DetailType": CURATED_DATA_INGESTED, "Detail": json.dumps(detail)}]
    )


def handle_object_created(
    source: SourceObject,
    *,
    settings: IngestSettings,
    metrics: Metrics,
    lambda_context: LambdaContext | None = None,
    s3_client: Any = None,
    sns_client: Any = None,
    dynamodb_client: Any = None,
    events_client: Any = None,
    stepfunctions_client: Any = None,
    now: datetime | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """Ingest `source` once; return its report summary (the first run's, on redelivery), or, for a file larger
    than one invocation holds, the split execution that ingests it by byte ranges."""
    s3 = s3_client or _client("s3")
    sns = sns_client or _client("sns")
    bus = events_client or _client("events")
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=dynamodb_client or _client("dynamodb")
    )
    config = IdempotencyConfig(expires_after_seconds=IDEMPOTENCY_SECONDS)
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)

    def notify(subject: str, message: str) -> None:
        sns.publish(TopicArn=settings.notifications_topic_arn, Subject=subject, Message=message)

    def ingest_raw_object(raw_object: dict[str, Any]) -> dict[str, Any]:
        split = start_split(
            SourceObject(**raw_object), size=size, s3=s3, sfn=stepfunctions_client, settings=settings, now=now
        )
        if split is not None:
            return split
        report = ingest_object(
            SourceObject(**raw_object), store=S3ObjectStore(s3), settings=settings, now=now, notify=notify
        )
        record_metrics(report, metrics)
        if report.rows_curated > 0:
            announce_curated_data(bus, report, source=raw_object, stage=settings.stage)
        return report.summary()

    once = cast(
        Callable[..., dict[str, Any]],
        idempotent_function(data_keyword_argument="raw_object", config=config, persistence_store=persistence)(
            ingest_raw_object
        ),
    )
    return once(raw_object=asdict(source))


def split_execution_name(source: SourceObject) -> str:
    """One execution per object version: Step Functions refuses a second standard execution of that name."""
    return f"split-{source.file_id.rsplit('-', 1)[1]}"


def start_split(
    source: SourceObject, *, size: int | None, s3: Any, sfn: Any, settings: IngestSettings, now: datetime | None
) -> dict[str, Any] | None:
    """Start the split execution when the object (`size` bytes, as S3's event says) is larger than one invocation
    holds; None when it is not."""
    if not settings.split_state_machine_arn or size is None:
        return None
    if not should_split(source.file_name, size, settings.split_bytes):
        return None
    extra = {"VersionId": source.version_id} if source.version_id else {}
    sfn = sfn or _client("stepfunctions")
    body = s3.get_object(Bucket=source.bucket, Key=source.key, **extra)["Body"]
    ranges = plan_ranges(read_blocks(body), size, settings.split_bytes)
    started_at = (now or datetime.now(UTC)).isoformat()
    name = split_execution_name(source)
    split_input = {
        "source": asdict(source),
        "started_at": started_at,
        "header_end": ranges[0].start if ranges else 0,
        "range_count": len(ranges),
        "ranges": [r.as_dict() for r in ranges],
    }
    try:
        arn = sfn.start_execution(
            stateMachineArn=settings.split_state_machine_arn, name=name, input=json.dumps(split_input)
        )["executionArn"]
    except sfn.exceptions.ExecutionAlreadyExists:
        # A redelivered event after a run that failed before its idempotency record was saved: already split.
        # StartExecution answers this for a name already used with another input or by a closed execution
        # (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
        arn = settings.split_state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
    return {"source": source.lineage, "split": True, "execution_arn": arn, "ranges": len(ranges), "bytes": size}


def handle_split_step(
    event: dict[str, Any],
    *,
    settings: IngestSettings,
    metrics: Metrics,
    s3_client: Any = None,
    sns_client: Any = None,
    events_client: Any = None,
) -> dict[str, Any]:
    """One step of the split execution: ingest a byte range, or merge the ranges into the file's report."""
    s3 = s3_client or _client("s3")
    source = SourceObject(**event["source"])
    now = datetime.fromisoformat(event["started_at"])
    store = S3ObjectStore(s3)
    if event["step"] == "range":
        outcome = ingest_range(
            source, ByteRange(**event["range"]), header_end=event["header_end"], store=store, settings=settings, now=now
        )
        return {"index": outcome.index, "rows_in": outcome.report["rows_in"], "rejected": outcome.rejected_rule}
    sns = sns_client or _client("sns")

    def notify(subject: str, message: str) -> None:
        sns.publish(TopicArn=settings.notifications_topic_arn, Subject=subject, Message=message)

    report = merge_ranges(source, event["range_count"], store=store, settings=settings, now=now, notify=notify)
    record_metrics(report, metrics)
    if report.rows_curated > 0:
        announce_curated_data(events_client or _client("events"), report, source=asdict(source), stage=settings.stage)
    return report.summary()
