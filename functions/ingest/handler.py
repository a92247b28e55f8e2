"""Lambda entry point: an S3 "Object Created" event from EventBridge in, the file's validation report out."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ingest.layout import SourceObject
from functions.ingest.service import handle_object_created
from functions.ingest.settings import IngestSettings
from functions.shared.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=S3EventNotificationEventBridgeModel)
def handler(event: S3EventNotificationEventBridgeModel, context: LambdaContext) -> dict[str, Any]:
    detail = event.detail
    # S3 URL-encodes object keys in its event payloads.
    source = SourceObject(
        bucket=detail.bucket.name, key=unquote_plus(detail.object.key), version_id=detail.object.version_id
    )
    report = handle_object_created(
        source,
        settings=IngestSettings.from_env(),
        metrics=metrics,
        lambda_context=context,
        size=None if detail.object.size is None else int(detail.object.size),
    )
    logger.info(
        "ingested", extra={k: v for k, v in report.items() if k not in ("curated_objects", "quarantine_objects")}
    )
    return report
