"""SageMaker on the local cloud trains, serves, captures, deploys blue/green and keeps a registry as AWS does.

Every test drives the emulation through plain boto3 calls against the local endpoint; the only
local-only calls are the fault-injection and flush helpers of mlloop.localcloud.sagemaker.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from functions.shared.contract import load_contract
from infra.constructs.platform_function import REPO_ROOT
from infra.constructs.training_source_bundle import ENTRY_POINT, build_source_tarball
from mlloop.datagen import generate_churn
from mlloop.localcloud import LocalCloud
from mlloop.localcloud import sagemaker as local_sagemaker
from mlloop.localcloud.sagemaker_deployments import _shift_plan
from tests.integration.localcloud_support import queue_for_events
from tests.integration.serving_support import tar_files

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]

BUCKET = "sagemaker-emulation-test"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
# What the SageMaker SDK sets for a model whose archive carries code/inference.py.
SERVING_ENV = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
# Names unique to this module: the cloud is shared by every integration test of the process.
MODEL_PREFIX = f"emu-{uuid.uuid4().hex[:6]}"

# A minimal model for the scikit-learn serving container; its stack hands input_fn JSON and CSV bodies as str.
INFERENCE_PY = """
import dataclasses
import json
import os

from helpers import scale


@dataclasses.dataclass
class Answer:
    probability: float
    label: int


class ClientError(Exception):
    status_code = 400


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)


def input_fn(body, content_type):
    if content_type == "text/csv":
        return [{"x": float(row)} for row in body.splitlines()]
    record = json.loads(body)
    records = record["instances"] if "instances" in record else [record]
    bad = {i: "missing" for i, r in enumerate(records) if "x" not in r}
    if bad:
        raise ClientError(json.dumps({"error": "invalid request", "fields": {"x": "missing"}}))
    return records


def predict_fn(records, model):
    return [scale(model["w"] * r["x"]) for r in records]


def output_fn(prediction, accept):
    body = {
        "predictions": [dataclasses.asdict(Answer(p, int(p >= 0.5))) for p in prediction],
        "model_version": os.environ["MODEL_VERSION"],
        "threshold": 0.5,
    }
    return json.dumps(body), "application/json"
"""

TRAIN_PY = """
import argparse, json, os, pathlib, sys

parser = argparse.ArgumentParser()
parser.add_argument("--weight", type=float)
parser.add_argument("--fail", default="no")
parser.add_argument("--params", default="")
parser.add_argument("--sleep", type=float, default=0)
parser.add_argument("--plot", default="no")
args = parser.parse_args()
if args.plot == "yes":
    import matplotlib
if args.fail == "yes":
    print("training blew up: no rows", file=sys.stderr)
    sys.exit(3)
if args.sleep:
    import time; time.sleep(args.sleep)
train = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"])
rows = sorted(str(p.relative_to(train)) for p in train.rglob("*") if p.is_file())
listed = pathlib.Path(os.environ["SM_CHANNEL_LISTED"])
rows += sorted("listed/" + str(p.relative_to(listed)) for p in listed.rglob("*") if p.is_file())
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / "model.json").write_text(json.dumps({"w": args.weight, "rows": rows, "params": args.params}))
(model / "code").mkdir()
(model / "code" / "inference.py").write_text(open(os.path.join(os.path.dirname(__file__), "serve.py")).read())
out = pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"])
(out / "env.json").write_text(json.dumps({**os.environ, "python": sys.version, "executable": sys.executable}))
print("validation:auc=0.87")
"""


def _untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _create_execution_role(cloud: LocalCloud) -> None:
    """The jobs' and models' role: the local cloud enforces IAM, and their processes act as it (the toolkit
    downloads the bundle, the channels and writes the model with these permissions, as on SageMaker)."""
    iam = cloud.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=ROLE.rsplit("/", 1)[1], AssumeRolePolicyDocument=json.dumps(trust))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            },
            {"Effect": "Allow", "Action": ["logs:*", "cloudwatch:PutMetricData"], "Resource": "*"},
        ],
    }
    iam.put_role_policy(RoleName=ROLE.rsplit("/", 1)[1], PolicyName="emulation-test", PolicyDocument=json.dumps(policy))


@pytest.fixture(scope="module")
def cloud(local_cloud: LocalCloud) -> LocalCloud:
    """The shared cloud with a bucket, three small models (v1..v3 scale x by 0.1..0.3) and a broken one."""
    s3, sm = local_cloud.client("s3"), local_cloud.client("sagemaker")
    s3.create_bucket(Bucket=BUCKET)
    _create_execution_role(local_cloud)
    for version, weight in (("v1", 0.1), ("v2", 0.2), ("v3", 0.3)):
        archive = tar_files(
            {
                "model.json": json.dumps({"w": weight}),
                "code/inference.py": INFERENCE_PY,
                "code/helpers.py": "def scale(v):\n    return round(v, 6)\n",
            }
        )
        s3.put_object(Bucket=BUCKET, Key=f"models/{version}.tar.gz", Body=archive)
        sm.create_model(
            ModelName=f"{MODEL_PREFIX}-{version}",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": IMAGE,
                "ModelDataUrl": f"s3://{BUCKET}/models/{version}.tar.gz",
                "Environment": {**SERVING_ENV, "MODEL_VERSION": version},
            },
        )
    s3.put_object(Bucket=BUCKET, Key="models/broken.tar.gz", Body=tar_files({"model.json": "{}"}))
    sm.create_model(
        ModelName=f"{MODEL_PREFIX}-broken",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{BUCKET}/models/broken.tar.gz",
            "Environment": SERVING_ENV,
        },
    )
    return local_cloud


def _config(
    cloud: LocalCloud,
    variants: dict[str, float],
    *,
    capture: int | None = None,
    count: int = 1,
    variant_name: str | None = None,
) -> str:
    """An EndpointConfig with one variant per model version (named after it, or `variant_name`)."""
    name = f"config-{uuid.uuid4().hex[:8]}"
    params: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": variant_name or version,
                "ModelName": f"{MODEL_PREFIX}-{version}",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": count,
                "InitialVariantWeight": weight,
            }
            for version, weight in variants.items()
        ],
    }
    if capture is not None:
        params["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": capture,
            "DestinationS3Uri": f"s3://{BUCKET}/capture/{name}",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"], "CsvContentTypes": ["text/csv"]},
        }
    cloud.client("sagemaker").create_endpoint_config(**params)
    return name


def _endpoint(cloud: LocalCloud, config: str) -> str:
    name = f"ep-{uuid.uuid4().hex[:8]}"
    cloud.client("sagemaker").create_endpoint(EndpointName=name, EndpointConfigName=config)
    return name


def _invoke(cloud: LocalCloud, endpoint: str, record: Any, **kwargs: Any) -> tuple[dict[str, Any], str]:
    answer = cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(record), ContentType="application/json", **kwargs
    )
    return json.loads(answer["Body"].read()), answer["InvokedProductionVariant"]


def _wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _metric_sum(cloud: LocalCloud, endpoint: str, variant: str, metric: str) -> float:
    now = datetime.now(UTC)
    stats = cloud.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=3600,
        Statistics=["Sum"],
    )
    return float(sum(p["Sum"] for p in stats["Datapoints"]))


# ---------------------------------------------------------------- serving


def test_an_endpoint_serves_the_real_model_with_its_container_environment(cloud: LocalCloud) -> None:
    endpoint = _endpoint(cloud, _config(cloud, {"v2": 1.0}))
    assert cloud.client("sagemaker").describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"

    body, variant = _invoke(cloud, endpoint, {"instances": [{"x": 1.0}, {"x": 5.0}]})

    assert variant == "v2"
    assert body == {
        "predictions": [{"probability": 0.2, "label": 0}, {"probability": 1.0, "label": 1}],
        "model_version": "v2",
        "threshold": 0.5,
    }
    csv = cloud.client("sagemaker-runtime").invoke_endpoint(EndpointName=endpoint, Body=b"3\n", ContentType="text/csv")
    assert json.loads(csv["Body"].read())["predictions"] == [{"probability": 0.6, "label": 1}]


PROBE_PY = """
import json, os, sys

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return body

def predict_fn(data, model):
    return data

def output_fn(prediction, accept):
    keys = sorted(os.environ)
    return json.dumps({"pid": os.getpid(), "python": sys.version, "keys": keys, "version": os.environ["MODEL_VERSION"]})
