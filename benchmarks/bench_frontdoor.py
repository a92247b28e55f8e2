"""Front door: the real Lambda handler in-process against a bare Powertools handler and the common naive one.

The handler runs with its real adapters over stub AWS clients that answer at once: the manifest from S3
(cached by the adapter), the endpoint (a canned model answer, or an instant failure for the fallback figure),
the sampled prediction log. Everything the front door itself does is therefore in its figure.
"""

from __future__ import annotations

import contextlib
import json
import os
import unittest.mock
import warnings
from collections.abc import Callable
from typing import Any

from benchmarks.common import WARMUP, BenchResult, Size, missing_modules
from benchmarks.models import json_record, trained
from benchmarks.timing import Contender, compare, cycling, ratio_over, speedup

CONTENDER_MODULES = ("functions.frontdoor.handler", "functions.shared.fallback_model", "training.pipeline")
# Many short rounds: this shared machine drifts between a fast and a slow state every few tens of
# milliseconds, and a round of a few milliseconds per contender exposes every contender to both alike.
CALLS: dict[Size, int] = {"tiny": 20, "full": 50}
ROUNDS: dict[Size, int] = {"tiny": 1, "full": 70}
DISTINCT_RECORDS = 64
ENDPOINT = "mlloop-bench-churn"


def _stage_environment(stage: str = "dev") -> dict[str, str]:
    """The front door's environment as the serving stack sets it for ``stage`` (cdk.json), stub names aside."""
    from infra.config import load_stage_config
    from infra.context import effective_context

    frontdoor = load_stage_config(effective_context(), stage).frontdoor
    return {
        "ENDPOINT_NAME": ENDPOINT,
        "MANIFEST_BUCKET": "artifacts",
        "CAPTURE_BUCKET": "capture",
        "POWERTOOLS_SERVICE_NAME": "frontdoor",
        "POWERTOOLS_METRICS_NAMESPACE": "mlloop-bench",
        **frontdoor.function_environment(),
    }


class LambdaContextStub:
    function_name = "frontdoor"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:frontdoor"
    aws_request_id = "bench"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


class StubS3:
    def __init__(self, manifest: bytes) -> None:
        self.manifest = manifest
        self.puts = 0

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": _Body(self.manifest), "ETag": '"bench"'}

    def put_object(self, **_: Any) -> dict[str, Any]:
        self.puts += 1
        return {}


class StubRuntime:
    """sagemaker-runtime answering instantly: the model's JSON for one record, or a model error."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer

    def invoke_endpoint(self, **_: Any) -> dict[str, Any]:
        if self.answer is None:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ModelError", "Message": "bench: endpoint down"}}, "InvokeEndpoint")
        return {"Body": _Body(self.answer), "InvokedProductionVariant": "v1"}


def api_event(body: str, request_id: str) -> dict[str, Any]:
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": "POST",
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "httpMethod": "POST",
            "path": "/dev/predict",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "resourcePath": "/predict",
            "stage": "dev",
            "identity": {"sourceIp": "127.0.0.1", "userArn": "arn:aws:iam::123456789012:user/app"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def lambda_environment() -> Any:
    """The stage's front-door variables for the duration, every other variable as it was."""
    return unittest.mock.patch.dict(os.environ, _stage_environment())


def _manifest(size: Size) -> bytes:
    models = trained(size)
    return json.dumps(
        {
            "endpoint_name": ENDPOINT,
            "model_version": "v1",
            "model_package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlloop-bench-churn/1",
            "endpoint_config_name": f"{ENDPOINT}-v1",
            "variant_name": "v1",
            "model_name": f"{ENDPOINT}-v1",
            "contract": json.loads(models.contract.to_json()),
            "threshold": models.result.threshold,
            "deployed_at": "2026-11-22T08:00:00Z",
            "fallback_model": models.result.fallback,
        }
    ).encode()


def _front_door_handler(manifest: bytes, answer: bytes | None) -> Callable[[dict[str, Any]], Any]:
    """The real handler module, its FrontDoor built as front_door() builds it, with stub clients."""
    from functions.frontdoor import handler as module
    from functions.frontdoor.adapters import EmfTelemetry, S3ManifestSource, S3PredictionLog, SageMakerInvoker
    from functions.frontdoor.logic import FrontDoor
    from functions.frontdoor.settings import FrontDoorSettings
    from functions.shared.emf import EmfWriter
    from functions.shared.observability import metrics

    settings = FrontDoorSettings.from_env()
    s3 = StubS3(manifest)
    telemetry = EmfTelemetry(EmfWriter.like(metrics))
    module._front_door = FrontDoor(
        settings=settings,
        manifests=S3ManifestSource(
            s3, settings.manifest_bucket, settings.manifest_key, settings.manifest_refresh_seconds
        ),
        invoker=SageMakerInvoker(StubRuntime(answer)),
        telemetry=telemetry,
        prediction_log=S3PredictionLog(s3, settings.capture_bucket, settings.prediction_log_sample_percent, telemetry),
        load_fallback=module._load_fallback,
    )
    context: Any = LambdaContextStub()
    return lambda event: module.handler(event, context)


