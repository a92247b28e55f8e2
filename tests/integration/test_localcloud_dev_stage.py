"""The synthesized dev stage, deployed into the local cloud, behaves as the templates wire it.

Given the dev stage as `cdk synth` produced it, when a raw file lands or a workflow is started, then the
real handlers do their work through the deployed wiring; the AWS CLI sees the deployed resources.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from mlloop import assembly
from mlloop.datagen import generate_churn
from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.localcloud_support import signed_request

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]

AWS_CLI = Path(sys.executable).with_name("aws")


def _keys(cloud: LocalCloud, bucket: str, prefix: str) -> list[str]:
    listed = cloud.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def ingested(local_cloud: LocalCloud, dev_stage: Deployment) -> str:
    """One raw CSV (a month of churn rows, a few corrupt) dropped in the raw bucket and fully processed."""
    file_name = f"batch-{uuid.uuid4().hex[:8]}"
    frame = generate_churn(300, seed=11, months=1, corrupt_fraction=0.05)
    local_cloud.client("s3").put_object(
        Bucket=dev_stage.physical_id("RawBucket"), Key=f"churn/{file_name}.csv", Body=frame.to_csv(index=False).encode()
    )
    local_cloud.wait_idle()
    return file_name


def test_a_raw_file_lands_in_curated_and_quarantine(
    local_cloud: LocalCloud, dev_stage: Deployment, ingested: str
) -> None:
    curated = _keys(local_cloud, dev_stage.physical_id("CuratedBucket"), "churn/")
    quarantine = _keys(local_cloud, dev_stage.physical_id("QuarantineBucket"), "")

    assert any(ingested in key and key.endswith(".parquet") for key in curated)
    assert any(ingested in key and key.startswith("rows/") for key in quarantine)
    assert any(ingested in key and key.startswith("reports/") for key in quarantine)


def test_training_workflow_runs_its_real_handlers_end_to_end(
    local_cloud: LocalCloud, dev_stage: Deployment, ingested: str
) -> None:
    sfn = local_cloud.client("stepfunctions")
    state_machine = next(
        r.physical_id
        for r in dev_stage.of_type("AWS::StepFunctions::StateMachine")
        if r.physical_id.endswith(":mlloop-dev-training")
    )
    started = sfn.start_execution(
        stateMachineArn=state_machine,
        name=f"manual-{uuid.uuid4().hex[:12]}",
        input=json.dumps({"trigger": {"kind": "manual", "requested_by": "integration-test"}}),
    )

    finished = local_cloud.wait_for_execution(started["executionArn"], timeout=120)

    history = sfn.get_execution_history(executionArn=started["executionArn"], maxResults=1000)["events"]
    entered = [event["stateEnteredEventDetails"]["name"] for event in history if "stateEnteredEventDetails" in event]
    # A month of 300 rows is too little data: the real data gate must refuse it and say so.
    assert entered[:3] == ["PrepareTrainingData", "CheckDataGate", "DataGatePassed"]
    assert (finished["status"], finished["error"]) == ("FAILED", "DataGateRejected")


def test_the_rest_api_serves_the_real_front_door_over_http(local_cloud: LocalCloud, dev_stage: Deployment) -> None:
    (api_stage,) = dev_stage.of_type("AWS::ApiGateway::Stage")
    url = local_cloud.api_url(api_stage.properties["RestApiId"], api_stage.physical_id) + "/health"

    with urllib.request.urlopen(signed_request(url), timeout=60) as response:
        status, answer = response.status, json.loads(response.read())

    assert status == 200
    assert answer["endpoint_name"] == "mlloop-dev-churn"


def test_file_assets_are_published_where_the_templates_expect_them(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    expected = []
    for stack in dev_stage.stack_names:
        manifest = json.loads((assembly.DEFAULT_OUTDIR / f"{stack}.assets.json").read_text())
        for asset in manifest["files"].values():
            if not asset["source"]["path"].endswith(".template.json"):
                destination = next(iter(asset["destinations"].values()))
                bucket = destination["bucketName"].replace("${AWS::AccountId}", "123456789012")
                expected.append((bucket.replace("${AWS::Region}", "us-east-1"), destination["objectKey"]))

    s3 = local_cloud.client("s3")
    assert expected
    for bucket, key in expected:
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0


def _aws_cli(cloud: LocalCloud, *arguments: str) -> Any:
    environment = {**os.environ, **cloud.client_environment(), "AWS_CONFIG_FILE": os.devnull}
    done = subprocess.run(
        [str(AWS_CLI), "--endpoint-url", cloud.endpoint_url, "--output", "json", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


def test_the_aws_cli_lists_the_deployed_buckets_and_state_machines(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    buckets = {bucket["Name"] for bucket in _aws_cli(local_cloud, "s3api", "list-buckets")["Buckets"]}
    machines = {m["name"] for m in _aws_cli(local_cloud, "stepfunctions", "list-state-machines")["stateMachines"]}

    assert {r.physical_id for r in dev_stage.of_type("AWS::S3::Bucket")} <= buckets
    assert "mlloop-dev-raw-123456789012-us-east-1" in buckets
    assert "mlloop-dev-training" in machines
