"""Step Functions on the local cloud executes deployed definitions with real Lambda handlers.

Given state machines deployed from a template, when they are executed, then Lambda errors match
Retry and Catch by their exception name, Wait states take scaled time, and the SageMaker
create-then-poll training pattern runs against the emulated SageMaker.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.localcloud_support import ROLE, python_function, unique_stage, write_assembly

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]

FLAKY = """
    attempts = {}

    class FlakyError(Exception):
        pass

    def handler(event, context):
        key = event["key"]
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] < 3:
            raise FlakyError(f"attempt {attempts[key]} failed")
        return {"key": key, "attempts": attempts[key]}
"""
BROKEN = """
    class PermanentError(Exception):
        pass

    def handler(event, context):
        raise PermanentError("the input can never be processed")
"""


def _machine(logical_id: str, definition: dict[str, Any], substitutions: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": {"Fn::Sub": f"${{AWS::StackName}}-{logical_id}"},
            "DefinitionString": json.dumps(definition),
            "DefinitionSubstitutions": substitutions,
            "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
        },
    }


RETRYING = {
    "StartAt": "Flaky",
    "States": {
        "Flaky": {
            "Type": "Task",
            "Resource": "${Flaky}",
            "Retry": [{"ErrorEquals": ["FlakyError"], "IntervalSeconds": 30, "MaxAttempts": 3, "BackoffRate": 2}],
            "End": True,
        }
    },
}
CATCHING = {
    "StartAt": "Broken",
    "States": {
        "Broken": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${Broken}", "Payload.$": "$"},
            "Catch": [{"ErrorEquals": ["PermanentError"], "ResultPath": "$.failure", "Next": "Quarantined"}],
            "End": True,
        },
        "Quarantined": {"Type": "Pass", "End": True},
    },
}
UNCAUGHT = {
    "StartAt": "Broken",
    "States": {
        "Broken": {
            "Type": "Task",
            "Resource": "${Broken}",
            "Catch": [{"ErrorEquals": ["SomeOtherError"], "Next": "Never"}],
            "End": True,
        },
        "Never": {"Type": "Succeed"},
    },
}
WAITING = {
    "StartAt": "Bake",
    "States": {"Bake": {"Type": "Wait", "Seconds": 200, "Next": "Done"}, "Done": {"Type": "Succeed"}},
}
TRAINING = {
    "StartAt": "Train",
    "States": {
        "Train": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sagemaker:createTrainingJob",
            "Parameters": {
                "TrainingJobName.$": "$.job",
                "AlgorithmSpecification": {
                    "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1",
                    "TrainingInputMode": "File",
                },
                "RoleArn": "${Role}",
                "OutputDataConfig": {"S3OutputPath": "s3://${Bucket}/models/"},
                "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
                "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            },
            "ResultPath": None,
            "Next": "Describe",
        },
        "Describe": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob",
            "Parameters": {"TrainingJobName.$": "$.job"},
            "ResultSelector": {"status.$": "$.TrainingJobStatus"},
            "ResultPath": "$.training",
            "Next": "Finished?",
        },
        "Finished?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.training.status", "StringEquals": "Completed", "Next": "Trained"},
                {"Variable": "$.training.status", "StringEquals": "Failed", "Next": "TrainingFailed"},
                {"Variable": "$.training.status", "StringEquals": "Stopped", "Next": "TrainingFailed"},
            ],
            "Default": "Poll",
        },
        "Poll": {"Type": "Wait", "Seconds": 60, "Next": "Describe"},
        "Trained": {"Type": "Succeed"},
        "TrainingFailed": {"Type": "Fail", "Error": "TrainingFailed"},
    },
}


# An aws-sdk task's result with timestamps (each bucket's CreationDate) as the execution's output.
LISTING = {
    "StartAt": "ListBuckets",
    "States": {"ListBuckets": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:listBuckets", "End": True}},
}


@pytest.fixture(scope="module")
def deployed(local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    stage = unique_stage()
    resources = {
        "Role": ROLE,
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "Flaky": python_function(FLAKY),
        "Broken": python_function(BROKEN),
        "Retrying": _machine("retrying", RETRYING, {"Flaky": {"Fn::GetAtt": ["Flaky", "Arn"]}}),
        "Catching": _machine("catching", CATCHING, {"Broken": {"Fn::GetAtt": ["Broken", "Arn"]}}),
        "Uncaught": _machine("uncaught", UNCAUGHT, {"Broken": {"Fn::GetAtt": ["Broken", "Arn"]}}),
        "Waiting": _machine("waiting", WAITING, {}),
        "Listing": _machine("listing", LISTING, {}),
        "Training": _machine(
            "training", TRAINING, {"Role": {"Fn::GetAtt": ["Role", "Arn"]}, "Bucket": {"Ref": "Bucket"}}
        ),
    }
    out = write_assembly(tmp_path_factory.mktemp("sfn"), {f"mlloop-{stage}-flows": {"Resources": resources}})
    return local_cloud.deploy(stage, cdk_out=out)


def _run(cloud: LocalCloud, state_machine_arn: str, payload: dict[str, Any]) -> dict[str, Any]:
    started = cloud.client("stepfunctions").start_execution(
        stateMachineArn=state_machine_arn, name=uuid.uuid4().hex, input=json.dumps(payload)
    )
    return cloud.wait_for_execution(started["executionArn"], timeout=60)


def test_retry_matches_the_handlers_exception_name(local_cloud: LocalCloud, deployed: Deployment) -> None:
    finished = _run(local_cloud, deployed.physical_id("Retrying"), {"key": "k1"})

    assert finished["status"] == "SUCCEEDED"
    assert json.loads(finished["output"]) == {"key": "k1", "attempts": 3}


def test_catch_routes_a_handler_error_to_the_fallback_state(local_cloud: LocalCloud, deployed: Deployment) -> None:
    finished = _run(local_cloud, deployed.physical_id("Catching"), {"row": 7})

    output = json.loads(finished["output"])
    assert finished["status"] == "SUCCEEDED"
    assert output["row"] == 7
    assert output["failure"]["Error"] == "PermanentError"
    assert "the input can never be processed" in output["failure"]["Cause"]


def test_an_uncaught_handler_error_fails_the_execution(local_cloud: LocalCloud, deployed: Deployment) -> None:
    finished = _run(local_cloud, deployed.physical_id("Uncaught"), {})

    assert finished["status"] == "FAILED"
    assert finished["error"] == "PermanentError"


def test_wait_states_follow_the_local_time_scale(local_cloud: LocalCloud, deployed: Deployment) -> None:
    # 200 s at the default scale of 0.01 is 2 s: the 60 s timeout of _run would fail an unscaled wait.
    finished = _run(local_cloud, deployed.physical_id("Waiting"), {})

    assert finished["status"] == "SUCCEEDED"


def test_training_job_pattern_ends_with_the_jobs_final_status(local_cloud: LocalCloud, deployed: Deployment) -> None:
    job = f"job-{uuid.uuid4().hex[:12]}"

    finished = _run(local_cloud, deployed.physical_id("Training"), {"job": job})

    status = local_cloud.client("sagemaker").describe_training_job(TrainingJobName=job)["TrainingJobStatus"]
    assert status in ("Completed", "Failed", "Stopped")
    assert finished["status"] == ("SUCCEEDED" if status == "Completed" else "FAILED")


def test_an_output_with_timestamps_is_described_as_json(local_cloud: LocalCloud, deployed: Deployment) -> None:
    finished = _run(local_cloud, deployed.physical_id("Listing"), {})

    assert finished["status"] == "SUCCEEDED"
    buckets = json.loads(finished["output"])["Buckets"]
    assert buckets and all(isinstance(bucket["CreationDate"], str) for bucket in buckets)
