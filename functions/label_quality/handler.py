"""Live quality: on the stage's schedule, measure the deployed model on the delayed labels that have arrived."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.label_quality.service import QualitySettings, run_quality_check
from functions.shared.observability import logger, tracer


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    session = boto3.session.Session()
    summary = run_quality_check(
        settings=QualitySettings.from_env(),
        s3=session.client("s3"),
        cloudwatch=session.client("cloudwatch"),
        sagemaker=session.client("sagemaker"),
        now=datetime.now(UTC),
    )
    logger.info("live quality measured", extra=summary)
    return summary