"""


def test_each_variant_serves_from_its_own_process_in_the_image_environment(cloud: LocalCloud) -> None:
    s3, sm = cloud.client("s3"), cloud.client("sagemaker")
    s3.put_object(Bucket=BUCKET, Key="models/probe.tar.gz", Body=tar_files({"code/inference.py": PROBE_PY}))
    for version in ("p1", "p2"):
        sm.create_model(
            ModelName=f"{MODEL_PREFIX}-{version}",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": IMAGE,
                "ModelDataUrl": f"s3://{BUCKET}/models/probe.tar.gz",
                "Environment": {**SERVING_ENV, "MODEL_VERSION": version},
            },
        )
    endpoint = _endpoint(cloud, _config(cloud, {"p1": 1.0, "p2": 1.0}))

    answers = {variant: _invoke(cloud, endpoint, {}, TargetVariant=variant)[0] for variant in ("p1", "p2")}

    assert {a["version"] for a in answers.values()} == {"p1", "p2"}
    assert len({answers["p1"]["pid"], answers["p2"]["pid"], os.getpid()}) == 3
    assert all(a["python"].startswith("3.12.") for a in answers.values())
    assert "PYTEST_CURRENT_TEST" not in answers["p1"]["keys"]
    assert "MODEL_VERSION" not in os.environ


def test_a_request_in_flight_when_its_endpoint_is_deleted_finds_the_endpoint_gone(cloud: LocalCloud) -> None:
    s3, sm = cloud.client("s3"), cloud.client("sagemaker")
    slow = PROBE_PY.replace("    return body", "    import time; time.sleep(1.5); return body")
    s3.put_object(Bucket=BUCKET, Key="models/slow.tar.gz", Body=tar_files({"code/inference.py": slow}))
    sm.create_model(
        ModelName=f"{MODEL_PREFIX}-slow",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{BUCKET}/models/slow.tar.gz",
            "Environment": {**SERVING_ENV, "MODEL_VERSION": "slow"},
        },
    )
    endpoint = _endpoint(cloud, _config(cloud, {"slow": 1.0}))
    outcome: list[str] = []

    def call() -> None:
        try:
            _invoke(cloud, endpoint, {})
            outcome.append("answered")
        except ClientError as exc:
            outcome.append(exc.response["Error"]["Code"])

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.5)
    sm.delete_endpoint(EndpointName=endpoint)
    caller.join(30)
    assert outcome == ["ValidationError"]


def test_traffic_is_split_by_variant_weight_and_a_target_variant_is_honoured(cloud: LocalCloud) -> None:
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0, "v3": 3.0}))
    seen = [_invoke(cloud, endpoint, {"x": 1.0})[1] for _ in range(80)]
    assert 0.55 < seen.count("v3") / len(seen) < 0.93
    body, variant = _invoke(cloud, endpoint, {"x": 1.0}, TargetVariant="v1")
    assert (variant, body["model_version"]) == ("v1", "v1")


def test_an_exception_in_the_model_code_is_the_serving_containers_500_with_the_traceback_in_its_log(
    cloud: LocalCloud,
) -> None:
    # The scikit-learn container serves through sagemaker-containers' Flask worker: an exception from input_fn
    # (here one carrying status_code 400, which only sagemaker-inference-toolkit containers honour) is a 500.
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}))
    with pytest.raises(ClientError) as raised:
        _invoke(cloud, endpoint, {"y": 1.0})
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    assert "Internal Server Error" in error["OriginalMessage"]
    assert _metric_sum(cloud, endpoint, "v1", "Invocation5XXErrors") == 1.0
    logs, group = cloud.client("logs"), f"/aws/sagemaker/Endpoints/{endpoint}"
    [stream] = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert stream["logStreamName"].startswith("v1/i-")
    logged = [
        e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
    ]
    assert any("invalid request" in line for line in logged)


def test_a_missing_endpoint_is_a_validation_error(cloud: LocalCloud) -> None:
    with pytest.raises(ClientError) as raised:
        _invoke(cloud, "no-such-endpoint", {"x": 1.0})
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "Endpoint no-such-endpoint of account 123456789012 not found" in str(raised.value)


def test_an_endpoint_whose_model_cannot_load_is_failed_with_the_reason(cloud: LocalCloud) -> None:
    cloud.client("sagemaker").create_endpoint_config(
        EndpointConfigName=f"{MODEL_PREFIX}-broken",
        ProductionVariants=[{"VariantName": "b", "ModelName": f"{MODEL_PREFIX}-broken", "InstanceType": "ml.m5.large"}],
    )
    endpoint = _endpoint(cloud, f"{MODEL_PREFIX}-broken")
    described = cloud.client("sagemaker").describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "Failed"
    assert described["FailureReason"] == (
        "The primary container for production variant b did not pass the ping health check. "
        "Please check CloudWatch logs for this endpoint."
    )
    logs, group = cloud.client("logs"), f"/aws/sagemaker/Endpoints/{endpoint}"
    [stream] = logs.describe_log_streams(logGroupName=group)["logStreams"]
    logged = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
    assert any("No such file or directory" in e["message"] and "model/code" in e["message"] for e in logged)


def test_invocations_are_recorded_as_aws_sagemaker_metrics(cloud: LocalCloud) -> None:
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}))
    for _ in range(3):
        _invoke(cloud, endpoint, {"x": 1.0})
    assert _metric_sum(cloud, endpoint, "v1", "Invocations") == 3.0
    assert _metric_sum(cloud, endpoint, "v1", "Invocation5XXErrors") == 0.0
    assert _metric_sum(cloud, endpoint, "v1", "ModelLatency") > 0.0


def test_data_capture_is_written_as_sagemaker_writes_it(cloud: LocalCloud) -> None:
    config = _config(cloud, {"v1": 1.0}, capture=100)
    endpoint = _endpoint(cloud, config)
    _invoke(cloud, endpoint, {"x": 2.0})
    cloud.client("sagemaker-runtime").invoke_endpoint(EndpointName=endpoint, Body=b"1\n", ContentType="text/csv")
    local_sagemaker.flush_data_capture(endpoint)

    s3 = cloud.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"capture/{config}/")["Contents"]]
    hour = datetime.now(UTC).strftime("%Y/%m/%d/%H")
    assert all(k.startswith(f"capture/{config}/{endpoint}/v1/{hour}/") and k.endswith(".jsonl") for k in keys)
    lines = [
        json.loads(line) for key in keys for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()
    ]
    lines.sort(key=lambda line: line["captureData"]["endpointInput"]["encoding"], reverse=True)
    assert len(lines) == 2
    first = lines[0]["captureData"]
    assert first["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": json.dumps({"x": 2.0}),
        "encoding": "JSON",
    }
    assert json.loads(first["endpointOutput"]["data"])["model_version"] == "v1"
    assert lines[1]["captureData"]["endpointInput"]["encoding"] == "CSV"
    assert lines[0]["eventVersion"] == "0" and lines[0]["eventMetadata"]["inferenceTime"].endswith("Z")
    summary = cloud.client("sagemaker").describe_endpoint(EndpointName=endpoint)["DataCaptureConfig"]
    assert summary["CurrentSamplingPercentage"] == 100 and summary["CaptureStatus"] == "Started"


def test_data_capture_samples_at_the_configured_percentage(cloud: LocalCloud) -> None:
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}, capture=0))
    _invoke(cloud, endpoint, {"x": 2.0})
    assert local_sagemaker.flush_data_capture(endpoint) == 0


# ---------------------------------------------------------------- faults


def test_injected_faults_act_like_broken_slow_throttled_and_vanished_endpoints(cloud: LocalCloud) -> None:
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0, "v2": 1.0}))

    with local_sagemaker.fail_endpoint(endpoint, variant="v2", status_code=503):
        outcomes = set()
        for _ in range(40):
            try:
                outcomes.add(_invoke(cloud, endpoint, {"x": 1.0})[1])
            except ClientError as exc:
                outcomes.add(f"{exc.response['Error']['Code']}:{exc.response['OriginalStatusCode']}")
        assert outcomes == {"v1", "ModelError:503"}
    assert _metric_sum(cloud, endpoint, "v2", "Invocation5XXErrors") > 0
    assert _invoke(cloud, endpoint, {"x": 1.0}, TargetVariant="v2")[1] == "v2"

    with local_sagemaker.throttle_endpoint(endpoint), pytest.raises(ClientError, match="ThrottlingException"):
        _invoke(cloud, endpoint, {"x": 1.0})

    with local_sagemaker.hide_endpoint(endpoint), pytest.raises(ClientError, match="not found"):
        _invoke(cloud, endpoint, {"x": 1.0})

    impatient = cloud.session.client(
        "sagemaker-runtime",
        endpoint_url=cloud.endpoint_url,
        config=Config(read_timeout=0.3, retries={"total_max_attempts": 1}),
    )
    with local_sagemaker.slow_endpoint(endpoint, seconds=1.0), pytest.raises(ReadTimeoutError):
        impatient.invoke_endpoint(EndpointName=endpoint, Body=b'{"x": 1}', ContentType="application/json")
    assert _invoke(cloud, endpoint, {"x": 1.0})[0]["predictions"]


# ---------------------------------------------------------------- blue/green updates


def _blue_green(kind: str, *, alarms: tuple[str, ...] = (), wait: int = 100, **routing: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": kind, "WaitIntervalInSeconds": wait, **routing},
            "TerminationWaitInSeconds": 50,
            "MaximumExecutionTimeoutInSeconds": 3600,
        }
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def _wait_in_service(cloud: LocalCloud, endpoint: str) -> dict[str, Any]:
    sm = cloud.client("sagemaker")
    _wait_until(lambda: sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] != "Updating")
    return dict(sm.describe_endpoint(EndpointName=endpoint))


def _pending_weight(cloud: LocalCloud, endpoint: str) -> float | None:
    pending = cloud.client("sagemaker").describe_endpoint(EndpointName=endpoint).get("PendingDeploymentSummary")
    if not pending:
        return None
    variant = pending["ProductionVariants"][0]
    return float(variant["CurrentWeight"]) if variant["VariantStatus"][0]["Status"] == "Baking" else None


def test_a_canary_update_shifts_a_share_then_all_traffic_to_the_new_fleet(cloud: LocalCloud) -> None:
    sm = cloud.client("sagemaker")
    # Blue/green guardrails keep the variant name; a 25 % canary of 4 instances is one instance.
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}, count=4, variant_name="live"))
    target = _config(cloud, {"v2": 1.0}, count=4, variant_name="live")
    deployment_events = _event_queue(cloud, "SageMaker Endpoint Deployment State Change")
    endpoint_events = _event_queue(cloud, "SageMaker Endpoint State Change")

    sm.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=target,
        DeploymentConfig=_blue_green("CANARY", wait=250, CanarySize={"Type": "CAPACITY_PERCENT", "Value": 25}),
    )
    _wait_until(lambda: _pending_weight(cloud, endpoint) == 0.25)
    during = sm.describe_endpoint(EndpointName=endpoint)
    assert during["EndpointStatus"] == "Updating"
    assert during["EndpointConfigName"] != target
    pending = during["PendingDeploymentSummary"]
    assert pending["EndpointConfigName"] == target
    assert pending["ProductionVariants"][0]["CurrentWeight"] == 0.25
    assert {_invoke(cloud, endpoint, {"x": 1.0})[0]["model_version"] for _ in range(40)} == {"v1", "v2"}
    with pytest.raises(ClientError, match="in-progress"):
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=target)

    done = _wait_in_service(cloud, endpoint)
    assert done["EndpointStatus"] == "InService"
    assert done["EndpointConfigName"] == target
    assert [v["VariantName"] for v in done["ProductionVariants"]] == ["live"]
    assert "PendingDeploymentSummary" not in done and "FailureReason" not in done
    assert {_invoke(cloud, endpoint, {"x": 1.0})[0]["model_version"] for _ in range(10)} == {"v2"}

    def received(queue: str) -> list[dict[str, Any]]:
        messages = cloud.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        details = [json.loads(m["Body"])["detail"] for m in messages]
        return [d for d in details if d["EndpointName"] == endpoint]

    steps = [d["PendingDeploymentSummary"]["ProductionVariants"][0] for d in received(deployment_events)]
    assert [(s["VariantStatus"][0]["Status"], s["CurrentWeight"]) for s in steps] == [
        ("Creating", 0.0),
        ("ActivatingTraffic", 0.25),
        ("Baking", 0.25),
        ("ActivatingTraffic", 1.0),
        ("Baking", 1.0),
        ("Baking", 1.0),
    ]
    assert "canary capacity of 1 instance(s)" in steps[1]["VariantStatus"][0]["StatusMessage"]
    assert "TerminationWaitInSeconds" in steps[-1]["VariantStatus"][0]["StatusMessage"]
    assert [(d["EndpointStatus"], d["EndpointConfigName"]) for d in received(endpoint_events)] == [
        ("UPDATING", during["EndpointConfigName"]),
        ("IN_SERVICE", target),
    ]


@pytest.mark.parametrize(
    ("count", "routing", "refusal"),
    [
        # dev's old setting (defect 4): a 20 % canary of one instance is the whole fleet.
        (1, {"CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}}, "at most 50%"),
        (2, {"CanarySize": {"Type": "INSTANCE_COUNT", "Value": 2}}, "at most 50%"),
        (4, {"CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 60}}, "at most 50%"),
        (1, {}, "CanarySize is required"),
    ],
)
def test_a_canary_larger_than_half_the_variants_instances_is_refused(
    cloud: LocalCloud, count: int, routing: dict[str, Any], refusal: str
) -> None:
    sm = cloud.client("sagemaker")
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}, count=count, variant_name="live"))
    target = _config(cloud, {"v2": 1.0}, count=count, variant_name="live")
    with pytest.raises(ClientError, match=refusal) as refused:
        sm.update_endpoint(
            EndpointName=endpoint, EndpointConfigName=target, DeploymentConfig=_blue_green("CANARY", **routing)
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"


def test_a_linear_step_outside_ten_to_fifty_percent_of_the_instances_is_refused(cloud: LocalCloud) -> None:
    sm = cloud.client("sagemaker")
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}, count=2, variant_name="live"))
    target = _config(cloud, {"v2": 1.0}, count=2, variant_name="live")
    for size in ({"Type": "CAPACITY_PERCENT", "Value": 5}, {"Type": "INSTANCE_COUNT", "Value": 2}):
        with pytest.raises(ClientError, match="10-50%"):
            sm.update_endpoint(
                EndpointName=endpoint,
                EndpointConfigName=target,
                DeploymentConfig=_blue_green("LINEAR", LinearStepSize=size),
            )


def test_guardrails_refuse_a_new_variant_name_and_a_rollback_alarm_that_does_not_exist(cloud: LocalCloud) -> None:
    sm = cloud.client("sagemaker")
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}, count=2, variant_name="live"))
    canary = {"CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}
    with pytest.raises(ClientError, match="must keep the endpoint's variant names"):
        sm.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=_config(cloud, {"v2": 1.0}, count=2),
            DeploymentConfig=_blue_green("CANARY", **canary),
        )
    with pytest.raises(ClientError, match="do not exist: no-such-alarm"):
        sm.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=_config(cloud, {"v2": 1.0}, count=2, variant_name="live"),
            DeploymentConfig=_blue_green("CANARY", alarms=("no-such-alarm",), **canary),
        )


def test_deployment_config_limits_come_from_the_service_model(cloud: LocalCloud) -> None:
    # botocore checks `min` before sending; a caller that does not (another SDK, raw HTTP) meets the server's check.
    sm = cloud.session.client("sagemaker", endpoint_url=cloud.endpoint_url, config=Config(parameter_validation=False))
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}, count=2, variant_name="live"))
    deployment = _blue_green("ALL_AT_ONCE")
    deployment["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] = 300
    with pytest.raises(ClientError) as refused:
        sm.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=_config(cloud, {"v2": 1.0}, count=2, variant_name="live"),
            DeploymentConfig=deployment,
        )
    assert refused.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "1 validation error detected: Value '300' at "
        "'deploymentConfig.blueGreenUpdatePolicy.maximumExecutionTimeoutInSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 600",
    }


def test_an_alarm_during_the_bake_rolls_the_update_back(cloud: LocalCloud) -> None:
    sm, cw = cloud.client("sagemaker"), cloud.client("cloudwatch")
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}, count=2, variant_name="live"))
    original = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    alarm = f"{endpoint}-5xx"
    cw.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "live"}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    sm.update_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=_config(cloud, {"v2": 1.0}, count=2, variant_name="live"),
        DeploymentConfig=_blue_green(
            "CANARY", alarms=(alarm,), wait=300, CanarySize={"Type": "INSTANCE_COUNT", "Value": 1}
        ),
    )
    _wait_until(lambda: _pending_weight(cloud, endpoint) == 0.5)
    with local_sagemaker.fail_endpoint(endpoint, variant="live"):
        for _ in range(5):
            with contextlib.suppress(ClientError):
                _invoke(cloud, endpoint, {"x": 1.0}, TargetVariant="live")

    done = _wait_in_service(cloud, endpoint)
    assert done["EndpointStatus"] == "InService"
    assert done["EndpointConfigName"] == original
    assert [v["VariantName"] for v in done["ProductionVariants"]] == ["live"]
    assert alarm in done["FailureReason"]
    assert local_sagemaker.endpoint_traffic(endpoint) == {"live": 1.0}
    assert _invoke(cloud, endpoint, {"x": 1.0})[0]["model_version"] == "v1"


def test_an_update_that_outlives_its_maximum_execution_time_rolls_back(cloud: LocalCloud) -> None:
    sm = cloud.client("sagemaker")
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}, count=2, variant_name="live"))
    config = _config(cloud, {"v3": 1.0}, count=2, variant_name="live")
    deployment = _blue_green("LINEAR", wait=1000, LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": 50})
    deployment["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] = 600
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config, DeploymentConfig=deployment)

    done = _wait_in_service(cloud, endpoint)
    assert done["EndpointConfigName"] != config
    assert "MaximumExecutionTimeoutInSeconds" in done["FailureReason"]


def test_an_update_without_deployment_config_replaces_the_fleet_at_once(cloud: LocalCloud) -> None:
    sm = cloud.client("sagemaker")
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0}))
    target = _config(cloud, {"v3": 1.0})
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=target)
    assert _wait_in_service(cloud, endpoint)["EndpointConfigName"] == target
    assert _invoke(cloud, endpoint, {"x": 1.0})[0]["model_version"] == "v3"


def test_updating_a_missing_endpoint_is_rejected(cloud: LocalCloud) -> None:
    with pytest.raises(ClientError, match="Could not find endpoint"):
        cloud.client("sagemaker").update_endpoint(EndpointName="nope", EndpointConfigName="nope")


# ---------------------------------------------------------------- weights and capacities


def test_a_weights_update_moves_traffic_on_the_running_fleets_updating_then_in_service(cloud: LocalCloud) -> None:
    sm = cloud.client("sagemaker")
    config = _config(cloud, {"v2": 1.0, "v1": 0.0})
    endpoint = _endpoint(cloud, config)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert [(v["VariantName"], v["CurrentWeight"]) for v in described["ProductionVariants"]] == [
        ("v2", 1.0),
        ("v1", 0.0),
    ]
    assert {_invoke(cloud, endpoint, {"x": 1.0})[1] for _ in range(20)} == {"v2"}
    configs = {c["EndpointConfigName"] for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]}
    deployment_events = _event_queue(cloud, "SageMaker Endpoint Deployment State Change")

    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "v2", "DesiredWeight": 0.0},
            {"VariantName": "v1", "DesiredWeight": 1.0},
        ],
    )
    # ProductionVariantSummary: while Updating, the desired and current values differ.
    during = sm.describe_endpoint(EndpointName=endpoint)
    assert during["EndpointStatus"] == "Updating"
    assert [(v["VariantName"], v["DesiredWeight"], v["CurrentWeight"]) for v in during["ProductionVariants"]] == [
        ("v2", 0.0, 1.0),
        ("v1", 1.0, 0.0),
    ]
    with pytest.raises(ClientError, match="in-progress"):
        sm.update_endpoint_weights_and_capacities(
            EndpointName=endpoint, DesiredWeightsAndCapacities=[{"VariantName": "v2", "DesiredWeight": 1.0}]
        )

    done = _wait_in_service(cloud, endpoint)
    assert done["EndpointConfigName"] == config
    assert [(v["VariantName"], v["CurrentWeight"], v["CurrentInstanceCount"]) for v in done["ProductionVariants"]] == [
        ("v2", 0.0, 1),
        ("v1", 1.0, 1),
    ]
    assert {_invoke(cloud, endpoint, {"x": 1.0})[1] for _ in range(20)} == {"v1"}
    after = {c["EndpointConfigName"] for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]}
    assert after == configs, "no endpoint config is created"
    messages = cloud.client("sqs").receive_message(QueueUrl=deployment_events, MaxNumberOfMessages=10)
    assert not [m for m in messages.get("Messages", []) if endpoint in m["Body"]], "no new fleet is deployed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ([{"VariantName": "v9", "DesiredWeight": 1.0}], "not present"),
        (
            [{"VariantName": "v1", "DesiredInstanceCount": 2}, {"VariantName": "v2", "DesiredInstanceCount": 2}],
            "capacity of one variant",
        ),
        ([{"VariantName": "v1", "DesiredInstanceCount": 0}], "inference components"),
        ([{"VariantName": "v1"}], "DesiredWeight or DesiredInstanceCount"),
    ],
)
def test_a_weights_update_is_refused_where_sagemaker_refuses_it(
    cloud: LocalCloud, change: list[dict[str, Any]], message: str
) -> None:
    sm = cloud.client("sagemaker")
    endpoint = _endpoint(cloud, _config(cloud, {"v1": 1.0, "v2": 0.0}))
    with pytest.raises(ClientError, match=message) as refused:
        sm.update_endpoint_weights_and_capacities(EndpointName=endpoint, DesiredWeightsAndCapacities=change)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"


@pytest.mark.parametrize(
    ("routing", "plan"),
    [
        ({"Type": "ALL_AT_ONCE"}, [1.0]),
        # Traffic moves in whole instances of the 4: 10 % is one instance, 40 % two.
        ({"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}, [0.25, 1.0]),
        ({"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}, [0.25, 1.0]),
        ({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40}}, [0.5, 1.0]),
        ({"Type": "LINEAR", "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 1}}, [0.25, 0.5, 0.75, 1.0]),
    ],
)
def test_traffic_shifts_follow_the_routing_configuration(routing: dict[str, Any], plan: list[float]) -> None:
    fleets = [type("F", (), {"instance_count": 4})()]
    assert _shift_plan(routing, fleets) == pytest.approx(plan)


# ---------------------------------------------------------------- training


def _training_job(cloud: LocalCloud, bundle_extras: dict[str, str] | None = None, **hyperparameters: str) -> str:
    s3 = cloud.client("s3")
    bundle = f"bundles/{uuid.uuid4().hex[:8]}.tar.gz"
    s3.put_object(
        Bucket=BUCKET,
        Key=bundle,
        Body=tar_files(
            {
                "training/train.py": TRAIN_PY,
                "training/serve.py": INFERENCE_PY.replace("from helpers import scale", "scale = float"),
                **(bundle_extras or {}),
            }
        ),
    )
    for key in ("curated/dt=2026-01-01/part-0.parquet", "curated/dt=2026-01-02/part-0.parquet"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"rows")
    manifest = [{"prefix": f"s3://{BUCKET}/curated/"}, "dt=2026-01-02/part-0.parquet"]
    s3.put_object(Bucket=BUCKET, Key="manifests/train.manifest", Body=json.dumps(manifest).encode())
    name = f"job-{uuid.uuid4().hex[:8]}"
    cloud.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "validation:auc", "Regex": "validation:auc=([0-9.]+)"}],
        },
        RoleArn=ROLE,
        HyperParameters={
            "sagemaker_program": json.dumps("training/train.py"),
            "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{bundle}"),
            **hyperparameters,
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/curated/"}},
            },
            {
                "ChannelName": "listed",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "ManifestFile",
                        "S3Uri": f"s3://{BUCKET}/manifests/train.manifest",
                    }
                },
            },
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/jobs"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        Environment={"STAGE": "test"},
    )
    return name


def _finished(cloud: LocalCloud, name: str) -> dict[str, Any]:
    sm = cloud.client("sagemaker")
    local_sagemaker.wait_for_training_job(sm.describe_training_job(TrainingJobName=name)["TrainingJobArn"], 60)
    return dict(sm.describe_training_job(TrainingJobName=name))


def test_a_training_job_runs_the_entry_point_and_uploads_its_model(cloud: LocalCloud) -> None:
    name = _training_job(cloud, weight="0.5", params='{"C": 1.0, "a": "b"}')
    assert cloud.client("sagemaker").describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress"

    job = _finished(cloud, name)

    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert job["FinalMetricDataList"][0]["MetricName"] == "validation:auc"
    assert job["FinalMetricDataList"][0]["Value"] == pytest.approx(0.87)
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{BUCKET}/jobs/{name}/output/model.tar.gz"
    s3 = cloud.client("s3")
    model = _untar(s3.get_object(Bucket=BUCKET, Key=f"jobs/{name}/output/model.tar.gz")["Body"].read())
    trained = json.loads(model["model.json"])
    assert trained["w"] == 0.5
    assert trained["rows"] == [
        "dt=2026-01-01/part-0.parquet",
        "dt=2026-01-02/part-0.parquet",
        "listed/dt=2026-01-02/part-0.parquet",
    ]
    # sagemaker-training-toolkit renders dict hyperparameters as k=v pairs on the command line.
    assert trained["params"] == "C=1.0,a=b"
    env = json.loads(
        _untar(s3.get_object(Bucket=BUCKET, Key=f"jobs/{name}/output/output.tar.gz")["Body"].read())["env.json"]
    )
    assert json.loads(env["SM_HPS"]) == {"weight": 0.5, "params": {"C": 1.0, "a": "b"}}
    assert json.loads(env["SM_CHANNELS"]) == ["listed", "train"]


def test_a_trained_model_can_be_hosted(cloud: LocalCloud) -> None:
    name = _training_job(cloud, weight="2.0")
    artifact = _finished(cloud, name)["ModelArtifacts"]["S3ModelArtifacts"]
    sm = cloud.client("sagemaker")
    sm.create_model(
        ModelName=f"model-{name}",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": artifact,
            "Environment": {**SERVING_ENV, "MODEL_VERSION": name},
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "trained", "ModelName": f"model-{name}", "InstanceType": "ml.m5.large"}],
    )
    endpoint = _endpoint(cloud, name)
    assert _invoke(cloud, endpoint, {"x": 0.25})[0]["predictions"] == [{"probability": 0.5, "label": 1}]


def _job_log(cloud: LocalCloud, job_name: str) -> list[str]:
    logs = cloud.client("logs")
    [stream] = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{job_name}/"
    )["logStreams"]
    logged = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreamName"])
    return [e["message"] for e in logged["events"]]


def test_a_failing_script_fails_the_job_as_the_training_toolkit_reports_it(cloud: LocalCloud) -> None:
    job = _finished(cloud, _training_job(cloud, weight="1", fail="yes"))
    assert job["TrainingJobStatus"] == "Failed"
    # The scikit-learn container runs the script without capturing stderr: the toolkit's report has an empty
    # ErrorMessage, and the script's own words are in the job's log.
    assert job["FailureReason"].startswith('AlgorithmError: ExecuteUserScriptError:\nExitCode 3\nErrorMessage ""')
    assert job["FailureReason"].endswith('training/train.py --fail yes --weight 1"')
    assert "ModelArtifacts" not in job
    assert "training blew up: no rows" in _job_log(cloud, job["TrainingJobName"])


def test_a_script_importing_a_package_the_image_lacks_fails_its_job_with_that_error(cloud: LocalCloud) -> None:
    # The project's virtualenv has matplotlib; the scikit-learn 1.9-0 image does not.
    job = _finished(cloud, _training_job(cloud, weight="1", plot="yes"))
    assert job["TrainingJobStatus"] == "Failed"
    assert "ExitCode 1" in job["FailureReason"]
    assert "ModuleNotFoundError: No module named 'matplotlib'" in _job_log(cloud, job["TrainingJobName"])


def test_a_requirements_txt_in_the_bundle_is_installed_by_the_toolkit_before_the_script(cloud: LocalCloud) -> None:
    # A pin the image already satisfies: pip settles it without the network, as the toolkit runs it.
    name = _training_job(cloud, {"requirements.txt": "joblib==1.5.3\n"}, weight="1")
    job = _finished(cloud, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    log = "\n".join(_job_log(cloud, name))
    assert "Installing dependencies from requirements.txt" in log
    assert "Requirement already satisfied: joblib==1.5.3" in log


def test_a_training_job_sees_only_its_container_environment(cloud: LocalCloud) -> None:
    name = _training_job(cloud, weight="1")
    job = _finished(cloud, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    env = json.loads(
        _untar(cloud.client("s3").get_object(Bucket=BUCKET, Key=f"jobs/{name}/output/output.tar.gz")["Body"].read())[
            "env.json"
        ]
    )
    assert env["python"].startswith("3.12.")
    assert ".localcloud" not in env["executable"] and "/.venv/" not in env["executable"]
    assert "PYTEST_CURRENT_TEST" not in env and "VIRTUAL_ENV" not in env
    assert (env["STAGE"], env["TRAINING_JOB_NAME"], env["AWS_REGION"]) == ("test", name, "us-east-1")
    assert env["AWS_ENDPOINT_URL"] == cloud.endpoint_url
    assert env["AWS_ACCESS_KEY_ID"] != "localcloud" and env["AWS_SESSION_TOKEN"]
    as_job = cloud.session.client(
        "sts",
        endpoint_url=cloud.endpoint_url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    )
    assert as_job.get_caller_identity()["Arn"] == f"arn:aws:sts::123456789012:assumed-role/sagemaker/{name}"
    assert json.loads(env["SM_HOSTS"]) == ["localhost"]


def test_a_stopped_training_job_ends_stopped(cloud: LocalCloud) -> None:
    sm = cloud.client("sagemaker")
    name = _training_job(cloud, weight="1", sleep="30")
    _wait_until(lambda: sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"] == "Training")
    sm.stop_training_job(TrainingJobName=name)
    job = _finished(cloud, name)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")


def test_the_projects_training_bundle_trains_in_the_image_environment_and_its_model_serves_there(
    cloud: LocalCloud,
) -> None:
    contract = load_contract("churn")
    frame = generate_churn(4000, seed=5, start=datetime(2025, 1, 1, tzinfo=UTC), months=12)
    s3, sm = cloud.client("s3"), cloud.client("sagemaker")
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    s3.put_object(Bucket=BUCKET, Key="bundle-run/curated/part-0.parquet", Body=parquet.getvalue())
    s3.put_object(Bucket=BUCKET, Key="bundle-run/sourcedir.tar.gz", Body=build_source_tarball(REPO_ROOT))
    name = f"bundle-{uuid.uuid4().hex[:8]}"
    sm.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        HyperParameters={
            "sagemaker_program": ENTRY_POINT,
            "sagemaker_submit_directory": f"s3://{BUCKET}/bundle-run/sourcedir.tar.gz",
            "dataset": "churn",
            "min_slice_rows": "50",
            "latency_samples": "10",
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/bundle-run/curated/"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/bundle-run/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    job = _finished(cloud, name)
    assert job["TrainingJobStatus"] == "Completed", "\n".join(_job_log(cloud, name)[-30:])
    model = _untar(s3.get_object(Bucket=BUCKET, Key=f"bundle-run/output/{name}/output/model.tar.gz")["Body"].read())
    assert {"model.joblib", "code/inference.py", "plots/roc.svg"} <= set(model)
    assert json.loads(model["model_metadata.json"])["packages"]["scikit-learn"] == "1.9.0"

    sm.create_model(
        ModelName=f"model-{name}",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"],
            "Environment": {**SERVING_ENV, "MODEL_VERSION": name},
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "trained", "ModelName": f"model-{name}", "InstanceType": "ml.m5.large"}],
    )
    record = {feature: _json_value(frame.iloc[0][feature]) for feature in contract.feature_names}
    answer, _ = _invoke(cloud, _endpoint(cloud, name), record)
    assert answer["model_version"] == name
    assert 0.0 <= answer["predictions"][0]["probability"] <= 1.0


def _json_value(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------- registry


def _event_queue(cloud: LocalCloud, detail_type: str) -> str:
    return queue_for_events(cloud, {"source": ["aws.sagemaker"], "detail-type": [detail_type]})


def test_the_model_registry_defaults_keeps_fields_deletes_and_emits_state_changes(cloud: LocalCloud) -> None:
    sm, sqs = cloud.client("sagemaker"), cloud.client("sqs")
    queue = _event_queue(cloud, "SageMaker Model Package State Change")
    group = f"group-{uuid.uuid4().hex[:8]}"
    sm.create_model_package_group(ModelPackageGroupName=group)
    arn = sm.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription="candidate",
        CustomerMetadataProperties={"model_version": "v7"},
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/v1.tar.gz"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "PendingManualApproval"

    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="gate passed")
    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"deployed": "true"})

    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "gate passed"
    assert described["CustomerMetadataProperties"] == {"model_version": "v7", "deployed": "true"}

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    events = [json.loads(m["Body"]) for m in messages]
    assert [e["detail"]["ModelApprovalStatus"] for e in events] == ["PendingManualApproval", "Approved", "Approved"]
    assert [e["detail"].get("UpdatedModelPackageFields") for e in events] == [
        None,
        ["ModelApprovalStatus", "ApprovalDescription"],
        ["CustomerMetadataProperties"],
    ]
    assert events[1]["resources"] == [arn]
    assert events[1]["detail"]["ModelPackageGroupName"] == group
    assert events[1]["detail"]["ModelPackageArn"] == arn

    with pytest.raises(ClientError, match="model packages"):
        sm.delete_model_package_group(ModelPackageGroupName=group)
    sm.delete_model_package(ModelPackageName=arn)
    with pytest.raises(ClientError):
        sm.describe_model_package(ModelPackageName=arn)
    sm.delete_model_package_group(ModelPackageGroupName=group)
    assert group not in [
        g["ModelPackageGroupName"] for g in sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
    ]
