"""Batch scoring steps of the batch scoring state machine: plan (the partition's files), score (one file)."""

from __future__ import annotations

import os
from typing import Any, Literal

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import BaseModel, Field, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.batch_score.logic import BatchScorer, BatchSettings, parquet_rows
from functions.frontdoor.adapters import SageMakerInvoker, runtime_client_config
from functions.shared.observability import logger, metrics, tracer
from functions.shared.settings import MODEL_VARIABLE

# Batch requests carry up to the front door's batch size; a slower answer than online is fine here.
BATCH_ENDPOINT_TIMEOUT_MS = 30_000


class PlanStep(BaseModel):
    action: Literal["plan"]
    partition_date: str = ""


class ScoreStep(BaseModel):
    action: Literal["score"]
    key: str
    partition_date: str
    model_version: str


class Step(BaseModel):
    step: PlanStep | ScoreStep = Field(discriminator="action")


def settings_from_env() -> BatchSettings:
    e = os.environ
    return BatchSettings(
        endpoint_name=e["ENDPOINT_NAME"],
        dataset=e["DATASET"],
        curated_bucket=e["CURATED_BUCKET"],
        capture_bucket=e["CAPTURE_BUCKET"],
        predictions_prefix=e.get("PREDICTIONS_PREFIX", "predictions"),
        manifest_bucket=e["MANIFEST_BUCKET"],
        manifest_key=e["MANIFEST_KEY"],
        batch_records=int(e["BATCH_RECORDS"]),
        model=e.get(MODEL_VARIABLE, ""),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    session = boto3.session.Session()
    scorer = BatchScorer(
        settings_from_env(),
        s3=session.client("s3"),
        invoker=SageMakerInvoker(
            session.client("sagemaker-runtime", config=runtime_client_config(BATCH_ENDPOINT_TIMEOUT_MS))
        ),
        read_rows=parquet_rows,
    )
    step = parse(event={"step": event}, model=Step).step
    if isinstance(step, PlanStep):
        return scorer.plan(step.partition_date or None)
    result = scorer.score(key=step.key, partition_date=step.partition_date, model_version=step.model_version)
    metrics.add_metric(name="BatchRowsScored", unit=MetricUnit.Count, value=result["rows"])
    return result
