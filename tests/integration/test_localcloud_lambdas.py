"""Lambda handlers run in-process on the local cloud, each with its own template environment.

Given functions deployed from a template, when they are invoked through boto3, then the real code
runs with the function's environment, Powertools settings and metrics, and errors come back the way
Lambda returns them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.localcloud_support import ROLE, python_function, unique_stage, write_assembly

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]

POWERTOOLS_CODE = """
    import os
    from aws_lambda_powertools import Metrics

    metrics = Metrics()

    def handler(event, context):
        if event.get("fail"):
            raise ValueError("the input asked to fail")
        metrics.add_metric(name="Handled", unit="Count", value=event.get("count", 1))
        metrics.flush_metrics()
        return {
            "greeting": os.environ["GREETING"],
            "namespace": metrics.provider.namespace,
            "service": metrics.provider.service,
            "function": context.function_name,
            "event": event,
        }
"""

ALWAYS_FAILS = """
    def handler(event, context):
        print("attempt for", event["id"])
        raise RuntimeError("downstream unavailable")
"""


@pytest.fixture(scope="module")
def deployed(local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    stage = unique_stage()
    resources: dict[str, Any] = {
        "Role": ROLE,
        "First": python_function(
            POWERTOOLS_CODE,
            environment={
                "GREETING": "hello from first",
                "POWERTOOLS_SERVICE_NAME": "first-service",
                "POWERTOOLS_METRICS_NAMESPACE": f"{stage}/First",
            },
        ),
        "Second": python_function(
            POWERTOOLS_CODE,
            environment={
                "GREETING": "hello from second",
                "POWERTOOLS_SERVICE_NAME": "second-service",
                "POWERTOOLS_METRICS_NAMESPACE": f"{stage}/Second",
            },
        ),
        "DeadLetters": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "FailingLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}},
        "Failing": python_function(
            ALWAYS_FAILS,
            DeadLetterConfig={"TargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}},
            LoggingConfig={"LogGroup": {"Ref": "FailingLogs"}},
        ),
        "FailingInvokeConfig": {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {"FunctionName": {"Ref": "Failing"}, "Qualifier": "$LATEST", "MaximumRetryAttempts": 1},
        },
    }
    out = write_assembly(tmp_path_factory.mktemp("lambdas"), {f"mlloop-{stage}-fns": {"Resources": resources}})
    return local_cloud.deploy(stage, cdk_out=out)


def _invoke(cloud: LocalCloud, function: str, event: dict[str, Any]) -> tuple[Any, str | None]:
    answer = cloud.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    return json.loads(answer["Payload"].read()), answer.get("FunctionError")


def test_handler_runs_with_its_template_environment(local_cloud: LocalCloud, deployed: Deployment) -> None:
    result, error = _invoke(local_cloud, deployed.physical_id("First"), {"count": 3})

    assert error is None
    assert result["greeting"] == "hello from first"
    assert result["function"] == deployed.physical_id("First")
    assert result["event"] == {"count": 3}


def test_each_function_keeps_its_own_powertools_settings(local_cloud: LocalCloud, deployed: Deployment) -> None:
    first, _ = _invoke(local_cloud, deployed.physical_id("First"), {})
    second, _ = _invoke(local_cloud, deployed.physical_id("Second"), {})
    first_again, _ = _invoke(local_cloud, deployed.physical_id("First"), {})

    assert (first["service"], first["namespace"]) == ("first-service", f"{deployed.stage}/First")
    assert (second["service"], second["namespace"]) == ("second-service", f"{deployed.stage}/Second")
    assert first_again["namespace"] == first["namespace"]


def test_emf_metrics_printed_by_a_handler_reach_cloudwatch(local_cloud: LocalCloud, deployed: Deployment) -> None:
    _invoke(local_cloud, deployed.physical_id("Second"), {"count": 7})

    metrics = local_cloud.client("cloudwatch").list_metrics(Namespace=f"{deployed.stage}/Second")["Metrics"]
    assert {"Name": "service", "Value": "second-service"} in metrics[0]["Dimensions"]
    assert metrics[0]["MetricName"] == "Handled"


def test_a_raising_handler_returns_lambdas_error_shape(local_cloud: LocalCloud, deployed: Deployment) -> None:
    result, error = _invoke(local_cloud, deployed.physical_id("First"), {"fail": True})

    assert error == "Unhandled"
    assert result["errorType"] == "ValueError"
    assert result["errorMessage"] == "the input asked to fail"


def test_failed_async_invocation_is_retried_then_sent_to_the_dead_letter_queue(
    local_cloud: LocalCloud, deployed: Deployment
) -> None:
    function = deployed.physical_id("Failing")

    answer = local_cloud.client("lambda").invoke(
        FunctionName=function, InvocationType="Event", Payload=json.dumps({"id": "order-17"})
    )
    local_cloud.wait_idle()

    assert answer["StatusCode"] == 202
    messages = local_cloud.client("sqs").receive_message(QueueUrl=deployed.physical_id("DeadLetters"))["Messages"]
    record = json.loads(messages[0]["Body"])
    assert record["requestPayload"] == {"id": "order-17"}
    assert record["responsePayload"]["errorMessage"] == "downstream unavailable"
    log_group = deployed.physical_id("FailingLogs")
    logs = local_cloud.client("logs").filter_log_events(logGroupName=log_group)["events"]
    assert sum("attempt for order-17" in event["message"] for event in logs) == 2


def test_handler_code_comes_from_the_template(tmp_path: Path, local_cloud: LocalCloud) -> None:
    stage = unique_stage()
    resources = {"Role": ROLE, "Echo": python_function("def handler(event, context):\n    return ['v2', event]\n")}
    out = write_assembly(tmp_path, {f"mlloop-{stage}-echo": {"Resources": resources}})

    deployment = local_cloud.deploy(stage, cdk_out=out)

    result, _ = _invoke(local_cloud, deployment.physical_id("Echo"), {"x": 1})
    assert result == ["v2", {"x": 1}]
