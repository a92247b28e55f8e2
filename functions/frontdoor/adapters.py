"""The front door's AWS side: the endpoint call, the manifest in S3, EMF metrics, sampled prediction logs."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from functions.frontdoor import metric_names as names
from functions.frontdoor.logic import EndpointAnswer, EndpointCallError
from functions.shared.emf import EmfWriter, MetricSpec
from functions.shared.jsonenc import compact_json
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


_MS, _COUNT = MetricUnit.Milliseconds.value, MetricUnit.Count.value
_PREDICT_LATENCY: MetricSpec = (names.PREDICT_LATENCY, _MS)
_ANSWERED_BY_MODEL: tuple[MetricSpec, ...] = (_PREDICT_LATENCY, (names.ENDPOINT_LATENCY, _MS))
_FALLBACK_ANSWER: MetricSpec = (names.FALLBACK_ANSWERS, _COUNT)
_UNAVAILABLE_ANSWER: MetricSpec = (names.UNAVAILABLE_ANSWERS, _COUNT)
_VALIDATION_ERROR: tuple[MetricSpec, ...] = ((names.VALIDATION_ERRORS, _COUNT),)
_LOG_FAILURE: tuple[MetricSpec, ...] = ((names.PREDICTION_LOG_FAILURES, _COUNT),)


@dataclass
class EmfTelemetry:
    """Each request's metrics as one EMF document, plus one per dimensioned count (a dimension is per document).

    Counts are emitted only when non-zero (the alarms fill gaps with 0): every metric costs each request.
    """

    emf: EmfWriter

    def __post_init__(self) -> None:
        self._answered_by_model = self.emf.document(_ANSWERED_BY_MODEL)
        self._answered_by_fallback = self.emf.document((_PREDICT_LATENCY, _FALLBACK_ANSWER))

    def request_answered(
        self, *, latency_ms: float, endpoint_latency_ms: float | None, fallback_reason: str | None, unavailable: bool
    ) -> None:
        # The two answers of a working front door go straight to their documents; the rest are rare.
        if endpoint_latency_ms is not None and not fallback_reason and not unavailable:
            self._answered_by_model.emit(latency_ms, endpoint_latency_ms)
            return
        if fallback_reason and endpoint_latency_ms is None and not unavailable:
            self._answered_by_fallback.emit(latency_ms, 1)
            self._count_by(names.FALLBACK_BY_REASON, names.FALLBACK_REASON_DIMENSION, fallback_reason)
            return
        specs, values = [_PREDICT_LATENCY], [latency_ms]
        if endpoint_latency_ms is not None:
            specs.append(_ANSWERED_BY_MODEL[1])
            values.append(endpoint_latency_ms)
        for counted, spec in ((fallback_reason, _FALLBACK_ANSWER), (unavailable, _UNAVAILABLE_ANSWER)):
            if counted:
                specs.append(spec)
                values.append(1)
        self.emf.emit(tuple(specs), values)
        if fallback_reason:
            self._count_by(names.FALLBACK_BY_REASON, names.FALLBACK_REASON_DIMENSION, fallback_reason)

    def request_rejected(self, *, fields: set[str]) -> None:
        self.emf.emit(_VALIDATION_ERROR, (1,))
        for name in sorted(fields):
            self._count_by(names.VALIDATION_ERRORS_BY_FIELD, names.VALIDATION_FIELD_DIMENSION, name)

    def prediction_log_failed(self) -> None:
        self.emf.emit(_LOG_FAILURE, (1,))

    def _count_by(self, metric: str, dimension: str, value: str) -> None:
        self.emf.document(((metric, _COUNT),), ((dimension, value),)).emit(1)


@dataclass
class S3PredictionLog:
    """Sampled prediction logs in the lake's `predictions` table: one JSON-lines object per request.

    Sampling hashes the request id, so a retried request is logged or skipped consistently. A failed write
    is counted and logged, never turned into a failed prediction.
    """

    client: Any
    bucket: str
    sample_percent: int
    telemetry: EmfTelemetry
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
            self.telemetry.prediction_log_failed()
