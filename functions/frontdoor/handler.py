"""Front door: POST /predict, GET /health, GET /model behind the API (IAM auth).

Beside other models of a stage the same routes are under /models/<name>/; the function serves the one model
its environment names, whatever the path's name (the API routes each model's paths to its own function).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.frontdoor.adapters import (
    EmfTelemetry,
    S3ManifestSource,
    S3PredictionLog,
    SageMakerInvoker,
    runtime_client_config,
)
from functions.frontdoor.logic import Answer, Fallback, FrontDoor
from functions.frontdoor.settings import FrontDoorSettings
from functions.shared.emf import EmfWriter
from functions.shared.jsonenc import compact_json
from functions.shared.observability import logger, metrics, tracer

app = APIGatewayRestResolver()
_front_door: FrontDoor | None = None


def _load_fallback(raw: dict[str, Any]) -> Fallback:
    from functions.shared.fallback_model import FallbackModel

    model: Fallback = FallbackModel.from_dict(raw)
    return model


def front_door() -> FrontDoor:
    """Built on first use and kept for the container's life: clients, cached manifest, circuit state."""
    global _front_door  # noqa: PLW0603
    if _front_door is None:
        settings = FrontDoorSettings.from_env()
        session = boto3.session.Session()
        s3 = session.client("s3")
        telemetry = EmfTelemetry(EmfWriter.like(metrics))
        _front_door = FrontDoor(
            settings=settings,
            manifests=S3ManifestSource(
                s3, settings.manifest_bucket, settings.manifest_key, settings.manifest_refresh_seconds
            ),
            invoker=SageMakerInvoker(
                session.client("sagemaker-runtime", config=runtime_client_config(settings.endpoint_timeout_ms))
            ),
            telemetry=telemetry,
            prediction_log=S3PredictionLog(
                s3, settings.capture_bucket, settings.prediction_log_sample_percent, telemetry
            ),
            load_fallback=_load_fallback,
        )
    return _front_door


def _respond(answer: Answer) -> Response[str]:
    return Response(
        status_code=answer.status,
        content_type="application/json",
        body=compact_json(answer.body),
        headers={"X-Request-Id": str(answer.body.get("request_id", ""))},
    )


def request_ids(event: dict[str, Any]) -> tuple[str, str]:
    """The API's request id, and the caller's correlation id (X-Correlation-Id) or else the request id."""
    # From the raw event: the data class's case-insensitive header view is rebuilt on every access.
    request_id = str((event.get("requestContext") or {}).get("requestId") or "local")
    headers = event.get("headers") or {}
    correlation_id = headers.get("x-correlation-id") or headers.get("X-Correlation-Id") or request_id
    return request_id, str(correlation_id)


def _ids() -> tuple[str, str]:
    return request_ids(app.current_event.raw_event)


def request_body(event: dict[str, Any]) -> str | bytes | None:
    """The body as API Gateway delivered it: bytes when it arrived base64-encoded, so UTF-8 is checked on them."""
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return b"\xff"  # not base64 either: refused as not UTF-8
    return body if isinstance(body, str) or body is None else str(body)


def content_type(event: dict[str, Any]) -> str | None:
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == "content-type":
            return str(value)
    return None


@app.post("/predict")
@app.post("/models/<model>/predict")
def predict(**_path: str) -> Response[str]:
    request_id, correlation_id = _ids()
    event = app.current_event.raw_event
    return _respond(
        front_door().predict(
            request_body(event),
            request_id=request_id,
            correlation_id=correlation_id,
            content_type=content_type(event),
        )
    )


@app.get("/health")
@app.get("/models/<model>/health")
def health(**_path: str) -> Response[str]:
    return _respond(front_door().health(request_id=_ids()[0]))


@app.get("/model")
@app.get("/models/<model>/model")
def model(**_path: str) -> Response[str]:
    return _respond(front_door().model(request_id=_ids()[0]))


def _wrapped() -> Callable[[dict[str, Any], LambdaContext], dict[str, Any]]:
    # No `metrics.log_metrics`: the request's metrics are printed by EmfTelemetry as they happen.
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        # The log lines carry the same correlation id as the prediction log: the caller's, if it sent one.
        logger.set_correlation_id(request_ids(event)[1])
        return app.resolve(event, context)

    # With tracing disabled (POWERTOOLS_TRACE_DISABLED, or outside Lambda) the X-Ray SDK still builds a dummy
    # segment and subsegment on every call that nothing records: wrap the handler only where traces are sent.
    traced = handler if tracer.disabled else tracer.capture_lambda_handler(handler)
    wrapped: Callable[[dict[str, Any], LambdaContext], dict[str, Any]] = logger.inject_lambda_context(traced)
    return wrapped


handler = _wrapped()
