"""The front door's AWS adapters: fault classification of InvokeEndpoint, the manifest cache, prediction logs."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from moto import mock_aws

from functions.frontdoor import metric_names as names
from functions.frontdoor.adapters import (
    EmfTelemetry,
    S3ManifestSource,
    S3PredictionLog,
    SageMakerInvoker,
    runtime_client_config,
)
from functions.frontdoor.logic import EndpointCallError
from functions.shared.emf import EmfWriter
from tests.unit.frontdoor_support import manifest

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture
def runtime() -> Any:
    return boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=runtime_client_config(300),
    )


@pytest.mark.parametrize(
    ("code", "status", "message", "reason"),
    [
        ("ModelError", 424, "Received server error (500) from primary", "model_error"),
        ("ThrottlingException", 400, "Rate exceeded", "throttling"),
        ("ServiceUnavailable", 503, "try later", "unavailable"),
        ("ModelNotReadyException", 429, "still loading", "unavailable"),
        ("InternalDependencyException", 530, "dependency failed", "unavailable"),
        ("ValidationError", 400, "Endpoint mlloop-dev-churn of account 123 not found.", "endpoint_missing"),
        ("ValidationException", 400, "Endpoint mlloop-dev-churn of account 123 not found.", "endpoint_missing"),
        ("InternalFailure", 500, "oops", "unavailable"),
        ("AccessDeniedException", 403, "not authorized", "unknown"),
    ],
)
def test_invoke_endpoint_errors_map_to_fallback_reasons(
    runtime: Any, code: str, status: int, message: str, reason: str
) -> None:
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint", service_error_code=code, service_message=message, http_status_code=status
        )
        with pytest.raises(EndpointCallError) as raised:
            SageMakerInvoker(runtime).invoke("mlloop-dev-churn", b"{}")
    assert raised.value.reason == reason


@pytest.mark.parametrize(("original", "answered"), [(400, True), (422, True), (500, False), (None, False)])
def test_a_model_error_from_a_container_4xx_is_an_answer_not_an_endpoint_failure(
    runtime: Any, original: int | None, answered: bool
) -> None:
    modeled = {} if original is None else {"OriginalStatusCode": original, "OriginalMessage": "refused"}
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message=f"Received client error ({original}) from primary",
            http_status_code=424,
            modeled_fields=modeled,
        )
        with pytest.raises(EndpointCallError) as raised:
            SageMakerInvoker(runtime).invoke("mlloop-dev-churn", b"{}")
    assert raised.value.reason == "model_error"
    assert raised.value.answered is answered


def test_a_read_timeout_is_a_timeout(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(**_kwargs: Any) -> Any:
        raise ReadTimeoutError(endpoint_url="https://runtime.sagemaker")

    monkeypatch.setattr(runtime, "invoke_endpoint", slow)
    with pytest.raises(EndpointCallError) as raised:
        SageMakerInvoker(runtime).invoke("mlloop-dev-churn", b"{}")
    assert raised.value.reason == "timeout"


def test_the_runtime_client_has_tight_timeouts_and_no_sdk_retries() -> None:
    config = runtime_client_config(300)
    assert config.read_timeout == 0.3 and config.connect_timeout == 0.3
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@mock_aws
def test_first_manifest_is_seen_at_once_then_cached_until_the_refresh_interval() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="artifacts")
    key = "serving/mlloop-dev-churn/manifest.json"
    clock = Clock()
    source = S3ManifestSource(s3, "artifacts", key, refresh_seconds=60, clock=clock)
    assert source.current() is None
    s3.put_object(Bucket="artifacts", Key=key, Body=manifest("v3").to_json().encode())
    clock.now = 1
    first = source.current()
    assert first is not None, "with nothing deployed yet, the first deploy is seen at once"
    assert first is not None and first.model_version == "v3"
    s3.put_object(Bucket="artifacts", Key=key, Body=manifest("v4").to_json().encode())
    clock.now = 30
    assert source.current() is first, "cached until the refresh interval"
    source.refresh_soon()
    clock.now = 36
    refreshed = source.current()
    assert refreshed is not None and refreshed.model_version == "v4"
    clock.now = 200
    assert source.current() == refreshed, "an unchanged object keeps the cached manifest"


@mock_aws
def test_prediction_logs_land_in_the_predictions_table_layout(telemetry: EmfTelemetry) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="capture")
    log = S3PredictionLog(s3, "capture", sample_percent=100, telemetry=telemetry)
    rows = [{"request_id": "r1", "predicted_at": "2026-11-22T08:00:00Z", "probability": 0.5}] * 2
    log.write("r1", rows)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="capture")["Contents"]]
    assert keys == ["predictions/prediction_date=2026-11-22/frontdoor-r1.json"]
    lines = s3.get_object(Bucket="capture", Key=keys[0])["Body"].read().decode().splitlines()
    assert [json.loads(line)["probability"] for line in lines] == [0.5, 0.5]


def test_prediction_log_sampling_is_stable_per_request_id(telemetry: EmfTelemetry) -> None:
    log = S3PredictionLog(None, "capture", sample_percent=25, telemetry=telemetry)
    picks = [log.sampled(f"req-{i}") for i in range(2000)]
    assert picks == [log.sampled(f"req-{i}") for i in range(2000)]
    assert 350 < sum(picks) < 650


def _emf_documents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def _without_timestamp(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "_aws": {k: v for k, v in document["_aws"].items() if k != "Timestamp"}}


def _powertools_documents(
    capsys: pytest.CaptureFixture[str], metrics: list[tuple[str, str, float]], dimension: tuple[str, str] | None = None
) -> dict[str, Any]:
    """What Powertools' own Metrics prints for these metrics, the reference EmfTelemetry must match."""
    reference = Metrics(namespace="mlloop-test")
    if dimension:
        reference.add_dimension(name=dimension[0], value=dimension[1])
    for name, unit, value in metrics:
        reference.add_metric(name=name, unit=unit, value=value)
    reference.flush_metrics()
    (document,) = _emf_documents(capsys.readouterr().out)
    return document


