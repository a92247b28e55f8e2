"""Each statement the loop needs is really needed: without it, the step that uses it fails with AccessDenied
naming the action (issue 16, "Done when").

One deployment of the dev stage is reused: a statement is removed from the policy as deployed (a role's inline
policy, a function's, topic's or key's resource policy), only the step that needs it is driven, and the
statement is restored. Every role that acts in the loop has a sample (each function's execution role, each
workflow's role, the training job's and the model's roles, the schedule's rule role), and so does every service
principal a resource policy lets in (EventBridge and API Gateway invoking functions, CloudWatch publishing to the
encrypted topic); `test_every_role_and_service_principal_that_acts_in_the_loop_is_sampled` fails when a new one
appears without a sample. Where AWS's answer does not name the action (an endpoint's model download, API Gateway's
500), the test asserts AWS's answer.
"""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from functions.shared.contract import load_contract
from functions.shared.serving_manifest import ServingManifest, manifest_key
from mlloop.archives import tar_gz
from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.localcloud_support import signed_request

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


def _grants(statement: dict[str, Any], action: str, on: str) -> bool:
    actions = statement.get("Action", [])
    resources = statement.get("Resource", [])
    named = action.lower() in [a.lower() for a in ([actions] if isinstance(actions, str) else actions)]
    return named and on in json.dumps(resources)


@contextmanager
def without_role_statement(cloud: LocalCloud, role_arn: str, action: str, *, on: str = "") -> Iterator[None]:
    """The role's inline policies as deployed, minus the one statement that grants `action` (on a resource
    whose ARN contains `on`)."""
    iam = cloud.client("iam")
    role = role_arn.rsplit("/", 1)[-1]
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        kept = [s for s in document["Statement"] if not _grants(s, action, on)]
        if len(kept) == len(document["Statement"]) - 1:
            if kept:
                iam.put_role_policy(
                    RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document | {"Statement": kept})
                )
            else:  # PutRolePolicy refuses an empty Statement list
                iam.delete_role_policy(RoleName=role, PolicyName=name)
            try:
                yield
            finally:
                iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
            return
    raise AssertionError(f"{role} has no single statement granting {action}")


def _function_role(cloud: LocalCloud, deployment: Deployment, function: str) -> tuple[str, str]:
    name = deployment.physical_id(function)
    return name, str(cloud.client("lambda").get_function(FunctionName=name)["Configuration"]["Role"])


def _invoke(cloud: LocalCloud, function: str, event: dict[str, Any]) -> dict[str, Any]:
    answer = cloud.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    payload: dict[str, Any] = json.loads(answer["Payload"].read())
    assert answer.get("FunctionError") == "Unhandled", payload
    return payload


def _denied(text: str, action: str) -> bool:
    """AWS's refusal naming the action (SNS calls its AccessDenied "AuthorizationError")."""
    return f"is not authorized to perform: {action}" in text


Step = Callable[[LocalCloud, Deployment], AbstractContextManager[dict[str, Any]]]


@contextmanager
def _data_gate_run(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    """A run whose gate reads the (missing) latest profile: without ListBucket, S3 refuses to say it is missing."""
    bucket = deployment.physical_id("ArtifactsBucket")
    run_id = f"statement-{uuid.uuid4().hex[:8]}"
    key = f"training/runs/{run_id}/manifest.json"
    s3 = cloud.client("s3")
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"data_version": "v", "objects": []}))
    s3.delete_object(Bucket=bucket, Key="training/latest-data-profile.json")
    yield {"run_id": run_id, "manifest_key": key}


