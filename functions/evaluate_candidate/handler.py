"""Workflow step: read the candidate's evaluation from the training output and apply the promotion gate."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.evaluate_candidate.logic import EvaluateSettings, evaluate_candidate
from functions.shared.observability import logger, metrics, tracer
from functions.shared.transient import transient_faults


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with transient_faults():
        evaluation = evaluate_candidate(
            str(event["run_id"]),
            str(event["model_artifacts_uri"]),
            s3=boto3.client("s3"),
            sagemaker=boto3.client("sagemaker"),
            settings=EvaluateSettings.from_env(),
        )
    metrics.add_metric(name="CandidateRejected", unit=MetricUnit.Count, value=0 if evaluation.promote else 1)
    logger.info(f"promotion gate: {evaluation.decision}", extra={"reasons": evaluation.reasons})
    return evaluation.to_dict()
