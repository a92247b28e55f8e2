"""Fakes and builders shared by the front-door tests: a deployed manifest, a scripted endpoint, API events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from functions.frontdoor.logic import EndpointAnswer, EndpointCallError, FrontDoor
from functions.frontdoor.settings import FrontDoorSettings
from functions.shared.contract import load_contract
from functions.shared.fallback_model import FallbackModel
from functions.shared.serving_manifest import ServingManifest

CONTRACT = load_contract("churn")

VALID_RECORD: dict[str, Any] = {
    "tenure_months": 12,
    "monthly_charges": 70.5,
    "total_charges": 846.0,
    "support_calls_90d": 2,
    "data_usage_gb": 12.5,
    "days_since_last_login": 3,
    "discount_pct": 0.0,
    "plan": "standard",
    "contract_type": "month_to_month",
    "region": "north",
    "payment_method": "card",
    "auto_renew": True,
}

FALLBACK_DOC: dict[str, Any] = {
    "format": "mlloop-logistic-fallback/1",
    "intercept": -1.0,
    "numeric": [
        {"name": "tenure_months", "fill": 24.0, "mean": 30.0, "scale": 20.0, "coefficient": -0.8},
        {"name": "support_calls_90d", "fill": 1.0, "mean": 1.5, "scale": 1.2, "coefficient": 0.6},
    ],
    "categorical": [{"name": "contract_type", "coefficients": {"month_to_month": 0.9, "two_year": -1.1}}],
    "threshold": 0.4,
    "model_version": "v3",
    "contract_ref": "churn@1.0.0",
}

SETTINGS = FrontDoorSettings(
    endpoint_name="mlloop-dev-churn",
    manifest_bucket="artifacts",
    manifest_key="serving/mlloop-dev-churn/manifest.json",
    capture_bucket="capture",
    max_batch_records=10,
    endpoint_timeout_ms=300,
    endpoint_retries=1,
    circuit_minimum_calls=3,
    circuit_failure_rate_percent=50,
    circuit_half_open_probes=1,
    circuit_window_seconds=30,
    circuit_cooldown_seconds=20,
    prediction_log_sample_percent=100,
    manifest_refresh_seconds=60,
)


def manifest(version: str = "v3", *, fallback: bool = True) -> ServingManifest:
    return ServingManifest(
        endpoint_name=SETTINGS.endpoint_name,
        model_version=version,
        model_package_arn=f"arn:aws:sagemaker:us-east-1:123456789012:model-package/mlloop-dev-churn/{version[1:]}",
        endpoint_config_name=f"mlloop-dev-churn-{version}-abc",
        variant_name=version,
        model_name=f"mlloop-dev-churn-{version}-abc",
        contract=json.loads(CONTRACT.to_json()),
        threshold=0.4,
        deployed_at="2026-11-22T08:00:00Z",
        fallback_model={**FALLBACK_DOC, "model_version": version} if fallback else None,
    )


@dataclass
class FakeManifests:
    value: ServingManifest | None
    refreshes: int = 0

    def current(self) -> ServingManifest | None:
        return self.value

    def refresh_soon(self) -> None:
        self.refreshes += 1


@dataclass
class ScriptedEndpoint:
    """Answers like the agreed wire format, or raises the scripted faults first (one per call)."""

    faults: list[EndpointCallError] = field(default_factory=list)
    version: str = "v3"
    variant: str = "v3"
    calls: int = 0

    def invoke(self, endpoint_name: str, body: bytes) -> EndpointAnswer:
        self.calls += 1
        if self.faults:
            raise self.faults.pop(0)
        records = json.loads(body)["instances"]
        predictions = [{"probability": 0.25, "label": 0} for _ in records]
        reply = {"predictions": predictions, "model_version": self.version, "threshold": 0.4}
        return EndpointAnswer(body=json.dumps(reply).encode(), variant=self.variant)


@dataclass
class RecordingTelemetry:
    answered: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[set[str]] = field(default_factory=list)
    transitions: list[tuple[str, str]] = field(default_factory=list)
    endpoint_latencies: list[float] = field(default_factory=list)

    def request_answered(
        self, *, latency_ms: float, endpoint_latency_ms: float | None, fallback_reason: str | None, unavailable: bool
    ) -> None:
        self.answered.append({"latency_ms": latency_ms, "fallback_reason": fallback_reason, "unavailable": unavailable})
        if endpoint_latency_ms is not None:
            self.endpoint_latencies.append(endpoint_latency_ms)

    def request_rejected(self, *, fields: set[str]) -> None:
        self.rejected.append(set(fields))

    def circuit_moved(self, old: str, new: str) -> None:
        self.transitions.append((old, new))


@dataclass
class RecordingLog:
    entries: list[dict[str, Any]] = field(default_factory=list)

    def sampled(self, request_id: str) -> bool:
        return True

    def write(self, request_id: str, rows: list[dict[str, Any]]) -> None:
        self.entries.extend(rows)


def make_front_door(
    *,
    endpoint: ScriptedEndpoint | None = None,
    deployed: ServingManifest | None = None,
    settings: FrontDoorSettings = SETTINGS,
) -> FrontDoor:
    return FrontDoor(
        settings=settings,
        manifests=FakeManifests(deployed if deployed is not None else manifest()),
        invoker=endpoint or ScriptedEndpoint(),
        telemetry=RecordingTelemetry(),
        prediction_log=RecordingLog(),
        load_fallback=FallbackModel.from_dict,
        sleep=lambda _s: None,
    )


def api_event(method: str, path: str, body: str | None = None, request_id: str = "req-1") -> dict[str, Any]:
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"content-type": "application/json", "x-correlation-id": "corr-1"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "httpMethod": method,
            "path": f"/dev{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "resourcePath": path,
            "stage": "dev",
            "identity": {"sourceIp": "127.0.0.1", "userArn": "arn:aws:iam::123456789012:user/app"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


class LambdaContextStub:
    function_name = "frontdoor"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:frontdoor"
    aws_request_id = "lambda-req-1"