@contextmanager
def _before_first_deploy(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    """The drift detector's schedule before any deploy: the serving manifest is missing (restored afterwards)."""
    bucket = deployment.physical_id("ArtifactsBucket")
    function = cloud.client("lambda").get_function(FunctionName=deployment.physical_id("DriftDetectorFunction"))
    key = manifest_key(function["Configuration"]["Environment"]["Variables"]["ENDPOINT_NAME"])
    s3 = cloud.client("s3")
    try:
        saved: bytes | None = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        saved = None
    s3.delete_object(Bucket=bucket, Key=key)
    try:
        yield {}
    finally:
        if saved is not None:
            s3.put_object(Bucket=bucket, Key=key, Body=saved)


@contextmanager
def _failed_run(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    yield {"outcome": "failed", "run_id": "statement-test", "state": {}}


def _run_id() -> str:
    return f"statement-{uuid.uuid4().hex[:8]}"


@contextmanager
def _raw_object_created(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    """S3's "Object Created" event for a raw file, as the raw bucket's rule delivers it."""
    bucket = deployment.physical_id("RawBucket")
    yield {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": deployment.account_id,
        "time": "2026-12-01T00:00:00Z",
        "region": deployment.region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": f"churn/{_run_id()}.csv", "size": 10, "etag": "0" * 32},
            "request-id": "statement-test",
            "requester": deployment.account_id,
            "reason": "PutObject",
        },
    }


@contextmanager
def _training_run(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    yield {"run_id": _run_id(), "trigger": {"kind": "manual", "requested_by": "statement-test"}}


@contextmanager
def _trained_candidate(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    run_id, bucket = _run_id(), deployment.physical_id("ArtifactsBucket")
    yield {"run_id": run_id, "model_artifacts_uri": f"s3://{bucket}/training/runs/{run_id}/output/model.tar.gz"}


@contextmanager
def _promoted_candidate(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    run_id, bucket = _run_id(), deployment.physical_id("ArtifactsBucket")
    run = f"s3://{bucket}/training/runs/{run_id}"
    yield {
        "run_id": run_id,
        "trigger": {"kind": "manual", "requested_by": "statement-test"},
        "data_version": "statement-test",
        "manifest_uri": f"{run}/manifest.json",
        "training_job_name": f"churn-{run_id}",
        "model_data_url": f"{run}/output/model.tar.gz",
        "evaluation": {"promote": True, "metrics": {}, "reasons": []},
    }


@contextmanager
def _scheduled_trigger(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    rule = deployment.physical_id("ScheduleRule")
    yield {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": deployment.account_id,
        "time": "2026-12-01T00:00:00Z",
        "region": deployment.region,
        "resources": [f"arn:aws:events:{deployment.region}:{deployment.account_id}:rule/{rule}"],
        "detail": {},
    }


@contextmanager
def _quality_schedule(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    yield {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


@contextmanager
def _batch_plan_before_first_deploy(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    with _before_first_deploy(cloud, deployment):
        yield {"action": "plan", "partition_date": "2026-12-01"}


@contextmanager
def _approved_package(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    group = deployment.physical_id("ModelPackageGroup")
    arn = f"arn:aws:sagemaker:{deployment.region}:{deployment.account_id}:model-package/{group}/999"
    yield {"action": "start", "event_id": _run_id(), "model_package_arn": arn}


def _split_range(bucket: str, key: str) -> dict[str, Any]:
    """The split state machine's input for one range of a raw object (functions/ingest/service.py)."""
    return {
        "source": {"bucket": bucket, "key": key, "version_id": None},
        "started_at": "2026-12-01T00:00:00+00:00",
        "header_end": 4,
        "range_count": 1,
        "ranges": [{"index": 0, "start": 4, "end": 8, "first_line": 2}],
    }


@contextmanager
def _split_range_step(cloud: LocalCloud, deployment: Deployment) -> Iterator[dict[str, Any]]:
    """A split file's range step, on a raw object that exists; the range leaves its outcome in quarantine."""
    key = f"churn/{_run_id()}.csv"
    cloud.client("s3").put_object(Bucket=deployment.physical_id("RawBucket"), Key=key, Body=b"a,b\n1,2\n")
    split = _split_range(deployment.physical_id("RawBucket"), key)
    shared = {k: split[k] for k in ("source", "header_end", "started_at")}
    yield {"step": "range", "range": split["ranges"][0], **shared}


@dataclass(frozen=True)
class FunctionSample:
    """A function's needed statement (granting `action` on a resource whose ARN holds `on`), and the step that
    needs it. `shown` is the action AWS names when the statement grants several and another is called first."""

    function: str
    action: str
    on: str
    step: Step
    shown: str = ""


FUNCTION_SAMPLES = {
    "ingest: PutObject on quarantine": FunctionSample(
        "IngestFunction", "s3:PutObject", "-quarantine-", _raw_object_created
    ),
    "prepare data: ListBucketVersions": FunctionSample(
        "PrepareTrainingDataFunction", "s3:ListBucketVersions", "curated", _training_run
    ),
    "data gate: ListBucket": FunctionSample("CheckDataGateFunction", "s3:ListBucket", "artifacts", _data_gate_run),
    "evaluate: GetObject": FunctionSample("EvaluateCandidateFunction", "s3:GetObject", "artifacts", _trained_candidate),
    "register: ListModelPackages": FunctionSample(
        "RegisterModelFunction", "sagemaker:ListModelPackages", "", _promoted_candidate
    ),
    "training notifier: Publish": FunctionSample(
        "NotifyTrainingOutcomeFunction", "sns:Publish", "", _failed_run, shown="SNS:Publish"
    ),
    "start training: DescribeExecution": FunctionSample(
        "StartTrainingFunction", "states:DescribeExecution", "", _scheduled_trigger
    ),
    "drift detector: ListBucket": FunctionSample(
        "DriftDetectorFunction", "s3:ListBucket", "artifacts", _before_first_deploy
    ),
    "label quality: ListBucket on curated": FunctionSample(
        "LabelQualityFunction", "s3:ListBucket", "curated", _quality_schedule
    ),
    "batch score: ListBucket on artifacts": FunctionSample(
        "BatchScoreFunction", "s3:ListBucket", "artifacts", _batch_plan_before_first_deploy
    ),
    "ingest range: PutObject on quarantine": FunctionSample(
        "IngestRangeFunction", "s3:PutObject", "-quarantine-", _split_range_step
    ),
    "deploy: DescribeModelPackage": FunctionSample(
        "CanaryEndpoint/DeployFunction", "sagemaker:DescribeModelPackage", "", _approved_package
    ),
}


@pytest.mark.parametrize("sample", FUNCTION_SAMPLES.values(), ids=FUNCTION_SAMPLES.keys())
def test_a_function_fails_at_its_step_without_the_statement(
    local_cloud: LocalCloud, dev_stage: Deployment, sample: FunctionSample
) -> None:
    name, role = _function_role(local_cloud, dev_stage, sample.function)

    with (
        sample.step(local_cloud, dev_stage) as payload,
        without_role_statement(local_cloud, role, sample.action, on=sample.on),
    ):
        error = _invoke(local_cloud, name, payload)

    assert _denied(error["errorMessage"], sample.shown or sample.action), error["errorMessage"]


def test_a_failed_asynchronous_invocation_cannot_reach_the_dead_letter_queue_without_the_statement(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """Lambda sends the failed event to the dead-letter queue with the function's role, after its retries."""
    name, role = _function_role(local_cloud, dev_stage, "EvaluateCandidateFunction")
    before = len(local_cloud.delivery_failures)

    with without_role_statement(local_cloud, role, "sqs:SendMessage"):
        local_cloud.client("lambda").invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
        local_cloud.wait_idle()

    errors = [f.error for f in local_cloud.delivery_failures[before:] if name in f.description]
    assert errors and _denied(errors[0], "sqs:SendMessage"), errors


MACHINE_INPUTS = {
    "StateMachine": {"trigger": {"kind": "manual", "requested_by": "statement-test"}},
    "CanaryEndpoint/DeployStateMachine": {
        "action": "start",
        "event_id": "statement-test",
        "model_package_arn": "",
        "emergency": False,
    },
    "BatchScoringStateMachine": {"partition_date": ""},
    "IngestSplitStateMachine": _split_range("the-task-fails-before-reading", "churn/statement-test.csv"),
}


@pytest.mark.parametrize(("machine", "execution_input"), MACHINE_INPUTS.items(), ids=MACHINE_INPUTS.keys())
def test_a_workflow_fails_at_its_first_task_without_lambda_invoke(
    local_cloud: LocalCloud, dev_stage: Deployment, machine: str, execution_input: dict[str, Any]
) -> None:
    sfn = local_cloud.client("stepfunctions")
    arn = dev_stage.physical_id(machine)
    role = sfn.describe_state_machine(stateMachineArn=arn)["roleArn"]

    with without_role_statement(local_cloud, role, "lambda:InvokeFunction"):
        execution = sfn.start_execution(stateMachineArn=arn, name=_run_id(), input=json.dumps(execution_input))
        finished = local_cloud.wait_for_execution(execution["executionArn"], timeout=120)
        history = sfn.get_execution_history(executionArn=execution["executionArn"])

    failures = [
        json.dumps(e.get("taskFailedEventDetails") or e.get("lambdaFunctionFailedEventDetails") or {})
        for e in history["events"]
        if e["type"] in ("TaskFailed", "LambdaFunctionFailed")
    ]
    assert finished["status"] == "FAILED"
    assert failures and _denied(failures[0], "lambda:InvokeFunction"), failures[:1]


def _training_task_parameters(cloud: LocalCloud, deployment: Deployment) -> dict[str, Any]:
    """The training workflow's CreateTrainingJob parameters as deployed (their constant part)."""
    machine = cloud.client("stepfunctions").describe_state_machine(
        stateMachineArn=deployment.physical_id("StateMachine")
    )
    states = json.loads(machine["definition"])["States"]
    task = next(s for s in states.values() if str(s.get("Resource", "")).endswith(":sagemaker:createTrainingJob"))
    return {k: v for k, v in task["Parameters"].items() if not k.endswith(".$")}


def _wait_until_settled(describe: Callable[[], dict[str, Any]], status_key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (described := describe())[status_key] in ("InProgress", "Creating") and time.monotonic() < deadline:
        time.sleep(0.2)
    return described


# A training script that succeeds at once, for the samples that need the job to reach its upload.
TRAIN_PY = 'import os, pathlib\npathlib.Path(os.environ["SM_MODEL_DIR"], "model.txt").write_text("ok")\n'
# (statement removed: action, on; what the FailureReason starts with)
TRAINING_ROLE_SAMPLES = {
    "download the snapshot: GetObject": ("s3:GetObject", "/data/", "ClientError: Data download failed:"),
    "upload the model: PutObject": ("s3:PutObject", "/output/", "ClientError: Unable to upload"),
}


@pytest.mark.parametrize(("action", "on", "reason"), TRAINING_ROLE_SAMPLES.values(), ids=TRAINING_ROLE_SAMPLES.keys())
def test_the_training_job_fails_without_the_training_role_statement(
    local_cloud: LocalCloud, dev_stage: Deployment, action: str, on: str, reason: str
) -> None:
    """SageMaker downloads the job's channels and uploads its output with the role passed to CreateTrainingJob."""
    parameters = _training_task_parameters(local_cloud, dev_stage)
    bucket, run_id = dev_stage.physical_id("ArtifactsBucket"), _run_id()
    run = f"s3://{bucket}/training/runs/{run_id}"
    s3, sagemaker = local_cloud.client("s3"), local_cloud.client("sagemaker")
    s3.put_object(Bucket=bucket, Key=f"training/runs/{run_id}/data/part-0.csv", Body=b"x\n1\n")
    s3.put_object(Bucket=bucket, Key=f"training/runs/{run_id}/data/code.tar.gz", Body=tar_gz({"train.py": TRAIN_PY}))

    with without_role_statement(local_cloud, parameters["RoleArn"], action, on=on):
        sagemaker.create_training_job(
            TrainingJobName=f"churn-{run_id}",
            RoleArn=parameters["RoleArn"],
            AlgorithmSpecification=parameters["AlgorithmSpecification"],
            HyperParameters={"sagemaker_program": "train.py", "sagemaker_submit_directory": f"{run}/data/code.tar.gz"},
            InputDataConfig=[
                {
                    "ChannelName": "train",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{run}/data/part-0.csv"}},
                }
            ],
            OutputDataConfig={"S3OutputPath": f"{run}/output"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 300},
        )
        job = _wait_until_settled(
            lambda: sagemaker.describe_training_job(TrainingJobName=f"churn-{run_id}"), "TrainingJobStatus"
        )

    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(reason), job["FailureReason"]
    assert _denied(job["FailureReason"], action), job["FailureReason"]


def test_the_endpoint_fails_to_download_its_model_without_the_model_role_statement(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """SageMaker downloads the model's data with the role passed to CreateModel; its FailureReason names neither
    the action nor S3's error (aws-samples/cvat-on-aws-china issue 3 quotes it)."""
    image = _training_task_parameters(local_cloud, dev_stage)["AlgorithmSpecification"]["TrainingImage"]
    role = dev_stage.attribute("CanaryEndpoint/ModelRole", "Arn")
    bucket, run_id = dev_stage.physical_id("ArtifactsBucket"), _run_id()
    key = f"training/runs/{run_id}/output/churn-{run_id}/output/model.tar.gz"
    local_cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=gzip.compress(b""))
    sagemaker = local_cloud.client("sagemaker")
    url = f"s3://{bucket}/{key}"

    with without_role_statement(local_cloud, role, "s3:GetObject", on="artifacts"):
        sagemaker.create_model(
            ModelName=run_id, ExecutionRoleArn=role, PrimaryContainer={"Image": image, "ModelDataUrl": url}
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=run_id,
            ProductionVariants=[
                {"VariantName": "v1", "ModelName": run_id, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
            ],
        )
        sagemaker.create_endpoint(EndpointName=run_id, EndpointConfigName=run_id)
        endpoint = _wait_until_settled(lambda: sagemaker.describe_endpoint(EndpointName=run_id), "EndpointStatus")
    sagemaker.delete_endpoint(EndpointName=run_id)

    assert endpoint["EndpointStatus"] == "Failed"
    assert endpoint["FailureReason"] == (
        f'Failed to download model data for container "container_1" from URL: "{url}". Please ensure that there '
        "is an object located at the URL and that the role passed to CreateModel has permissions to download the "
        "object."
    )


@contextmanager
def without_function_permission(cloud: LocalCloud, function: str, principal: str, *, source: str) -> Iterator[None]:
    """The function's resource policy as deployed, minus the one statement letting `principal` invoke it from a
    source ARN that contains `source` (EventBridge's rule, API Gateway's method)."""
    lambda_ = cloud.client("lambda")
    statements = json.loads(lambda_.get_policy(FunctionName=function)["Policy"])["Statement"]
    matching = [
        s
        for s in statements
        if s["Principal"].get("Service") == principal and source in json.dumps(s.get("Condition", {}))
    ]
    assert len(matching) == 1, f"{function}: {len(matching)} statements let {principal} invoke it from {source}"
    statement = matching[0]
    conditions = statement.get("Condition", {})
    restore = {
        "FunctionName": function,
        "StatementId": statement["Sid"],
        "Action": statement["Action"],
        "Principal": principal,
        "SourceArn": conditions["ArnLike"]["AWS:SourceArn"],
    }
    if "AWS:SourceAccount" in conditions.get("StringEquals", {}):
        restore["SourceAccount"] = conditions["StringEquals"]["AWS:SourceAccount"]
    lambda_.remove_permission(FunctionName=function, StatementId=statement["Sid"])
    try:
        yield
    finally:
        lambda_.add_permission(**restore)


def _schedule_fails(cloud: LocalCloud, rule: str) -> list[str]:
    before = len(cloud.delivery_failures)
    cloud.fire_schedule(rule)
    return [f.error for f in cloud.delivery_failures[before:]]


def test_a_schedule_cannot_invoke_its_function_without_the_function_policy_statement(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """EventBridge invokes Lambda targets as events.amazonaws.com: only the function's policy can allow it."""
    rule_arn = f"rule/{dev_stage.physical_id('DriftScheduleRule')}"
    function = dev_stage.physical_id("DriftDetectorFunction")

    with without_function_permission(local_cloud, function, "events.amazonaws.com", source=rule_arn):
        errors = _schedule_fails(local_cloud, "DriftScheduleRule")

    assert errors and _denied(errors[0], "lambda:InvokeFunction"), errors


def test_a_schedule_cannot_start_its_workflow_without_the_rule_role_statement(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """Step Functions targets are started with the target's role: its policy must allow states:StartExecution."""
    role = dev_stage.attribute("BatchScoringStateMachine/EventsRole", "Arn")

    with without_role_statement(local_cloud, role, "states:StartExecution"):
        errors = _schedule_fails(local_cloud, "BatchScoringSchedule")

    assert errors and _denied(errors[0], "states:StartExecution"), errors


def test_the_api_answers_500_without_the_front_door_policy_statement_for_api_gateway(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """API Gateway invokes the front door as apigateway.amazonaws.com; refused, it answers 500 "Internal server
    error" (API Gateway Developer Guide, "Lambda proxy integration": an integration permission error)."""
    api = dev_stage.physical_id("Api")
    stage = dev_stage.of_type("AWS::ApiGateway::Stage")[0].physical_id
    function = dev_stage.physical_id("FrontDoorFunction")

    with without_function_permission(local_cloud, function, "apigateway.amazonaws.com", source=f"/{stage}/GET/model"):
        try:
            urllib.request.urlopen(signed_request(f"{local_cloud.api_url(api, stage)}/model"), timeout=30)
            status, body = 200, {}
        except urllib.error.HTTPError as error:
            status, body = error.code, json.loads(error.read())

    assert (status, body) == (500, {"message": "Internal server error"})


@contextmanager
def _serving_manifest(cloud: LocalCloud, deployment: Deployment, version: str) -> Iterator[None]:
    """A deployed model's serving manifest in place of whatever is there (restored afterwards)."""
    function = cloud.client("lambda").get_function(FunctionName=deployment.physical_id("FrontDoorFunction"))
    endpoint = function["Configuration"]["Environment"]["Variables"]["ENDPOINT_NAME"]
    bucket, key = deployment.physical_id("ArtifactsBucket"), manifest_key(endpoint)
    manifest = ServingManifest(
        endpoint_name=endpoint,
        model_version=version,
        model_package_arn=f"arn:aws:sagemaker:{deployment.region}:{deployment.account_id}:model-package/churn/1",
        endpoint_config_name=f"{endpoint}-{version}",
        variant_name=version,
        model_name=f"{endpoint}-{version}",
        contract=json.loads(load_contract("churn").to_json()),
        threshold=0.5,
        deployed_at="2026-12-01T00:00:00Z",
    )
    s3 = cloud.client("s3")
    with _before_first_deploy(cloud, deployment):
        s3.put_object(Bucket=bucket, Key=key, Body=manifest.to_json().encode())
        yield


@contextmanager
def _fresh_environments(cloud: LocalCloud, function: str) -> Iterator[None]:
    """A configuration update, after which Lambda serves from new execution environments (nothing cached)."""
    lambda_ = cloud.client("lambda")
    variables = lambda_.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    lambda_.update_function_configuration(
        FunctionName=function, Environment={"Variables": variables | {"STATEMENT_TEST": _run_id()}}
    )
    try:
        yield
    finally:
        lambda_.update_function_configuration(FunctionName=function, Environment={"Variables": variables})


def test_the_front_door_cannot_see_the_deployed_model_without_its_manifest_statement(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """The front door reads the serving manifest with its role; refused, it answers as if no model were deployed
    (it never fails a request over the manifest) and logs the refusal."""
    api = dev_stage.physical_id("Api")
    stage = dev_stage.of_type("AWS::ApiGateway::Stage")[0].physical_id
    name, role = _function_role(local_cloud, dev_stage, "FrontDoorFunction")
    since = int(time.time() * 1000)

    with (
        _serving_manifest(local_cloud, dev_stage, "v999"),
        without_role_statement(local_cloud, role, "s3:GetObject", on="/serving"),
        _fresh_environments(local_cloud, name),
    ):
        try:
            answer = urllib.request.urlopen(signed_request(f"{local_cloud.api_url(api, stage)}/model"), timeout=30)
            status, body = answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            status, body = error.code, json.loads(error.read())
    group = dev_stage.resource("FrontDoorFunction").properties["LoggingConfig"]["LogGroup"]
    events = local_cloud.client("logs").filter_log_events(logGroupName=group, startTime=since)["events"]
    warnings = [e["message"] for e in events if "serving manifest could not be read" in e["message"]]

    assert status == 404, body
    assert warnings and _denied(warnings[0], "s3:GetObject"), warnings


@contextmanager
def _without_topic_statement_for_cloudwatch(cloud: LocalCloud, deployment: Deployment) -> Iterator[None]:
    sns, topic = cloud.client("sns"), deployment.physical_id("NotificationsTopic")
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    kept = [s for s in policy["Statement"] if s.get("Sid") != "AllowCloudwatchPublish"]
    assert len(kept) == len(policy["Statement"]) - 1
    sns.set_topic_attributes(
        TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy | {"Statement": kept})
    )
    try:
        yield
    finally:
        sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy))


@contextmanager
def _without_key_statement_for_cloudwatch(cloud: LocalCloud, deployment: Deployment) -> Iterator[None]:
    kms, key = cloud.client("kms"), deployment.physical_id("LakeKey")
    policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    kept = [s for s in policy["Statement"] if "cloudwatch.amazonaws.com" not in json.dumps(s.get("Principal"))]
    assert len(kept) == len(policy["Statement"]) - 1
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(policy | {"Statement": kept}))
    try:
        yield
    finally:
        kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(policy))


# What the alarm's history says: SNS's refusal names SNS:Publish; for the topic's key AWS writes "CloudWatch Alarms
# does not have authorization to access the SNS topic encryption key." (re:Post knowledge center,
# cloudwatch-configure-alarm-sns), the local cloud the refused kms action.
ALARM_ACTION_SAMPLES = {
    "topic policy: SNS:Publish": (_without_topic_statement_for_cloudwatch, ("SNS:Publish",)),
    "key policy: kms": (_without_key_statement_for_cloudwatch, ("kms:GenerateDataKey", "encryption key")),
}


@pytest.mark.parametrize(("without", "named"), ALARM_ACTION_SAMPLES.values(), ids=ALARM_ACTION_SAMPLES.keys())
def test_alarm_actions_fail_without_the_statement_for_cloudwatch(
    local_cloud: LocalCloud,
    dev_stage: Deployment,
    without: Callable[[LocalCloud, Deployment], AbstractContextManager[None]],
    named: tuple[str, ...],
) -> None:
    """CloudWatch publishes alarm actions as cloudwatch.amazonaws.com: the topic's and its key's policies decide."""
    cloudwatch, topic = local_cloud.client("cloudwatch"), dev_stage.physical_id("NotificationsTopic")
    alarm = next(a for a in cloudwatch.describe_alarms()["MetricAlarms"] if topic in a.get("AlarmActions", []))

    cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="OK", StateReason="statement test start")
    try:
        with without(local_cloud, dev_stage):
            cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="ALARM", StateReason="statement test")
            latest = cloudwatch.describe_alarm_history(AlarmName=alarm["AlarmName"], HistoryItemType="Action")[
                "AlarmHistoryItems"
            ][0]
    finally:
        cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="OK", StateReason="statement test done")

    assert latest["HistorySummary"].startswith(f"Failed to execute action {topic}")
    assert any(name in latest["HistoryData"] for name in named), latest["HistoryData"]


# Roles no step of the loop acts as: CloudFormation runs CDK's custom resource providers at deploy time only, and
# API Gateway's account-wide CloudWatch role only writes execution logs, which the local API does not write.
NOT_IN_THE_LOOP = (
    "/Custom::S3AutoDeleteObjectsCustomResourceProvider/",
    "/BucketNotificationsHandler",
    "/Api/CloudWatchRole/",
)
# Sampled by the tests above that drive a service acting with the role it was given.
SERVICE_ROLES_SAMPLED = ("TrainingJobRole", "CanaryEndpoint/ModelRole", "BatchScoringStateMachine/EventsRole")
# The services whose calls only a function's resource policy allows, each sampled above. S3's Object Created
# events need none: "Amazon S3 does not require any additional permissions to deliver events to Amazon
# EventBridge" (S3 User Guide, ev-permissions.html).
FUNCTION_POLICY_PRINCIPALS_SAMPLED = ("events.amazonaws.com", "apigateway.amazonaws.com")


def test_every_role_and_service_principal_that_acts_in_the_loop_is_sampled(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """A new role (or a new service invoking a function) fails this until a sample shows what it needs."""
    sfn = local_cloud.client("stepfunctions")
    sampled = (
        {_function_role(local_cloud, dev_stage, s.function)[1] for s in FUNCTION_SAMPLES.values()}
        | {_function_role(local_cloud, dev_stage, "FrontDoorFunction")[1]}
        | {sfn.describe_state_machine(stateMachineArn=dev_stage.physical_id(m))["roleArn"] for m in MACHINE_INPUTS}
        | {dev_stage.attribute(name, "Arn") for name in SERVICE_ROLES_SAMPLED}
    )
    roles = [r for r in dev_stage.of_type("AWS::IAM::Role") if not any(m in r.path for m in NOT_IN_THE_LOOP)]
    principals = {str(r.properties["Principal"]) for r in dev_stage.of_type("AWS::Lambda::Permission")}

    assert sorted(r.path for r in roles if r.attributes["Arn"] not in sampled) == []
    assert principals <= set(FUNCTION_POLICY_PRINCIPALS_SAMPLED)
