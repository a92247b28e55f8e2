"""Workflow step: the data gate over the run's snapshot (row count, null rates, label balance, change since last)."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.check_data_gate.logic import DataGateSettings, check_data_gate
from functions.shared.contract import load_contract
from functions.shared.observability import logger, metrics, tracer
from functions.shared.transient import transient_faults


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = DataGateSettings.from_env()
    with transient_faults():
        result = check_data_gate(
            str(event["run_id"]),
            str(event["manifest_key"]),
            s3=boto3.client("s3"),
            contract=load_contract(settings.dataset),
            settings=settings,
        )
    metrics.add_metric(name="DataGateRejected", unit=MetricUnit.Count, value=0 if result.passed else 1)
    logger.info(result.summary, extra={"reasons": result.reasons, "row_count": result.row_count})
    return result.to_dict()
