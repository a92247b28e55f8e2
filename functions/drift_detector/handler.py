"""Drift detector: on the stage's schedule (or on demand with a window), check live traffic against the baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.drift_detector.service import DriftSettings, run_drift_check
from functions.shared.observability import logger, tracer


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    session = boto3.session.Session()
    summary = run_drift_check(
        event,
        settings=DriftSettings.from_env(),
        s3=session.client("s3"),
        sagemaker=session.client("sagemaker"),
        cloudwatch=session.client("cloudwatch"),
        now=datetime.now(UTC),
    )
    logger.info("drift check done", extra=summary)
    return summary