@pytest.fixture
def telemetry(monkeypatch: Any) -> EmfTelemetry:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "frontdoor")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    return EmfTelemetry(EmfWriter(namespace="mlloop-test", service="frontdoor"))


def test_an_answer_from_the_model_is_one_document_as_powertools_writes_it(
    telemetry: EmfTelemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        telemetry.request_answered(latency_ms=12.5, endpoint_latency_ms=9.25, fallback_reason=None, unavailable=False)
    documents = _emf_documents(capsys.readouterr().out)
    expected = _powertools_documents(
        capsys, [(names.PREDICT_LATENCY, "Milliseconds", 12.5), (names.ENDPOINT_LATENCY, "Milliseconds", 9.25)]
    )
    assert len(documents) == 2
    for document in documents:
        assert _without_timestamp(document) == _without_timestamp(expected)
        assert abs(document["_aws"]["Timestamp"] - expected["_aws"]["Timestamp"]) < 60_000


@pytest.mark.parametrize(
    ("answer", "request_metrics", "metric", "dimension", "value"),
    [
        (
            "fallback",
            [(names.PREDICT_LATENCY, "Milliseconds", 1.5), (names.FALLBACK_ANSWERS, "Count", 1)],
            names.FALLBACK_BY_REASON,
            names.FALLBACK_REASON_DIMENSION,
            "circuit_open",
        ),
        (
            "rejected",
            [(names.VALIDATION_ERRORS, "Count", 1)],
            names.VALIDATION_ERRORS_BY_FIELD,
            names.VALIDATION_FIELD_DIMENSION,
            "plan",
        ),
    ],
)
def test_dimensioned_counts_get_a_document_of_their_own(
    telemetry: EmfTelemetry,
    answer: str,
    request_metrics: list[tuple[str, str, float]],
    metric: str,
    dimension: str,
    value: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if answer == "fallback":
        telemetry.request_answered(latency_ms=1.5, endpoint_latency_ms=None, fallback_reason=value, unavailable=False)
    else:
        telemetry.request_rejected(fields={value})
    request, counted = _emf_documents(capsys.readouterr().out)
    assert _without_timestamp(request) == _without_timestamp(_powertools_documents(capsys, request_metrics))
    expected = _powertools_documents(capsys, [(metric, "Count", 1)], dimension=(dimension, value))
    assert _without_timestamp(counted) == _without_timestamp(expected)


def test_a_model_answer_after_a_retry_and_an_unavailable_answer_carry_their_counts(
    telemetry: EmfTelemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    telemetry.request_answered(latency_ms=3.0, endpoint_latency_ms=None, fallback_reason=None, unavailable=True)
    (unavailable,) = _emf_documents(capsys.readouterr().out)
    assert unavailable[names.UNAVAILABLE_ANSWERS] == [1.0] and unavailable[names.PREDICT_LATENCY] == [3.0]
    telemetry.request_answered(latency_ms=3.0, endpoint_latency_ms=None, fallback_reason=None, unavailable=False)
    (plain,) = _emf_documents(capsys.readouterr().out)
    assert {m["Name"] for m in plain["_aws"]["CloudWatchMetrics"][0]["Metrics"]} == {names.PREDICT_LATENCY}


def test_no_metric_is_printed_when_metrics_are_disabled(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    telemetry = EmfTelemetry(EmfWriter(namespace="mlloop-test", service="frontdoor"))
    telemetry.request_rejected(fields={"plan"})
    telemetry.request_answered(latency_ms=1.0, endpoint_latency_ms=1.0, fallback_reason=None, unavailable=False)
    assert _emf_documents(capsys.readouterr().out) == []


@mock_aws
def test_a_failed_prediction_log_write_is_counted_and_does_not_fail_the_request(
    telemetry: EmfTelemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    log = S3PredictionLog(s3, "no-such-bucket", sample_percent=100, telemetry=telemetry)
    log.write("r1", [{"request_id": "r1", "predicted_at": "2026-11-22T08:00:00Z", "probability": 0.5}])
    (document,) = _emf_documents(capsys.readouterr().out)
    assert document[names.PREDICTION_LOG_FAILURES] == [1.0]
