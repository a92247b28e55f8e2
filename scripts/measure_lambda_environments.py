"""Measure what Lambda execution environments cost locally: cold starts and warm invocations, per package set.

    .venv/bin/python -m scripts.measure_lambda_environments --warm 30

Three functions are deployed from a small assembly: a bare handler (runtime only), a Powertools handler (Logger,
Metrics, Tracer; the Powertools layer) and a pandas handler (both layers). For each: the first invocation (a new
worker process: interpreter start, awslambdaric, the handler's imports) and the median of warm invocations, both
through the execution environment directly and through boto3 `invoke` over the cloud's HTTP endpoint, next to the
same bare handler called in this process (what the in-process runtime cost before). Prints one JSON object of
milliseconds; the numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from moto.awslambda.utils import get_backend

from mlloop.localcloud import LocalCloud

POWERTOOLS = "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:18"
PANDAS = "arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python311:22"
BARE = """
def handler(event, context):
    return {"ok": True}
"""
WITH_POWERTOOLS = """
from aws_lambda_powertools import Logger, Metrics, Tracer

logger, metrics, tracer = Logger(), Metrics(namespace="Measure"), Tracer()

@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return {"ok": True}
"""
WITH_PANDAS = """
import pandas
import pyarrow.parquet

def handler(event, context):
    return {"rows": len(pandas.DataFrame({"a": [1, 2]}))}
"""
FUNCTIONS = {
    "Bare": (BARE, []),
    "Powertools": (WITH_POWERTOOLS, [POWERTOOLS]),
    "Pandas": (WITH_PANDAS, [POWERTOOLS, PANDAS]),
}


def _assembly(directory: Path) -> Path:
    resources: dict[str, Any] = {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            },
        }
    }
    for name, (code, layers) in FUNCTIONS.items():
        resources[name] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Code": {"ZipFile": textwrap.dedent(code)},
                "Handler": "index.handler",
                "Runtime": "python3.11",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "MemorySize": 1024,
                "Timeout": 30,
                "Layers": layers,
                "TracingConfig": {"Mode": "Active"},
            },
        }
    stack = "mlloop-measure-fns"
    (directory / f"{stack}.template.json").write_text(json.dumps({"Resources": resources}))
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            stack: {
                "type": "aws:cloudformation:stack",
                "environment": "aws://unknown-account/unknown-region",
                "properties": {"templateFile": f"{stack}.template.json"},
            }
        },
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=30, help="warm invocations per function")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    exec(compile(BARE, "bare", "exec"), namespace)  # the pre-process-boundary baseline: a plain call
    started = time.perf_counter()
    for _ in range(1000):
        namespace["handler"]({}, None)
    figures["bare_in_process_call_ms"] = round(_ms(started) / 1000, 4)
    with tempfile.TemporaryDirectory() as directory, LocalCloud.start() as cloud:
        deployment = cloud.deploy("measure", cdk_out=_assembly(Path(directory)))
        client = cloud.client("lambda")
        assert cloud.lambdas is not None
        for name in FUNCTIONS:
            physical = deployment.physical_id(name)
            function = get_backend(cloud.account_id, cloud.region).get_function(physical)
            started = time.perf_counter()
            payload, errored, logs = cloud.lambdas.invoke(function, {})
            cold = _ms(started)
            assert not errored, payload
            init = next((part for part in logs.split("\t") if part.startswith("Init Duration")), logs)
            direct, through_http = [], []
            for _ in range(args.warm):
                started = time.perf_counter()
                cloud.lambdas.invoke(function, {})
                direct.append(_ms(started))
                started = time.perf_counter()
                client.invoke(FunctionName=physical, Payload=b"{}")["Payload"].read()
                through_http.append(_ms(started))
            figures[name] = {
                "cold_start_ms": cold,
                "init_reported": init,
                "warm_direct_p50_ms": statistics.median(direct),
                "warm_boto3_invoke_p50_ms": statistics.median(through_http),
            }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
