"""The front door's AWS adapters: fault classification of InvokeEndpoint, the manifest cache, prediction logs."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from moto import mock_aws

from functions.frontdoor import metric_names as names
from functions.frontdoor.adapters import (
    PowertoolsTelemetry,
    S3ManifestSource,
    S3PredictionLog,
    SageMakerInvoker,
    runtime_client_config,
)
from functions.frontdoor.logic import EndpointCallError
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
        ("ServiceUnavailable", 503, "try later", "throttling"),
        ("ValidationError", 400, "Endpoint mlloop-dev-churn of account 123 not found.", "endpoint_missing"),
        ("ValidationException", 400, "Endpoint mlloop-dev-churn of account 123 not found.", "endpoint_missing"),
        ("InternalFailure", 500, "oops", "model_error"),
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
def test_prediction_logs_land_in_the_predictions_table_layout() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="capture")
    log = S3PredictionLog(s3, "capture", sample_percent=100, metrics=Metrics(namespace="test"))
    rows = [{"request_id": "r1", "predicted_at": "2026-11-22T08:00:00Z", "probability": 0.5}] * 2
    log.write("r1", rows)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="capture")["Contents"]]
    assert keys == ["predictions/prediction_date=2026-11-22/frontdoor-r1.json"]
    lines = s3.get_object(Bucket="capture", Key=keys[0])["Body"].read().decode().splitlines()
    assert [json.loads(line)["probability"] for line in lines] == [0.5, 0.5]


def test_prediction_log_sampling_is_stable_per_request_id() -> None:
    log = S3PredictionLog(None, "capture", sample_percent=25, metrics=Metrics(namespace="test"))
    picks = [log.sampled(f"req-{i}") for i in range(2000)]
    assert picks == [log.sampled(f"req-{i}") for i in range(2000)]
    assert 350 < sum(picks) < 650


def _emf_documents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def _without_timestamp(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "_aws": {k: v for k, v in document["_aws"].items() if k != "Timestamp"}}


@pytest.mark.parametrize(
    ("answer", "metric", "dimension", "value"),
    [
        ("fallback", names.FALLBACK_BY_REASON, names.FALLBACK_REASON_DIMENSION, "circuit_open"),
        ("rejected", names.VALIDATION_ERRORS_BY_FIELD, names.VALIDATION_FIELD_DIMENSION, "plan"),
    ],
)
def test_dimensioned_counts_are_the_documents_single_metric_writes(
    answer: str, metric: str, dimension: str, value: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "frontdoor")
    metrics = Metrics(namespace="mlloop-test")
    telemetry = PowertoolsTelemetry(metrics)
    with single_metric(name=metric, unit=MetricUnit.Count, value=1, namespace="mlloop-test") as expected:
        expected.add_dimension(name=dimension, value=value)
    (reference,) = _emf_documents(capsys.readouterr().out)
    for _ in range(2):
        if answer == "fallback":
            telemetry.request_answered(latency_ms=1.5, fallback_reason=value, unavailable=False)
        else:
            telemetry.request_rejected(fields={value})
        metrics.flush_metrics()
    documents = _emf_documents(capsys.readouterr().out)
    counted = [d for d in documents if metric in d]
    assert len(counted) == 2
    for document in counted:
        assert _without_timestamp(document) == _without_timestamp(reference)
        assert abs(document["_aws"]["Timestamp"] - reference["_aws"]["Timestamp"]) < 60_000
    request = next(d for d in documents if metric not in d)
    (directive,) = request["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "mlloop-test" and directive["Dimensions"] == [["service"]]
    expected_names = (
        {names.PREDICT_LATENCY, names.FALLBACK_ANSWERS} if answer == "fallback" else {names.VALIDATION_ERRORS}
    )
    assert {m["Name"] for m in directive["Metrics"]} == expected_names


def test_dimensioned_counts_stay_off_when_metrics_are_disabled(
    capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    metrics = Metrics(namespace="mlloop-test")
    PowertoolsTelemetry(metrics).request_rejected(fields={"plan"})
    metrics.clear_metrics()
    assert _emf_documents(capsys.readouterr().out) == []
