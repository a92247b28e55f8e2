"""A raw file larger than the split threshold goes through the split path on the deployed dev stage: the ingest
function plans byte ranges and starts the split state machine, range workers ingest the ranges, the merge writes
one report for the file (issue 20, "Done when")."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from functions.ingest.layout import SourceObject
from functions.ingest.service import split_execution_name
from mlloop.datagen import generate_churn
from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


@pytest.fixture
def split_threshold(local_cloud: LocalCloud, dev_stage: Deployment) -> Iterator[int]:
    """The stage's split threshold (`lake.ingest_split_bytes`) lowered on the deployed function, then restored."""
    lambda_ = local_cloud.client("lambda")
    name = dev_stage.physical_id("IngestFunction")
    environment = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    threshold = 8_000
    lambda_.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**environment, "INGEST_SPLIT_BYTES": str(threshold)}}
    )
    try:
        yield threshold
    finally:
        lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": environment})


def _report(cloud: LocalCloud, bucket: str, source: SourceObject) -> dict[str, Any]:
    s3 = cloud.client("s3")
    (key,) = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=bucket, Prefix="reports/churn/").get("Contents", [])
        if item["Key"].endswith(f"/{source.file_id}.json")
    ]
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_a_file_over_the_threshold_is_ingested_by_ranges_into_one_report(
    local_cloud: LocalCloud, dev_stage: Deployment, split_threshold: int
) -> None:
    # Given rows a first file already brought, and a larger file with those rows again and some bad rows
    frame = generate_churn(300, seed=23, months=1, corrupt_fraction=0.05)
    s3 = local_cloud.client("s3")
    raw, quarantine = dev_stage.physical_id("RawBucket"), dev_stage.physical_id("QuarantineBucket")
    tag = uuid.uuid4().hex[:8]
    s3.put_object(Bucket=raw, Key=f"churn/first-{tag}.csv", Body=frame.iloc[:40].to_csv(index=False).encode())
    local_cloud.wait_idle()
    body = frame.to_csv(index=False).encode()
    assert len(body) > 3 * split_threshold

    # When the larger file lands
    version = s3.put_object(Bucket=raw, Key=f"churn/large-{tag}.csv", Body=body)["VersionId"]
    local_cloud.wait_idle()

    # Then one split execution ingested it by ranges and merged them into one report
    source = SourceObject(bucket=raw, key=f"churn/large-{tag}.csv", version_id=version)
    machine = dev_stage.physical_id("IngestSplitStateMachine")
    execution = f"{machine.replace(':stateMachine:', ':execution:')}:{split_execution_name(source)}"
    described = local_cloud.wait_for_execution(execution)
    assert described["status"] == "SUCCEEDED", described
    # The Map ran as a Distributed Map (a map run), as on AWS, not as an inline one.
    history = local_cloud.client("stepfunctions").get_execution_history(executionArn=execution, maxResults=1000)
    assert "MapRunStarted" in {event["type"] for event in history["events"]}
    split_input = json.loads(described["input"])
    assert split_input["range_count"] == len(split_input["ranges"]) >= 3
    report = _report(local_cloud, quarantine, source)
    assert report["rows_in"] == 300
    assert report["rows_in"] == report["rows_curated"] + report["rows_quarantined"] + report["rows_dropped_duplicate"]
    assert report["rows_dropped_duplicate"] > 0 and report["rows_quarantined"] > 0
    assert len(report["curated_objects"]) >= 3 and all("-r0" in uri for uri in report["curated_objects"])


def test_a_redelivered_event_does_not_split_the_file_twice(
    local_cloud: LocalCloud, dev_stage: Deployment, split_threshold: int
) -> None:
    s3, sfn = local_cloud.client("s3"), local_cloud.client("stepfunctions")
    raw = dev_stage.physical_id("RawBucket")
    key = f"churn/redelivered-{uuid.uuid4().hex[:8]}.csv"
    body = generate_churn(200, seed=29, months=1).to_csv(index=False).encode()
    version = s3.put_object(Bucket=raw, Key=key, Body=body)["VersionId"]
    local_cloud.wait_idle()
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": dev_stage.account_id,
        "time": "2026-12-01T00:00:00Z",
        "region": dev_stage.region,
        "resources": [f"arn:aws:s3:::{raw}"],
        "detail": {
            "version": "0",
            "bucket": {"name": raw},
            "object": {"key": key, "size": len(body), "etag": "0" * 32, "version-id": version},
            "request-id": "redelivery",
            "requester": dev_stage.account_id,
            "reason": "PutObject",
        },
    }

    answer = local_cloud.client("lambda").invoke(
        FunctionName=dev_stage.physical_id("IngestFunction"), Payload=json.dumps(event).encode()
    )
    local_cloud.wait_idle()

    summary = json.loads(answer["Payload"].read())
    source = SourceObject(bucket=raw, key=key, version_id=version)
    assert summary["split"] is True and summary["execution_arn"].endswith(split_execution_name(source))
    machine = dev_stage.physical_id("IngestSplitStateMachine")
    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert [e["name"] for e in executions].count(split_execution_name(source)) == 1