def _floor_handler() -> Callable[[dict[str, Any]], Any]:
    """The least a Powertools API handler does: the same decorators and resolver, parse the body, a constant."""
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
    from aws_lambda_powertools.logging import correlation_paths

    from functions.shared.observability import logger, metrics, tracer

    app = APIGatewayRestResolver()

    @app.post("/predict")
    def predict() -> Response[str]:
        json.loads(app.current_event.body or "{}")
        return Response(status_code=200, content_type="application/json", body='{"probability":0.5}')

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    context = LambdaContextStub()
    return lambda event: handler(event, context)


def _naive_handler(size: Size) -> Callable[[dict[str, Any]], Any]:
    """What a Lambda usually looks like: json, a pydantic request model, a one-row DataFrame, the pipeline."""
    import pandas as pd
    from pydantic import BaseModel

    models = trained(size)
    # The logistic baseline, the cheapest pipeline there is, so the naive handler's figure is its best case.
    pipeline = models.result.baseline_pipeline
    threshold = models.result.threshold

    class ChurnRequest(BaseModel):
        tenure_months: int
        monthly_charges: float
        total_charges: float | None = None
        support_calls_90d: int
        data_usage_gb: float | None = None
        days_since_last_login: int
        discount_pct: float
        plan: str
        contract_type: str
        region: str
        payment_method: str | None = None
        auto_renew: bool

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        request = ChurnRequest(**json.loads(event["body"]))
        frame = pd.DataFrame([request.model_dump()])
        probability = float(pipeline.predict_proba(frame)[0, 1])
        body = {"probability": probability, "label": int(probability >= threshold)}
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}

    return lambda event: handler(event, None)


def _answering(handler: Callable[[dict[str, Any]], Any], statuses: list[Any]) -> Callable[[dict[str, Any]], None]:
    """Keep every status code, so a contender answering errors fast shows up in the facts."""
    return lambda event: statuses.append(handler(event)["statusCode"])


def run(size: Size) -> BenchResult:
    result = BenchResult("frontdoor")
    absent = missing_modules(*CONTENDER_MODULES)
    if absent:
        result.skipped.append(f"front door: {', '.join(absent)} not written yet")
        return result
    from training.pipeline import model_input

    models = trained(size)
    features = model_input(models.frame.head(DISTINCT_RECORDS), models.contract)
    records = [json_record(r) for r in features.astype(object).to_dict(orient="records")]
    events = [api_event(json.dumps(r), f"req-{i}") for i, r in enumerate(records)]
    answer = b'{"predictions":[{"probability":0.250000000000,"label":0}],"model_version":"v1","threshold":0.5}'
    manifest = _manifest(size)
    statuses: dict[str, list[Any]] = {}
    with (
        lambda_environment(),
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        warnings.catch_warnings(),
    ):
        # The floor publishes no metric by design; Powertools warns about that on every call.
        warnings.simplefilter("ignore", UserWarning)
        # One FrontDoor per figure: the handler module keeps a single instance, so each is built right before use.
        served: dict[str, Contender] = {}
        for name, handler in (("floor_powertools_handler", _floor_handler()), ("naive_handler", _naive_handler(size))):
            served[name] = cycling(_answering(handler, statuses.setdefault(name, [])), events)
        front_door = _front_door_handler(manifest, answer)
        served["frontdoor"] = cycling(_answering(front_door, statuses.setdefault("frontdoor", [])), events)
        timings = compare(served, rounds=ROUNDS[size], calls=CALLS[size], warmup=WARMUP[size])
        fallback = _front_door_handler(manifest, None)
        floor = served["floor_powertools_handler"]
        fallback_timings = compare(
            {
                "frontdoor_fallback": cycling(
                    _answering(fallback, statuses.setdefault("frontdoor_fallback", [])), events
                ),
                "floor_powertools_handler_2": floor,
            },
            rounds=ROUNDS[size],
            calls=CALLS[size],
            # An outage's steady state is the open circuit: the failures that open it are warm-up.
            warmup=WARMUP[size] + int(os.environ["CIRCUIT_MINIMUM_CALLS"]),
        )
    result.timings.update(timings)
    result.timings.update(fallback_timings)
    result.facts["status_codes"] = {name: sorted(set(codes)) for name, codes in statuses.items()}
    result.ratios.append(ratio_over("frontdoor_p50_over_floor", timings, "frontdoor", "floor_powertools_handler", 1.5))
    result.ratios.append(speedup("frontdoor_speedup_vs_naive", timings, "frontdoor", "naive_handler", 10))
    result.ratios.append(
        ratio_over("fallback_p50_over_floor", fallback_timings, "frontdoor_fallback", "floor_powertools_handler_2", 1.5)
    )
    return result
