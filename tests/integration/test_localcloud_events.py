"""EventBridge on the local cloud delivers to every target kind the platform wires.

Given rules deployed from a template, when events are put, emitted by a service, sent by S3 or fired
by a schedule, then the matching targets (Lambda, Step Functions, SQS, SNS) receive what the rule's
Input, InputPath or InputTransformer says, and nothing else receives anything.
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

RECORDER = """
    import json, os
    import boto3

    sqs = boto3.client("sqs")

    def handler(event, context):
        if "explode" in json.dumps(event):
            raise RuntimeError("target failed on purpose")
        sqs.send_message(QueueUrl=os.environ["SEEN_QUEUE"], MessageBody=json.dumps({"lambda": event}))
        return event
"""
ORDER_PATTERN = {"source": ["test.orders"], "detail-type": ["Order Placed"]}


def _lambda_target(input_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"Id": "recorder", "Arn": {"Fn::GetAtt": ["Recorder", "Arn"]}, **(input_fields or {})}


def _template(stage: str) -> dict[str, Any]:
    state_machine = {
        "StartAt": "Record",
        "States": {
            "Record": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "${Recorder}", "Payload": {"viaStepFunctions.$": "$"}},
                "End": True,
            }
        },
    }
    return {
        "Resources": {
            "Role": ROLE,
            "Seen": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Direct": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "ViaTopic": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "TopicToQueue": {
                "Type": "AWS::SNS::Subscription",
                "Properties": {
                    "TopicArn": {"Ref": "Topic"},
                    "Protocol": "sqs",
                    "Endpoint": {"Fn::GetAtt": ["ViaTopic", "Arn"]},
                    "RawMessageDelivery": True,
                },
            },
            "Recorder": python_function(RECORDER, environment={"SEEN_QUEUE": {"Ref": "Seen"}}),
            # EventBridge acts as events.amazonaws.com: the function, queue and topic policies must allow it.
            "RecorderInvokedByRules": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "FunctionName": {"Fn::GetAtt": ["Recorder", "Arn"]},
                    "Action": "lambda:InvokeFunction",
                    "Principal": "events.amazonaws.com",
                },
            },
            "DirectPolicy": _allow_rules("AWS::SQS::QueuePolicy", "Queues", "sqs:SendMessage", "Direct", "Arn"),
            "TopicPolicy": _allow_rules("AWS::SNS::TopicPolicy", "Topics", "sns:Publish", "Topic", None),
            "Workflow": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionString": json.dumps(state_machine),
                    "DefinitionSubstitutions": {"Recorder": {"Fn::GetAtt": ["Recorder", "Arn"]}},
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                },
            },
            "OrdersToLambda": _rule(
                ORDER_PATTERN,
                _lambda_target(
                    {
                        "InputTransformer": {
                            "InputPathsMap": {"order": "$.detail.id"},
                            "InputTemplate": '{"order": "<order>", "via": "transformer"}',
                        }
                    }
                ),
            ),
            "OrdersToWorkflow": _rule(
                ORDER_PATTERN,
                {
                    "Id": "workflow",
                    "Arn": {"Ref": "Workflow"},
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "InputPath": "$.detail",
                },
            ),
            "OrdersToQueue": _rule(
                ORDER_PATTERN, {"Id": "queue", "Arn": {"Fn::GetAtt": ["Direct", "Arn"]}, "Input": '{"constant": true}'}
            ),
            "OrdersToTopic": _rule(ORDER_PATTERN, {"Id": "topic", "Arn": {"Ref": "Topic"}}),
            "DisabledOrders": _rule(ORDER_PATTERN, _lambda_target({"Input": '{"disabled": true}'}), State="DISABLED"),
            "Hourly": {
                "Type": "AWS::Events::Rule",
                "Properties": {"ScheduleExpression": "rate(1 hour)", "Targets": [_lambda_target()]},
            },
            "Watched": {
                "Type": "AWS::S3::Bucket",
                "Properties": {"NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}},
            },
            "Unwatched": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "ObjectCreated": _rule(
                {
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {"bucket": {"name": [{"Ref": "Watched"}, {"Ref": "Unwatched"}]}},
                },
                _lambda_target(),
            ),
            "Approved": _rule(
                {
                    "source": ["aws.sagemaker"],
                    "detail-type": ["SageMaker Model Package State Change"],
                    "detail": {"ModelApprovalStatus": ["Approved"], "ModelPackageGroupName": [f"{stage}-group"]},
                },
                _lambda_target(),
            ),
        }
    }


def _allow_rules(kind: str, attached: str, action: str, target: str, attribute: str | None) -> dict[str, Any]:
    arn = {"Fn::GetAtt": [target, attribute]} if attribute else {"Ref": target}
    statement = {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": action, "Resource": arn}
    return {
        "Type": kind,
        "Properties": {
            attached: [{"Ref": target}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        },
    }


def _rule(pattern: dict[str, Any], target: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::Events::Rule", "Properties": {"EventPattern": pattern, "Targets": [target], **properties}}


@pytest.fixture(scope="module")
def deployed(local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    stage = unique_stage()
    out = write_assembly(tmp_path_factory.mktemp("events"), {f"mlloop-{stage}-events": _template(stage)})
    return local_cloud.deploy(stage, cdk_out=out)


class Inbox:
    """Every message a queue received so far (receiving deletes nothing: the queue is drained once)."""

    def __init__(self, cloud: LocalCloud, queue_url: str) -> None:
        self.cloud, self.queue_url, self.bodies = cloud, queue_url, []  # type: ignore[var-annotated]

    def read(self) -> list[Any]:
        sqs = self.cloud.client("sqs")
        while messages := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                self.bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return self.bodies


@pytest.fixture(scope="module")
def seen(local_cloud: LocalCloud, deployed: Deployment) -> Inbox:
    return Inbox(local_cloud, deployed.physical_id("Seen"))


def _put_order(cloud: LocalCloud, order_id: str, **detail: Any) -> None:
    cloud.put_events([{"Source": "test.orders", "DetailType": "Order Placed", "Detail": {"id": order_id, **detail}}])


def test_lambda_target_receives_the_transformed_input(local_cloud: LocalCloud, seen: Inbox) -> None:
    order = uuid.uuid4().hex
    _put_order(local_cloud, order)

    assert {"lambda": {"order": order, "via": "transformer"}} in seen.read()


def test_step_functions_target_starts_an_execution_with_the_input_path(
    local_cloud: LocalCloud, deployed: Deployment, seen: Inbox
) -> None:
    order = uuid.uuid4().hex
    _put_order(local_cloud, order)

    executions = local_cloud.client("stepfunctions").list_executions(stateMachineArn=deployed.physical_id("Workflow"))
    finished = [local_cloud.wait_for_execution(e["executionArn"]) for e in executions["executions"]]
    ours = [f for f in finished if json.loads(f["input"]) == {"id": order}]
    assert [f["status"] for f in ours] == ["SUCCEEDED"]
    assert {"lambda": {"viaStepFunctions": {"id": order}}} in seen.read()


def test_sqs_target_receives_the_constant_input(local_cloud: LocalCloud, deployed: Deployment) -> None:
    _put_order(local_cloud, uuid.uuid4().hex)

    assert {"constant": True} in Inbox(local_cloud, deployed.physical_id("Direct")).read()


def test_sns_target_fans_out_the_event(local_cloud: LocalCloud, deployed: Deployment) -> None:
    order = uuid.uuid4().hex
    _put_order(local_cloud, order)

    received = Inbox(local_cloud, deployed.physical_id("ViaTopic")).read()
    assert any(body.get("detail", {}).get("id") == order and body["source"] == "test.orders" for body in received)


def test_disabled_rules_and_unmatched_events_deliver_nothing(local_cloud: LocalCloud, seen: Inbox) -> None:
    seen.read()
    local_cloud.put_events([{"Source": "test.other", "DetailType": "Order Placed", "Detail": {"id": "x"}}])

    assert not any(body["lambda"].get("disabled") for body in seen.read())
    assert not any(body["lambda"].get("order") == "x" for body in seen.read())


def test_object_created_reaches_rules_only_for_buckets_with_eventbridge_on(
    local_cloud: LocalCloud, deployed: Deployment, seen: Inbox
) -> None:
    s3 = local_cloud.client("s3")
    s3.put_object(Bucket=deployed.physical_id("Watched"), Key="in/data-file.csv", Body=b"a,b\n")
    s3.put_object(Bucket=deployed.physical_id("Unwatched"), Key="in/ignored.csv", Body=b"a,b\n")
    local_cloud.wait_idle()

    events = [b["lambda"] for b in seen.read() if b["lambda"].get("source") == "aws.s3"]
    assert [e["detail"]["object"]["key"] for e in events] == ["in/data-file.csv"]
    assert events[0]["detail-type"] == "Object Created"
    assert events[0]["detail"]["bucket"]["name"] == deployed.physical_id("Watched")
    assert events[0]["time"].endswith("Z")
    assert set(events[0]["detail"]["object"]) >= {"key", "size", "etag"}


def test_object_created_carries_the_key_url_encoded_as_s3_sends_it(
    local_cloud: LocalCloud, deployed: Deployment, seen: Inbox
) -> None:
    # S3 URL-encodes object keys in its event payloads ("red flower.jpg" becomes "red+flower.jpg"):
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
    s3 = local_cloud.client("s3")
    s3.put_object(Bucket=deployed.physical_id("Watched"), Key="in/red flower+1=a:b.csv", Body=b"a,b\n")
    local_cloud.wait_idle()

    keys = [b["lambda"]["detail"]["object"]["key"] for b in seen.read() if b["lambda"].get("source") == "aws.s3"]
    assert "in/red+flower%2B1%3Da%3Ab.csv" in keys


def test_fired_schedule_sends_a_scheduled_event(local_cloud: LocalCloud, deployed: Deployment, seen: Inbox) -> None:
    sent = local_cloud.fire_schedule(deployed.physical_id("Hourly"))
    sent_by_logical_id = local_cloud.fire_schedule("Hourly")

    assert {"lambda": sent} in seen.read()
    assert {"lambda": sent_by_logical_id} in seen.read()
    assert sent["detail-type"] == "Scheduled Event"
    assert sent["resources"] == [deployed.attribute("Hourly", "Arn")]


def test_service_events_reach_rules_matching_their_detail(
    local_cloud: LocalCloud, deployed: Deployment, seen: Inbox
) -> None:
    group = f"{deployed.stage}-group"
    for status in ("Rejected", "Approved"):
        local_cloud.emit_event(
            "aws.sagemaker",
            "SageMaker Model Package State Change",
            {"ModelPackageGroupName": group, "ModelApprovalStatus": status},
            resources=[f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/1"],
        )
    local_cloud.wait_idle()

    statuses = [
        b["lambda"]["detail"]["ModelApprovalStatus"]
        for b in seen.read()
        if b["lambda"].get("source") == "aws.sagemaker"
    ]
    assert statuses == ["Approved"]


def test_a_failing_lambda_target_is_recorded_not_raised(local_cloud: LocalCloud, deployed: Deployment) -> None:
    before = len(local_cloud.delivery_failures)
    local_cloud.client("s3").put_object(Bucket=deployed.physical_id("Watched"), Key="explode.csv", Body=b"")
    local_cloud.wait_idle()

    failures = local_cloud.delivery_failures[before:]
    assert any("target failed on purpose" in failure.error for failure in failures)
