"""Small hand-written cloud assemblies for the local cloud's own tests (no synth needed), and a cloud of its own in
another process (`up_process`) for tests that must not share the session's cloud."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from mlloop.localcloud.authz.sigv4 import signed_headers
from mlloop.localcloud.identity import ADMIN_ACCESS_KEY_ID, ADMIN_SECRET_ACCESS_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]

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


@dataclass
class UpProcess:
    """`python -m mlloop.localcloud up` in its own process: its own moto state, clock and deployments."""

    env: dict[str, str]
    endpoint_url: str

    def cli(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlloop.localcloud", *arguments],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def status(self) -> dict[str, Any]:
        answer = self.cli("status")
        assert answer.returncode == 0, answer.stderr
        status: dict[str, Any] = json.loads(answer.stdout)
        return status

    def now(self) -> datetime:
        return datetime.fromisoformat(self.status()["clock"]["now"])

    def advance(self, duration: str) -> datetime:
        answer = self.cli("advance", duration)
        assert answer.returncode == 0, answer.stderr
        return datetime.fromisoformat(answer.stdout.strip())

    def deploy(self, stage: str) -> dict[str, Any]:
        """Deploy a stage as `cdk synth` wrote it; the status afterwards."""
        answer = self.cli("deploy", "--stage", stage)
        assert answer.returncode == 0, answer.stderr
        return self.status()

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="localcloud",
            aws_secret_access_key="localcloud",
        )


def up_process(directory: Path, *arguments: str) -> Iterator[UpProcess]:
    """A cloud of its own (no stage deployed), its state file in `directory`; stopped when the generator ends."""
    env = {**os.environ, "LOCALCLOUD_STATE_FILE": str(directory / "state.json")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlloop.localcloud", "up", "--no-deploy", *arguments],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        up = UpProcess(env, "")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            answer = up.cli("status")
            if answer.returncode == 0:
                up.endpoint_url = json.loads(answer.stdout)["endpoint_url"]
                break
            time.sleep(0.5)
        assert up.endpoint_url, "`up` never answered its status"
        yield up
        up.cli("down")
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
