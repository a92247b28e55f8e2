"""Batch scoring: a curated partition goes through the deployed model into the predictions table, re-runnable."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from functions.batch_score.logic import BatchScorer, BatchSettings, parquet_rows
from functions.frontdoor.logic import EndpointCallError
from functions.shared.transient import TransientError
from tests.unit.frontdoor_support import VALID_RECORD, ScriptedEndpoint, manifest

SETTINGS = BatchSettings(
    endpoint_name="mlloop-dev-churn",
    dataset="churn",
    curated_bucket="curated",
    capture_bucket="capture",
    predictions_prefix="predictions",
    manifest_bucket="artifacts",
    manifest_key="serving/mlloop-dev-churn/manifest.json",
    batch_records=4,
)


def _parquet(rows: int) -> bytes:
    records = [
        {**VALID_RECORD, "customer_id": f"c{i}", "total_charges": None if i % 3 == 0 else 10.0} for i in range(rows)
    ]
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), out)
    return out.getvalue()


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("curated", "capture", "artifacts"):
            client.create_bucket(Bucket=bucket)
        yield client


def _scorer(s3: Any, endpoint: ScriptedEndpoint | None = None) -> BatchScorer:
    return BatchScorer(
        SETTINGS,
        s3=s3,
        invoker=endpoint or ScriptedEndpoint(),
        read_rows=parquet_rows,
        today=lambda: dt.date(2026, 11, 22),
    )


def test_without_a_deployed_model_there_is_nothing_to_score(s3: Any) -> None:
    plan = _scorer(s3).plan(None)
    assert plan == {"partition_date": "2026-11-21", "model_version": "", "files": [], "reason": "no model is deployed"}


def test_a_partition_is_scored_in_endpoint_sized_requests_into_the_predictions_table(s3: Any) -> None:
    s3.put_object(Bucket="artifacts", Key=SETTINGS.manifest_key, Body=manifest("v3").to_json().encode())
    s3.put_object(Bucket="curated", Key="churn/event_date=2026-11-21/part-0.parquet", Body=_parquet(10))
    s3.put_object(Bucket="curated", Key="churn/event_date=2026-11-20/part-0.parquet", Body=_parquet(3))
    endpoint = ScriptedEndpoint()
    scorer = _scorer(s3, endpoint)
    plan = scorer.plan(None)
    assert plan["files"] == ["churn/event_date=2026-11-21/part-0.parquet"] and plan["model_version"] == "v3"
    result = scorer.score(key=plan["files"][0], partition_date="2026-11-21", model_version="v3")
    assert result["rows"] == 10 and endpoint.calls == 3
    assert result["output"] == "predictions/prediction_date=2026-11-22/batch-2026-11-21-v3-part-0.json"
    lines = s3.get_object(Bucket="capture", Key=result["output"])["Body"].read().decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["customer_id"] for r in rows] == [f"c{i}" for i in range(10)]
    assert {r["model_version"] for r in rows} == {"v3"} and all(r["fallback"] is False for r in rows)
    assert {r["endpoint_name"] for r in rows} == {"mlloop-dev-churn"}  # whose answers, in the stage's shared table
    assert json.loads(rows[0]["features"])["total_charges"] is None
    again = scorer.score(key=plan["files"][0], partition_date="2026-11-21", model_version="v3")
    assert again["output"] == result["output"], "a re-run overwrites its own output"


def test_throttling_is_a_transient_error_the_workflow_retries(s3: Any) -> None:
    s3.put_object(Bucket="artifacts", Key=SETTINGS.manifest_key, Body=manifest("v3").to_json().encode())
    s3.put_object(Bucket="curated", Key="churn/event_date=2026-11-21/part-0.parquet", Body=_parquet(2))
    endpoint = ScriptedEndpoint(faults=[EndpointCallError("throttling", "slow down")])
    with pytest.raises(TransientError):
        _scorer(s3, endpoint).score(
            key="churn/event_date=2026-11-21/part-0.parquet", partition_date="2026-11-21", model_version="v3"
        )


def test_two_models_scoring_one_partition_write_apart_and_a_sole_model_keeps_its_keys() -> None:
    import dataclasses

    from functions.batch_score.logic import output_key

    where = {
        "scored_on": "2026-01-02",
        "partition_date": "2026-01-01",
        "model_version": "v1",
        "key": "a/b/part.parquet",
    }
    sole = output_key(SETTINGS, **where)
    assert sole == "predictions/prediction_date=2026-01-02/batch-2026-01-01-v1-part.json"
    churn = output_key(dataclasses.replace(SETTINGS, model="churn"), **where)
    upsell = output_key(dataclasses.replace(SETTINGS, model="upsell", endpoint_name="mlloop-dev-upsell"), **where)
    assert len({sole, churn, upsell}) == 3
    assert churn == "predictions/prediction_date=2026-01-02/batch-churn-2026-01-01-v1-part.json"
