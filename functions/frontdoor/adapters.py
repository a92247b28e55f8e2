"""The front door's AWS side: the endpoint call, the manifest in S3, Powertools metrics, sampled prediction logs."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from functions.frontdoor import metric_names as names
from functions.frontdoor.logic import EndpointAnswer, EndpointCallError, compact_json
from functions.shared.observability import logger
from functions.shared.serving_manifest import ServingManifest

_THROTTLING_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "ServiceUnavailable", "Throttling"})


def runtime_client_config(timeout_ms: int) -> Config:
    """Tight timeouts and no SDK retries: the front door retries itself, inside its own budget."""
    seconds = max(timeout_ms / 1000.0, 0.05)
    return Config(connect_timeout=seconds, read_timeout=seconds, retries={"total_max_attempts": 1, "mode": "standard"})


def classify_client_error(exc: ClientError) -> EndpointCallError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _THROTTLING_CODES or status == 429:
        return EndpointCallError("throttling", message or code)
    # SageMaker Runtime answers a missing endpoint with ValidationError ("Endpoint ... not found.").
    missing = "not found" in message.lower() or "could not find" in message.lower()
    if code in ("ValidationError", "ValidationException") and missing:
        return EndpointCallError("endpoint_missing", message)
    return EndpointCallError("model_error", f"{code}: {message}")


@dataclass
class SageMakerInvoker:
    client: Any

    def invoke(self, endpoint_name: str, body: bytes) -> EndpointAnswer:
        try:
            response = self.client.invoke_endpoint(
                EndpointName=endpoint_name, ContentType="application/json", Accept="application/json", Body=body
            )
            payload = response["Body"].read()
        except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as exc:
            raise EndpointCallError("timeout", str(exc)) from None
        except ClientError as exc:
            raise classify_client_error(exc) from None
        return EndpointAnswer(body=payload, variant=str(response.get("InvokedProductionVariant") or "unknown"))


@dataclass
class S3ManifestSource:
    """The deployed model's manifest, re-read at most every `refresh_seconds` with a conditional GET."""

    client: Any
    bucket: str
    key: str
    refresh_seconds: float
    clock: Any = time.monotonic
    _manifest: ServingManifest | None = field(default=None, init=False)
    _etag: str | None = field(default=None, init=False)
    _next_check: float = field(default=0.0, init=False)

    def current(self) -> ServingManifest | None:
        now = self.clock()
        # Until a model is deployed every request looks again, so the first deploy is served as soon as it lands.
        if now < self._next_check and self._manifest is not None:
            return self._manifest
        self._next_check = now + self.refresh_seconds
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self._etag:
            kwargs["IfNoneMatch"] = self._etag
        try:
            response = self.client.get_object(**kwargs)
            text = response["Body"].read()
            self._manifest = ServingManifest.from_json(text)
            self._etag = str(response.get("ETag") or "") or None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("304", "NotModified", "NoSuchKey", "404"):
                # Keep answering with the manifest we have; the next check may succeed.
                logger.warning("serving manifest could not be read", extra={"error": code})
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("serving manifest is malformed", extra={"error": str(exc)})
        return self._manifest

    def refresh_soon(self) -> None:
        self._next_check = min(self._next_check, self.clock() + min(5.0, self.refresh_seconds))


@dataclass
class PowertoolsTelemetry:
    """The request's metrics go out in one EMF document, flushed by the handler's `log_metrics`.

    The per-reason and per-field counts carry one more dimension, so each is a document of its own. For one
    (metric, dimension value) that document differs only in its timestamp: Powertools builds it on first use
    and later calls print it again with the time filled in, where a `single_metric` per call would rebuild
    its unit tables, serialise and encode every time.
    """

    metrics: Metrics
    _count_documents: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, init=False)
    _enabled: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self._enabled = not is_metrics_disabled()

    def request_answered(self, *, latency_ms: float, fallback_reason: str | None, unavailable: bool) -> None:
        # Counts are emitted only when non-zero (the alarms fill gaps with 0): every metric costs each request.
        self.metrics.add_metric(name=names.PREDICT_LATENCY, unit=MetricUnit.Milliseconds, value=latency_ms)
        if unavailable:
            self.metrics.add_metric(name=names.UNAVAILABLE_ANSWERS, unit=MetricUnit.Count, value=1)
        if fallback_reason:
            self.metrics.add_metric(name=names.FALLBACK_ANSWERS, unit=MetricUnit.Count, value=1)
            self._count_by(names.FALLBACK_BY_REASON, names.FALLBACK_REASON_DIMENSION, fallback_reason)

    def endpoint_called(self, *, latency_ms: float) -> None:
        self.metrics.add_metric(name=names.ENDPOINT_LATENCY, unit=MetricUnit.Milliseconds, value=latency_ms)

    def request_rejected(self, *, fields: set[str]) -> None:
        self.metrics.add_metric(name=names.VALIDATION_ERRORS, unit=MetricUnit.Count, value=1)
        for name in sorted(fields):
            self._count_by(names.VALIDATION_ERRORS_BY_FIELD, names.VALIDATION_FIELD_DIMENSION, name)

    def _count_by(self, metric: str, dimension: str, value: str) -> None:
        if not self._enabled:
            return
        halves = self._count_documents.get((metric, value))
        if halves is None:
            halves = self._count_documents[(metric, value)] = self._count_document(metric, dimension, value)
        print(f"{halves[0]}{time.time_ns() // 1_000_000}{halves[1]}")

    def _count_document(self, metric: str, dimension: str, value: str) -> tuple[str, str]:
        """The EMF document as Powertools writes it, split where its timestamp goes."""
        emitter = EphemeralMetrics(namespace=self.metrics.namespace, service=self.metrics.service)
        emitter.add_dimension(name=dimension, value=value)
        emitter.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        document = emitter.serialize_metric_set()
        document["_aws"]["Timestamp"] = 0
        # "_aws" leads the document and its timestamp leads "_aws"; values are JSON strings, so the key's
        # unescaped quotes cannot occur inside them.
        head, marker, tail = compact_json(document).partition('"Timestamp":0')
        return head + marker[:-1], tail


@dataclass
class S3PredictionLog:
    """Sampled prediction logs in the lake's `predictions` table: one JSON-lines object per request.

    Sampling hashes the request id, so a retried request is logged or skipped consistently. A failed write
    is counted and logged, never turned into a failed prediction.
    """

    client: Any
    bucket: str
    sample_percent: int
    metrics: Metrics
    prefix: str = "predictions"

    def sampled(self, request_id: str) -> bool:
        return zlib.crc32(request_id.encode()) % 100 < self.sample_percent

    def write(self, request_id: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        day = str(rows[0]["predicted_at"])[:10]
        key = f"{self.prefix}/prediction_date={day}/frontdoor-{request_id}.json"
        body = "".join([compact_json(row) + "\n" for row in rows])
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body.encode(), ContentType="application/x-ndjson")
        except (ClientError, ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError) as exc:
            logger.warning("prediction log write failed", extra={"error": str(exc), "key": key})
            self.metrics.add_metric(name=names.PREDICTION_LOG_FAILURES, unit=MetricUnit.Count, value=1)
