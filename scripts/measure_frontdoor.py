"""Measure the front door in-process: p50/p99 latency of one-record requests and the import time of its module.

Each figure comes with its floor (issue 10): a bare Powertools handler (same decorators, same resolver) that
parses the same API event with a pydantic model and returns a constant, and importing boto3 plus the
Powertools utilities the front door uses. The endpoint is stubbed to answer instantly, so the numbers are the
front door's own overhead: validation, serialisation, circuit breaker, metrics.

    .venv/bin/python scripts/measure_frontdoor.py [--requests 5000] [--imports 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mlloop-frontdoor")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MLLoop/bench")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

# The floor: a bare Powertools handler module (same decorators, resolver and parser as the front door) that
# parses the request into a pydantic model and answers a constant. Imported as a module, so its import time
# includes what the decorators load (the X-Ray SDK behind Tracer), exactly as the front door's does.
FLOOR_SOURCE = """
import json

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import BaseModel, parse
import boto3

logger, tracer, metrics = Logger(), Tracer(), Metrics()
app = APIGatewayRestResolver()


class Body(BaseModel):
    tenure_months: int
    monthly_charges: float
    total_charges: float | None
    support_calls_90d: int
    data_usage_gb: float | None
    days_since_last_login: int
    discount_pct: float
    plan: str
    contract_type: str
    region: str
    payment_method: str | None
    auto_renew: bool


@app.post("/predict")
def predict():
    parse(event=json.loads(app.current_event.body or "{}"), model=Body)
    return {"predictions": [{"probability": 0.25, "label": 0}], "model_version": "v3"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler_with_two_metrics(event, context):
    # Not a floor: the same handler publishing the two latency metrics the front door publishes per request.
    metrics.add_metric(name="PredictLatency", unit="Milliseconds", value=1.0)
    metrics.add_metric(name="EndpointLatency", unit="Milliseconds", value=1.0)
    return app.resolve(event, context)
"""
FLOOR_DIR = Path(tempfile.mkdtemp(prefix="frontdoor-floor-"))
(FLOOR_DIR / "floor_handler.py").write_text(FLOOR_SOURCE)
FLOOR_IMPORT = "import floor_handler"
FRONTDOOR_IMPORT = "import functions.frontdoor.handler"


def import_seconds(statements: dict[str, str], repeats: int) -> dict[str, float]:
    """Fastest wall time of each statement in a fresh interpreter, the statements interleaved so that load from
    the other tenants of the machine hits them alike (the minimum is the least disturbed run)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{FLOOR_DIR}"}
    times: dict[str, list[float]] = {name: [] for name in statements}
    for i in range(repeats + 1):
        for name, statement in statements.items():
            code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
            if i:
                times[name].append(float(out.stdout.strip().splitlines()[-1]))
    return {name: min(values) for name, values in times.items()}


def heavy_modules_loaded() -> list[str]:
    heavy = "('pandas', 'numpy', 'sklearn', 'scipy')"
    code = f"import sys; {FRONTDOOR_IMPORT}; print(','.join(m for m in {heavy} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return [m for m in out.stdout.strip().split(",") if m]


def percentiles(calls: dict[str, Callable[[], Any]], requests: int, rounds: int = 10) -> dict[str, tuple[float, float]]:
    """p50 and p99 (microseconds) of each call, measured in interleaved rounds for the same reason as imports."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(200):
            call()
    per_round = max(1, requests // rounds)
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(per_round):
                started = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - started) * 1e6)
    out = {}
    for name, values in samples.items():
        values.sort()
        out[name] = (values[len(values) // 2], values[int(len(values) * 0.99) - 1])
    return out


def floor_handlers() -> tuple[Callable[[dict[str, Any], Any], dict[str, Any]], ...]:
    sys.path.insert(0, str(FLOOR_DIR))
    import floor_handler as floor

    return floor.handler, floor.handler_with_two_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--imports", type=int, default=7)
    args = parser.parse_args()

    from functions.frontdoor import handler as frontdoor
    from functions.frontdoor.adapters import PowertoolsTelemetry
    from functions.frontdoor.logic import EndpointAnswer, EndpointCallError
    from functions.shared.observability import metrics
    from tests.unit.frontdoor_support import (
        VALID_RECORD,
        LambdaContextStub,
        ScriptedEndpoint,
        api_event,
        make_front_door,
    )

    class NoLog:
        def sampled(self, request_id: str) -> bool:
            return False

        def write(self, request_id: str, rows: list[dict[str, Any]]) -> None:
            return None

    reply = json.dumps({"predictions": [{"probability": 0.25, "label": 0}], "model_version": "v3", "threshold": 0.4})

    class Instant(ScriptedEndpoint):
        def invoke(self, endpoint_name: str, body: bytes) -> Any:
            return EndpointAnswer(body=reply.encode(), variant="v3")

    class AlwaysFailing(ScriptedEndpoint):
        def invoke(self, endpoint_name: str, body: bytes) -> Any:
            raise EndpointCallError("model_error", "stubbed failure")

    event = api_event("POST", "/predict", json.dumps(VALID_RECORD))
    context = LambdaContextStub()
    floor, floor_with_metrics = floor_handlers()

    def run(handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Callable[[], Any]:
        def call() -> Any:
            response = handler(event, context)
            assert response["statusCode"] == 200, response
            return response

        return call

    doors = {}
    for name, endpoint in (("frontdoor", Instant()), ("fallback", AlwaysFailing())):
        door = make_front_door(endpoint=endpoint)
        door.telemetry = PowertoolsTelemetry(metrics)
        door.prediction_log = NoLog()
        doors[name] = door

    def through(door: Any) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        def call(event: dict[str, Any], context: Any) -> dict[str, Any]:
            frontdoor._front_door = door
            response: dict[str, Any] = frontdoor.handler(event, context)
            return response

        return call

    results: dict[str, float] = {}
    # Powertools prints each request's EMF metrics blob to stdout, as in Lambda: part of the cost, not the report.
    with contextlib.redirect_stdout(io.StringIO()):
        measured = percentiles(
            {
                "floor": run(floor),
                "floor_with_2_metrics": run(floor_with_metrics),
                **{name: run(through(door)) for name, door in doors.items()},
            },
            args.requests,
        )
    for name, (p50, p99) in measured.items():
        results[f"{name}_p50_us"], results[f"{name}_p99_us"] = p50, p99
    imports = import_seconds({"frontdoor": FRONTDOOR_IMPORT, "floor": FLOOR_IMPORT}, args.imports)
    results["frontdoor_import_s"], results["floor_import_s"] = imports["frontdoor"], imports["floor"]
    ratios = {
        "frontdoor_p50_over_floor": results["frontdoor_p50_us"] / results["floor_p50_us"],
        "frontdoor_p50_over_floor_with_2_metrics": results["frontdoor_p50_us"] / results["floor_with_2_metrics_p50_us"],
        "fallback_p50_over_floor": results["fallback_p50_us"] / results["floor_p50_us"],
        "frontdoor_import_over_floor": results["frontdoor_import_s"] / results["floor_import_s"],
    }
    print(f"requests per handler: {args.requests} (interleaved rounds); import runs: {args.imports} (fastest)")
    for key, value in results.items():
        print(f"  {key:<24} {value:10.1f}" if key.endswith("_us") else f"  {key:<24} {value:10.3f}")
    for key, value in ratios.items():
        print(f"  {key:<40} {value:6.2f}")
    print(f"  heavy modules loaded by the front door: {heavy_modules_loaded() or 'none'}")


if __name__ == "__main__":
    main()
