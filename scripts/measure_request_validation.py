"""Measure what service-model validation costs a request to the local cloud, and what a dev deploy sends through it.

    .venv/bin/python scripts/measure_request_validation.py [--calls 300]

Prints the median time of a small SageMaker call (DescribeModelPackageGroup) and of a larger one
(CreateEndpointConfig with data capture) through the local cloud's HTTP endpoint with and without the
validation hook (calls alternate), then deploys the dev stage and prints how many requests were validated and
refused.
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


def _medians_ms(call: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Median per call with and without the validation hook, alternating so drift and load hit both alike."""
    timings: dict[bool, list[float]] = {True: [], False: []}
    for i in range(2 * calls):
        validated = i % 2 == 0
        if not validated:
            request_validation.uninstall()
        start = time.perf_counter()
        call()
        timings[validated].append((time.perf_counter() - start) * 1000)
        if not validated:
            request_validation.install()
    return statistics.median(timings[True]), statistics.median(timings[False])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with LocalCloud.start() as cloud:
        sm = cloud.client("sagemaker")
        sm.create_model_package_group(ModelPackageGroupName="bench")
        sm.create_model(
            ModelName="bench-model",
            ExecutionRoleArn=f"arn:aws:iam::{cloud.account_id}:role/bench",
            PrimaryContainer={
                "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
            },
        )

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
            with_hook, without = _medians_ms(call, args.calls)
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
