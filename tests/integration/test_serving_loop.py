"""Serving on the embedded AWS, wired as `cdk deploy` ships it: an approval deploys and verifies, the API answers
through the front door, endpoint faults get the fallback with their reason, and a broken canary is rolled back
by its alarms, caught by the verify step and never reported as deployed."""

from __future__ import annotations

import contextlib
import io
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.config import load_stage_config, read_cdk_json_context
from mlloop.localcloud import LocalCloud
from mlloop.localcloud import sagemaker as local_sagemaker
from mlloop.localcloud.deployer import Deployment
from tests.integration.serving_support import (
    ENDPOINT,
    Api,
    deploy_executions,
    register_package,
    stage_bucket,
    wait_for_new_deploy,
)
from tests.unit.frontdoor_support import VALID_RECORD

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


@pytest.fixture(scope="module")
def api(local_cloud: LocalCloud, dev_stage: Deployment) -> Api:
    rest_api = [r for r in dev_stage.of_type("AWS::ApiGateway::RestApi") if r.stack == "mlloop-dev-serving"]
    return Api(local_cloud.api_url(rest_api[0].physical_id, "dev"))


@pytest.fixture(scope="module")
def first_deploy(local_cloud: LocalCloud, dev_stage: Deployment) -> dict[str, Any]:
    before = len(deploy_executions(local_cloud))
    arn = register_package(local_cloud, broken=False)
    execution = wait_for_new_deploy(local_cloud, before)
    return {"arn": arn, "execution": execution}


def test_an_approval_deploys_the_package_and_the_api_answers_with_its_version(
    local_cloud: LocalCloud, first_deploy: dict[str, Any], api: Api
) -> None:
    assert first_deploy["execution"]["status"] == "SUCCEEDED"
    version = "v" + first_deploy["arn"].rsplit("/", 1)[-1]
    status, answer = api.call("POST", "/predict", {"instances": [VALID_RECORD, {**VALID_RECORD, "tenure_months": 240}]})
    assert status == 200, answer
    assert answer["fallback"] is False and answer["model_version"] == version and answer["variant"] == "primary"
    assert [p["probability"] for p in answer["predictions"]] == [12 / 240, 1.0]
    status, model = api.call("GET", "/model")
    assert status == 200 and model["model_version"] == version and model["contract"]["dataset"] == "churn"
    status, bad = api.call("POST", "/predict", {**VALID_RECORD, "plan": "gold"})
    assert status == 400 and "plan" in bad["fields"]


@pytest.mark.parametrize(
    ("inject", "reason"),
    [
        (lambda: local_sagemaker.fail_endpoint(ENDPOINT, count=1), "model_error"),
        (lambda: local_sagemaker.throttle_endpoint(ENDPOINT, count=2), "throttling"),
        (lambda: local_sagemaker.hide_endpoint(ENDPOINT, count=1), "endpoint_missing"),
        (lambda: local_sagemaker.slow_endpoint(ENDPOINT, seconds=2.0, count=2), "timeout"),
    ],
)
def test_endpoint_faults_are_answered_by_the_fallback_with_the_reason(
    first_deploy: dict[str, Any], api: Api, inject: Any, reason: str
) -> None:
    # The circuit opens on a failure rate (dev: 20 % of at least 5 calls in 30 s): healthy traffic around each
    # injected fault keeps this sequence under it, so the call after the fault reaches the endpoint again.
    for _ in range(5):
        assert api.call("POST", "/predict", VALID_RECORD)[1]["fallback"] is False
    inject()
    try:
        status, answer = api.call("POST", "/predict", VALID_RECORD)
    finally:
        local_sagemaker.clear_endpoint_faults(ENDPOINT)
    assert status == 200, answer
    assert answer["fallback"] is True and answer["fallback_reason"] == reason and answer["variant"] == "fallback"
    status, healthy = api.call("POST", "/predict", VALID_RECORD)
    assert status == 200 and healthy["fallback"] is False


