"""Lambda entry point of the split execution's steps: one byte range of a large raw file, or the merge of the
ranges into the file's one report (functions/ingest/ranges.py, docs/data-lake.md)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ingest.service import handle_split_step
from functions.ingest.settings import IngestSettings
from functions.shared.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle_split_step(event, settings=IngestSettings.from_env(), metrics=metrics)
    logger.info(
        f"split step {event['step']}",
        extra={k: v for k, v in result.items() if k not in ("curated_objects", "quarantine_objects")},
    )
    return result
