"""Measure what service-model validation costs a request to the local cloud, and what a dev deploy sends through it.

    .venv/bin/python scripts/measure_request_validation.py [--calls 300]

Prints the median time of a small SageMaker call (DescribeModelPackageGroup) and of a larger one
(CreateEndpointConfig with data capture) through the local cloud's HTTP endpoint with and without the
validation hook, then deploys the dev stage and prints how many requests were validated and refused.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlloop.localcloud import LocalCloud, fidelity, request_validation


def _median_ms(call: Callable[[], Any], calls: int) -> float:
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with LocalCloud.start() as cloud:
        sm = cloud.client("sagemaker")
        sm.create_model_package_group(ModelPackageGroupName="bench")

        def small() -> None:
            sm.describe_model_package_group(ModelPackageGroupName="bench")

        def large() -> None:
            sm.create_endpoint_config(
                EndpointConfigName=f"bench-{uuid.uuid4().hex[:12]}",
                ProductionVariants=[
                    {
                        "VariantName": "primary",
                        "ModelName": "bench-model",
                        "InitialInstanceCount": 2,
                        "InstanceType": "ml.m5.large",
                        "InitialVariantWeight": 1.0,
                    }
                ],
                DataCaptureConfig={
                    "EnableCapture": True,
                    "InitialSamplingPercentage": 100,
                    "DestinationS3Uri": "s3://bench/capture",
                    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                    "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
                },
            )

        for name, call in (("DescribeModelPackageGroup", small), ("CreateEndpointConfig", large)):
            call()
            with_hook = _median_ms(call, args.calls)
            request_validation.uninstall()
            without = _median_ms(call, args.calls)
            request_validation.install()
            print(f"{name}: {with_hook:.2f} ms median with validation, {without:.2f} ms without ({args.calls} calls)")
        before, refused_before = fidelity.report()["validated"], request_validation.refused_requests()
        cloud.deploy("dev")
        after, refused_after = fidelity.report()["validated"], request_validation.refused_requests()
        validated = sum(after.values()) - sum(before.values())
        refused = sum(refused_after.values()) - sum(refused_before.values())
        operations = sum(1 for op, n in after.items() if n > before.get(op, 0))
        print(f"dev deploy: {validated} requests validated across {operations} operations, {refused} refused")


if __name__ == "__main__":
    main()
