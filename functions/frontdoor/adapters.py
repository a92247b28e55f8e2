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
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from functions.frontdoor import metric_names as names
from functions.frontdoor.logic import EndpointAnswer, EndpointCallError
from functions.shared.emf import EmfWriter, MetricSpec
from functions.shared.jsonenc import compact_json
from functions.shared.observability import logger
from functions.shared.serving_manifest import ServingManifest

# InvokeEndpoint's modeled errors (botocore's sagemaker-runtime service model) and the throttling codes any AWS
# front end may answer with.
_THROTTLING_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "Throttling"})
# ModelNotReadyException: a serverless variant still provisioning, or a multi-model endpoint still loading.
_UNAVAILABLE_CODES = frozenset(
    {"ServiceUnavailable", "InternalFailure", "InternalDependencyException", "ModelNotReadyException"}
)
_MODEL_CODES = frozenset({"ModelError", "ModelStreamError", "InternalStreamFailure"})


def runtime_client_config(timeout_ms: int) -> Config:
    """Tight timeouts and no SDK retries: the front door retries itself, inside its own budget."""
    seconds = max(timeout_ms / 1000.0, 0.05)
    return Config(connect_timeout=seconds, read_timeout=seconds, retries={"total_max_attempts": 1, "mode": "standard"})


def classify_client_error(exc: ClientError) -> EndpointCallError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", ""))[:300]
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _THROTTLING_CODES or (status == 429 and code not in _UNAVAILABLE_CODES):
        return EndpointCallError("throttling", message or code)
    if code in _UNAVAILABLE_CODES or status >= 500:
        return EndpointCallError("unavailable", f"{code}: {message}")
    # SageMaker Runtime answers a missing endpoint with ValidationError ("Endpoint ... not found.").
    missing = "not found" in message.lower() or "could not find" in message.lower()
    if code in ("ValidationError", "ValidationException") and missing:
        return EndpointCallError("endpoint_missing", message)
    if code in _MODEL_CODES:
        # ModelError carries the container's own status: a 4xx is the model refusing this request, an answer
        # from a healthy endpoint (InvokeEndpoint API reference, ModelError.OriginalStatusCode).
        original = exc.response.get("OriginalStatusCode")
        refused = isinstance(original, int) and 400 <= original < 500
        return EndpointCallError("model_error", f"{code}: {message}", answered=refused)
    return EndpointCallError("unknown", f"{code or status}: {message}")


def classify_endpoint_fault(exc: Exception) -> EndpointCallError:
    """Any exception from InvokeEndpoint or reading its reply, as the reason the fallback answers with."""
    if isinstance(exc, ClientError):
        return classify_client_error(exc)
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return EndpointCallError("timeout", str(exc)[:300])
    # Connection refused or reset, DNS, proxy, TLS, a connection closed mid-reply, a truncated or broken stream.
    if isinstance(exc, (BotocoreConnectionError, HTTPClientError, IncompleteReadError, OSError)):
        return EndpointCallError("connection", f"{type(exc).__name__}: {str(exc)[:300]}")
    # Credentials, parameters, anything else botocore or the HTTP stack raises: the fallback still answers.
    return EndpointCallError("unknown", f"{type(exc).__name__}: {str(exc)[:300]}")


@dataclass
class SageMakerInvoker:
    client: Any

    def invoke(self, endpoint_name: str, body: bytes) -> EndpointAnswer:
        try:
            response = self.client.invoke_endpoint(
                EndpointName=endpoint_name, ContentType="application/json", Accept="application/json", Body=body
            )
            payload = response["Body"].read()
        except Exception as exc:  # every fault of the call is classified, none escapes as a 5xx
            raise classify_endpoint_fault(exc) from None
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
            manifest = ServingManifest.from_json(text)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("304", "NotModified", "NoSuchKey", "404"):
                # Keep answering with the manifest we have; the next check may succeed. The message names what
                # was refused (e.g. the role's s3:GetObject), which the code alone does not.
                logger.warning("serving manifest could not be read", extra={"error": code, "detail": str(exc)[:500]})
            return self._manifest
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("serving manifest is malformed", extra={"error": str(exc)[:300]})
            return self._manifest
        except Exception as exc:  # connection, timeout, credentials, a broken stream: the last good one serves on
            logger.warning("serving manifest could not be read", extra={"error": type(exc).__name__})
            return self._manifest
        self._manifest = manifest
        self._etag = str(response.get("ETag") or "") or None
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

    def circuit_moved(self, old: str, new: str) -> None:
        self._count_by(names.CIRCUIT_TRANSITIONS, names.CIRCUIT_TRANSITION_DIMENSION, f"{old}_to_{new}")

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
        except Exception as exc:  # the answer is already made: a lost log line is counted, never a failed request
            # Dropped, not retried: a retry would hold the caller's answer for another S3 round trip. The count
            # (PredictionLogFailures) says how many lines the predictions table lacks.
            logger.warning("prediction log write failed", extra={"error": type(exc).__name__, "key": key})
            self.telemetry.prediction_log_failed()
