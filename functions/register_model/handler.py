"""Workflow step: register the gate-approved candidate in the model package group, approved per stage policy."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.register_model.logic import Candidate, RegisterSettings, register_model
from functions.shared.observability import logger, metrics, tracer
from functions.shared.transient import transient_faults


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with transient_faults():
        registration = register_model(
            Candidate.from_event(event), sagemaker=boto3.client("sagemaker"), settings=RegisterSettings.from_env()
        )
    if registration.created:
        metrics.add_metric(name="ModelRegistered", unit=MetricUnit.Count, value=1)
    # Nested: a top-level "created" key would collide with the LogRecord attribute of that name and raise.
    logger.info("model package registered", extra={"registration": registration.to_dict()})
    return registration.to_dict()
