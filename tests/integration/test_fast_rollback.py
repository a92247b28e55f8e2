"""Fast rollback on the embedded AWS: after v1 -> v2 with a warm standby, `mlloop rollback` moves all traffic back
to v1 with UpdateEndpointWeightsAndCapacities (no endpoint config, no fleet) within the stated bound; after the
window it takes the guarded path; with the standby off no idle variant is kept and `--emergency` skips the bake.

The dev stage keeps no standby (it would cost an instance): the module turns it on in the deploy function's
environment, as a stage with `rollback.standby` ships it, on an endpoint it creates for itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from functions.deploy_model.standby import FAST_ROLLBACK_BOUND_SECONDS, FAST_ROLLBACK_UNTIL_KEY
from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.serving_support import (
    ENDPOINT,
    Api,
    Cli,
    deploy_executions,
    operator_cli,
    register_package,
    wait_for_new_deploy,
)
from tests.unit.frontdoor_support import VALID_RECORD

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


def _deploy_function(cloud: LocalCloud) -> str:
    for function in cloud.client("lambda").list_functions()["Functions"]:
        env = (function.get("Environment") or {}).get("Variables") or {}
        if function["Handler"] == "functions.deploy_model.handler.handler" and env.get("STAGE") == "dev":
            return str(function["FunctionName"])
    raise AssertionError("no dev deploy function")


def _keep_standby(cloud: LocalCloud, instances: int) -> None:
    lam, name = cloud.client("lambda"), _deploy_function(cloud)
    variables = dict(lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"])
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**variables, "STANDBY_INSTANCE_COUNT": str(instances)}}
    )


def _fresh_endpoint(cloud: LocalCloud) -> None:
    """Start from no endpoint, so the first deploy creates it with the variants every later config keeps."""
    # Package events still in flight would find no endpoint and deploy their package: let them land first.
    cloud.wait_idle()
    sm = cloud.client("sagemaker")
    if any(e["EndpointName"] == ENDPOINT for e in sm.list_endpoints()["Endpoints"]):
        sm.delete_endpoint(EndpointName=ENDPOINT)


def _quiet_rollback_alarms(cloud: LocalCloud) -> None:
    """Earlier tests of the shared cloud may have left a rollback alarm in ALARM (a broken canary's 5XX); their
    datapoints leave the one-minute periods within two minutes, and a promotion meanwhile would be rolled back."""
    names = [f"mlloop-dev-serving-{kind}" for kind in ("5xx", "latency-p99", "fallback-rate")]
    deadline = time.monotonic() + 180
    while True:
        # evaluate_alarms answers every alarm's state (other tests' alarms too): look at the rollback alarms only.
        states = {name: state for name, state in cloud.evaluate_alarms(alarm_names=names).items() if name in names}
        if "ALARM" not in states.values():
            return
        assert time.monotonic() < deadline, f"the rollback alarms stayed in ALARM: {states}"
        time.sleep(2)


def _in_service(cloud: LocalCloud) -> None:
    """A weights switch leaves the endpoint Updating for a moment: the next promotion starts from InService."""
    sm = cloud.client("sagemaker")
    deadline = time.monotonic() + 120
    while any(e["EndpointName"] == ENDPOINT for e in sm.list_endpoints()["Endpoints"]):
        if sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService":
            return
        assert time.monotonic() < deadline, "the endpoint stayed Updating"
        time.sleep(0.5)


def _promote(cloud: LocalCloud) -> int:
    _quiet_rollback_alarms(cloud)
    _in_service(cloud)
    before = len(deploy_executions(cloud))
    arn = register_package(cloud, broken=False)
    assert wait_for_new_deploy(cloud, before)["status"] == "SUCCEEDED"
    return int(arn.rsplit("/", 1)[-1])


def _variants(cloud: LocalCloud) -> dict[str, tuple[str, float]]:
    """variant -> (model version, current weight), as DescribeEndpoint and DescribeEndpointConfig show them."""
    sm = cloud.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    return {
        v["VariantName"]: (models[v["VariantName"]].split("-")[-2], float(v["CurrentWeight"]))
        for v in endpoint["ProductionVariants"]
    }


def _configs(cloud: LocalCloud) -> set[str]:
    listed = cloud.client("sagemaker").list_endpoint_configs(NameContains=ENDPOINT, MaxResults=100)
    return {c["EndpointConfigName"] for c in listed["EndpointConfigs"]}


@pytest.fixture(scope="module")
def api(local_cloud: LocalCloud, dev_stage: Deployment) -> Api:
    rest_api = [r for r in dev_stage.of_type("AWS::ApiGateway::RestApi") if r.stack == "mlloop-dev-serving"]
    return Api(local_cloud.api_url(rest_api[0].physical_id, "dev"))


@pytest.fixture(scope="module")
def warm(local_cloud: LocalCloud, dev_stage: Deployment) -> Iterator[tuple[int, int]]:
    """v1 then v2 promoted on a fresh endpoint whose stage keeps one standby instance."""
    _keep_standby(local_cloud, 2)
    _fresh_endpoint(local_cloud)
    try:
        yield _promote(local_cloud), _promote(local_cloud)
    finally:
        _keep_standby(local_cloud, 0)
        _fresh_endpoint(local_cloud)


@pytest.fixture
def cli(local_cloud: LocalCloud) -> Cli:
    return operator_cli(local_cloud)


def test_a_promotion_leaves_the_previous_version_warm_and_status_says_until_when(
    cli: Cli, local_cloud: LocalCloud, warm: tuple[int, int]
) -> None:
    v1, v2 = warm
    assert _variants(local_cloud) == {"primary": (f"v{v2}", 1.0), "standby": (f"v{v1}", 0.0)}
    code, status, err = cli("status")
    assert code == 0, err
    fast = status["fast_rollback"]
    assert fast["available"] is True and fast["to_version"] == v1
    until = datetime.strptime(fast["until"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)


def test_a_fast_rollback_returns_all_traffic_to_v1_without_a_new_config_or_fleet_within_the_bound(
    cli: Cli, local_cloud: LocalCloud, warm: tuple[int, int], api: Api
) -> None:
    v1, v2 = warm
    configs, executions = _configs(local_cloud), len(deploy_executions(local_cloud))
    running = local_cloud.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]

    code, result, err = cli("rollback", "--reason", "p99 regression under load after the canary passed")

    assert code == 0, err
    assert (result["path"], result["from_version"], result["to_version"]) == ("fast", v2, v1)
    assert result["seconds"] < FAST_ROLLBACK_BOUND_SECONDS and result["within_bound"] is True
    print(f"local fast rollback took {result['seconds']:.2f} s")
    assert _variants(local_cloud) == {"primary": (f"v{v2}", 0.0), "standby": (f"v{v1}", 1.0)}
    described = local_cloud.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == running
    assert _configs(local_cloud) == configs, "no endpoint config was created"
    assert len(deploy_executions(local_cloud)) == executions, "no deploy (and so no new fleet) ran"
    answers = [api.call("POST", "/predict", VALID_RECORD)[1] for _ in range(10)]
    assert {(a["model_version"], a["variant"], a["fallback"]) for a in answers} == {(f"v{v1}", "standby", False)}
    code, status, _ = cli("status")
    assert status["fast_rollback"]["available"] is False
    assert "already takes traffic" in status["fast_rollback"]["reason"]
    package = next(v for v in status["versions"] if v["version"] == v1)
    assert package["metadata"]["rollback_path"] == "fast"


def test_after_the_window_a_rollback_takes_the_guarded_path(
    cli: Cli, local_cloud: LocalCloud, warm: tuple[int, int]
) -> None:
    v1, _ = warm
    # The standby is the version taking traffic when the promotion starts (v1 after an earlier fast rollback).
    serving = next(version for version, weight in _variants(local_cloud).values() if weight == 1.0)
    v3 = _promote(local_cloud)
    assert _variants(local_cloud) == {"primary": (f"v{v3}", 1.0), "standby": (serving, 0.0)}
    # The window is what v3's promotion recorded on its package; 24 h are not waited for, the record is moved.
    sm = local_cloud.client("sagemaker")
    arn = next(
        p["ModelPackageArn"]
        for p in sm.list_model_packages(ModelPackageGroupName="mlloop-dev-churn", MaxResults=100)[
            "ModelPackageSummaryList"
        ]
        if p["ModelPackageVersion"] == v3
    )
    package = sm.describe_model_package(ModelPackageName=arn)
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sm.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription=package.get("ApprovalDescription", ""),
        CustomerMetadataProperties={**package["CustomerMetadataProperties"], FAST_ROLLBACK_UNTIL_KEY: past},
    )
    local_cloud.wait_idle()
    _, status, _ = cli("status")
    assert status["fast_rollback"]["available"] is False and "window" in status["fast_rollback"]["reason"]

    code, result, err = cli("rollback", "--to", f"v{v1}", "--reason", "found late")

    assert code == 0, err
    assert result["path"] == "guarded" and "window" in result["fast_unavailable"]
    assert result["deploy_response"]["status"] == "SUCCEEDED" and result["skipped"] == []
    assert _variants(local_cloud)["primary"] == (f"v{v1}", 1.0)


def test_with_the_standby_off_no_idle_variant_is_kept_and_emergency_says_what_it_skipped(
    cli: Cli, local_cloud: LocalCloud, warm: tuple[int, int]
) -> None:
    _keep_standby(local_cloud, 0)
    _fresh_endpoint(local_cloud)
    older = _promote(local_cloud)
    _promote(local_cloud)
    assert list(_variants(local_cloud)) == ["primary"], "no idle standby"
    _, status, _ = cli("status")
    assert "keeps no standby" in status["fast_rollback"]["reason"]

    code, result, err = cli("rollback", "--emergency", "--reason", "5XX on the new version")

    assert code == 0, err
    assert (result["path"], result["to_version"]) == ("emergency", older)
    assert result["skipped"] == [
        "the 50 % canary step",
        "the 300 s bake per step (rollback alarms have no period to watch)",
        "the 120 s termination wait",
    ]
    assert result["deploy_response"]["status"] == "SUCCEEDED"
    assert list(_variants(local_cloud)) == ["primary"] and _variants(local_cloud)["primary"][0] == f"v{older}"
