"""A tiny lake on moto (raw, curated, quarantine buckets; idempotency table; notifications topic) and helpers
to drop raw files into it and read back what ingestion wrote."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pandas as pd
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from functions.ingest.layout import SourceObject
from functions.ingest.logic import IngestReport, S3ObjectStore, ingest_object
from functions.ingest.settings import IngestSettings
from mlloop.datagen import generate_churn

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
DATA_START = datetime(2026, 4, 1, tzinfo=UTC)
RAW, CURATED, QUARANTINE, TABLE = "lake-raw", "lake-curated", "lake-quarantine", "lake-idempotency"


@dataclass
class Lake:
    s3: Any
    sns: Any
    sqs: Any
    dynamodb: Any
    settings: IngestSettings
    notifications_queue: str

    def put_raw(self, key: str, body: bytes) -> SourceObject:
        version = self.s3.put_object(Bucket=RAW, Key=key, Body=body)["VersionId"]
        return SourceObject(bucket=RAW, key=key, version_id=version)

    def ingest(self, source: SourceObject, *, chunk_rows: int | None = None) -> IngestReport:
        settings = (
            self.settings
            if chunk_rows is None
            else IngestSettings(**{**self.settings.__dict__, "chunk_rows": chunk_rows})
        )
        return ingest_object(source, store=S3ObjectStore(self.s3), settings=settings, now=NOW, notify=self.notify)

    def notify(self, subject: str, message: str) -> None:
        self.sns.publish(TopicArn=self.settings.notifications_topic_arn, Subject=subject, Message=message)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read_parquet(self, bucket: str, prefix: str = "") -> pd.DataFrame:
        frames = [
            self.parquet_table(bucket, key).to_pandas() for key in self.keys(bucket, prefix) if key.endswith(".parquet")
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def parquet_table(self, bucket: str, key: str) -> Any:
        return pq.read_table(io.BytesIO(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()))

    def curated(self, report: IngestReport) -> pd.DataFrame:
        return self._objects(report.curated_objects)

    def quarantined_rows(self, report: IngestReport) -> pd.DataFrame:
        return self._objects([o for o in report.quarantine_objects if o.endswith(".parquet")])

    def _objects(self, uris: list[str]) -> pd.DataFrame:
        frames = [self.parquet_table(*uri[len("s3://") :].split("/", 1)).to_pandas() for uri in uris]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def report(self, report: IngestReport) -> dict[str, Any]:
        assert report.report_object is not None
        return self.report_at(report.report_object)

    def report_at(self, uri: str) -> dict[str, Any]:
        bucket, key = uri[len("s3://") :].split("/", 1)
        return dict(json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()))

    def notifications(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.notifications_queue, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def lake() -> Iterator[Lake]:
    """One mocked lake per test: the lake holds each fact once, so tests that upload the same rows must not share
    one."""
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        yield _make_lake(monkeypatch)


def _make_lake(monkeypatch: pytest.MonkeyPatch) -> Lake:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_METRICS_NAMESPACE": "MLLoop/test",
        "POWERTOOLS_SERVICE_NAME": "ingest-test",
    }.items():
        monkeypatch.setenv(name, value)
    session = boto3.Session(region_name="us-east-1")
    s3, sns, sqs, dynamodb = (session.client(s) for s in ("s3", "sns", "sqs", "dynamodb"))
    for bucket in (RAW, CURATED, QUARANTINE):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    topic = sns.create_topic(Name="lake-notifications")["TopicArn"]
    queue = sqs.create_queue(QueueName="lake-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    settings = IngestSettings(
        curated_bucket=CURATED,
        quarantine_bucket=QUARANTINE,
        idempotency_table=TABLE,
        notifications_topic_arn=topic,
        chunk_rows=10_000,
    )
    return Lake(s3=s3, sns=sns, sqs=sqs, dynamodb=dynamodb, settings=settings, notifications_queue=queue)


def churn_rows(n: int = 40, *, seed: int = 1, corrupt_fraction: float = 0.0) -> pd.DataFrame:
    return generate_churn(n, seed=seed, start=DATA_START, months=2, corrupt_fraction=corrupt_fraction)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()
