"""Every exception botocore can raise, injected into each AWS call on the request path (property-style).

The endpoint call: each is answered by the fallback with a classified reason, and the breaker hears of it.
The manifest refresh: the last good manifest keeps serving. The prediction-log write: counted, never a failure.
"""

from __future__ import annotations

import inspect
import json
import string
from dataclasses import dataclass, field
from typing import Any, get_args

import botocore.exceptions as botocore_errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.frontdoor.adapters import S3ManifestSource, S3PredictionLog, SageMakerInvoker
from functions.frontdoor.logic import FallbackReason, FrontDoor
from functions.shared.fallback_model import FallbackModel
from tests.unit.frontdoor_support import (
    SETTINGS,
    VALID_RECORD,
    FakeManifests,
    RecordingLog,
    RecordingTelemetry,
    manifest,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

BOTOCORE_ERRORS: list[type[Exception]] = sorted(
    (
        cls
        for _, cls in inspect.getmembers(botocore_errors, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == "botocore.exceptions"
    ),
    key=lambda cls: cls.__name__,
)
REASONS = set(get_args(FallbackReason)) - {"circuit_open"}
CLIENT_ERROR_CODES = [
    "ModelError",
    "ModelNotReadyException",
    "InternalFailure",
    "ServiceUnavailable",
    "InternalDependencyException",
    "ValidationError",
    "ThrottlingException",
    "AccessDeniedException",
    "ExpiredTokenException",
    "",
]


def build(cls: type[Exception], code: str = "InternalFailure", status: int = 500) -> Exception:
    """An instance of any botocore exception class, with whatever its constructor needs."""
    if issubclass(cls, botocore_errors.ClientError):
        response = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return cls(response, "InvokeEndpoint")  # type: ignore[call-arg]
    fmt = getattr(cls, "fmt", "") or ""
    names = [name for _, name, _, _ in string.Formatter().parse(fmt) if name]
    try:
        return cls(**{name: "injected" for name in names})
    except TypeError:
        params = list(inspect.signature(cls.__init__).parameters)[1:]
        return cls(*["injected" for _ in params])


def test_the_enumeration_covers_the_classes_the_issue_found_escaping() -> None:
    names = {cls.__name__ for cls in BOTOCORE_ERRORS}
    assert len(BOTOCORE_ERRORS) > 50
    assert {"ConnectionClosedError", "SSLError", "ProxyConnectionError", "ResponseStreamingError"} <= names
    assert {"NoCredentialsError", "EndpointConnectionError", "ReadTimeoutError", "IncompleteReadError"} <= names


@dataclass
class FaultyRuntime:
    """sagemaker-runtime whose call (or the read of its reply's body) raises the injected exception."""

    fault: Exception
    in_body: bool = False
    calls: int = 0

    def invoke_endpoint(self, **_kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if not self.in_body:
            raise self.fault
        fault = self.fault

        class Body:
            def read(self) -> bytes:
                raise fault

        return {"Body": Body(), "InvokedProductionVariant": "v3"}


def _door(runtime: FaultyRuntime) -> FrontDoor:
    return FrontDoor(
        settings=SETTINGS,
        manifests=FakeManifests(manifest()),
        invoker=SageMakerInvoker(runtime),
        telemetry=RecordingTelemetry(),
        prediction_log=RecordingLog(),
        load_fallback=FallbackModel.from_dict,
        sleep=lambda _s: None,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cls=st.sampled_from(BOTOCORE_ERRORS),
    code=st.sampled_from(CLIENT_ERROR_CODES),
    status=st.sampled_from([400, 403, 404, 424, 429, 500, 503, 530]),
    in_body=st.booleans(),
)
def test_every_botocore_fault_of_the_endpoint_call_is_answered_by_the_fallback(
    cls: type[Exception], code: str, status: int, in_body: bool
) -> None:
    runtime = FaultyRuntime(build(cls, code, status), in_body=in_body)
    door = _door(runtime)
    answer = door.predict(json.dumps(VALID_RECORD), request_id="r", correlation_id="c")
    assert answer.status == 200
    assert answer.body["fallback"] is True
    assert answer.body["fallback_reason"] in REASONS
    assert door.breaker.acquire() is not None, "the breaker heard the outcome: no probe or permit left hanging"


@pytest.mark.parametrize(
    ("cls", "reason"),
    [
        (botocore_errors.ReadTimeoutError, "timeout"),
        (botocore_errors.ConnectTimeoutError, "timeout"),
        (botocore_errors.EndpointConnectionError, "connection"),
        (botocore_errors.ConnectionClosedError, "connection"),
        (botocore_errors.SSLError, "connection"),
        (botocore_errors.ProxyConnectionError, "connection"),
        (botocore_errors.ResponseStreamingError, "connection"),
        (botocore_errors.IncompleteReadError, "connection"),
        (botocore_errors.NoCredentialsError, "unknown"),
        (botocore_errors.ParamValidationError, "unknown"),
    ],
)
def test_transport_faults_get_the_reason_that_names_them(cls: type[Exception], reason: str) -> None:
    answer = _door(FaultyRuntime(build(cls))).predict(json.dumps(VALID_RECORD), request_id="r", correlation_id="c")
    assert answer.body["fallback_reason"] == reason


@dataclass
class FaultyS3:
    fault: Exception | None = None
    good: bytes = field(default_factory=lambda: manifest("v3").to_json().encode())

    def get_object(self, **_kwargs: Any) -> dict[str, Any]:
        if self.fault is not None:
            raise self.fault
        good = self.good

        class Body:
            def read(self) -> bytes:
                return good

        return {"Body": Body(), "ETag": '"e1"'}

    def put_object(self, **_kwargs: Any) -> dict[str, Any]:
        if self.fault is not None:
            raise self.fault
        return {}


@dataclass
class CountingTelemetry:
    log_failures: int = 0

    def prediction_log_failed(self) -> None:
        self.log_failures += 1


@settings(max_examples=150, deadline=None)
@given(cls=st.sampled_from(BOTOCORE_ERRORS), code=st.sampled_from(CLIENT_ERROR_CODES))
def test_a_failed_manifest_refresh_keeps_serving_the_last_good_manifest(cls: type[Exception], code: str) -> None:
    s3 = FaultyS3()
    clock = {"now": 0.0}
    source = S3ManifestSource(s3, "artifacts", "serving/m.json", refresh_seconds=60, clock=lambda: clock["now"])
    first = source.current()
    assert first is not None
    s3.fault = build(cls, code, 500)
    clock["now"] = 61
    assert source.current() is first


@settings(max_examples=150, deadline=None)
@given(cls=st.sampled_from(BOTOCORE_ERRORS), code=st.sampled_from(CLIENT_ERROR_CODES))
def test_a_failed_prediction_log_write_is_counted_and_never_raised(cls: type[Exception], code: str) -> None:
    telemetry = CountingTelemetry()
    log = S3PredictionLog(FaultyS3(build(cls, code, 500)), "capture", 100, telemetry)  # type: ignore[arg-type]
    log.write("r1", [{"request_id": "r1", "predicted_at": "2026-11-22T08:00:00Z", "probability": 0.5}])
    assert telemetry.log_failures == 1
