"""Workflow step: snapshot the training window as known at the run's cut, labels joined point-in-time, and write
its manifest (the data version, the label counts, whether there is anything new to learn since the champion)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from functions.prepare_training_data.logic import COPY_WORKERS, PrepareSettings, prepare_training_data
from functions.shared.observability import logger, metrics, tracer
from functions.shared.transient import transient_faults


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with transient_faults():
        snapshot = prepare_training_data(
            str(event["run_id"]),
            event.get("trigger") or {},
            s3=boto3.client("s3", config=Config(max_pool_connections=COPY_WORKERS)),
            sagemaker=boto3.client("sagemaker"),
            settings=PrepareSettings.from_env(),
            now=datetime.now(UTC),
        )
    metrics.add_metric(name="TrainingSnapshotFiles", unit=MetricUnit.Count, value=snapshot.object_count)
    metrics.add_metric(name="TrainingSnapshotNewLabels", unit=MetricUnit.Count, value=snapshot.labels["newly_matured"])
    logger.info("training data snapshot written", extra={"snapshot": snapshot.to_dict()})
    return snapshot.to_dict()
