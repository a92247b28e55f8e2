"""Start a retraining from a schedule, new curated data, a drift alarm or a person; applies the cooldown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.shared.observability import logger, metrics, tracer
from functions.shared.transient import transient_faults
from functions.start_training.logic import (
    BotoExecutions,
    S3StartLease,
    S3TriggerLog,
    StartTrainingSettings,
    start_lease_key,
    start_training,
)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = StartTrainingSettings.from_env()
    s3 = boto3.client("s3")
    with transient_faults():
        outcome = start_training(
            event,
            executions=BotoExecutions(boto3.client("stepfunctions"), settings.state_machine_arn),
            lease=S3StartLease(s3, settings.artifacts_bucket, start_lease_key(settings.mlloop_model)),
            log=S3TriggerLog(s3, settings.artifacts_bucket),
            settings=settings,
            now=datetime.now(UTC),
        )
    metrics.add_metric(
        name="RetrainingStarted" if outcome.started else "RetrainingTriggerRecorded", unit=MetricUnit.Count, value=1
    )
    logger.info("training trigger handled", extra={"outcome": outcome.to_dict()})
    return outcome.to_dict()
