"""Small hand-written cloud assemblies for the local cloud's own tests (no synth needed)."""

from __future__ import annotations

import json
import textwrap
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from mlloop.localcloud.authz.sigv4 import signed_headers
from mlloop.localcloud.identity import ADMIN_ACCESS_KEY_ID, ADMIN_SECRET_ACCESS_KEY

ROLE = {
    "Type": "AWS::IAM::Role",
    "Properties": {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com", "events.amazonaws.com"]},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        # The local cloud enforces IAM: state machines and rule targets using this role act with it.
        "Policies": [
            {
                "PolicyName": "test-targets",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "lambda:InvokeFunction",
                                "states:StartExecution",
                                "sqs:SendMessage",
                                "sns:Publish",
                                "sagemaker:*",
                                "s3:*",
                                "iam:PassRole",
                            ],
                            "Resource": "*",
                        }
                    ],
                },
            }
        ],
    },
}


# The managed layers the stacks use (infra/constructs/platform_function.py); the local cloud emulates each by a
# package set (mlloop/localcloud/execution/packages/).
POWERTOOLS_LAYER = "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:18"
PANDAS_LAYER = "arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python311:22"


def unique_stage() -> str:
    """A stage name no other test uses, so physical names never collide in the shared cloud."""
    return f"t{uuid.uuid4().hex[:8]}"


def python_function(
    code: str, *, environment: dict[str, Any] | None = None, layers: list[str] | None = None, **properties: Any
) -> dict[str, Any]:
    """An inline-code Python Lambda (handler `index.handler`) using the template's `Role` and the given layers."""
    if layers:
        properties["Layers"] = layers
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Code": {"ZipFile": textwrap.dedent(code)},
            "Handler": "index.handler",
            "Runtime": "python3.11",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Environment": {"Variables": environment or {}},
            **properties,
        },
    }


def write_assembly(
    directory: Path, stacks: dict[str, dict[str, Any]], dependencies: dict[str, list[str]] | None = None
) -> Path:
    """A cdk.out-shaped folder: manifest.json plus one template per stack (stack name -> template)."""
    directory.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, Any] = {}
    for name, template in stacks.items():
        (directory / f"{name}.template.json").write_text(json.dumps(template))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": "aws://unknown-account/unknown-region",
            "properties": {"templateFile": f"{name}.template.json"},
            "dependencies": (dependencies or {}).get(name, []),
        }
    (directory / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return directory


def signed_request(
    url: str, *, method: str = "GET", body: bytes | None = None, region: str = "us-east-1"
) -> urllib.request.Request:
    """A request to an AWS_IAM API method, SigV4-signed with the local cloud's default credentials."""
    headers = signed_headers(
        method,
        url,
        body,
        region=region,
        access_key_id=ADMIN_ACCESS_KEY_ID,
        secret_access_key=ADMIN_SECRET_ACCESS_KEY,
        headers={"Content-Type": "application/json"},
    )
    return urllib.request.Request(url, data=body, method=method, headers=headers)


def queue_for_events(cloud: Any, pattern: dict[str, Any]) -> str:
    """A queue receiving every event that matches `pattern`, through a rule whose delivery its policy allows
    (EventBridge sends as events.amazonaws.com, and the local cloud enforces queue policies as AWS does)."""
    sqs, events = cloud.client("sqs"), cloud.client("events")
    url: str = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"r-{uuid.uuid4().hex[:8]}"
    rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps(pattern))["RuleArn"]
    allow_rule = {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }
    policy = json.dumps({"Version": "2012-10-17", "Statement": [allow_rule]})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    return url
