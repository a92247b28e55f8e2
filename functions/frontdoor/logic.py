"""The front door's work: validate against the deployed contract, call the endpoint, fall back, answer.

Plain Python over four narrow ports (manifest source, endpoint invoker, telemetry, prediction log), so every
path, including each endpoint fault, is tested in-process without AWS.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from functions.frontdoor.circuit import CircuitBreaker
from functions.frontdoor.settings import FrontDoorSettings
from functions.frontdoor.validation import RequestRejectedError, RequestValidator, echo
from functions.shared.contract import ContractError, parse_contract
from functions.shared.jsonenc import compact_json
from functions.shared.observability import logger
from functions.shared.serving_manifest import ServingManifest

# Why the fallback answered: the caller sees it in `fallback_reason`, the metrics count by it. Every exception the
# endpoint call can raise maps to one of these (adapters.classify_endpoint_fault; "unknown" for the rest).
FallbackReason = Literal[
    "model_error", "throttling", "timeout", "connection", "unavailable", "endpoint_missing", "unknown", "circuit_open"
]
RETRYABLE: frozenset[str] = frozenset({"throttling", "timeout", "connection", "unavailable"})
FALLBACK_VARIANT = "fallback"


class EndpointCallError(Exception):
    """The endpoint could not answer; `reason` is what the caller and the metrics see.

    `answered` marks a refusal by the model itself (its container's 4xx): the endpoint is healthy, so the circuit
    breaker counts it as an answer, not a failure.
    """

    def __init__(self, reason: FallbackReason, detail: str, *, answered: bool = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: FallbackReason = reason
        self.detail = detail
        self.answered = answered


@dataclass(frozen=True)
class EndpointAnswer:
    body: bytes
    variant: str


class EndpointInvoker(Protocol):
    def invoke(self, endpoint_name: str, body: bytes) -> EndpointAnswer: ...


class ManifestSource(Protocol):
    def current(self) -> ServingManifest | None: ...

    def refresh_soon(self) -> None: ...


class Fallback(Protocol):
    @property
    def threshold(self) -> float: ...

    @property
    def model_version(self) -> str: ...

    def predict_proba(self, records: list[dict[str, Any]]) -> list[float]: ...


class Telemetry(Protocol):
    def request_answered(
        self, *, latency_ms: float, endpoint_latency_ms: float | None, fallback_reason: str | None, unavailable: bool
    ) -> None: ...

    def request_rejected(self, *, fields: set[str]) -> None: ...

    def circuit_moved(self, old: str, new: str) -> None: ...


class PredictionLog(Protocol):
    def sampled(self, request_id: str) -> bool: ...

    def write(self, request_id: str, rows: list[dict[str, Any]]) -> None: ...


class Answer(NamedTuple):
    status: int
    body: dict[str, Any]


@dataclass
class _Deployed:
    """What is derived from one manifest, rebuilt only when the deployed model changes."""

    manifest: ServingManifest
    validator: RequestValidator
    fallback: Fallback | None
    fallback_error: str | None = None


@dataclass
class FrontDoor:
    settings: FrontDoorSettings
    manifests: ManifestSource
    invoker: EndpointInvoker
    telemetry: Telemetry
    prediction_log: PredictionLog
    load_fallback: Callable[[dict[str, Any]], Fallback]
    breaker: CircuitBreaker = field(init=False)
    clock: Callable[[], float] = time.perf_counter
    sleep: Callable[[float], None] = time.sleep
    _deployed: _Deployed | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.breaker = CircuitBreaker(
            failure_rate_percent=s.circuit_failure_rate_percent,
            minimum_calls=s.circuit_minimum_calls,
            window_seconds=s.circuit_window_seconds,
            cooldown_seconds=s.circuit_cooldown_seconds,
            probes=s.circuit_half_open_probes,
            probe_timeout_seconds=s.call_budget_seconds,
            on_transition=self.telemetry.circuit_moved,
        )

    # --- routes -------------------------------------------------------------------------------------------

    def predict(
        self, body: str | bytes | None, *, request_id: str, correlation_id: str, content_type: str | None = None
    ) -> Answer:
        started = self.clock()
        if not is_json_media_type(content_type):
            self.telemetry.request_rejected(fields={"content_type"})
            return Answer(
                415,
                {
                    "error": f"unsupported content type {echo(content_type or '')!r}: send application/json",
                    "request_id": request_id,
                },
            )
        deployed = self._current()
        if deployed is None:
            answer = Answer(503, {"error": self._no_model_message(), "request_id": request_id})
            self.telemetry.request_answered(
                latency_ms=self._ms(started), endpoint_latency_ms=None, fallback_reason=None, unavailable=True
            )
            return answer
        try:
            parsed = deployed.validator.parse(body)
        except RequestRejectedError as rejected:
            self.telemetry.request_rejected(fields=rejected.errors.metric_fields)
            return Answer(400, {"error": rejected.message, "fields": rejected.errors.fields, "request_id": request_id})
        # Re-serialised from the validated values: the caller's text (its duplicate keys, its spelling of numbers)
        # never reaches the model or the lake.
        records = [deployed.validator.features_only(r) for r in parsed.records]
        features_json = [compact_json(r) for r in records]
        endpoint_latency_ms: float | None = None
        try:
            payload = ('{"instances":[' + ",".join(features_json) + "]}").encode()
            result, endpoint_latency_ms = self._call_endpoint(deployed.manifest, payload, len(records))
            answer = Answer(200, {**result, "request_id": request_id, "fallback": False})
            reason: str | None = None
        except EndpointCallError as fault:
            reason = fault.reason
            answer = self._fall_back(deployed, records, fault, request_id)
        self.telemetry.request_answered(
            latency_ms=self._ms(started),
            endpoint_latency_ms=endpoint_latency_ms,
            fallback_reason=reason if answer.status == 200 else None,
            unavailable=answer.status == 503,
        )
        if answer.status == 200 and self.prediction_log.sampled(request_id):
            self.prediction_log.write(
                request_id,
                prediction_rows(deployed, parsed.records, features_json, answer.body, correlation_id=correlation_id),
            )
        return answer

    def health(self, *, request_id: str) -> Answer:
        deployed = self._current()
        circuit = self.breaker.state
        has_fallback = bool(deployed and deployed.fallback)
        if deployed is None:
            status = "no_model"
        elif circuit == "closed":
            status = "ok"
        else:
            status = "degraded" if has_fallback else "unavailable"
        return Answer(
            200,
            {
                "status": status,
                "endpoint_name": self.settings.endpoint_name,
                "model_version": deployed.manifest.model_version if deployed else None,
                "circuit": circuit,
                "fallback_available": has_fallback,
                "request_id": request_id,
            },
        )

    def model(self, *, request_id: str) -> Answer:
        deployed = self._current()
        if deployed is None:
            return Answer(404, {"error": self._no_model_message(), "request_id": request_id})
        m = deployed.manifest
        return Answer(
            200,
            {
                "endpoint_name": m.endpoint_name,
                "model_version": m.model_version,
                "model_package_arn": m.model_package_arn,
                "variant": m.variant_name,
                "threshold": m.threshold,
                "deployed_at": m.deployed_at,
                "contract": m.contract,
                "max_batch_records": self.settings.max_batch_records,
                "fallback_available": deployed.fallback is not None,
                "request_id": request_id,
            },
        )

    # --- internals ----------------------------------------------------------------------------------------

    def _no_model_message(self) -> str:
        return f"no model has been deployed to endpoint {self.settings.endpoint_name} yet"

    def _ms(self, started: float) -> float:
        return (self.clock() - started) * 1000.0

    def _current(self) -> _Deployed | None:
        manifest = self.manifests.current()
        if manifest is None:
            return self._deployed
        # The source hands back the same object until the manifest changes: identity spares a deep compare.
        if self._deployed is None or (self._deployed.manifest is not manifest and self._deployed.manifest != manifest):
            try:
                self._deployed = self._build(manifest)
            except ContractError as exc:
                # Keep serving the last good model; the deploy function verified it, this manifest is broken.
                logger.error("the serving manifest's contract is malformed", extra={"error": str(exc)})
        return self._deployed

    def _build(self, manifest: ServingManifest) -> _Deployed:
        validator = RequestValidator(
            parse_contract(manifest.contract),
            max_records=self.settings.max_batch_records,
            max_body_bytes=self.settings.max_body_bytes,
        )
        if manifest.fallback_model is None:
            return _Deployed(manifest, validator, None, "the deployed model package has no fallback model")
        try:
            return _Deployed(manifest, validator, self.load_fallback(manifest.fallback_model))
        except (ValueError, KeyError, TypeError) as exc:
            return _Deployed(manifest, validator, None, f"the fallback model could not be loaded: {exc}")

    def _call_endpoint(self, manifest: ServingManifest, payload: bytes, count: int) -> tuple[dict[str, Any], float]:
        """The endpoint's answer and the latency of the attempt that produced it."""
        permit = self.breaker.acquire()
        if permit is None:
            raise EndpointCallError("circuit_open", "the endpoint failed repeatedly; calls are paused")
        failed = True
        try:
            result, latency_ms = self._attempts(payload, count)
            failed = False
        except EndpointCallError as fault:
            failed = not fault.answered
            raise
        finally:
            # Whatever ended the call, the breaker hears of it: a probe can never stay out.
            self.breaker.record(permit, failed=failed)
        if result["model_version"] != manifest.model_version:
            # A deploy is landing (canary traffic or a finished update): re-read the manifest soon.
            self.manifests.refresh_soon()
        return result, latency_ms

    def _attempts(self, payload: bytes, count: int) -> tuple[dict[str, Any], float]:
        attempts = 1 + self.settings.endpoint_retries
        for attempt in range(1, attempts + 1):
            started = self.clock()
            try:
                answer = self.invoker.invoke(self.settings.endpoint_name, payload)
                return _read_endpoint_answer(answer, expected=count), self._ms(started)
            except EndpointCallError as fault:
                if fault.reason not in RETRYABLE or attempt == attempts:
                    raise
            except Exception as exc:  # an invoker that does not classify its faults: still a fallback answer
                raise EndpointCallError("unknown", type(exc).__name__) from None
            # Small, bounded backoff: the whole call must stay far inside the API's 29 s limit.
            self.sleep(0.02 * attempt)
        raise EndpointCallError("unknown", "no attempt was made")

    def _fall_back(
        self, deployed: _Deployed, records: list[dict[str, Any]], fault: EndpointCallError, request_id: str
    ) -> Answer:
        if deployed.fallback is None:
            why = deployed.fallback_error
            return Answer(
                503,
                {
                    "error": f"the model is unavailable ({fault.reason}) and no fallback can answer: {why}",
                    "reason": fault.reason,
                    "request_id": request_id,
                },
            )
        fallback = deployed.fallback
        try:
            probabilities = fallback.predict_proba(records)
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            return Answer(
                503,
                {
                    "error": f"the model is unavailable ({fault.reason}) and the fallback model failed: {exc}",
                    "reason": fault.reason,
                    "request_id": request_id,
                },
            )
        return Answer(
            200,
            {
                "predictions": [{"probability": p, "label": int(p >= fallback.threshold)} for p in probabilities],
                "model_version": fallback.model_version,
                "variant": FALLBACK_VARIANT,
                "threshold": fallback.threshold,
                "request_id": request_id,
                "fallback": True,
                "fallback_reason": fault.reason,
            },
        )


def is_json_media_type(content_type: str | None) -> bool:
    """application/json, optionally with charset=utf-8; a request without a Content-Type is taken as JSON, as API
    Gateway does (https://docs.aws.amazon.com/apigateway/latest/developerguide/integration-passthrough-behaviors.html).

    Anything else must be refused here: API Gateway validates a body against the method's model only when the
    Content-Type matches the model's ("If no matching content type is found, request validation is not
    performed": api-gateway-method-request-validation.html).
    """
    if content_type is None or content_type == "application/json" or not content_type.strip():
        return True
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        return False
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def prediction_rows(
    deployed: _Deployed,
    records: list[dict[str, Any]],
    features_json: list[str],
    body: dict[str, Any],
    *,
    correlation_id: str,
) -> list[dict[str, Any]]:
    """One row per record in the layout of the lake's `predictions` table (JSON lines, by prediction date)."""
    contract = deployed.validator.contract
    entity_key = contract.entity_key
    predicted_at = utc_timestamp(int(time.time()))
    rows = []
    for record, features, prediction in zip(records, features_json, body["predictions"], strict=True):
        entity = record.get(entity_key)
        rows.append(
            {
                "request_id": body["request_id"],
                "correlation_id": correlation_id,
                "predicted_at": predicted_at,
                entity_key: None if entity is None else str(entity),
                "endpoint_name": deployed.manifest.endpoint_name,
                "model_version": body["model_version"],
                "variant": body["variant"],
                "fallback": body["fallback"],
                "fallback_reason": body.get("fallback_reason"),
                "probability": prediction["probability"],
                "label": prediction["label"],
                "contract_version": contract.version,
                "features": features,
            }
        )
    return rows


@functools.lru_cache(maxsize=2)
def utc_timestamp(epoch_second: int) -> str:
    """ISO 8601 UTC to the second; cached because every request within one second asks for the same text."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_second))


def _read_endpoint_answer(answer: EndpointAnswer, *, expected: int) -> dict[str, Any]:
    """The endpoint's reply in the agreed wire format; anything else is a model error."""
    try:
        decoded = json.loads(answer.body)
        predictions = decoded["predictions"]
        if not isinstance(predictions, list) or len(predictions) != expected:
            raise ValueError(f"expected {expected} predictions")
        cleaned = []
        for p in predictions:
            probability = float(p["probability"])
            if not math.isfinite(probability) or not 0.0 <= probability <= 1.0:
                raise ValueError(f"probability {probability!r} is not in [0, 1]")
            cleaned.append({"probability": probability, "label": int(p["label"])})
        return {
            "predictions": cleaned,
            "model_version": str(decoded["model_version"]),
            "variant": answer.variant,
            "threshold": float(decoded["threshold"]),
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise EndpointCallError("model_error", f"the endpoint's reply is not in the agreed format ({exc})") from None