def test_a_broken_canary_is_rolled_back_marked_and_never_reported_as_deployed(
    local_cloud: LocalCloud, first_deploy: dict[str, Any], api: Api
) -> None:
    live_version = api.call("GET", "/model")[1]["model_version"]
    before = len(deploy_executions(local_cloud))
    arn = register_package(local_cloud, broken=True)
    local_cloud.wait_idle()
    (running,) = [e for e in deploy_executions(local_cloud) if e["status"] == "RUNNING"] or [None]
    assert running is not None and len(deploy_executions(local_cloud)) == before + 1
    # Callers keep calling during the canary; the broken variant's errors feed the rollback alarms. The front door
    # soon opens its circuit and stops sending, so callers that invoke the endpoint directly (batch jobs, other
    # services) carry the canary's errors past the 5XX alarm's threshold within the (scaled) bake, whatever the
    # breaker's window held before.
    runtime = local_cloud.client("sagemaker-runtime")
    while (
        local_cloud.client("stepfunctions").describe_execution(executionArn=running["executionArn"])["status"]
        == "RUNNING"
    ):
        status, answer = api.call("POST", "/predict", VALID_RECORD)
        assert status == 200, answer
        for _ in range(3):
            with contextlib.suppress(ClientError):
                runtime.invoke_endpoint(
                    EndpointName=ENDPOINT,
                    ContentType="application/json",
                    Body=json.dumps({"instances": [VALID_RECORD]}),
                )
    execution = local_cloud.wait_for_execution(running["executionArn"])
    assert execution["status"] == "FAILED"
    assert execution["error"] == "DeployNotCompleted" and "rolled the deploy back" in execution["cause"]
    package = local_cloud.client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Rejected"
    assert package["CustomerMetadataProperties"]["deployment_status"] == "rolled_back"
    assert api.call("GET", "/model")[1]["model_version"] == live_version
    # The canary's errors opened the front door's circuit; after its cooldown the probes find the endpoint healthy.
    cooldown = load_stage_config(read_cdk_json_context(), "dev").frontdoor.circuit_cooldown_seconds
    deadline = time.monotonic() + 3 * cooldown
    while api.call("GET", "/health")[1]["circuit"] != "closed" and time.monotonic() < deadline:
        status, answer = api.call("POST", "/predict", VALID_RECORD)
        assert status == 200, answer
        time.sleep(0.5)
    status, answer = api.call("POST", "/predict", VALID_RECORD)
    assert status == 200 and answer["model_version"] == live_version and answer["fallback"] is False


def _run_nightly_batch(local_cloud: LocalCloud) -> tuple[str, dict[str, Any]]:
    """Curate yesterday's partition, fire the schedule; yesterday's date and the finished execution."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    rows = [{**VALID_RECORD, "customer_id": f"c{i}", "tenure_months": i} for i in range(7)]
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    s3 = local_cloud.client("s3")
    s3.put_object(
        Bucket=stage_bucket(local_cloud, "curated"),
        Key=f"churn/event_date={yesterday}/part-0.parquet",
        Body=out.getvalue(),
    )
    sfn = local_cloud.client("stepfunctions")
    (machine,) = [m for m in sfn.list_state_machines()["stateMachines"] if m["name"] == "mlloop-dev-batch-scoring"]
    # The session's cloud is shared: other tests may have run the batch before, or curated yesterday's data too.
    before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]}
    local_cloud.fire_schedule("mlloop-dev-batch-scoring")
    (execution,) = [
        e
        for e in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
        if e["executionArn"] not in before
    ]
    return yesterday, local_cloud.wait_for_execution(execution["executionArn"], timeout=120)


def test_a_failing_batch_run_notifies_and_ends_failed(local_cloud: LocalCloud, first_deploy: dict[str, Any]) -> None:
    local_sagemaker.fail_endpoint(ENDPOINT, message="injected: the model cannot score")
    try:
        _, execution = _run_nightly_batch(local_cloud)
    finally:
        local_sagemaker.clear_endpoint_faults(ENDPOINT)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "BatchScoringFailed" and "model_error" in execution["cause"]
    history = local_cloud.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])
    notified = [
        e
        for e in history["events"]
        if e["type"] == "TaskSucceeded" and e["taskSucceededEventDetails"]["resourceType"] == "sns"
    ]
    assert len(notified) == 1, "the failure was published to the notification topic once"


def test_the_nightly_batch_scores_yesterdays_partition_into_the_predictions_table(
    local_cloud: LocalCloud, first_deploy: dict[str, Any]
) -> None:
    yesterday, execution = _run_nightly_batch(local_cloud)
    s3 = local_cloud.client("s3")
    assert execution["status"] == "SUCCEEDED"
    capture = stage_bucket(local_cloud, "capture")
    ours = [
        o
        for o in s3.list_objects_v2(Bucket=capture, Prefix="predictions/")["Contents"]
        if f"/batch-{yesterday}-" in o["Key"] and o["Key"].endswith("-part-0.json")
    ]
    key = max(ours, key=lambda o: o["LastModified"])["Key"]
    scored = [json.loads(line) for line in s3.get_object(Bucket=capture, Key=key)["Body"].read().decode().splitlines()]
    assert [r["customer_id"] for r in scored] == [f"c{i}" for i in range(7)]
    assert [r["probability"] for r in scored] == [i / 240 for i in range(7)]
