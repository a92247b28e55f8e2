"""What the SageMaker process boundaries cost on the local cloud: `python -m benchmarks.sagemaker_processes`.

Prints one JSON object (seconds and milliseconds, medians over repeats):
- job_seconds: CreateTrainingJob to Completed for a script that only writes a file (the toolkit's start,
  the overlay venv, downloads and uploads: the fixed cost every job pays);
- endpoint_start_seconds: the CreateEndpoint call for one variant and for two variants, with `--gap` seconds
  of quiet before each (the image's container started ahead has imported its serving stack by then; the second
  variant of two starts from cold);
- invoke_ms: InvokeEndpoint through boto3 and the local cloud, and the variant's /invocations alone
  (the container's own share), median and p95 over `--calls` calls.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import time
import uuid
from typing import Any

from mlloop.archives import tar_gz
from mlloop.localcloud import LocalCloud
from mlloop.localcloud import sagemaker as local_sagemaker
from mlloop.localcloud.sagemaker_endpoints import host_for

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/benchmark"
BUCKET = "sagemaker-process-benchmark"
INFERENCE_PY = """
import json

def model_fn(model_dir):
    return 0.5

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(record, model):
    return model * record["x"]

def output_fn(prediction, accept):
    return json.dumps({"prediction": prediction}), "application/json"
"""
TRAIN_PY = """
import os, pathlib
pathlib.Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("ok")
"""


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _job_seconds(cloud: LocalCloud) -> float:
    sm = cloud.client("sagemaker")
    name = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    arn = sm.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        HyperParameters={
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": f"s3://{BUCKET}/source.tar.gz",
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/"}},
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/jobs"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )["TrainingJobArn"]
    local_sagemaker.wait_for_training_job(arn, 300)
    elapsed = time.perf_counter() - started
    status = sm.describe_training_job(TrainingJobName=name)
    if status["TrainingJobStatus"] != "Completed":
        raise RuntimeError(status.get("FailureReason"))
    return elapsed


def _endpoint(cloud: LocalCloud, variants: int) -> tuple[str, float]:
    sm = cloud.client("sagemaker")
    config = f"bench-{uuid.uuid4().hex[:8]}"
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {"VariantName": f"v{i}", "ModelName": "bench-model", "InstanceType": "ml.m5.large"} for i in range(variants)
        ],
    )
    started = time.perf_counter()
    sm.create_endpoint(EndpointName=config, EndpointConfigName=config)
    return config, time.perf_counter() - started


def _create_role(cloud: LocalCloud) -> None:
    """The jobs' and the model's role: the local cloud enforces IAM, and SageMaker and the toolkit act as it."""
    iam, name = cloud.client("iam"), ROLE.rsplit("/", 1)[1]
    trust = {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]}))
    bucket_access = {
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
    }
    logs = {"Effect": "Allow", "Action": ["logs:*", "cloudwatch:PutMetricData"], "Resource": "*"}
    policy = {"Version": "2012-10-17", "Statement": [bucket_access, logs]}
    iam.put_role_policy(RoleName=name, PolicyName="benchmark", PolicyDocument=json.dumps(policy))


def run(repeats: int, calls: int, gap: float) -> dict[str, Any]:
    with LocalCloud.start() as cloud:
        s3, sm = cloud.client("s3"), cloud.client("sagemaker")
        _create_role(cloud)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="source.tar.gz", Body=tar_gz({"train.py": TRAIN_PY}))
        s3.put_object(Bucket=BUCKET, Key="data/rows.csv", Body=b"1\n")
        s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=tar_gz({"code/inference.py": INFERENCE_PY}))
        sm.create_model(
            ModelName="bench-model",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": IMAGE,
                "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz",
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                },
            },
        )
        jobs = [_job_seconds(cloud) for _ in range(repeats)]
        one, two = [], []
        for _ in range(repeats):
            time.sleep(gap)
            one.append(_endpoint(cloud, 1))
        for _ in range(repeats):
            time.sleep(gap)
            two.append(_endpoint(cloud, 2)[1])
        endpoint = one[0][0]
        runtime = cloud.client("sagemaker-runtime")
        body = json.dumps({"x": 2.0}).encode()
        through_cloud = []
        for _ in range(calls):
            started = time.perf_counter()
            runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="application/json")["Body"].read()
            through_cloud.append((time.perf_counter() - started) * 1000)
        host = host_for(cloud.account_id, cloud.region, endpoint)
        assert host is not None
        port = host.fleets[0].server.port
        container_only = []
        for _ in range(calls):
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port)
            connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
            connection.getresponse().read()
            connection.close()
            container_only.append((time.perf_counter() - started) * 1000)
        for name, _ in one:
            sm.delete_endpoint(EndpointName=name)
    return {
        "job_seconds": round(statistics.median(jobs), 2),
        "endpoint_start_seconds": {
            "one_variant": round(statistics.median(s for _, s in one), 2),
            "two_variants": round(statistics.median(two), 2),
        },
        "invoke_ms": {
            "through_local_cloud": {
                "median": round(statistics.median(through_cloud), 2),
                "p95": round(_percentile(through_cloud, 0.95), 2),
            },
            "container_only": {
                "median": round(statistics.median(container_only), 2),
                "p95": round(_percentile(container_only, 0.95), 2),
            },
        },
        "repeats": repeats,
        "calls": calls,
        "gap_seconds": gap,
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sagemaker_processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--gap", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(run(args.repeats, args.calls, args.gap), indent=2))


if __name__ == "__main__":
    main()
