"""Workflow step: publish the run's outcome (registered, rejected, failed) to the notifications topic."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.notify_training_outcome.logic import NotifySettings, notify
from functions.shared.observability import logger, metrics, tracer
from functions.shared.transient import transient_faults


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with transient_faults():
        summary = notify(
            str(event["outcome"]),
            str(event["run_id"]),
            event.get("state") or {},
            sns=boto3.client("sns"),
            settings=NotifySettings.from_env(),
        )
    metrics.add_metric(name="TrainingRun" + summary.outcome.title().replace("_", ""), unit=MetricUnit.Count, value=1)
    logger.info(summary.subject)
    return summary.to_dict()
